"""A TensorFlow SavedModel folder, called through its serving signature.

Keras 3 does not load a SavedModel as a Keras model; `keras.layers.TFSMLayer` wraps one as a layer that
keeps its variables, so the TensorFlow exporters take it like a Keras model. A signature takes keyword
arguments only: `SignatureLayer` calls it with the input's name and returns the one output (the first
by name where there are several).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.models.subjects.base import SUBJECTS, InputSpec, Subject, SubjectError
from deploy_compare.models.subjects.keras import NO_TORCH

SIGNATURE = "serving_default"


@SUBJECTS.add
class SavedModelSubject(Subject):
    name = "savedmodel"
    framework = "tensorflow"
    description = f"a TensorFlow SavedModel folder with a {SIGNATURE!r} signature"

    @classmethod
    def claims(cls, target: str) -> bool:
        return (Path(target) / "saved_model.pb").is_file()

    def load(self) -> None:
        import tensorflow as tf

        loaded = tf.saved_model.load(self.target)
        if SIGNATURE not in loaded.signatures:
            raise SubjectError(f"SavedModel {self.target} has no {SIGNATURE!r} signature (it has "
                               f"{sorted(loaded.signatures) or 'none'}): export it with one, e.g. "
                               "tf.saved_model.save(module, path, signatures={'serving_default': fn})")
        fn = loaded.signatures[SIGNATURE]
        _, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise SubjectError(f"SavedModel {self.target}: signature {SIGNATURE!r} takes {len(kwargs)} inputs "
                               f"({', '.join(kwargs)}); this toolkit measures models with one input")
        (self.input_name, spec), = kwargs.items()
        self.input_spec = spec
        self.output_key = sorted(fn.structured_outputs)[0]
        self.fn = fn
        self.loaded = loaded

    def signature(self) -> InputSpec | None:
        shape = self.input_spec.shape.as_list()[1:]
        if any(d is None for d in shape):
            return None
        return InputSpec(shape=tuple(shape), dtype=self.input_spec.dtype.as_numpy_dtype.__name__)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(**{self.input_name: x})[self.output_key], dtype=np.float32)

    def export_model(self, spec: InputSpec) -> object:
        import keras

        input_name, output_key = self.input_name, self.output_key

        class SignatureLayer(keras.layers.TFSMLayer):
            def call(self, inputs, training=False):
                return self.call_endpoint_fn(**{input_name: inputs})[output_key]

        layer = SignatureLayer(self.target, call_endpoint=SIGNATURE)
        inputs = keras.Input(shape=spec.shape, dtype=spec.dtype, name="input")
        return keras.Model(inputs, layer(inputs), name=self.default_name())

    def unreachable(self) -> dict[str, str]:
        return {"pytorch": NO_TORCH.replace("a Keras model", "a SavedModel")}
