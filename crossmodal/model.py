"""Build the network from a RunConfig: the only place that wires frontends, encoders, fusion.

Inputs (all batched):  image uint8 [N, H, W, C], image_present float [N],
                       audio float32 [N, T],     audio_present float [N].
Outputs: probabilities [N, K], logits [N, K], image_logits / audio_logits [N, K] (per-modality
heads: they train each encoder on its own, which keeps the weaker modality learning), and the
two embeddings [N, D].
"""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from crossmodal.augment import SpecAugment, SpecWarp, WaveformAugment, image_augmentation
from crossmodal.config import RunConfig
from crossmodal.encoders import build_encoder
from crossmodal.features import (
    AudioViews,
    CepstralLifter,
    GainNormalization,
    LogMel,
    ScaleImage,
    SpeechCrop,
    UtteranceNormalization,
    channel_normalization,
    mel_band_normalization,
)
from crossmodal.fusion import build_fusion

# Frontends, averaging and the output activation compute in float32 whatever the global policy:
# under mixed precision (float16) only the encoders, fusion and heads run in half precision
# (an STFT has no float16 kernel, and log-mel statistics need the range).
FP32 = {"dtype": "float32"}


@keras.saving.register_keras_serializable(package="crossmodal")
class ModalityDropout(keras.layers.Layer):
    """While training, hide one modality of a complete pair with probability `rate`.

    This is what lets one fused model predict from either modality alone.
    """

    def __init__(self, rate: float = 0.25, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        image_present, audio_present = inputs
        if not training or self.rate <= 0:
            return image_present, audio_present
        both = image_present * audio_present  # [N]
        u = keras.random.uniform(tf.shape(image_present), seed=self.seed_generator)  # [N]
        drop_image = tf.cast(u < self.rate / 2, tf.float32) * both
        drop_audio = tf.cast((u >= self.rate / 2) & (u < self.rate), tf.float32) * both
        return image_present * (1.0 - drop_image), audio_present * (1.0 - drop_audio)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="crossmodal")
class LoneModalityHead(keras.layers.Layer):
    """At inference, a sample with one modality is scored by that modality's own head.

    Inputs: fused logits, image logits, audio logits [N, K], image and audio presence [N].
    Rows with both modalities (or neither) keep the fused logits. While training it passes the
    fused logits through unchanged, so the fusion still learns from the samples that modality
    dropout leaves with one modality: it is what predicts a complete pair whose other half is
    corrupted. The own head trained on every sample that has its modality, the fusion's
    one-modality case only on the dropped ones (model.lone_modality = "fusion" keeps those).
    """

    def call(self, inputs, training=None):
        # In float32: under mixed precision the heads' logits are float16, view averages not.
        fused, image_logits, audio_logits, image_present, audio_present = (
            tf.cast(t, tf.float32) for t in inputs
        )
        if training:
            return fused
        image = (image_present > 0.5)[:, tf.newaxis]  # [N, 1]
        audio = (audio_present > 0.5)[:, tf.newaxis]
        lone = tf.where(image & ~audio, image_logits, fused)
        return tf.where(audio & ~image, audio_logits, lone)


@keras.saving.register_keras_serializable(package="crossmodal")
class MissingEmbedding(keras.layers.Layer):
    """Replace the embedding of an absent modality by a learned "missing" vector.

    Never zeros pretending to be data, never a borrowed sample: the model learns what
    "this modality is absent" should mean.
    """

    def build(self, input_shape):
        dim = input_shape[0][-1]
        self.missing = self.add_weight(shape=(dim,), initializer="zeros", name="missing")

    def call(self, inputs):
        embedding, present = inputs  # [N, D], [N]
        p = present[:, tf.newaxis]  # [N, 1]
        return p * embedding + (1.0 - p) * self.missing  # [N, D]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="crossmodal")
class L2Normalize(keras.layers.Layer):
    """Unit-length rows, so a dot product is a cosine similarity in the shared space."""

    def call(self, x):
        return tf.math.l2_normalize(x, axis=-1)  # [N, S]


