"""Typed, frozen configuration, one dataclass per concern.

Everything the model needs to be rebuilt is in `RunConfig`, which is written whole into every
model folder (`config.json`) and read back from there: nothing is re-guessed at load time.
Derived values are properties, never stored twice.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from crossmodal.errors import CrossmodalError

DEFAULT_FMAX = 7_800.0
# Sanity bounds on shapes a caller may ask for: far above any use (an inferred image's longer
# side is capped at 96 px), below what would exhaust memory before the first record.
MAX_IMAGE_SIDE = 1024
MAX_CLIP_SECONDS = 600.0
MAX_SAMPLE_RATE = 384_000
FORMAT_VERSION = 1  # bump when the model folder layout or the serving signature changes
FUSION_NAMES = ("concat", "late", "gated", "conv")  # registry keys of crossmodal.fusion
FUSION_CHOICES = (*FUSION_NAMES, "auto")  # auto: pick one of FUSION_NAMES on validation
ENCODER_NAMES = ("cnn", "vgg", "vgg_sep")  # registry keys of crossmodal.encoders
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant", "plateau")
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
FLIPS = ("none", "horizontal", "vertical", "both")
UTTERANCE_NORMS = ("none", "mean", "mean_std", "cmvn")
# SpecWarp's bend reads position p from p + (L - 1) (a1 sin(pi u) + a2 sin(2 pi u)), |a| <= bend;
# its slope stays positive (the axis never folds back on itself) while bend < 1 / (3 pi).
MAX_BEND = 1.0 / (3.0 * math.pi)  # about 0.106
MAX_MEMBERS = 16
DEFAULT_TEST_CROPS_DB = (20.0, 30.0, 35.0)
DEFAULT_TEST_FREQ_WARPS = (0.95, 1.05)
LONE_MODALITY = ("head", "fusion")  # what scores a sample that has one modality
AUDIO_POOLS = ("flatten", "avg")  # how the audio encoder's map becomes one vector
WEAK_F1 = 0.5  # a class's F1 below this is "weak": red bars, highlighted rows, the card's list


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CrossmodalError(message)


@dataclass(frozen=True)
class AudioConfig:
    """Waveform shape and the log-mel frontend (in the graph)."""

    sample_rate: int = 16_000  # Hz; every waveform is resampled to this on the way in
    clip_seconds: float = 1.0  # pad/crop length; inferred from the data's 99th percentile
    frame_seconds: float = 0.025  # 25 ms analysis window, the usual choice for speech
    hop_seconds: float = 0.010  # 10 ms hop
    num_mels: int = 40  # 40 bands: enough for speech; fewer, wider bands generalize across voices
    fmin: float = 60.0
    # 0 = auto: 7.8 kHz, or 95% of the Nyquist frequency of the lowest source sample rate in
    # the training data (8 kHz recordings have nothing above 4 kHz); the value used is saved.
    fmax: float = 0.0
    log_offset: float = 0.3  # log(mel + 0.3): compresses quiet detail and noise, keeps it finite
    pre_emphasis: float = 0.0  # >0: the spectrum tilted up as by y[n] = x[n] - a x[n-1]
    # >0: each utterance's stationary background removed per band before the log (spectral
    # subtraction): the band's magnitude at this quantile of its recorded frames is subtracted.
    # For recordings over a steady hum or hiss. On avdigits' unseen voices 0.1 lost 1.3 points
    # of sound alone over two seeds, most on the noisiest voice (benchmarks/README.md, session
    # 17), so it is off.
    noise_floor: float = 0.0
    # Per-utterance processing after the per-band normalization (all in the graph):
    crop_frames: int = 32  # >0: crop to the active region, resample to this many frames
    crop_threshold_db: float = 25.0  # active = within this many dB of the loudest frame
    crop_margin: int = 2  # frames kept on each side of the active region
    crop_views_db: tuple[float, ...] = ()  # more crops at these thresholds, stacked as channels
    # Test-time crops: at inference, for a sound with no image, the audio path also runs on
    # crops cut at these thresholds (the same weights), and the predictions are averaged (mean
    # log-probability). Training is unchanged. Where an utterance starts and ends is uncertain
    # on a new voice; averaging over the cuts hedges it: +1.6 points on the sound alone over
    # 12 unseen-speaker runs (benchmarks/README.md, session 11). () turns it off.
    test_crops_db: tuple[float, ...] = DEFAULT_TEST_CROPS_DB  # () without a crop (crop_frames 0)
    # ... and each crop is also read with its mel axis spanning [0, a] for each a here (a fixed
    # `augment.spec_freq_warp`): a voice a little higher or lower than the training voices.
    # With the crops, 12 views, run in one batch: +0.9 points more on the sound alone over the
    # same 12 runs (session 12). () turns it off.
    test_freq_warps: tuple[float, ...] = DEFAULT_TEST_FREQ_WARPS
    cepstral_keep: int = 0  # >0: smooth each frame's mel envelope to this many DCT coefficients
    utterance_norm: str = "mean"  # none | mean (per-band mean over time) | mean_std | cmvn

    def __post_init__(self) -> None:
        _check_fields(self, "audio")  # also when built in Python, not from a file
        _require(
            1000 <= self.sample_rate <= MAX_SAMPLE_RATE,
            f"audio.sample_rate must be 1000 to {MAX_SAMPLE_RATE} Hz",
        )
        _require(
            0 < self.clip_seconds <= MAX_CLIP_SECONDS,
            f"audio.clip_seconds must be above 0 and at most {MAX_CLIP_SECONDS:g}",
        )
        _require(self.num_mels >= 1, "audio.num_mels must be at least 1")
        _require(
            0 <= self.fmin < self.effective_fmax,
            f"audio.fmin ({self.fmin:g} Hz) must be at least 0 and below fmax "
            f"({self.effective_fmax:g} Hz{'' if self.fmax > 0 else ', automatic'})",
        )
        _require(
            self.hop_seconds > 0 and 0 < self.frame_seconds <= self.clip_seconds,
            "audio: need hop_seconds > 0 and 0 < frame_seconds <= clip_seconds",
        )
        _require(self.crop_frames >= 0, "audio.crop_frames must be 0 (off) or more")
        _require(self.crop_threshold_db > 0, "audio.crop_threshold_db must be above 0 dB")
        _require(self.crop_margin >= 0, "audio.crop_margin must be 0 or more frames")
        _require(self.log_offset > 0, "audio.log_offset must be above 0")
        _require(self.cepstral_keep >= 0, "audio.cepstral_keep must be 0 (off) or more")
        _require(0 <= self.pre_emphasis < 1, "audio.pre_emphasis must be in [0, 1)")
        _require(0 <= self.noise_floor < 1, "audio.noise_floor must be in [0, 1) (0: off)")
        _require(
            all(v > 0 for v in self.crop_views_db)
            and (self.crop_frames > 0 or not self.crop_views_db),
            "audio.crop_views_db needs crop_frames > 0 and thresholds above 0 dB",
        )
        if self.crop_frames == 0 and self.test_crops_db == DEFAULT_TEST_CROPS_DB:
            object.__setattr__(self, "test_crops_db", ())  # the default follows the crop
        _require(
            all(v > 0 for v in self.test_crops_db)
            and (self.crop_frames > 0 or not self.test_crops_db),
            "audio.test_crops_db needs crop_frames > 0 and thresholds above 0 dB",
        )
        _require(
            all(0.5 <= a <= 2.0 for a in self.test_freq_warps),
            "audio.test_freq_warps must be between 0.5 and 2.0 (1.0: no warp)",
        )
        _require(
            self.utterance_norm in UTTERANCE_NORMS,
            f"unknown utterance_norm '{self.utterance_norm}' "
            f"(choose from {', '.join(UTTERANCE_NORMS)})",
        )

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def frame_length(self) -> int:
        return int(round(self.sample_rate * self.frame_seconds))

    @property
    def frame_step(self) -> int:
        return int(round(self.sample_rate * self.hop_seconds))

    @property
    def fft_length(self) -> int:
        return 2 ** int(math.ceil(math.log2(self.frame_length)))

    @property
    def num_frames(self) -> int:
        # tf.signal.stft without padding: 1 + (T - frame_length) // frame_step
        return 1 + max(0, self.num_samples - self.frame_length) // self.frame_step

    @property
    def effective_fmax(self) -> float:
        return min(self.fmax if self.fmax > 0 else DEFAULT_FMAX, self.sample_rate / 2.0)

    @property
    def test_views(self) -> tuple[tuple[float, float], ...]:
        """The served model's extra views of a sound standing alone, as (activity threshold in
        dB, mel span): every crop (the training one first) read with every warp (1.0 first),
        each once, less the training view itself. () when there are none."""
        thresholds, spans = view_axes(
            self.crop_frames, self.crop_threshold_db, self.test_crops_db, self.test_freq_warps
        )
        return tuple((t, a) for t in thresholds for a in spans)[1:]


def view_axes(crop_frames, crop_threshold_db, test_crops_db, test_freq_warps) -> tuple:
    """The two axes of the test views of a sound alone, each value once (a repeat would only
    weigh a view twice), the training view's first: activity thresholds (crop_threshold_db,
    *test_crops_db), or (0.0,) without a crop (the whole clip is read), and mel-axis spans
    (1.0, *test_freq_warps). `AudioConfig.test_views` is their product; the model card lists
    them."""
    thresholds = (crop_threshold_db, *test_crops_db) if crop_frames else (0.0,)
    return (
        tuple(dict.fromkeys(float(t) for t in thresholds)),
        tuple(dict.fromkeys(float(a) for a in (1.0, *test_freq_warps))),
    )


@dataclass(frozen=True)
class ImageConfig:
    """Image shape fed to the encoder; inferred from the data (the most common size)."""

    height: int = 32
    width: int = 32
    channels: int = 1  # 1 when every image is grayscale, else 3

    def __post_init__(self) -> None:
        _check_fields(self, "image")  # also when built in Python, not from a file
        _require(
            min(self.height, self.width) >= 1 and max(self.height, self.width) <= MAX_IMAGE_SIDE,
            f"image height and width must be 1 to {MAX_IMAGE_SIDE}",
        )
        _require(self.channels in (1, 3), "image.channels must be 1 or 3")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-only augmentation (Keras layers inactive at inference)."""

    enabled: bool = True
    image_translate: float = 0.1  # fraction of height/width
    image_rotate: float = 0.04  # fraction of a full turn (about 15 degrees)
    image_zoom: float = 0.1
    image_contrast: float = 0.2
    image_noise: float = 0.2  # Gaussian pixel noise, std drawn per image from [0, this] ...
    # ... and clipped to [0, 1] as a stored noisy photo is. Clipping raised the corrupted
    # held-out pairs from 0.9485 to 0.968 (benchmarks/README.md). Model folders written before
    # this setting existed read False (`saved_settings`), so their runs repeat as they were.
    image_noise_clip: bool = True
    image_cutout: float = 0.5  # an occluding square, side up to this fraction of the image
    image_cutout_prob: float = 0.5
    image_flip: str = "none"  # none | horizontal | vertical | both (they break digits, text)
    audio_gain_db: float = 6.0
    audio_shift_seconds: float = 0.1
    audio_noise_snr_db: tuple[float, float] = (20.0, 40.0)
    audio_noise_prob: float = 0.5
    audio_babble_prob: float = 0.5  # mix in other clips of the batch ...
    audio_babble_snr_db: tuple[float, float] = (0.0, 20.0)  # ... at an SNR from this range
    audio_babble_voices: int = 2
    # Background sounds from a folder (`--noise-dir`), mixed in by the training input pipeline
    # (not stored in the model) with probability noise_dir_prob at an SNR from noise_dir_snr_db.
    noise_dir: str | None = None
    noise_dir_prob: float = 0.5
    noise_dir_snr_db: tuple[float, float] = (0.0, 20.0)
    spec_time_mask: int = 10  # frames
    spec_freq_mask: int = 8  # mel bands
    spec_time_stretch: float = 0.15  # log-mel resampled from a time span of 1 +- this
    spec_time_shift: float = 0.05  # and shifted by up to this fraction of the length
    spec_freq_warp: float = 0.1  # mel axis resampled from [0, 1 +- this] (speaker-like warp)
    spec_time_bend: float = 0.0  # smooth non-linear time warp, ends fixed (max shift / length)
    spec_freq_bend: float = 0.0  # smooth non-linear mel-axis warp, ends fixed
    crop_jitter_db: float = 0.0  # active-region threshold drawn from crop_threshold_db +- this

    def __post_init__(self) -> None:
        _check_fields(self, "augment")  # also when built in Python, not from a file
        for name in ("image_cutout_prob", "audio_noise_prob", "audio_babble_prob",
                     "noise_dir_prob", "image_cutout", "image_noise"):  # fmt: skip
            _require(0 <= getattr(self, name) <= 1, f"augment.{name} must be in [0, 1]")
        for name in ("image_translate", "image_rotate", "image_zoom", "image_contrast",
                     "spec_time_stretch", "spec_time_shift", "spec_freq_warp"):  # fmt: skip
            _require(0 <= getattr(self, name) < 1, f"augment.{name} must be in [0, 1)")
        for name in ("audio_gain_db", "audio_shift_seconds", "spec_time_mask",
                     "spec_freq_mask", "crop_jitter_db"):  # fmt: skip
            _require(getattr(self, name) >= 0, f"augment.{name} must be 0 (off) or more")
        _require(self.audio_babble_voices >= 1, "augment.audio_babble_voices must be 1 or more")
        for name in ("audio_noise_snr_db", "audio_babble_snr_db", "noise_dir_snr_db"):
            low, high = getattr(self, name)
            _require(low <= high, f"augment.{name} must be [lowest, highest] dB")
        for name in ("spec_time_bend", "spec_freq_bend"):
            _require(
                0 <= getattr(self, name) < MAX_BEND,
                f"augment.{name} must be in [0, {MAX_BEND:.3f}): more folds the axis back",
            )
        if self.image_flip not in FLIPS:
            raise CrossmodalError(
                f"unknown image_flip '{self.image_flip}' (choose from {', '.join(FLIPS)})"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, chosen by name from registries in encoders.py and fusion.py."""

    image_encoder: str = "cnn"
    # cnn: one 3x3 convolution per block; vgg: two (about 4x the multiply-adds); vgg_sep: the
    # second one depthwise-separable (about 1.4x). vgg on the sound, unseen speakers, two seeds
    # (benchmarks/README.md, session 14): sound alone +1.05 points (noise), the same under
    # babble +6; but training 1.43x as long and predict 30% slower, so not the default.
    audio_encoder: str = "cnn"
    fusion: str = "concat"
    embed_dim: int = 128
    dropout: float = 0.3
    modality_dropout: float = 0.25  # chance per sample to hide one modality while training
    aux_loss_weight: float = 0.5  # weight of the per-modality heads' losses
    # How a sample with one modality is predicted: "head", by that modality's own head (trained
    # on every sample that has it); "fusion", by the fused head with the other marked missing.
    # On seven kept fused models of sessions 11-14 (unseen speakers, 12 test views), the own
    # head read the sound alone 0.5 points higher on average (up on 6 of 7) and the image alone
    # level or up; pairs are unchanged (benchmarks/README.md, session 15).
    lone_modality: str = "head"
    filters: tuple[int, ...] = (32, 64, 128)  # the image encoder's conv blocks
    # The audio encoder's blocks (empty: the same as `filters`). Half the image's widths: on
    # unseen speakers the narrower audio network scored as well or better (both 0.988 ->
    # 0.9905, sound alone 0.774 -> 0.789, within what the seed moves; benchmarks/README.md)
    # at a quarter of the multiply-adds, and trains a third faster.
    audio_filters: tuple[int, ...] = (16, 32, 64)
    # flatten keeps the time/frequency layout; avg averages over both (global average
    # pooling). Averaging over frequency only, keeping time, lost 5.65 points of sound alone
    # on unseen speakers (benchmarks/README.md, session 8).
    audio_pool: str = "flatten"
    audio_feature_dropout: float = 0.0  # dropout on the pooled audio features, before the embedding
    freq_instance_norm: float = 0.0  # >0: relaxed frequency-wise instance norm after block 1
    shared_dim: int = 64  # the shared image/audio space (alignment, retrieval)
    multi_label: bool = False  # sigmoid outputs, several labels per sample (label cells "a;b")
    # An ensemble of this many networks in one model, trained side by side (seeds seed,
    # seed + 1, ...) and averaged. Two against one on unseen speakers (README, "Results on real
    # data"), two seeds: both 0.992 -> 0.995, image 0.976 -> 0.978, sound alone 0.796 ->
    # 0.8235, shifted 0.968 -> 0.976, sound from image labels 0.735 -> 0.791. It costs about
    # 1.7x the training time; prediction end to end hardly changes (decoding sets its pace).
    members: int = 2

    def __post_init__(self) -> None:
        _check_fields(self, "model")  # also when built in Python, not from a file
        # Checked here, without TensorFlow, so a bad name fails before any slow import.
        _require(1 <= self.members <= MAX_MEMBERS, f"model.members must be 1 to {MAX_MEMBERS}")
        _require(0 <= self.dropout < 1, "model.dropout must be in [0, 1)")
        _require(0 <= self.modality_dropout <= 1, "model.modality_dropout must be in [0, 1]")
        _require(
            0 <= self.audio_feature_dropout < 1, "model.audio_feature_dropout must be in [0, 1)"
        )
        _require(self.aux_loss_weight >= 0, "model.aux_loss_weight must be 0 or more")
        _require(0 <= self.freq_instance_norm <= 1, "model.freq_instance_norm must be in [0, 1]")
        _require(min(self.embed_dim, self.shared_dim) >= 1, "model embedding sizes must be >= 1")
        for name in ("filters", "audio_filters"):
            widths = getattr(self, name)
            _require(
                all(w >= 1 for w in widths) and (widths or name == "audio_filters"),
                f"model.{name} must list positive widths",
            )
        _require(
            self.lone_modality in LONE_MODALITY,
            f"unknown lone_modality '{self.lone_modality}' (choose from "
            f"{', '.join(LONE_MODALITY)})",
        )
        _require(
            self.audio_pool in AUDIO_POOLS,
            f"unknown audio_pool '{self.audio_pool}' (choose from {', '.join(AUDIO_POOLS)})",
        )
        if self.fusion not in FUSION_CHOICES:
            raise CrossmodalError(
                f"unknown fusion '{self.fusion}' (choose from {', '.join(FUSION_CHOICES)})"
            )
        for kind in (self.image_encoder, self.audio_encoder):
            if kind not in ENCODER_NAMES:
                raise CrossmodalError(
                    f"unknown encoder '{kind}' (choose from {', '.join(ENCODER_NAMES)})"
                )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and validation split."""

    # 40: on unseen speakers (leave-one-speaker-out) 40 beat 25 for both modalities, the image
    # alone and the corrupted set; the sound alone lost a little (benchmarks/README.md).
    epochs: int = 40
    # 0 = auto: 32, or smaller on small data so that an epoch takes at least 16 steps (a few
    # hundred samples in batches of 32 give too few updates to learn). The value used is saved.
    batch_size: int = 0
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    patience: int = 6  # early stopping on validation loss, best weights restored
    # Early stopping watches from this fraction of `epochs` on; the best weights are chosen
    # among the epochs it watches. Before it, the cosine schedule's learning rate is still
    # high: on sample_data a noisy 24-pair validation split stopped the run at epoch 14 of 40
    # (both 0.877 on its own data; the whole schedule: 0.957). On avdigits the best epoch came
    # at 32-37 of 40 in every leave-one-speaker-out run, so this changes nothing there. Model
    # folders written before this setting existed read 0.0 (`saved_settings`). 0 watches all.
    early_stop_from: float = 0.5
    val_fraction: float = 0.15
    val_dir: str | None = None
    group_regex: str | None = None  # first capture group of a match on the stem names the group
    val_groups: tuple[str, ...] = ()  # groups held out for validation (default: chosen by seed)
    seed: int = 0
    optimizer: str = "adamw"  # adamw | adam | sgd
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    schedule: str = "cosine"  # cosine (with warmup) | constant | plateau
    warmup_epochs: float = 1.0
    # Each weight's gradient clipped to this norm on its own (Keras `clipnorm`; not one global
    # norm over all weights). None or 0 disables.
    clipnorm: float | None = 1.0
    class_weight: str | None = None  # None | "balanced" | path to a JSON {label: weight}
    mixed_precision: bool = False  # float16 compute on GPUs; a no-op with a notice on CPU
    calibrate: bool = False  # temperature scaling fitted on validation, baked into the export
    # tf.distribute: auto = mirrored with several GPUs, multi-worker when TF_CONFIG names a
    # cluster of several tasks, else one device. batch_size is global across replicas.
    strategy: str = "auto"  # auto | one-device | mirrored | multi-worker
    # Cross-modal alignment: a contrastive loss between the two projected embeddings of each
    # pair, and distillation of the labeled modality's predictions into the other. "auto" turns
    # it on when the data holds unlabeled pairs; "on" uses it as an extra loss anyway.
    align: str = "auto"  # auto | on | off
    contrastive_weight: float = 0.1
    contrastive_temperature: float = 0.1
    distill_weight: float = 1.0
    # Cross-modal self-training: with labels on one modality only, a first (teacher) fit labels
    # the unlabeled pairs from that modality where its confidence reaches this threshold; the
    # final fit then learns the other modality from those pseudo-labels. 0 turns it off.
    pseudo_label_threshold: float = 0.7

    def __post_init__(self) -> None:
        _check_fields(self, "train")  # also when built in Python, not from a file
        _require(self.epochs >= 1, "train.epochs must be at least 1")
        _require(self.batch_size >= 0, "train.batch_size must be 0 (auto) or more")
        _require(self.learning_rate > 0, "train.learning_rate must be above 0")
        _require(0 <= self.val_fraction < 1, "train.val_fraction must be in [0, 1)")
        _require(self.patience >= 0, "train.patience must be 0 or more")
        _require(0 <= self.seed < 2**32 - 64, "train.seed must be 0 to 4294967231")
        _require(0 <= self.early_stop_from < 1, "train.early_stop_from must be in [0, 1)")
        _require(0 <= self.label_smoothing < 1, "train.label_smoothing must be in [0, 1)")
        _require(self.weight_decay >= 0, "train.weight_decay must be 0 or more")
        _require(0 <= self.momentum < 1, "train.momentum must be in [0, 1)")
        _require(self.warmup_epochs >= 0, "train.warmup_epochs must be 0 or more")
        _require(
            self.clipnorm is None or self.clipnorm >= 0,
            "train.clipnorm must be 0 or more (0 or absent: no clipping)",
        )
        for name in ("contrastive_weight", "distill_weight"):
            _require(getattr(self, name) >= 0, f"train.{name} must be 0 or more")
        _require(self.contrastive_temperature > 0, "train.contrastive_temperature must be above 0")
        _require(
            0 <= self.pseudo_label_threshold <= 1,
            "train.pseudo_label_threshold must be in [0, 1] (0: off)",
        )
        for name, value, allowed in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("align", self.align, ("auto", "on", "off")),
            ("strategy", self.strategy, STRATEGIES),
        ):
            if value not in allowed:
                raise CrossmodalError(
                    f"unknown {name} '{value}' (choose from {', '.join(allowed)})"
                )

    def check_validation(self) -> None:
        """Settings that contradict each other about validation, refused before a run. Not in
        __post_init__: a model folder an older version wrote with them (they were ignored
        then) must still open."""
        if self.val_dir:  # it replaces the split: a split setting beside it would be ignored
            for name in ("group_regex", "val_groups"):
                _require(
                    not getattr(self, name),
                    f"train.{name} splits the data, which train.val_dir (--val-dir) replaces: "
                    "give one or the other",
                )
        _require(
            not self.calibrate or self.val_fraction > 0 or bool(self.val_dir or self.val_groups),
            "train.calibrate (--calibrate) fits a temperature on validation data: give "
            "val_fraction above 0, val_groups or val_dir",
        )

    @property
    def first_watched_epoch(self) -> int:
        """The first epoch (0-based) that early stopping watches (`early_stop_from`)."""
        return first_watched_epoch(self.epochs, self.early_stop_from)


