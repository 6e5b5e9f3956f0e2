"""Training-only augmentation layers. At inference (and in the SavedModel) they pass through."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from crossmodal.config import AugmentConfig


@keras.saving.register_keras_serializable(package="crossmodal")
class WaveformAugment(keras.layers.Layer):
    """Random gain, time shift, babble and additive white noise at random SNRs, per sample.

    Babble: with probability `babble_prob`, the sum of `babble_voices` other clips of the same
    batch is mixed in at an SNR drawn from `babble_snr_db` (other speakers in the room; the
    batch is shuffled, so the neighbours change every epoch).
    """

    def __init__(
        self,
        gain_db: float = 6.0,
        max_shift: int = 0,
        snr_db: tuple[float, float] = (5.0, 30.0),
        noise_prob: float = 0.5,
        babble_prob: float = 0.0,
        babble_snr_db: tuple[float, float] = (0.0, 20.0),
        babble_voices: int = 2,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.babble_prob = babble_prob
        self.babble_snr_db = tuple(babble_snr_db)
        self.babble_voices = babble_voices
        self.gain_db = gain_db
        self.max_shift = max_shift
        self.snr_db = tuple(snr_db)
        self.noise_prob = noise_prob
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, audio, training=None):
        if not training:
            return audio
        n, t = tf.shape(audio)[0], tf.shape(audio)[1]
        gain_db = keras.random.uniform(
            [n, 1], -self.gain_db, self.gain_db, seed=self.seed_generator
        )
        audio = audio * tf.pow(10.0, gain_db / 20.0)  # [N, T]
        if self.max_shift > 0:
            shift = tf.cast(
                keras.random.uniform([n, 1], 0, self.max_shift + 1, seed=self.seed_generator),
                tf.int32,
            )  # [N, 1]: delay each clip by 0..max_shift samples
            idx = tf.range(t)[tf.newaxis, :] - shift  # [N, T]
            shifted = tf.gather(audio, tf.maximum(idx, 0), batch_dims=1)  # [N, T]
            audio = tf.where(idx >= 0, shifted, 0.0)
        power = tf.reduce_mean(tf.square(audio), axis=-1, keepdims=True)  # [N, 1]
        if self.babble_prob > 0 and self.babble_voices > 0:
            babble = tf.add_n(
                [
                    tf.roll(audio, r, axis=0) * tf.cast(r < n, tf.float32)  # never itself
                    for r in range(1, self.babble_voices + 1)
                ]
            )  # [N, T]: other rows of the batch (absent audio is silence and adds nothing)
            b_power = tf.reduce_mean(tf.square(babble), axis=-1, keepdims=True)  # [N, 1]
            b_snr = keras.random.uniform(
                [n, 1], self.babble_snr_db[0], self.babble_snr_db[1], seed=self.seed_generator
            )
            b_scale = tf.sqrt(power / (tf.maximum(b_power, 1e-12) * tf.pow(10.0, b_snr / 10.0)))
            b_use = tf.cast(
                keras.random.uniform([n, 1], seed=self.seed_generator) < self.babble_prob,
                tf.float32,
            )
            audio = audio + b_use * b_scale * babble
        snr = keras.random.uniform([n, 1], self.snr_db[0], self.snr_db[1], seed=self.seed_generator)
        noise_std = tf.sqrt(power / tf.pow(10.0, snr / 10.0))  # [N, 1]
        use = tf.cast(
            keras.random.uniform([n, 1], seed=self.seed_generator) < self.noise_prob, tf.float32
        )
        noise = keras.random.normal([n, t], seed=self.seed_generator)  # [N, T]
        return audio + use * noise_std * noise

    def get_config(self):
        return {
            **super().get_config(),
            "gain_db": self.gain_db,
            "max_shift": self.max_shift,
            "snr_db": list(self.snr_db),
            "noise_prob": self.noise_prob,
            "babble_prob": self.babble_prob,
            "babble_snr_db": list(self.babble_snr_db),
            "babble_voices": self.babble_voices,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class SpecAugment(keras.layers.Layer):
    """One time mask and one frequency mask per sample on a normalized log-mel [N, F, M, 1].

    Masked cells are set to 0, the normalized mean, so a mask looks like "average", not silence.
    """

    def __init__(self, time_mask: int = 10, freq_mask: int = 8, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.time_mask = time_mask
        self.freq_mask = freq_mask
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, n, size, width):
        w = tf.cast(keras.random.uniform([n, 1], 0, width + 1, seed=self.seed_generator), tf.int32)
        start = tf.cast(
            keras.random.uniform([n, 1], 0, 1, seed=self.seed_generator)
            * tf.cast(tf.maximum(size - w, 1), tf.float32),
            tf.int32,
        )  # [N, 1]
        pos = tf.range(size)[tf.newaxis, :]  # [1, size]
        return tf.logical_and(pos >= start, pos < start + w)  # [N, size]

    def call(self, spec, training=None):
        if not training:
            return spec
        n, frames, mels = tf.shape(spec)[0], tf.shape(spec)[1], tf.shape(spec)[2]
        time = self._mask(n, frames, self.time_mask)[:, :, tf.newaxis, tf.newaxis]  # [N, F, 1, 1]
        freq = self._mask(n, mels, self.freq_mask)[:, tf.newaxis, :, tf.newaxis]  # [N, 1, M, 1]
        return tf.where(tf.logical_or(time, freq), 0.0, spec)

    def get_config(self):
        return {
            **super().get_config(),
            "time_mask": self.time_mask,
            "freq_mask": self.freq_mask,
            "seed": self.seed,
        }


def bend_source(a, length):
    """Where each of `length` positions reads from under a bend with coefficients a [N, 2]:
    src(p) = p + (L - 1) (a1 sin(pi u) + a2 sin(2 pi u)), u = p / (L - 1). [N, L], unclipped."""
    last = tf.cast(length - 1, tf.float32)
    p = tf.cast(tf.range(length), tf.float32)[tf.newaxis, :]  # [1, L]
    u = p / tf.maximum(last, 1.0)
    a = tf.cast(a, tf.float32)
    offset = a[:, 0:1] * tf.sin(np.pi * u) + a[:, 1:2] * tf.sin(2.0 * np.pi * u)  # [N, L]
    return p + last * offset


@keras.saving.register_keras_serializable(package="crossmodal")
class SpecWarp(keras.layers.Layer):
    """Random time stretch/shift and frequency (vocal-tract-length-like) warp of [N, F, M, 1].

    Each sample is resampled from a random box: its time span is scaled by 1 +- `time_stretch`
    and shifted by up to `time_shift` of the length; its mel span is [0, a] with
    a in 1 +- `freq_warp` (a < 1 stretches the low bands upwards, a > 1 compresses the spectrum
    downwards, filling the top with `fill`). Identity at inference.
    """

    def __init__(
        self,
        time_stretch: float = 0.15,
        time_shift: float = 0.05,
        freq_warp: float = 0.1,
        fill: float = 0.0,
        time_bend: float = 0.0,
        freq_bend: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.time_stretch = time_stretch
        self.time_shift = time_shift
        self.freq_warp = freq_warp
        self.fill = fill
        self.time_bend = time_bend
        self.freq_bend = freq_bend
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, spec, training=None):
        if not training:
            return spec
        n = tf.shape(spec)[0]

        def uniform(low, high):
            return keras.random.uniform([n], low, high, seed=self.seed_generator)

        span = uniform(1.0 - self.time_stretch, 1.0 + self.time_stretch)  # [N]
        center = 0.5 + uniform(-self.time_shift, self.time_shift)
        y1, y2 = center - span / 2.0, center + span / 2.0
        x2 = uniform(1.0 - self.freq_warp, 1.0 + self.freq_warp)
        boxes = tf.stack([y1, tf.zeros_like(x2), y2, x2], axis=-1)  # [N, 4]
        size = [tf.shape(spec)[1], tf.shape(spec)[2]]
        if any(v > 0 for v in (self.time_stretch, self.time_shift, self.freq_warp)):
            spec = tf.image.crop_and_resize(
                spec, boxes, tf.range(n), size, extrapolation_value=self.fill
            )
        if self.time_bend > 0:
            spec = self._bend(spec, 1, self.time_bend)
        if self.freq_bend > 0:
            spec = self._bend(spec, 2, self.freq_bend)
        return spec

    def _bend(self, spec, axis: int, amount: float):
        """Smooth random monotonic warp along `axis` that keeps both ends in place:
        src(p) = p + L * (a1 sin(pi u) + a2 sin(2 pi u)), u = p / (L - 1), |a| <= amount."""
        n, length = tf.shape(spec)[0], tf.shape(spec)[axis]
        last = tf.cast(length - 1, tf.float32)
        a = keras.random.uniform([n, 2], -amount, amount, seed=self.seed_generator)  # [N, 2]
        src = tf.clip_by_value(bend_source(a, length), 0.0, last)  # [N, L]
        i0 = tf.cast(tf.floor(src), tf.int32)
        i1 = tf.minimum(i0 + 1, length - 1)
        frac = src - tf.cast(i0, tf.float32)  # [N, L]
        moved = tf.transpose(spec, [0, axis, 3 - axis, 3])  # [N, L, other, 1]
        lo = tf.gather(moved, i0, axis=1, batch_dims=1)
        hi = tf.gather(moved, i1, axis=1, batch_dims=1)
        out = lo + frac[:, :, tf.newaxis, tf.newaxis] * (hi - lo)
        return tf.transpose(out, [0, axis, 3 - axis, 3])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "time_stretch": self.time_stretch,
            "time_shift": self.time_shift,
            "freq_warp": self.freq_warp,
            "fill": self.fill,
            "time_bend": self.time_bend,
            "freq_bend": self.freq_bend,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class ImageNoise(keras.layers.Layer):
    """Gaussian pixel noise whose strength varies per sample: std drawn from [0, max_std]
    (images in [0, 1]), so the model sees clean and very noisy cameras alike.

    The result is clipped to [0, 1] (`clip`), as the noise of a real camera is once the image
    is stored as pixels: on a black background, clipped noise brightens it (its mean is about
    0.4 std), where unclipped noise would average out."""

    def __init__(self, max_std: float = 0.2, seed: int | None = None, clip: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.max_std = max_std
        self.seed = seed
        self.clip = clip
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or self.max_std <= 0:
            return images
        n = tf.shape(images)[0]
        std = keras.random.uniform([n, 1, 1, 1], 0.0, self.max_std, seed=self.seed_generator)
        noise = keras.random.normal(tf.shape(images), seed=self.seed_generator)  # [N, H, W, C]
        noisy = images + std * noise
        return tf.clip_by_value(noisy, 0.0, 1.0) if self.clip else noisy

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_std": self.max_std,
            "seed": self.seed,
            "clip": self.clip,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class Cutout(keras.layers.Layer):
    """With probability `prob`, cover a random square (side up to `max_size` of the shorter
    image side) with one random gray level: occlusions, stickers, thumbs over the lens."""

    def __init__(self, max_size: float = 0.4, prob: float = 0.5, seed: int | None = None, **kw):
        super().__init__(**kw)
        self.max_size = max_size
        self.prob = prob
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or self.max_size <= 0 or self.prob <= 0:
            return images
        n, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]

        def uniform(low=0.0, high=1.0):
            return keras.random.uniform([n, 1], low, high, seed=self.seed_generator)  # [N, 1]

        short = tf.cast(tf.minimum(h, w), tf.float32)
        side = tf.round(uniform(0.0, self.max_size) * short)  # [N, 1] pixels
        top = tf.floor(uniform() * (tf.cast(h, tf.float32) - side + 1.0))
        left = tf.floor(uniform() * (tf.cast(w, tf.float32) - side + 1.0))
        rows = tf.cast(tf.range(h), tf.float32)[tf.newaxis, :]  # [1, H]
        cols = tf.cast(tf.range(w), tf.float32)[tf.newaxis, :]  # [1, W]
        in_rows = (rows >= top) & (rows < top + side)  # [N, H]
        in_cols = (cols >= left) & (cols < left + side)  # [N, W]
        use = uniform() < self.prob  # [N, 1]
        mask = in_rows[:, :, tf.newaxis] & in_cols[:, tf.newaxis, :] & use[:, :, tf.newaxis]
        fill = uniform()[:, :, tf.newaxis, tf.newaxis]  # [N, 1, 1, 1] a gray level in [0, 1]
        return tf.where(mask[..., tf.newaxis], fill, images)  # [N, H, W, C]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_size": self.max_size,
            "prob": self.prob,
            "seed": self.seed,
        }


def image_augmentation(
    cfg: AugmentConfig, seed: int | None, dtype: str | None = None
) -> keras.Sequential:
    """Geometric and photometric jitter on [0, 1] images, then noise and cutout. Flips only
    when asked (`image_flip`): they break digits and text. `dtype` sets every layer's."""
    kw = {"seed": seed, "dtype": dtype}
    layers = []
    if cfg.image_flip != "none":
        mode = "horizontal_and_vertical" if cfg.image_flip == "both" else cfg.image_flip
        layers.append(keras.layers.RandomFlip(mode, **kw))
    layers += [
        keras.layers.RandomTranslation(
            cfg.image_translate, cfg.image_translate, fill_mode="constant", **kw
        ),
        keras.layers.RandomRotation(cfg.image_rotate, fill_mode="constant", **kw),
        keras.layers.RandomZoom(cfg.image_zoom, fill_mode="constant", **kw),
        keras.layers.RandomContrast(cfg.image_contrast, value_range=(0.0, 1.0), **kw),
        ImageNoise(cfg.image_noise, clip=cfg.image_noise_clip, **kw),
        Cutout(cfg.image_cutout, cfg.image_cutout_prob, **kw),
    ]
    return keras.Sequential(layers, name="image_augment")
