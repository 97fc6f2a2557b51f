"""`resnet`: a small residual CNN (ResNet-style, BatchNorm) on 32x32x3 synthetic gratings.

    stem   conv3x3(WIDTHS[0]) + BN + ReLU                                 32x32
    stage  residual block: conv3x3(stride s) + BN + ReLU + conv3x3 + BN,   32x32, 16x16, 8x8
           shortcut = identity, or conv1x1(stride s) + BN when the shape changes; sum + ReLU
    head   global average pooling + dense(10)

The compute-heavier twin: several times the multiply-adds per sample of `cnn`, so timings are not
all serving overhead. Export/parity-safe choices: stride-2 convs use an explicit ZeroPadding2D(1) +
"valid" in Keras (Keras "same" pads stride-2 convs asymmetrically, PyTorch padding=1 symmetrically);
BatchNorm uses the same epsilon in both frameworks and is transplanted with its running statistics.
"""
from __future__ import annotations

from typing import Any

from deploy_compare.models.zoo.base import BN_EPSILON, BN_MOMENTUM_KERAS, TWINS, LayerPair, Twin

WIDTHS = (16, 32, 64)  # one residual block per stage; stages after the first downsample by 2


def stages() -> list[tuple[str, int, int, int]]:
    """(block name, in channels, out channels, stride) per residual block."""
    out, channels = [], WIDTHS[0]
    for i, width in enumerate(WIDTHS, start=1):
        out.append((f"block{i}", channels, width, 1 if i == 1 else 2))
        channels = width
    return out


@TWINS.add
class ResNetTwin(Twin):
    name = "resnet"
    dataset = "gratings32"
    keras_layout = "NHWC"
    torch_layout = "NCHW"
    input_shape = (32, 32, 3)

    def build_keras(self) -> Any:
        import keras
        from keras import layers

        def bn(name: str) -> Any:
            return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM_KERAS, name=name)

        def conv3x3(x: Any, filters: int, stride: int, name: str) -> Any:
            if stride == 1:  # odd kernel, stride 1: "same" == symmetric padding 1
                return layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            return layers.Conv2D(filters, 3, strides=stride, padding="valid", use_bias=False, name=name)(x)

        x = inputs = keras.Input(shape=self.input_shape, name="image")
        x = conv3x3(x, WIDTHS[0], 1, "stem_conv")
        x = layers.ReLU(name="stem_relu")(bn("stem_bn")(x))
        for name, c_in, c_out, stride in stages():
            y = conv3x3(x, c_out, stride, f"{name}_conv1")
            y = layers.ReLU(name=f"{name}_relu1")(bn(f"{name}_bn1")(y))
            y = bn(f"{name}_bn2")(conv3x3(y, c_out, 1, f"{name}_conv2"))
            shortcut = x
            if stride != 1 or c_in != c_out:
                shortcut = layers.Conv2D(c_out, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
                shortcut = bn(f"{name}_proj_bn")(shortcut)
            x = layers.ReLU(name=f"{name}_relu2")(layers.Add(name=f"{name}_add")([y, shortcut]))
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        logits = layers.Dense(self.num_classes, name="fc")(x)
        return keras.Model(inputs, logits, name=self.name)

    def build_torch(self) -> Any:
        from deploy_compare.models.zoo.torch_blocks import ResNet

        return ResNet(self.input_shape[-1], WIDTHS[0], stages(), self.num_classes)

    def weight_map(self) -> list[LayerPair]:
        pairs = [LayerPair("stem_conv", "stem_conv"), LayerPair("stem_bn", "stem_bn")]
        for name, c_in, c_out, stride in stages():
            parts = ["conv1", "bn1", "conv2", "bn2"]
            if stride != 1 or c_in != c_out:
                parts += ["proj", "proj_bn"]
            pairs += [LayerPair(f"{name}_{part}", f"blocks.{name}.{part}") for part in parts]
        return pairs + [LayerPair("fc", "fc")]
