"""`transformer`: a small encoder over token ids (sequence 128): a model that computes, with an integer input.

    embed   token embedding (vocabulary 256, dim 64) + learned position embedding (128 x 64)
    layers  2 x post-norm encoder layer: x = LN(x + MHA(x)), x = LN(x + MLP(x)); 4 heads, MLP 64-128-64 (ReLU)
    head    mean over positions + dense(10)

Trained briefly on `tokens128` (generated: the class is the marker token planted among random tokens).
The input is int64 token ids through every exporter (SavedModel and TFLite signatures, TorchScript,
ONNX); MultiHeadAttention is transplanted into nn.MultiheadAttention's packed projections.
"""
from __future__ import annotations

from typing import Any

from deploy_compare.models.zoo.base import LN_EPSILON, TWINS, LayerPair, Twin

VOCAB, SEQ, DIM, HEADS, HIDDEN, LAYERS = 256, 128, 64, 4, 128, 2


def position_embedding_class() -> type:
    """The Keras layer adding a learned position embedding (registered for .keras files on first use)."""
    import keras

    @keras.saving.register_keras_serializable(package="deploy_compare")
    class PositionEmbedding(keras.layers.Layer):
        def __init__(self, length: int, dim: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.length, self.dim = length, dim

        def build(self, input_shape: Any) -> None:
            self.embeddings = self.add_weight(shape=(self.length, self.dim), initializer="uniform", name="embeddings")

        def call(self, x: Any) -> Any:
            return x + self.embeddings

        def get_config(self) -> dict:
            return {**super().get_config(), "length": self.length, "dim": self.dim}

    return PositionEmbedding


@TWINS.add
class TransformerTwin(Twin):
    name = "transformer"
    dataset = "tokens128"
    keras_layout = "NF"
    torch_layout = "NF"
    input_shape = (SEQ,)
    input_dtype = "int64"

    def build_keras(self) -> Any:
        import keras
        from keras import layers

        ids = keras.Input(shape=self.input_shape, dtype="int64", name="ids")
        x = layers.Embedding(VOCAB, DIM, name="tokens")(ids)
        x = position_embedding_class()(SEQ, DIM, name="positions")(x)
        for i in range(1, LAYERS + 1):
            attn = layers.MultiHeadAttention(HEADS, DIM // HEADS, name=f"layer{i}_attn")(x, x)
            x = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"layer{i}_ln1")(x + attn)
            y = layers.Dense(HIDDEN, activation="relu", name=f"layer{i}_fc1")(x)
            y = layers.Dense(DIM, name=f"layer{i}_fc2")(y)
            x = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"layer{i}_ln2")(x + y)
        x = layers.GlobalAveragePooling1D(name="pool")(x)
        return keras.Model(ids, layers.Dense(self.num_classes, name="fc")(x), name=self.name)

    def keras_objects(self) -> dict[str, Any]:
        return {"PositionEmbedding": position_embedding_class()}

    def build_torch(self) -> Any:
        from deploy_compare.models.zoo.compute_blocks import Encoder

        return Encoder(VOCAB, SEQ, DIM, HEADS, HIDDEN, LAYERS, self.num_classes)

    def weight_map(self) -> list[LayerPair]:
        pairs = [LayerPair("tokens", "tokens"), LayerPair("positions", "positions")]
        for i in range(1, LAYERS + 1):
            pairs += [LayerPair(f"layer{i}_{part}", f"layers.layer{i}.{part}")
                      for part in ("attn", "ln1", "fc1", "fc2", "ln2")]
        return pairs + [LayerPair("fc", "fc")]
