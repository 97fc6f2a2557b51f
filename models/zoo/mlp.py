"""`mlp`: 64 -> 128 -> 64 -> 10 fully connected classifier on the flat digits (NF layout)."""
from __future__ import annotations

from typing import Any

from deploy_compare.models.zoo.base import TWINS, LayerPair, Twin

HIDDEN = (128, 64)


@TWINS.add
class MLPTwin(Twin):
    name = "mlp"
    dataset = "digits-flat"
    keras_layout = "NF"
    torch_layout = "NF"
    input_shape = (64,)

    def build_keras(self) -> Any:
        import keras

        x = inputs = keras.Input(shape=self.input_shape, name="features")
        for i, units in enumerate(HIDDEN, start=1):
            x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        logits = keras.layers.Dense(self.num_classes, name=f"fc{len(HIDDEN) + 1}")(x)
        return keras.Model(inputs, logits, name=self.name)

    def build_torch(self) -> Any:
        from collections import OrderedDict

        from torch import nn

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = self.input_shape[0]
        for i, units in enumerate(HIDDEN, start=1):
            layers[f"fc{i}"] = nn.Linear(width, units)
            layers[f"relu{i}"] = nn.ReLU()
            width = units
        layers[f"fc{len(HIDDEN) + 1}"] = nn.Linear(width, self.num_classes)
        return nn.Sequential(layers)

    def weight_map(self) -> list[LayerPair]:
        return [LayerPair(f"fc{i}", f"fc{i}") for i in range(1, len(HIDDEN) + 2)]
