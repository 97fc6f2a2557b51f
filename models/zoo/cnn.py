"""`cnn`: two 3x3 conv + 2x2 max-pool stages, then two dense layers, on the 8x8x1 digits.

The first dense layer reads a flattened 2x2x32 feature map: Keras flattens NHWC in (h, w, c) order,
PyTorch flattens NCHW in (c, h, w) order, so the transplant permutes that kernel's rows.
"""
from __future__ import annotations

from typing import Any

from deploy_compare.models.zoo.base import TWINS, LayerPair, Twin

FILTERS = (16, 32)
HIDDEN = 64


@TWINS.add
class CNNTwin(Twin):
    name = "cnn"
    dataset = "digits-image"
    keras_layout = "NHWC"
    torch_layout = "NCHW"
    input_shape = (8, 8, 1)

    def _flat_hwc(self) -> tuple[int, int, int]:
        side = self.input_shape[0] // 2 ** len(FILTERS)
        return side, side, FILTERS[-1]

    def build_keras(self) -> Any:
        import keras

        x = inputs = keras.Input(shape=self.input_shape, name="image")
        for i, filters in enumerate(FILTERS, start=1):
            # stride 1, odd kernel: Keras "same" pads symmetrically, exactly like PyTorch padding=1
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(HIDDEN, activation="relu", name="fc1")(x)
        logits = keras.layers.Dense(self.num_classes, name="fc2")(x)
        return keras.Model(inputs, logits, name=self.name)

    def build_torch(self) -> Any:
        from collections import OrderedDict

        from torch import nn

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = self.input_shape[-1]
        for i, filters in enumerate(FILTERS, start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels, filters, 3, padding=1)
            layers[f"relu{i}"] = nn.ReLU()
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            channels = filters
        h, w, c = self._flat_hwc()
        layers["flatten"] = nn.Flatten()
        layers["fc1"] = nn.Linear(h * w * c, HIDDEN)
        layers["relu_fc1"] = nn.ReLU()
        layers["fc2"] = nn.Linear(HIDDEN, self.num_classes)
        return nn.Sequential(layers)

    def weight_map(self) -> list[LayerPair]:
        convs = [LayerPair(f"conv{i}", f"conv{i}") for i in range(1, len(FILTERS) + 1)]
        return convs + [LayerPair("fc1", "fc1", flatten_hwc=self._flat_hwc()), LayerPair("fc2", "fc2")]