def first_watched_epoch(epochs: int, early_stop_from: float) -> int:
    """`TrainConfig.first_watched_epoch` from the two settings (a saved config.json's too)."""
    return int(epochs * early_stop_from)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a trained model; saved as MODEL/config.json."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    labels: tuple[str, ...] = ()  # filled from the data at train time
    data: str | None = None  # what it was trained on; lets `train --config` repeat a run

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def replace(self, **sections: Any) -> RunConfig:
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _from_dict(cls, data, "config")

    def save(self, path: Path, **extra: Any) -> None:
        payload = {"format_version": FORMAT_VERSION, **extra, **self.to_dict()}
        path.write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> RunConfig:
        """A model folder's config.json (that run's settings, labels and all), or a .toml
        settings file as `train --config` reads it (settings it does not name at defaults)."""
        if Path(path).suffix.lower() == ".toml":
            from crossmodal.settings import read_config_file, resolve

            return resolve(read_config_file(path), {})[0]
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CrossmodalError(f"cannot read config {path}: {exc}") from None
        return cls.from_saved(data)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> RunConfig:
        """A config as written into a model folder or a resume state: its metadata (versions,
        format) left out, settings added since it was written set as that run had them."""
        known = {f.name for f in fields(cls)}
        return cls.from_dict(saved_settings({k: v for k, v in data.items() if k in known}))