def audio_features(x_aud, cfg: RunConfig, test_rows=None) -> list:
    """Waveform after gain and augmentation [N, T] -> encoder inputs, each [N, F', M, V] (V = 1
    + the extra crop views, usually 1): [main] or, with `test_rows` (row indices [R]), [main,
    the `audio.test_views` of those rows batched as [R * views + 1, F', M, V]] (`AudioViews`
    stacks the views one after the other, then one padding row).

    log-mel -> per-band standardization ("audio_norm", adapted on training audio) -> crop to
    the active region (onset alignment, rate normalization) -> training-only warps ->
    cepstral smoothing -> per-utterance normalization -> training-only SpecAugment. A test view
    is the same path cut at another activity threshold and read with a fixed mel-axis warp in
    place of the random ones, without the training-only layers.
    """
    aud, aug, seed = cfg.audio, cfg.augment, cfg.train.seed
    raw = LogMel.from_audio_config(aud, name="log_mel", **FP32)(x_aud)  # [N, F, M, 1]
    x = mel_band_normalization("audio_norm", **FP32)(raw)  # [N, F, M, 1], per-band standardized
    views = []
    if test_rows is not None and aud.test_views:
        views = [
            AudioViews(
                aud.test_views,
                aud.crop_frames,
                aud.crop_margin,
                log_offset=aud.log_offset,
                views_db=aud.crop_views_db,
                name="test_views",
                **FP32,
            )(
                [
                    TakeRows(name="test_views_raw", **FP32)([raw, test_rows]),
                    TakeRows(name="test_views_normalized", **FP32)([x, test_rows]),
                ]
            )
        ]  # [R * views + 1, F', M, V]
    if aud.crop_frames > 0:
        x = SpeechCrop(
            aud.crop_frames,
            aud.crop_threshold_db,
            aud.crop_margin,
            log_offset=aud.log_offset,
            jitter_db=aug.crop_jitter_db if aug.enabled else 0.0,
            seed=seed,
            views_db=aud.crop_views_db,
            name="speech_crop",
            **FP32,
        )([raw, x])  # [N, crop_frames, M, V]
    warp = {
        "time_stretch": aug.spec_time_stretch,
        "time_shift": aug.spec_time_shift,
        "freq_warp": aug.spec_freq_warp,
        "time_bend": aug.spec_time_bend,
        "freq_bend": aug.spec_freq_bend,
    }
    if aug.enabled and any(w > 0 for w in warp.values()):
        x = SpecWarp(**warp, seed=seed, name="spec_warp", **FP32)(x)
    views = [x, *views]
    if aud.cepstral_keep > 0:
        lifter = CepstralLifter(aud.cepstral_keep, name="cepstral_lifter", **FP32)
        views = [lifter(v) for v in views]
    if aud.utterance_norm != "none":
        norm = UtteranceNormalization(
            mean=True,
            scale=aud.utterance_norm == "mean_std",
            band_scale=aud.utterance_norm == "cmvn",
            name="utterance_norm",
            **FP32,
        )
        views = [norm(v) for v in views]
    if aug.enabled and (aug.spec_time_mask > 0 or aug.spec_freq_mask > 0):
        views[0] = SpecAugment(
            aug.spec_time_mask, aug.spec_freq_mask, seed=seed, name="spec_augment", **FP32
        )(views[0])
    return views


def mean_log_probabilities(logits, multi_label: bool = False):
    """The mean of several [N, K] logits' log-probabilities (a geometric mean of the
    predictions), or of the logits themselves for multi-label (sigmoid) outputs; float32.
    `logits`: a list of [N, K], or one [V, N, K]."""
    stacked = logits if tf.is_tensor(logits) else tf.stack(logits, axis=0)
    stacked = tf.cast(stacked, tf.float32)  # [V, N, K]
    if not multi_label:
        stacked = tf.nn.log_softmax(stacked, axis=-1)
    return tf.reduce_mean(stacked, axis=0)  # [N, K]


