"""`mobilenet`: a mobile-class CNN at 224x224x3 (MobileNet v1 blocks at width 0.5): a model that computes.

    stem    conv3x3 stride 2 (16) + BN + ReLU                                  112x112
    blocks  depthwise-separable: dw3x3 (stride s) + BN + ReLU + pw1x1 + BN + ReLU,
            widths 32, 64, 64, 128, 128, 256, 256 x 5, 512, 512                 112 -> 7
    head    global average pooling + dense(10)

About 0.3 GFLOPs per 224x224 image (counted per run by torch.utils.flop_counter, see models/flops.py).
Untrained: one epoch on 224x224 images takes minutes on 2 cores, so it keeps its seeded initial weights
(transplanted and checked like a trained twin) and is labelled untrained. Padding: Keras "same" pads a
stride-2 conv on an even size only at the bottom/right; the PyTorch twin pads the same way (ZeroPad2d).
"""
from __future__ import annotations

from typing import Any

from deploy_compare.models.zoo.base import BN_EPSILON, BN_MOMENTUM_KERAS, TWINS, LayerPair, Twin

STEM = 16
# He initialisation keeps the activations' scale through the ReLUs while untrained (Keras' default Glorot
# shrinks them to ~1e-18 logits after 27 layers: no separated logits to compare)
INIT = "he_normal"
DW_STD = (2 / 9) ** 0.5  # He for a depthwise 3x3 (fan-in 9; Keras' he_normal counts 9 x channels)
WIDTHS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (256, 1), (256, 1),
          (256, 1), (512, 2), (512, 1))


def blocks() -> list[tuple[str, int, int, int]]:
    """(block name, in channels, out channels, stride) per depthwise-separable block."""
    out, channels = [], STEM
    for i, (width, stride) in enumerate(WIDTHS, start=1):
        out.append((f"block{i}", channels, width, stride))
        channels = width
    return out


@TWINS.add
class MobileNetTwin(Twin):
    name = "mobilenet"
    dataset = "images224"
    keras_layout = "NHWC"
    torch_layout = "NCHW"
    input_shape = (224, 224, 3)
    untrained = "one epoch on 224x224 images takes minutes on 2 cores"

    def build_keras(self) -> Any:
        import keras
        from keras import layers

        def bn(name: str) -> Any:
            return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM_KERAS, name=name)

        x = inputs = keras.Input(shape=self.input_shape, name="image")
        x = layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, kernel_initializer=INIT, name="stem")(x)
        x = layers.ReLU(name="stem_relu")(bn("stem_bn")(x))
        for name, _, c_out, stride in blocks():
            x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                       depthwise_initializer=keras.initializers.RandomNormal(stddev=DW_STD),
                                       name=f"{name}_dw")(x)
            x = layers.ReLU(name=f"{name}_dw_relu")(bn(f"{name}_dw_bn")(x))
            x = layers.Conv2D(c_out, 1, use_bias=False, kernel_initializer=INIT, name=f"{name}_pw")(x)
            x = layers.ReLU(name=f"{name}_pw_relu")(bn(f"{name}_pw_bn")(x))
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.Model(inputs, layers.Dense(self.num_classes, name="fc")(x), name=self.name)

    def build_torch(self) -> Any:
        from deploy_compare.models.zoo.compute_blocks import MobileNet

        return MobileNet(self.input_shape[-1], STEM, blocks(), self.num_classes)

    def weight_map(self) -> list[LayerPair]:
        pairs = [LayerPair("stem", "stem.conv"), LayerPair("stem_bn", "stem_bn")]
        for name, *_ in blocks():
            pairs += [LayerPair(f"{name}_dw", f"blocks.{name}_dw.conv"), LayerPair(f"{name}_pw", f"blocks.{name}_pw")]
            pairs += [LayerPair(f"{name}_{bn}", f"blocks.{name}_{bn}") for bn in ("dw_bn", "pw_bn")]
        return pairs + [LayerPair("fc", "fc")]