# Settings added after model folders were first written, with the value that reproduces what
# such a folder's run did (its config.json lacks the key): (section, setting, value then).
_ADDED_LATER = (
    ("augment", "image_noise_clip", False),
    ("model", "members", 1),
    ("audio", "test_crops_db", []),
    ("audio", "test_freq_warps", []),
    ("train", "early_stop_from", 0.0),
)


def saved_settings(data: dict[str, Any]) -> dict[str, Any]:
    """A saved config (a model folder's config.json, a resume state) with every setting added
    since it was written set to what that run used, so reading it back, resuming it or
    repeating it with `train --config MODEL/config.json` trains as it did then."""
    out = dict(data)
    for section, name, then in _ADDED_LATER:
        values = out.get(section)
        if isinstance(values, dict) and name not in values:
            out[section] = {**values, name: then}
    return out


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Rebuild a (nested) frozen dataclass, refusing unknown keys so typos are caught."""
    if not isinstance(data, dict):
        raise CrossmodalError(f"{where}: expected a table of settings, got {type(data).__name__}")
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CrossmodalError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = _typed(value, hint, f"{where}.{name}")
    return cls(**kwargs)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A config class's field types (resolving them costs far more than the checks)."""
    return get_type_hints(cls)


def _check_fields(obj: Any, section: str) -> None:
    """Every field of a config object of the type its annotation says (`_typed`'s rules), so
    that `TrainConfig(epochs="ten")` or `val_groups="nicolas"` is one clear error."""
    hints = _hints(type(obj))
    for f in fields(obj):
        if not dataclasses.is_dataclass(hints[f.name]):
            _typed(getattr(obj, f.name), hints[f.name], f"{section}.{f.name}")


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the field's annotation (lists become tuples, ints floats where
    a float is declared); a mismatch is one clear error, never a crash later in training."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        error = None
        for option in (a for a in args if a is not type(None)):
            try:
                return _typed(value, option, where)
            except CrossmodalError as exc:
                error = exc
        raise error  # type: ignore[misc]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise CrossmodalError(f"{where}: expected a list, got {_shown(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            kinds = [args[0]] * len(value)
        elif len(value) != len(args):
            raise CrossmodalError(f"{where}: expected {len(args)} values, got {len(value)}")
        else:
            kinds = list(args)
        return tuple(_typed(v, k, where) for v, k in zip(value, kinds, strict=True))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is float and number and math.isfinite(value):
        return float(value)
    if (
        (hint is bool and isinstance(value, bool))
        or (hint is int and number and isinstance(value, int))
        or (hint is str and isinstance(value, str))
        or hint not in (bool, int, float, str)
    ):
        return value
    raise CrossmodalError(f"{where}: expected {_TYPE_WORDS[hint]}, got {_shown(value)}")


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else None
    return text if text and len(text) <= 40 else type(value).__name__
