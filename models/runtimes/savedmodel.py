"""SavedModel through TensorFlow: `tf.saved_model.load` and a call of the serving signature by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
from deploy_compare.models.runtimes.base import ArtifactRuntime, register_format
from deploy_compare.models.runtimes.threads import set_tensorflow_threads

SIGNATURE = "serving_default"


@register_format
class SavedModelRuntime(ArtifactRuntime):
    name = "savedmodel"
    framework = RuntimeFamily.TENSORFLOW
    format = ArtifactFormat.SAVEDMODEL
    imports = ("tensorflow",)
    cost_hint = 2.0
    eager = "keras-eager"

    def load(self, path: Path, threads: int) -> None:
        import tensorflow as tf

        self.threads = set_tensorflow_threads(threads)
        self._model = tf.saved_model.load(str(path))  # keeps the variables alive for the signature
        self._fn = self._model.signatures[SIGNATURE]
        (self._input,) = self._fn.structured_input_signature[1]
        (self._output,) = self._fn.structured_outputs

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._fn(**{self._input: x})[self._output].numpy()
