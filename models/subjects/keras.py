"""A Keras 3 model file (`.keras`): the TensorFlow exporters take it as it is (SavedModel, TFLite, tf2onnx)."""
from __future__ import annotations

import numpy as np

from deploy_compare.models.subjects.base import SUBJECTS, InputSpec, Subject

NO_TORCH = "no converter from a Keras model to PyTorch in this toolkit (the zoo's twins get one by weight transplant)"


def keras_input(model: object) -> InputSpec | None:
    """The first input of a Keras model, when its per-sample shape is fully known."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        return None
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        return None
    return InputSpec(shape=tuple(int(d) for d in shape), dtype=str(np.dtype(inputs[0].dtype)))


def first_output(out: object) -> np.ndarray:
    """One output array from whatever a model returns (a tensor, a list/tuple, a dict: its first key)."""
    if isinstance(out, dict):
        out = out[sorted(out)[0]]
    elif isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().cpu()
    return np.asarray(out, dtype=np.float32)


@SUBJECTS.add
class KerasSubject(Subject):
    name = "keras"
    framework = "tensorflow"
    description = "a Keras model file (.keras)"
    suffix = ".keras"

    def load(self) -> None:
        import keras

        self.model = keras.models.load_model(self.target, compile=False)

    def signature(self) -> InputSpec | None:
        return keras_input(self.model)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return first_output(self.model(x, training=False))

    def export_model(self, spec: InputSpec) -> object:
        return self.model

    def unreachable(self) -> dict[str, str]:
        return {"pytorch": NO_TORCH}

    def params(self) -> int | None:
        return int(self.model.count_params())
