"""Frontends as Keras layers, so the exported model takes decoded pixels and raw waveforms.

The same layers run in training and serving: there is no separate feature pipeline to drift.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from crossmodal.config import AudioConfig


def fit_waveform(audio: tf.Tensor, num_samples: int) -> tf.Tensor:
    """[N, T'] -> [N, num_samples]: crop from the start or pad with silence at the end.

    Mirrors `data.decode.fit_length`, so a served clip of any length matches preprocessing.
    """
    audio = audio[:, :num_samples]  # [N, min(T', T)]
    pad = num_samples - tf.shape(audio)[1]
    return tf.pad(audio, [[0, 0], [0, pad]])  # [N, T]


def fit_image(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """[N, h, w, C] uint8 -> [N, H, W, C] uint8; identity when already the model's size."""
    same = tf.logical_and(tf.shape(image)[1] == height, tf.shape(image)[2] == width)

    def resize():
        resized = tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    return tf.cond(same, lambda: tf.ensure_shape(image, [None, height, width, None]), resize)


def _composite_on_black(value: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """int32 colour over an opaque black background, rounded as Pillow's alpha_composite
    rounds it (value * alpha / 255, with its 7-bit fixed point)."""
    x = value * alpha * 128 + (0x80 << 7)
    return tf.bitwise.right_shift(tf.bitwise.right_shift(tf.bitwise.right_shift(x, 8) + x, 8), 7)


def _luma(rgb: tf.Tensor) -> tf.Tensor:
    """int32 [..., 3] -> [..., 1]: ITU-R 601 luma, as Pillow's convert("L") rounds it."""
    weights = tf.constant([19595, 38470, 7471], tf.int32)
    return tf.bitwise.right_shift(tf.reduce_sum(rgb * weights, axis=-1, keepdims=True) + 0x8000, 16)


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """[N, h, w, c] uint8, c = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) -> [N, h, w, channels] uint8.

    Converts as `data.decode` does with Pillow, to the level: transparency composited on black,
    RGB to gray by ITU-R 601 luma, gray to RGB by repetition. A served image then needs no
    conversion by the client."""
    have = tf.shape(image)[-1]
    check = tf.debugging.assert_equal(
        tf.logical_and(have >= 1, have <= 4),
        True,
        message="image must have 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA) channels",
    )
    with tf.control_dependencies([check]):
        pixels = tf.cast(image, tf.int32)

    def out(color, k):  # color: int32 [N, h, w, k], k = 1 or 3, opaque
        color = tf.ensure_shape(color, [None, None, None, k])
        if channels == 1 and k == 3:
            color = _luma(color)
        elif channels == 3 and k == 1:
            color = tf.repeat(color, 3, axis=-1)
        return tf.cast(color, tf.uint8)

    branches = [
        lambda: out(pixels[..., :1], 1),
        lambda: out(_composite_on_black(pixels[..., :1], pixels[..., 1:2]), 1),
        lambda: out(pixels[..., :3], 3),
        lambda: out(_composite_on_black(pixels[..., :3], pixels[..., 3:4]), 3),
    ]
    return tf.switch_case(tf.clip_by_value(have, 1, 4) - 1, branches)


@keras.saving.register_keras_serializable(package="crossmodal")
class GainNormalization(keras.layers.Layer):
    """Per-utterance RMS normalization of the waveform: loud and quiet microphones look alike."""

    def __init__(self, target_rms: float = 0.1, floor: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        self.target_rms = target_rms
        self.floor = floor

    def call(self, audio):
        rms = tf.sqrt(tf.reduce_mean(tf.square(audio), axis=-1, keepdims=True))  # [N, 1]
        return audio * (self.target_rms / tf.maximum(rms, self.floor))  # [N, T]

    def get_config(self):
        return {**super().get_config(), "target_rms": self.target_rms, "floor": self.floor}


@keras.saving.register_keras_serializable(package="crossmodal")
class LogMel(keras.layers.Layer):
    """Waveform [N, T] -> log-mel spectrogram [N, frames, mels, 1] (tf.signal, YAMNet-style)."""

    def __init__(
        self,
        sample_rate: int,
        frame_length: int,
        frame_step: int,
        fft_length: int,
        num_mels: int,
        fmin: float,
        fmax: float,
        log_offset: float = 1e-6,
        pre_emphasis: float = 0.0,
        noise_floor: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pre_emphasis = pre_emphasis
        self.noise_floor = noise_floor
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.fft_length = fft_length
        self.num_mels = num_mels
        self.fmin = fmin
        self.fmax = fmax
        self.log_offset = log_offset
        # [fft_length // 2 + 1, mels], computed once; a constant in the graph.
        self._mel_matrix = (
            tf.signal.linear_to_mel_weight_matrix(
                num_mel_bins=num_mels,
                num_spectrogram_bins=fft_length // 2 + 1,
                sample_rate=sample_rate,
                lower_edge_hertz=fmin,
                upper_edge_hertz=fmax,
            )
            .numpy()
            .astype(np.float32)
        )
        if pre_emphasis > 0:
            # y[n] = x[n] - a x[n-1] multiplies each bin's magnitude by |1 - a e^(-iw)|: folded
            # into the mel matrix, it costs nothing at run time.
            w = np.pi * np.arange(fft_length // 2 + 1) / (fft_length // 2)  # [bins] radians
            gain = np.abs(1.0 - pre_emphasis * np.exp(-1j * w)).astype(np.float32)  # [bins]
            self._mel_matrix = self._mel_matrix * gain[:, None]

    @classmethod
    def from_audio_config(cls, cfg: AudioConfig, **kwargs) -> LogMel:
        return cls(
            sample_rate=cfg.sample_rate,
            frame_length=cfg.frame_length,
            frame_step=cfg.frame_step,
            fft_length=cfg.fft_length,
            num_mels=cfg.num_mels,
            fmin=cfg.fmin,
            fmax=cfg.effective_fmax,
            log_offset=cfg.log_offset,
            pre_emphasis=cfg.pre_emphasis,
            noise_floor=cfg.noise_floor,
            **kwargs,
        )

    def call(self, audio):
        stft = tf.signal.stft(
            audio, self.frame_length, self.frame_step, self.fft_length, pad_end=False
        )  # [N, frames, fft_length // 2 + 1] complex64
        magnitude = tf.abs(stft)  # [N, frames, bins]
        mel = tf.tensordot(magnitude, self._mel_matrix, axes=1)  # [N, frames, mels]
        if self.noise_floor > 0:
            mel = tf.nn.relu(mel - band_noise_floor(mel, self.noise_floor))  # [N, frames, mels]
        log_mel = tf.math.log(mel + self.log_offset)  # [N, frames, mels]: log compresses range
        return log_mel[..., tf.newaxis]  # [N, frames, mels, 1]: a one-channel "image" for a CNN

    def compute_output_shape(self, input_shape):
        frames = None
        if input_shape[1] is not None:
            frames = 1 + max(0, input_shape[1] - self.frame_length) // self.frame_step
        return (input_shape[0], frames, self.num_mels, 1)

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_length": self.fft_length,
            "num_mels": self.num_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "log_offset": self.log_offset,
            "pre_emphasis": self.pre_emphasis,
            "noise_floor": self.noise_floor,
        }


def band_noise_floor(mel, quantile: float):
    """Each utterance's stationary background in each band: the `quantile` of that band's
    magnitudes over the utterance's recorded frames (frames of exact silence, the padding of a
    short clip, are left out). mel [N, F, M] -> [N, 1, M]; 0 for a clip with no recorded frame."""
    recorded = tf.reduce_sum(mel, axis=2) > 0.0  # [N, F]
    # Padding frames sort last (+inf) and are never picked: the index stays below `count`.
    ranked = tf.sort(tf.where(recorded[..., tf.newaxis], mel, np.inf), axis=1)  # [N, F, M]
    count = tf.reduce_sum(tf.cast(recorded, tf.int32), axis=1)  # [N]
    last = tf.cast(tf.maximum(count - 1, 0), tf.float32)  # [N]: the highest recorded rank
    index = tf.cast(tf.math.floor(quantile * last), tf.int32)  # [N]
    floor = tf.gather(ranked, index, axis=1, batch_dims=1)  # [N, M]
    floor = tf.where((count > 0)[:, tf.newaxis], floor, 0.0)
    return floor[:, tf.newaxis, :]  # [N, 1, M]


@keras.saving.register_keras_serializable(package="crossmodal")
class ScaleImage(keras.layers.Layer):
    """uint8 pixels [N, H, W, C] -> float32 in [0, 1]."""

    def call(self, image):
        return tf.cast(image, tf.float32) / 255.0  # [N, H, W, C]


def mel_band_normalization(name: str, dtype: str | None = None) -> keras.layers.Normalization:
    """Per-mel-band statistics (axis 2 of [N, frames, mels, 1]), adapted on training audio."""
    return keras.layers.Normalization(axis=2, name=name, dtype=dtype)


def channel_normalization(name: str, dtype: str | None = None) -> keras.layers.Normalization:
    """Per-channel statistics of [N, H, W, C] images, adapted on training images."""
    return keras.layers.Normalization(axis=-1, name=name, dtype=dtype)


def frame_energy(raw, log_offset: float):
    """Raw log-mel [N, F, M, 1] (log(mel + log_offset)) -> each frame's log energy [N, F]."""
    mel = tf.nn.relu(tf.exp(raw[..., 0]) - log_offset)  # [N, F, M] mel magnitudes
    return tf.math.log(tf.reduce_sum(mel, axis=-1) + 1e-6)


def crop_active(spec, energy, threshold_db, margin: int, frames: int):
    """Cut [N, F, M, C] `spec` to the frames whose `energy` [N, F] is within `threshold_db`
    (a number or [N, 1]) of the clip's loudest, widened by `margin` frames on each side, and
    resample the cut to `frames` -> [N, frames, M, C]. An all-silent clip keeps its length."""
    n, f = tf.shape(spec)[0], tf.shape(spec)[1]
    threshold = tf.reduce_max(energy, axis=1, keepdims=True) - threshold_db * (
        np.log(10.0) / 20.0
    )  # [N, 1]: natural-log magnitude units
    active = energy >= threshold  # [N, F]
    pos = tf.range(f)[tf.newaxis, :]  # [1, F]
    first = tf.reduce_min(tf.where(active, pos, f), axis=1)  # [N]
    last = tf.reduce_max(tf.where(active, pos, -1), axis=1)  # [N]
    start = tf.maximum(first - margin, 0)
    end = tf.minimum(last + margin, f - 1)
    end = tf.maximum(end, start)
    denom = tf.cast(tf.maximum(f - 1, 1), tf.float32)
    y1 = tf.cast(start, tf.float32) / denom
    y2 = tf.cast(end, tf.float32) / denom
    boxes = tf.stack([y1, tf.zeros_like(y1), y2, tf.ones_like(y1)], axis=-1)  # [N, 4]
    return tf.image.crop_and_resize(spec, boxes, tf.range(n), [frames, tf.shape(spec)[2]])


def warp_mel_axis(spec, span: float, fill: float = 0.0):
    """[N, T, M, C] read with its mel axis spanning [0, span] of the original: span < 1
    stretches the low bands upwards, span > 1 compresses the spectrum downwards and fills the
    top with `fill`. The fixed form of `SpecWarp`'s random frequency warp."""
    n = tf.shape(spec)[0]
    box = tf.constant([[0.0, 0.0, 1.0, span]], tf.float32)
    return tf.image.crop_and_resize(
        spec, tf.tile(box, [n, 1]), tf.range(n), tf.shape(spec)[1:3], extrapolation_value=fill
    )


@keras.saving.register_keras_serializable(package="crossmodal")
class SpeechCrop(keras.layers.Layer):
    """Crop each utterance's spectrogram to its active region and resize it to `frames`.

    Inputs: [raw log-mel, features], both [N, F, M, 1]. Activity is judged on the raw log-mel
    (frames within `threshold_db` of the loudest frame of the clip); the box, widened by
    `margin` frames, is cut from `features` and resampled to [N, frames, M, 1]. This aligns the
    onset (clips start at different times and are padded at the end) and normalizes speaking
    rate, identically in training and serving. An all-silent clip keeps its whole length.
    `views_db`: the same crop at these other thresholds too, stacked after the first as
    channels: [N, frames, M, 1 + len(views_db)].
    """

    def __init__(
        self,
        frames: int = 32,
        threshold_db: float = 30.0,
        margin: int = 2,
        log_offset: float = 0.0,
        jitter_db: float = 0.0,
        seed: int | None = None,
        views_db: tuple[float, ...] = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.frames = frames
        self.threshold_db = threshold_db
        self.views_db = tuple(float(v) for v in views_db)  # more crops, stacked as channels
        self.margin = margin
        self.log_offset = log_offset  # the LogMel's offset, removed before judging activity
        self.jitter_db = jitter_db  # training only: threshold drawn from threshold_db +- this
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        raw, spec = inputs
        n = tf.shape(spec)[0]
        energy = frame_energy(raw, self.log_offset)  # [N, F]
        jitter = tf.zeros([n, 1])  # [N, 1]
        if training and self.jitter_db > 0:  # robust to where the active region is cut
            jitter = keras.random.uniform(
                [n, 1], -self.jitter_db, self.jitter_db, seed=self.seed_generator
            )
        crops = [
            crop_active(spec, energy, db + jitter, self.margin, self.frames)
            for db in (self.threshold_db, *self.views_db)
        ]
        return crops[0] if len(crops) == 1 else tf.concat(crops, axis=-1)  # [N, frames, M, V]

    def compute_output_shape(self, input_shape):
        shape = input_shape[1]
        return (shape[0], self.frames, shape[2], shape[3] * (1 + len(self.views_db)))

    def get_config(self):
        return {
            **super().get_config(),
            "frames": self.frames,
            "threshold_db": self.threshold_db,
            "views_db": list(self.views_db),
            "margin": self.margin,
            "log_offset": self.log_offset,
            "jitter_db": self.jitter_db,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class AudioViews(keras.layers.Layer):
    """The test-time views of some clips, batched: [raw log-mel, features], both [R + 1, F, M,
    1] whose last row is padding (`TakeRows`) -> [V * R + 1, F', M, C], view after view (view
    v of clip r at row v * R + r), then one padding row of zeros. View i cuts the features at
    activity threshold `views[i][0]` as `SpeechCrop` does (with `views_db` as extra channels;
    `frames` 0: no cut, the threshold is unused) and reads the cut with its mel axis spanning
    [0, `views[i][1]`] (1.0: as it is; see `warp_mel_axis`). One pass of the audio encoder then
    serves every view; with no clip to view (R = 0) it sees the one padding row.
    """

    def __init__(
        self,
        views: list,
        frames: int = 32,
        margin: int = 2,
        log_offset: float = 0.0,
        views_db: tuple[float, ...] = (),
        fill: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.views = tuple((float(t), float(a)) for t, a in views)
        self.frames = frames
        self.margin = margin
        self.log_offset = log_offset
        self.views_db = tuple(float(v) for v in views_db)
        self.fill = fill

    def call(self, inputs):
        raw, spec = inputs
        energy = frame_energy(raw, self.log_offset) if self.frames > 0 else None
        cuts, out = {}, []
        for threshold, span in self.views:
            if self.frames <= 0:
                cut = spec
            elif threshold in cuts:
                cut = cuts[threshold]
            else:
                cut = tf.concat(
                    [
                        crop_active(spec, energy, db, self.margin, self.frames)
                        for db in (threshold, *self.views_db)
                    ],
                    axis=-1,
                )  # [R, frames, M, C]
                cuts[threshold] = cut
            view = cut if span == 1.0 else warp_mel_axis(cut, span, self.fill)
            out.append(view[:-1])  # [R, F', M, C]: the padding row dropped
        pad = tf.zeros(tf.concat([[1], tf.shape(out[0])[1:]], axis=0), out[0].dtype)
        out.append(pad)  # one padding row for the lot
        return tf.concat(out, axis=0)  # [V * R + 1, F', M, C]

    def compute_output_shape(self, input_shape):
        shape = input_shape[1]
        if self.frames <= 0:
            return (None, *shape[1:])
        return (None, self.frames, shape[2], shape[3] * (1 + len(self.views_db)))

    def get_config(self):
        return {
            **super().get_config(),
            "views": [list(v) for v in self.views],
            "frames": self.frames,
            "margin": self.margin,
            "log_offset": self.log_offset,
            "views_db": list(self.views_db),
            "fill": self.fill,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance normalization of [N, F, M, C] features (C crop views, usually 1).

    `mean`: subtract each band's mean over the utterance's frames (cepstral mean normalization:
    removes the channel and much of the speaker's spectral tilt). `scale`: divide by the
    utterance's overall standard deviation.
    """

    def __init__(
        self,
        mean: bool = True,
        scale: bool = False,
        band_scale: bool = False,
        epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mean = mean
        self.scale = scale
        self.band_scale = band_scale
        self.epsilon = epsilon

    def call(self, spec):
        if self.mean:
            spec = spec - tf.reduce_mean(spec, axis=1, keepdims=True)  # [N, F, M, C]
        if self.band_scale:  # cepstral mean and variance normalization, per band
            std = tf.math.reduce_std(spec, axis=1, keepdims=True)  # [N, 1, M, C]
            spec = spec / (std + self.epsilon)
        if self.scale:
            std = tf.math.reduce_std(spec, axis=[1, 2, 3], keepdims=True)  # [N, 1, 1, 1]
            spec = spec / (std + self.epsilon)
        return spec

    def get_config(self):
        return {
            **super().get_config(),
            "mean": self.mean,
            "scale": self.scale,
            "band_scale": self.band_scale,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="crossmodal")
class CepstralLifter(keras.layers.Layer):
    """Smooth each frame's log-mel envelope: DCT along mels, keep `keep` coefficients, invert.

    Low cepstral coefficients carry the vocal-tract envelope (what the word is); the high ones
    carry pitch harmonics (who is speaking). The output keeps the [N, F, M, C] layout, each
    channel (crop view) smoothed alike.
    """

    def __init__(self, keep: int = 20, **kwargs):
        super().__init__(**kwargs)
        self.keep = keep

    def build(self, input_shape):
        m = int(input_shape[2])
        k = np.arange(m)[:, None]
        j = np.arange(m)[None, :]
        dct = np.sqrt(2.0 / m) * np.cos(np.pi * k * (2 * j + 1) / (2 * m))  # [K, M] orthonormal
        dct[0] /= np.sqrt(2.0)
        mask = (np.arange(m) < self.keep).astype(np.float64)
        self._projection = (dct.T @ np.diag(mask) @ dct).astype(np.float32)  # [M, M]

    def call(self, spec):
        x = tf.transpose(spec, [0, 1, 3, 2])  # [N, F, C, M]
        return tf.transpose(tf.tensordot(x, self._projection, axes=1), [0, 1, 3, 2])  # [N,F,M,C]

    def get_config(self):
        return {**super().get_config(), "keep": self.keep}