@keras.saving.register_keras_serializable(package="crossmodal")
class MemberAverage(keras.layers.Layer):
    """Combine M members' logits [N, K] into one: the mean of their log-probabilities (a
    geometric mean of the members' predictions; averaging two seeds' models this way read
    0.25 points above averaging probabilities on unseen voices, session 8), or the mean logit
    for multi-label (sigmoid) outputs."""

    def __init__(self, multi_label: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.multi_label = multi_label

    def call(self, logits):
        return mean_log_probabilities(logits, self.multi_label)  # [N, K]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "multi_label": self.multi_label}


@keras.saving.register_keras_serializable(package="crossmodal")
class AudioOnlyRows(keras.layers.Layer):
    """The indices [R] of the rows with a sound and no image (presence flags [N] each)."""

    def call(self, inputs):
        image_present, audio_present = inputs
        alone = (audio_present > 0.5) & (image_present <= 0.5)  # [N]
        return tf.cast(tf.where(alone)[:, 0], tf.int32)  # [R]

    def compute_output_shape(self, input_shape):
        return (None,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((None,), dtype="int32")


@keras.saving.register_keras_serializable(package="crossmodal")
class TakeRows(keras.layers.Layer):
    """x [N, ...] at rows [R], `repeat` times (one copy per test view), then one row of zeros
    -> [R * repeat + 1, ...]. The extra row keeps the batch from being empty (a Keras
    sub-model refuses an empty batch); `RowViewAverage` drops it. One row, not one per view:
    a batch without a sound standing alone costs the views one row."""

    def __init__(self, repeat: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.repeat = repeat

    def call(self, inputs):
        x, rows = inputs
        pad = tf.zeros(tf.concat([[1], tf.shape(x)[1:]], axis=0), dtype=x.dtype)  # [1, ...]
        return tf.concat([tf.gather(x, rows)] * self.repeat + [pad], axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[0][1:])

    def get_config(self):
        return {**super().get_config(), "repeat": self.repeat}


@keras.saving.register_keras_serializable(package="crossmodal")
class RowViewAverage(keras.layers.Layer):
    """[main [N, K], rows [R], views [V * R + 1, K]] -> [N, K]: at the given rows, the mean of
    the main's and the V views' log-probabilities (logits for multi-label); elsewhere the main's
    log-probabilities (the same probabilities as its logits). The views come one after the
    other, then `TakeRows`'s padding row."""

    def __init__(self, multi_label: bool = False, views: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.multi_label = multi_label
        self.views = views

    def call(self, inputs):
        main, rows, views = inputs
        shape = [self.views, tf.shape(rows)[0], tf.shape(views)[-1]]
        per_view = tf.reshape(views[:-1], shape)  # [V, R, K]
        at_rows = tf.concat([tf.gather(main, rows)[tf.newaxis], per_view], axis=0)
        mean = mean_log_probabilities(at_rows, self.multi_label)  # [R, K]
        base = mean_log_probabilities([main], self.multi_label)  # [N, K]
        return tf.tensor_scatter_nd_update(base, rows[:, tf.newaxis], mean)  # [N, K]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "multi_label": self.multi_label, "views": self.views}


@keras.saving.register_keras_serializable(package="crossmodal")
class MemberConcat(keras.layers.Layer):
    """Concatenate M members' unit vectors [N, S] scaled by 1/sqrt(M): again a unit vector,
    whose dot products are the mean of the members' cosine similarities."""

    def call(self, vectors):
        # A Python float keeps the input's dtype (float16 under mixed precision).
        return tf.concat(vectors, axis=-1) * (1.0 / math.sqrt(len(vectors)))  # [N, M * S]

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], sum(s[-1] for s in input_shape))


def _inputs(cfg: RunConfig) -> dict:
    img, aud = cfg.image, cfg.audio
    return {
        "image": keras.Input((img.height, img.width, img.channels), dtype="uint8", name="image"),
        "image_present": keras.Input((), dtype="float32", name="image_present"),
        "audio": keras.Input((aud.num_samples,), dtype="float32", name="audio"),
        "audio_present": keras.Input((), dtype="float32", name="audio_present"),
    }


def build_network(cfg: RunConfig, test_views: bool = False) -> keras.Model:
    """The functional model; training-only layers (augmentation, dropouts) pass through at
    inference, so this same graph is what the SavedModel serves.

    With `model.members` = M > 1 it is an ensemble: M networks of the same design, trained
    side by side on the same batches, each on its own loss, and averaged (log-probabilities;
    logits for multi-label). Their initializations differ (drawn one after the other from the
    seeded generator), and their random layers (augmentation, crop jitter, modality dropout)
    get seeds seed .. seed + M - 1. Their own outputs are under "members"; the top-level
    outputs are the average, and the shared-space vectors are [N, M * shared_dim].

    `test_views`: the inference graph with `audio.test_views` (see `inference_network`).
    """
    m = cfg.model
    if m.members == 1:
        return _single_network(cfg, "crossmodal", test_views)
    inputs = _inputs(cfg)
    seed = cfg.train.seed
    members = [
        _single_network(
            cfg.replace(train=dataclasses.replace(cfg.train, seed=seed + i)),
            f"member{i}",
            test_views,
        )(inputs)
        for i in range(m.members)
    ]
    outputs = {}
    for key in ("logits", "image_logits", "audio_logits"):
        outputs[key] = MemberAverage(m.multi_label, name=f"average_{key}", **FP32)(
            [out[key] for out in members]
        )
    outputs["probabilities"] = keras.layers.Activation(
        "sigmoid" if m.multi_label else "softmax", name="probabilities", **FP32
    )(outputs["logits"])
    for key in ("image_embedding", "audio_embedding"):
        outputs[key] = keras.layers.Concatenate(name=f"all_{key}")([out[key] for out in members])
    for key in ("image_shared", "audio_shared"):
        outputs[key] = MemberConcat(name=f"all_{key}", **FP32)([out[key] for out in members])
    return keras.Model(inputs, {**outputs, "members": members}, name="crossmodal")


def inference_network(net: keras.Model, cfg: RunConfig) -> keras.Model:
    """The network to serve: `net` itself, or with `audio.test_views` (test crops, mel warps)
    the same weights in a graph that also runs the audio path and the fusion on those views of
    a sound standing alone, and averages the predictions."""
    if not cfg.audio.test_views:
        return net
    served = build_network(cfg, test_views=True)
    _copy_weights(net, served)
    return served


def _copy_weights(src: keras.Layer, dst: keras.Layer) -> None:
    """Layer by layer, by name: `dst` has every layer of `src` (and weightless extras)."""
    if isinstance(src, keras.Model):
        for layer in src.layers:
            if layer.weights:
                _copy_weights(layer, dst.get_layer(layer.name))
    else:
        dst.set_weights(src.get_weights())
        if isinstance(dst, keras.layers.Normalization):
            dst.finalize_state()  # it computes with a snapshot of its statistics, not the weights


def member_networks(net: keras.Model) -> list[keras.Model]:
    """The networks an ensemble averages, or [net] for a single network."""
    found = [
        layer
        for layer in net.layers
        if isinstance(layer, keras.Model) and layer.name.startswith("member")
    ]
    return found or [net]


def _single_network(cfg: RunConfig, name: str, test_views: bool = False) -> keras.Model:
    aud, m, aug = cfg.audio, cfg.model, cfg.augment
    k = cfg.num_classes
    seed = cfg.train.seed
    # === Inputs ===
    inputs = _inputs(cfg)
    image, image_present = inputs["image"], inputs["image_present"]
    audio, audio_present = inputs["audio"], inputs["audio_present"]

    # === Frontends (in the graph, so serving matches training) ===
    x_img = ScaleImage(name="image_scale", **FP32)(image)  # [N, H, W, C] in [0, 1]
    if aug.enabled:
        x_img = image_augmentation(aug, seed, **FP32)(x_img)
    x_img = channel_normalization("image_norm", **FP32)(x_img)  # [N, H, W, C], ~zero mean, unit var
    x_aud = GainNormalization(name="audio_gain", **FP32)(audio)  # [N, T]
    if aug.enabled:
        x_aud = WaveformAugment(
            gain_db=aug.audio_gain_db,
            max_shift=int(aug.audio_shift_seconds * aud.sample_rate),
            snr_db=aug.audio_noise_snr_db,
            noise_prob=aug.audio_noise_prob,
            babble_prob=aug.audio_babble_prob,
            babble_snr_db=aug.audio_babble_snr_db,
            babble_voices=aug.audio_babble_voices,
            seed=seed,
            name="audio_augment",
            **FP32,
        )(x_aud)
    # Test views, for the rows whose sound stands alone (an image present carries the
    # prediction: on pairs the views moved nothing measurable, and they would double the cost
    # of every pair). Inference only, where the presence flags are the inputs'.
    rows = None
    if test_views and aud.test_views:
        rows = AudioOnlyRows(name="test_views_rows")([image_present, audio_present])  # [R]
    aud_views = audio_features(x_aud, cfg, rows)  # [N, F', M, V], then [R * views + 1, ...]

    # === Encoders ===
    # (Layers are made in a fixed order: their random initializations are drawn in it.)
    image_m = dataclasses.replace(m, freq_instance_norm=0.0)  # a spectrogram-only option
    audio_m = dataclasses.replace(m, filters=m.audio_filters or m.filters)
    image_map = build_encoder(m.image_encoder, tuple(x_img.shape[1:]), image_m, "image_encoder")(
        x_img
    )
    audio_encoder = build_encoder(
        m.audio_encoder, tuple(aud_views[0].shape[1:]), audio_m, "audio_encoder"
    )
    audio_map = audio_encoder(aud_views[0])
    e_img = keras.layers.GlobalAveragePooling2D(name="image_pool")(image_map)  # [N, c]
    if m.audio_pool == "flatten":  # the cropped log-mel is aligned: where things are matters
        audio_pool = keras.layers.Flatten(name="audio_pool")  # [N, h * w * c]
    else:
        audio_pool = keras.layers.GlobalAveragePooling2D(name="audio_pool")  # [N, c]
    audio_layers = [audio_pool]
    if m.audio_feature_dropout > 0:
        audio_layers.append(
            keras.layers.Dropout(m.audio_feature_dropout, name="audio_feature_dropout")
        )
    e_aud = _apply(audio_layers, audio_map)
    e_img = keras.layers.Dense(m.embed_dim, activation="relu", name="image_embedding")(e_img)
    audio_embedding = keras.layers.Dense(m.embed_dim, activation="relu", name="audio_embedding")
    e_aud = audio_embedding(e_aud)  # [N, D]
    audio_layers.append(audio_embedding)

    # === Per-modality heads (auxiliary losses; late fusion votes with them) ===
    image_logits = keras.layers.Dense(k, name="image_head")(
        keras.layers.Dropout(m.dropout, name="image_head_dropout")(e_img)
    )
    audio_head = keras.layers.Dense(k, name="audio_head")
    audio_head_dropout = keras.layers.Dropout(m.dropout, name="audio_head_dropout")
    audio_logits = audio_head(audio_head_dropout(e_aud))

    # === Presence ===
    img_p, aud_p = ModalityDropout(m.modality_dropout, seed=seed, name="modality_dropout", **FP32)(
        [image_present, audio_present]
    )
    e_img_m = MissingEmbedding(name="image_missing")([e_img, img_p])  # [N, D]
    audio_missing = MissingEmbedding(name="audio_missing")

    # === Fusion ===
    fusion = build_fusion(
        m.fusion, k, hidden=m.embed_dim, dropout=m.dropout, multi_label=m.multi_label
    )

    def fused(e_aud, audio_logits, audio_map):
        return fusion(
            {
                "image_embedding": e_img_m,
                "audio_embedding": audio_missing([e_aud, aud_p]),  # [N, D]
                "image_present": img_p,
                "audio_present": aud_p,
                "image_logits": image_logits,
                "audio_logits": audio_logits,
                "image_map": image_map,
                "audio_map": audio_map,
            }
        )

    logits = fused(e_aud, audio_logits, audio_map)
    if rows is not None:
        # The same audio path and fusion (shared weights) on the test views of those rows, in
        # one batch; predictions averaged over the views; the embeddings stay the main view's.
        repeat = len(aud.test_views)

        def take(t, name):
            return TakeRows(repeat, name=f"test_views_{name}")([t, rows])  # [R * views + 1, ...]

        view_map = audio_encoder(aud_views[1])  # [R * views + 1, h, w, c]
        e_view = _apply(audio_layers, view_map)  # [R * views + 1, D]
        view_logits = audio_head(audio_head_dropout(e_view))  # [R * views + 1, K]
        view_present = take(aud_p, "audio_present")
        fused_views = fusion(
            {
                "image_embedding": take(e_img_m, "image_embedding"),
                "image_present": take(img_p, "image_present"),
                "audio_present": view_present,
                "image_logits": take(image_logits, "image_logits"),
                "image_map": take(image_map, "image_map"),
                "audio_embedding": audio_missing([e_view, view_present]),
                "audio_logits": view_logits,
                "audio_map": view_map,
            }
        )
        average = {"multi_label": m.multi_label, "views": repeat, **FP32}
        audio_logits = RowViewAverage(name="test_views_audio_logits", **average)(
            [audio_logits, rows, view_logits]
        )
        logits = RowViewAverage(name="test_views_logits", **average)([logits, rows, fused_views])
    if m.lone_modality == "head":
        logits = LoneModalityHead(name="lone_modality_head", **FP32)(
            [logits, image_logits, audio_logits, image_present, audio_present]
        )
    # Softmax: one class per sample; sigmoid: each class on its own (multi-label).
    probabilities = keras.layers.Activation(
        "sigmoid" if m.multi_label else "softmax", name="probabilities", **FP32
    )(logits)

    # === Shared space (cross-modal alignment and retrieval) ===
    shared_image = L2Normalize(name="image_shared", **FP32)(
        keras.layers.Dense(m.shared_dim, name="image_projection")(e_img)
    )  # [N, S], unit length
    shared_audio = L2Normalize(name="audio_shared", **FP32)(
        keras.layers.Dense(m.shared_dim, name="audio_projection")(e_aud)
    )  # [N, S], unit length
    outputs = {
        "probabilities": probabilities,
        "logits": logits,
        "image_logits": image_logits,
        "audio_logits": audio_logits,
        "image_embedding": e_img,
        "audio_embedding": e_aud,
        "image_shared": shared_image,
        "audio_shared": shared_audio,
    }
    return keras.Model(inputs, outputs, name=name)


def _apply(layers: list, x):
    for layer in layers:
        x = layer(x)
    return x
