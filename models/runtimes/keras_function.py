"""`keras-function`: the trained Keras model's call compiled once with `tf.function` (graph mode).

The input signature leaves the batch dimension free, so one trace serves every batch size; XLA is off
(`jit_compile=False`), as in a SavedModel served by TF Serving.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deploy_compare.models.runtimes.base import RUNTIMES
from deploy_compare.models.runtimes.keras_eager import KerasEager


@RUNTIMES.add
class KerasFunction(KerasEager):
    name = "keras-function"
    graph = True
    eager = "keras-eager"

    def _wrap(self, model: Any, input_shape: tuple[int, ...], dtype: str) -> Callable[[np.ndarray], Any]:
        import tensorflow as tf

        self.details = {"jit_compile": "off", "input_signature": f"[None, {', '.join(map(str, input_shape))}]"}
        return tf.function(lambda x: model(x, training=False), jit_compile=False, autograph=False,
                           input_signature=[tf.TensorSpec([None, *input_shape], tf.as_dtype(dtype))])
