"""Encoders by name: each maps a frontend's output to a feature map [N, h, w, c].

Pooling and the embedding projection are done by the model, so fusion methods that need the
spatial map (conv fusion) and those that need a vector can share one encoder.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from crossmodal.config import ModelConfig
from crossmodal.errors import CrossmodalError


def small_cnn(input_shape: tuple[int, ...], cfg: ModelConfig, name: str) -> keras.Model:
    """Conv-BN-ReLU-MaxPool blocks, one per entry of `cfg.filters`: small enough for a CPU."""
    inputs = keras.Input(input_shape, name=f"{name}_input")
    x = inputs
    for i, filters in enumerate(cfg.filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(
            x
        )
        # momentum 0.9: small datasets take few steps, and 0.99 leaves the moving
        # statistics near their initial values, which wrecks inference.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
        h, w = x.shape[1], x.shape[2]
        pool = (2 if h >= 4 else 1, 2 if w >= 4 else 1)
        if pool != (1, 1):
            x = keras.layers.MaxPooling2D(pool, name=f"{name}_pool{i}")(x)
    return keras.Model(inputs, x, name=name)  # [N, h / 2^k, w / 2^k, filters[-1]]


EncoderFactory = Callable[[tuple[int, ...], ModelConfig, str], keras.Model]
ENCODERS: dict[str, EncoderFactory] = {"cnn": small_cnn}


def build_encoder(kind: str, input_shape: tuple[int, ...], cfg: ModelConfig, name: str):
    try:
        factory = ENCODERS[kind]
    except KeyError:
        raise CrossmodalError(
            f"unknown encoder '{kind}' (choose from {', '.join(sorted(ENCODERS))})"
        ) from None
    return factory(input_shape, cfg, name)
