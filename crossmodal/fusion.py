"""Fusion methods by name. Each is one Keras layer with one interface:

    call({"image_embedding", "audio_embedding": [N, D]  (absent -> learned "missing" vector),
          "image_present", "audio_present": [N]        (after modality dropout),
          "image_logits", "audio_logits": [N, K]       (per-modality heads),
          "image_map", "audio_map": [N, h, w, c]       (encoder feature maps)}) -> logits [N, K]

When to pick which (see README):
- concat: the default; a joint layer sees both embeddings and learns interactions.
- late:   modalities are each good alone and you want calibrated, interpretable weights.
- gated:  one modality is often noisy or missing; per-sample weights learn to ignore it.
- conv:   both modalities have spatial/temporal structure worth aligning before pooling.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from crossmodal.config import FUSION_NAMES
from crossmodal.errors import CrossmodalError


@keras.saving.register_keras_serializable(package="crossmodal")
class ConcatFusion(keras.layers.Layer):
    """Feature-level fusion: concatenate embeddings, one hidden layer, a softmax head."""

    def __init__(self, num_classes: int, hidden: int = 128, dropout: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.hidden = hidden
        self.dropout = dropout
        # === Layers ===
        self.concat = keras.layers.Concatenate()
        self.dense = keras.layers.Dense(hidden, activation="relu")
        self.drop = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(num_classes)

    def build(self, input_shape):
        # Built here, not on first call, so that a reloaded model.keras builds them too.
        width = input_shape["image_embedding"][-1] + input_shape["audio_embedding"][-1] + 2
        self.dense.build((None, width))
        self.head.build((None, self.hidden))

    def call(self, inputs, training=None):
        presence = tf.stack([inputs["image_present"], inputs["audio_present"]], axis=-1)  # [N, 2]
        z = self.concat([inputs["image_embedding"], inputs["audio_embedding"], presence])
        z = self.drop(self.dense(z), training=training)  # [N, hidden]
        return self.head(z)  # [N, K]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class LateFusion(keras.layers.Layer):
    """Weighted average of the per-modality class probabilities over the present modalities.

    The two weights are learned (softmax of two logits) unless `fixed_image_weight` is given.
    """

    def __init__(
        self,
        num_classes: int,
        fixed_image_weight: float | None = None,
        multi_label: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.fixed_image_weight = fixed_image_weight
        self.multi_label = multi_label

    def build(self, input_shape):
        self.weight_logits = self.add_weight(
            shape=(2,),
            initializer="zeros",
            name="weight_logits",
            trainable=self.fixed_image_weight is None,
        )

    def modality_weights(self):
        if self.fixed_image_weight is not None:
            w = float(self.fixed_image_weight)
            return tf.constant([w, 1.0 - w])
        return tf.nn.softmax(self.weight_logits)  # [2]

    def call(self, inputs, training=None):
        w = self.modality_weights()
        mask = tf.stack([inputs["image_present"], inputs["audio_present"]], axis=-1)  # [N, 2]
        weights = mask * w  # [N, 2]: an absent modality gets no vote
        weights = weights / tf.maximum(tf.reduce_sum(weights, -1, keepdims=True), 1e-6)
        squash = tf.nn.sigmoid if self.multi_label else tf.nn.softmax
        probs = tf.stack(
            [squash(inputs["image_logits"]), squash(inputs["audio_logits"])], axis=1
        )  # [N, 2, K]
        fused = tf.reduce_sum(weights[:, :, tf.newaxis] * probs, axis=1)  # [N, K]
        if self.multi_label:  # logits whose sigmoid is the fused probability
            fused = tf.clip_by_value(fused, 1e-7, 1.0 - 1e-7)
            return tf.math.log(fused) - tf.math.log1p(-fused)
        return tf.math.log(fused + 1e-7)  # log-probabilities serve as logits

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "fixed_image_weight": self.fixed_image_weight,
            "multi_label": self.multi_label,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class GatedFusion(keras.layers.Layer):
    """Per-sample softmax gate over the two (projected) embeddings; absent ones get weight 0."""

    def __init__(self, num_classes: int, hidden: int = 128, dropout: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.hidden = hidden
        self.dropout = dropout
        # === Layers ===
        self.project_image = keras.layers.Dense(hidden, activation="relu")
        self.project_audio = keras.layers.Dense(hidden, activation="relu")
        self.gate = keras.layers.Dense(2)
        self.drop = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(num_classes)

    def build(self, input_shape):
        self.project_image.build(input_shape["image_embedding"])
        self.project_audio.build(input_shape["audio_embedding"])
        self.gate.build((None, 2 * self.hidden + 2))
        self.head.build((None, self.hidden))

    def call(self, inputs, training=None):
        mask = tf.stack([inputs["image_present"], inputs["audio_present"]], axis=-1)  # [N, 2]
        zi = self.project_image(inputs["image_embedding"])  # [N, H]
        za = self.project_audio(inputs["audio_embedding"])  # [N, H]
        scores = self.gate(tf.concat([zi, za, mask], axis=-1))  # [N, 2]
        # An absent modality is never chosen; with neither present the gate is even (the
        # dtype's lowest value, not -1e9: that is -inf in float16, and a softmax of two is NaN).
        scores = tf.where(mask > 0, scores, tf.ones_like(scores) * scores.dtype.min)
        gate = tf.nn.softmax(scores, axis=-1)  # [N, 2]
        z = gate[:, 0:1] * zi + gate[:, 1:2] * za  # [N, H]
        return self.head(self.drop(z, training=training))  # [N, K]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class ConvFusion(keras.layers.Layer):
    """Bring both feature maps to a common grid, stack channels with presence planes, convolve.

    An absent modality's map is masked out and its presence plane is 0, so the convolution
    knows the difference between "absent" and "dark".
    """

    def __init__(
        self,
        num_classes: int,
        filters: int = 128,
        dropout: float = 0.3,
        grid: tuple[int, int] = (4, 4),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.filters = filters
        self.dropout = dropout
        self.grid = tuple(grid)
        # === Layers ===
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)
        self.norm = keras.layers.BatchNormalization(momentum=0.9)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.drop = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(num_classes)

    def build(self, input_shape):
        gh, gw = self.grid
        channels = input_shape["image_map"][-1] + input_shape["audio_map"][-1] + 2
        self.conv.build((None, gh, gw, channels))
        self.norm.build((None, gh, gw, self.filters))
        self.head.build((None, self.filters))

    def call(self, inputs, training=None):
        n = tf.shape(inputs["image_map"])[0]
        gh, gw = self.grid

        def to_grid(feature_map, present):
            resized = tf.image.resize(feature_map, [gh, gw])  # [N, gh, gw, c], always float32
            resized = tf.cast(resized, feature_map.dtype)  # float16 under mixed precision
            return resized * present[:, tf.newaxis, tf.newaxis, tf.newaxis]

        img = to_grid(inputs["image_map"], inputs["image_present"])
        aud = to_grid(inputs["audio_map"], inputs["audio_present"])
        planes = tf.stack([inputs["image_present"], inputs["audio_present"]], axis=-1)  # [N, 2]
        planes = tf.broadcast_to(planes[:, tf.newaxis, tf.newaxis, :], [n, gh, gw, 2])
        x = tf.concat([img, aud, planes], axis=-1)  # [N, gh, gw, c_img + c_aud + 2]
        x = tf.nn.relu(self.norm(self.conv(x), training=training))  # [N, gh, gw, filters]
        x = self.drop(self.pool(x), training=training)  # [N, filters]
        return self.head(x)  # [N, K]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "filters": self.filters,
            "dropout": self.dropout,
            "grid": list(self.grid),
        }


FUSIONS = {"concat": ConcatFusion, "late": LateFusion, "gated": GatedFusion, "conv": ConvFusion}
assert tuple(FUSIONS) == FUSION_NAMES, "config.FUSION_NAMES must list the registry"


def build_fusion(
    name: str, num_classes: int, *, hidden: int, dropout: float, multi_label: bool = False
) -> keras.layers.Layer:
    if name == "concat":
        return ConcatFusion(num_classes, hidden=hidden, dropout=dropout, name="fusion")
    if name == "late":
        # float32 under mixed precision too: 1 - 1e-7 is 1.0 in float16, and log1p(-1) is -inf
        return LateFusion(num_classes, multi_label=multi_label, name="fusion", dtype="float32")
    if name == "gated":
        return GatedFusion(num_classes, hidden=hidden, dropout=dropout, name="fusion")
    if name == "conv":
        return ConvFusion(num_classes, filters=hidden, dropout=dropout, name="fusion")
    raise CrossmodalError(f"unknown fusion '{name}' (choose from {', '.join(sorted(FUSIONS))})")
