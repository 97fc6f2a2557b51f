"""`pytensor`: a twin rebuilt as a PyTensor symbolic graph (Theano's maintained successor) with the
trained Keras weights, compiled once with `pytensor.function`.

This is the Theano row of the comparison: a static graph that is defined, optimised and compiled before
the first call. The graph is built from the Keras reference model layer by layer (Dense with its
activation, Flatten, Dropout/InputLayer as identity); the weights are the same arrays the PyTorch twin
received in the transplant, so parity against `logits_ref` is the same check as the gate's. Twins with
other layers (convolutions) are refused with the layer named. `details` records the graph-compile
seconds (`pytensor.function`), the linker PyTensor chose (Numba by default in 3.x) and the BLAS threads.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deploy_compare.core.kinds import RuntimeFamily
from deploy_compare.models.runtimes.base import RUNTIMES
from deploy_compare.models.runtimes.trained import TwinRuntime, load_keras

SUPPORTED_LAYERS = ("InputLayer", "Dense", "Activation", "ReLU", "Flatten", "Dropout")


def _activation(pt: Any, name: str) -> Callable[[Any], Any]:
    rules: dict[str, Callable[[Any], Any]] = {
        "linear": lambda v: v,
        "relu": lambda v: pt.maximum(v, 0),
        "tanh": pt.tanh,
        "sigmoid": pt.sigmoid,
        "softmax": lambda v: pt.special.softmax(v, axis=-1),
    }
    if name not in rules:
        raise NotImplementedError(f"pytensor runtime: no rule for activation {name!r}; known: {', '.join(rules)}")
    return rules[name]


def build_graph(keras_model: Any) -> tuple[Any, Any]:
    """(symbolic float32 input, symbolic logits) of `keras_model` with its weights as PyTensor constants."""
    import pytensor.tensor as pt

    x = pt.tensor("x", dtype="float32", shape=(None, *keras_model.input_shape[1:]))
    out = x
    for layer in keras_model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_LAYERS:
            raise NotImplementedError(
                f"pytensor runtime: model {keras_model.name!r} has a {kind} layer ({layer.name!r}); supported "
                f"layers: {', '.join(SUPPORTED_LAYERS)} (the Theano row uses the mlp twin)")
        if kind == "Dense":
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            out = pt.dot(out, pt.constant(weights[0]))
            if layer.use_bias:
                out = out + pt.constant(weights[1])
            out = _activation(pt, layer.activation.__name__)(out)
        elif kind == "Activation":
            out = _activation(pt, layer.activation.__name__)(out)
        elif kind == "ReLU":
            out = pt.maximum(out, 0)
        elif kind == "Flatten":
            out = out.reshape((out.shape[0], -1))
    return x, out


@RUNTIMES.add
class PyTensorGraph(TwinRuntime):
    name = "pytensor"
    framework = RuntimeFamily.PYTENSOR
    imports = ("pytensor", "tensorflow", "keras")  # Keras reads the trained weights
    cost_hint = 6.0
    twins = ("mlp",)  # build_graph knows Dense-layer models only (SUPPORTED_LAYERS)

    def __init__(self) -> None:
        super().__init__()
        self._fn: Callable[[np.ndarray], Any] | None = None

    def load(self, path: Path, threads: int) -> None:
        import pytensor
        from threadpoolctl import threadpool_limits

        twin, model = load_keras(path)
        self._layout = twin.keras_layout
        t0 = time.perf_counter()
        x, logits = build_graph(model)
        t1 = time.perf_counter()
        self._fn = pytensor.function([x], logits)
        t2 = time.perf_counter()
        threadpool_limits(limits=threads)  # BLAS pools (numpy/scipy OpenBLAS) used by the compiled graph
        self.threads = {"blas_threads": threads, **self._numba_threads(threads)}
        self.details = {"graph_build_seconds": t1 - t0, "graph_compile_seconds": t2 - t1,
                        "linker": type(self._fn.maker.linker).__name__, "pytensor": pytensor.__version__,
                        "weights_from": "keras reference model (same arrays as the PyTorch transplant)"}

    @staticmethod
    def _numba_threads(threads: int) -> dict[str, int]:
        try:
            import numba
        except ImportError:
            return {}
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return {"numba_threads": numba.get_num_threads()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._fn is None:
            raise RuntimeError(f"{self.name}: predict() before load()")
        return self._fn(x)
