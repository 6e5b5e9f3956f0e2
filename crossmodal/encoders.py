"""Encoders by name: each maps a frontend's output to a feature map [N, h, w, c].

Pooling and the embedding projection are done by the model, so fusion methods that need the
spatial map (conv fusion) and those that need a vector can share one encoder.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from crossmodal.config import ModelConfig
from crossmodal.errors import CrossmodalError


@keras.saving.register_keras_serializable(package="crossmodal")
class RelaxedFreqInstanceNorm(keras.layers.Layer):
    """x -> relax * x + (1 - relax) * IFN(x), IFN normalizing each frequency row of each sample
    over time and channels: removes per-utterance spectral "style" (speaker, device) from the
    feature map while keeping some of it (Kim et al., 2022, relaxed instance frequency-wise
    normalization)."""

    def __init__(self, relax: float = 0.5, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.relax = relax
        self.epsilon = epsilon

    def call(self, x):
        mean, var = tf.nn.moments(x, axes=[1, 3], keepdims=True)  # [N, 1, W, 1]
        normed = (x - mean) * tf.math.rsqrt(var + self.epsilon)
        return self.relax * x + (1.0 - self.relax) * normed

    def get_config(self):
        return {**super().get_config(), "relax": self.relax, "epsilon": self.epsilon}


def small_cnn(input_shape: tuple[int, ...], cfg: ModelConfig, name: str) -> keras.Model:
    """Conv-BN-ReLU-MaxPool blocks, one per entry of `cfg.filters`: small enough for a CPU."""
    return _conv_blocks(input_shape, cfg, name, second=None)


def vgg_cnn(input_shape: tuple[int, ...], cfg: ModelConfig, name: str) -> keras.Model:
    """As `small_cnn` with two 3x3 convolutions per block (VGG's pattern): a 5x5 view per
    block, at about four times the multiply-adds of `small_cnn` with the same widths."""
    return _conv_blocks(input_shape, cfg, name, second=keras.layers.Conv2D)


def vgg_sep_cnn(input_shape: tuple[int, ...], cfg: ModelConfig, name: str) -> keras.Model:
    """As `vgg_cnn` with each block's second convolution depthwise-separable (a 3x3 filter per
    channel, then a 1x1 mix): the same depth and view for about 1.4 times `small_cnn`'s
    multiply-adds."""
    return _conv_blocks(input_shape, cfg, name, second=keras.layers.SeparableConv2D)


def _conv_blocks(
    input_shape: tuple[int, ...], cfg: ModelConfig, name: str, second: type | None
) -> keras.Model:
    inputs = keras.Input(input_shape, name=f"{name}_input")
    x = inputs
    for i, filters in enumerate(cfg.filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(
            x
        )
        x = _bn_relu(x, f"{name}_bn{i}", f"{name}_relu{i}")
        if second is not None:
            x = second(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}_1")(x)
            x = _bn_relu(x, f"{name}_bn{i}_1", f"{name}_relu{i}_1")
        h, w = x.shape[1], x.shape[2]
        pool = (2 if h >= 4 else 1, 2 if w >= 4 else 1)
        if pool != (1, 1):
            x = keras.layers.MaxPooling2D(pool, name=f"{name}_pool{i}")(x)
        if i == 0 and cfg.freq_instance_norm > 0:
            x = RelaxedFreqInstanceNorm(cfg.freq_instance_norm, name=f"{name}_freq_norm")(x)
    return keras.Model(inputs, x, name=name)  # [N, h / 2^k, w / 2^k, filters[-1]]


def _bn_relu(x, bn_name: str, relu_name: str):
    # momentum 0.9: small datasets take few steps, and 0.99 leaves the moving
    # statistics near their initial values, which wrecks inference.
    x = keras.layers.BatchNormalization(momentum=0.9, name=bn_name)(x)
    return keras.layers.Activation("relu", name=relu_name)(x)


EncoderFactory = Callable[[tuple[int, ...], ModelConfig, str], keras.Model]
ENCODERS: dict[str, EncoderFactory] = {"cnn": small_cnn, "vgg": vgg_cnn, "vgg_sep": vgg_sep_cnn}


def build_encoder(kind: str, input_shape: tuple[int, ...], cfg: ModelConfig, name: str):
    try:
        factory = ENCODERS[kind]
    except KeyError:
        raise CrossmodalError(
            f"unknown encoder '{kind}' (choose from {', '.join(sorted(ENCODERS))})"
        ) from None
    return factory(input_shape, cfg, name)
