"""The twin axis: one architecture defined once in Keras 3 and once in PyTorch, plus the weight transplant.

A twin declares its layer correspondence (`weight_map`: Keras layer name -> PyTorch module path); the
transplant is generic and copies, per Keras layer type:

    Dense               kernel (in, out)            -> weight (out, in)   (transpose)
    Conv2D              kernel HWIO (kh, kw, i, o)  -> weight OIHW        (permute 3, 2, 0, 1)
    BatchNormalization  gamma, beta, moving mean/var -> weight, bias, running_mean/var (eps must match)

and, for a Dense layer fed by a Flatten of an NHWC feature map (`flatten_hwc=(h, w, c)`), permutes the
kernel rows from Keras' (h, w, c) flatten order to PyTorch's (c, h, w) order. Every PyTorch parameter
and running-statistics buffer must be written exactly once, or the transplant raises.

Parameter counts are compared on the same footing in both frameworks: trainable parameters plus
BatchNorm running statistics (Keras `count_params()`; PyTorch parameters + float buffers, i.e. without
`num_batches_tracked`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from deploy_compare.core.registry import Registry

BN_EPSILON = 1e-3  # Keras' default; the PyTorch twins use the same value
LN_EPSILON = 1e-5  # PyTorch's default; the Keras twins use the same value
BN_MOMENTUM_KERAS = 0.9  # Keras momentum m <-> PyTorch momentum 1 - m
BN_MOMENTUM_TORCH = 1.0 - BN_MOMENTUM_KERAS


class TransplantError(RuntimeError):
    pass


@dataclass(frozen=True)
class LayerPair:
    keras: str  # Keras layer name
    torch: str  # PyTorch module path (dotted, as in named_modules())
    flatten_hwc: tuple[int, int, int] | None = None  # Dense after Flatten of an (h, w, c) feature map


class Twin(ABC):
    """A model defined in both frameworks. Keras input uses `keras_layout`, PyTorch input `torch_layout`."""

    name: ClassVar[str]
    dataset: ClassVar[str]  # name in deploy_compare.models.data.DATASETS
    keras_layout: ClassVar[str]  # NF | NHWC (the canonical layout)
    torch_layout: ClassVar[str]  # NF | NCHW
    input_shape: ClassVar[tuple[int, ...]]  # per sample, canonical (Keras) layout
    input_dtype: ClassVar[str] = "float32"  # int64: token ids
    num_classes: ClassVar[int] = 10
    # why this twin is not trained here (e.g. minutes per epoch on 2 cores): it keeps its seeded initial weights,
    # transplanted and checked like a trained one, and is labelled untrained; "" = trained
    untrained: ClassVar[str] = ""

    @abstractmethod
    def build_keras(self) -> Any:
        """A fresh, uncompiled keras.Model returning logits."""

    @abstractmethod
    def build_torch(self) -> Any:
        """A fresh torch.nn.Module returning logits."""

    def keras_objects(self) -> dict[str, Any]:
        """Custom Keras layers its `.keras` file needs to load (`keras.models.load_model(custom_objects=...)`)."""
        return {}

    @abstractmethod
    def weight_map(self) -> list[LayerPair]:
        """Keras layer -> PyTorch module correspondence of every layer holding weights."""

    def transplant(self, keras_model: Any, torch_model: Any) -> None:
        """Copy the Keras weights into `torch_model` in place so both compute the same function."""
        import torch

        state = torch_model.state_dict()
        expected = {k for k, v in state.items() if v.is_floating_point()}
        written: dict[str, np.ndarray] = {}
        for pair in self.weight_map():
            layer = keras_model.get_layer(pair.keras)
            for suffix, array in _torch_arrays(layer, pair).items():
                key = f"{pair.torch}.{suffix}"
                if key not in state:
                    raise TransplantError(f"{self.name}: Keras layer {pair.keras!r} maps to {key!r}, which the "
                                          "PyTorch twin does not have; fix weight_map()")
                if key in written:
                    raise TransplantError(f"{self.name}: PyTorch tensor {key!r} written twice; fix weight_map()")
                if tuple(state[key].shape) != array.shape:
                    raise TransplantError(
                        f"{self.name}: shape mismatch for Keras {pair.keras!r} -> PyTorch {key!r}: "
                        f"{array.shape} vs {tuple(state[key].shape)}; the twins' architectures differ")
                written[key] = array
        missing = sorted(expected - written.keys())
        if missing:
            raise TransplantError(f"{self.name}: PyTorch tensors not covered by weight_map(): {', '.join(missing)}")
        with torch.no_grad():
            for key, array in written.items():
                state[key].copy_(torch.from_numpy(np.ascontiguousarray(array)))
        torch_model.eval()


def _torch_arrays(layer: Any, pair: LayerPair) -> dict[str, np.ndarray]:
    kind = type(layer).__name__
    weights = [np.asarray(w) for w in layer.get_weights()]
    if kind == "Dense":
        kernel = weights[0]
        if pair.flatten_hwc is not None:
            h, w, c = pair.flatten_hwc
            # rows in Keras order (h, w, c) -> PyTorch order (c, h, w)
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
        out = {"weight": kernel.T}
        if layer.use_bias:
            out["bias"] = weights[1]
        return out
    if kind == "Conv2D":
        out = {"weight": weights[0].transpose(3, 2, 0, 1)}
        if layer.use_bias:
            out["bias"] = weights[1]
        return out
    if kind == "DepthwiseConv2D":  # kernel (kh, kw, in, 1) -> grouped conv weight (in, 1, kh, kw)
        out = {"weight": weights[0].transpose(2, 3, 0, 1)}
        if layer.use_bias:
            out["bias"] = weights[1]
        return out
    if kind == "LayerNormalization":
        if abs(layer.epsilon - LN_EPSILON) > 1e-12:
            raise TransplantError(f"LayerNormalization {layer.name!r} has epsilon {layer.epsilon}; the PyTorch "
                                  f"twins use {LN_EPSILON}")
        return {"weight": weights[0], "bias": weights[1]}
    if kind in ("Embedding", "PositionEmbedding"):
        return {"weight": weights[0]}
    if kind == "MultiHeadAttention":  # per-head EinsumDense kernels -> nn.MultiheadAttention's packed in_proj
        q, k, v, o = (getattr(layer, f"_{part}_dense").get_weights() for part in ("query", "key", "value", "output"))
        d = q[0].shape[0]
        return {"in_proj_weight": np.concatenate([w[0].reshape(d, -1).T for w in (q, k, v)]),
                "in_proj_bias": np.concatenate([w[1].reshape(-1) for w in (q, k, v)]),
                "out_proj.weight": o[0].reshape(-1, d).T, "out_proj.bias": o[1]}
    if kind == "BatchNormalization":
        if not (layer.center and layer.scale):
            raise TransplantError(f"BatchNormalization {layer.name!r} must use center=True and scale=True")
        if abs(layer.epsilon - BN_EPSILON) > 1e-12:
            raise TransplantError(f"BatchNormalization {layer.name!r} has epsilon {layer.epsilon}; the PyTorch "
                                  f"twins use {BN_EPSILON}")
        gamma, beta, mean, var = weights
        return {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}
    raise TransplantError(f"no transplant rule for Keras layer type {kind} ({layer.name!r})")


def param_counts(keras_model: Any, torch_model: Any) -> tuple[int, int]:
    """(Keras, PyTorch) parameter counts on the same footing (see module docstring)."""
    keras_count = int(keras_model.count_params())
    torch_count = sum(p.numel() for p in torch_model.parameters())
    torch_count += sum(b.numel() for b in torch_model.buffers() if b.is_floating_point())
    return keras_count, int(torch_count)


TWINS: Registry[type[Twin]] = Registry("twin")
