"""A fast screen of audio settings for unseen voices: the audio path alone, leave-one-speaker-out.

    python benchmarks/audio_screen.py [SETTINGS] [--data DIR] [--config FILE] [--seeds 0,1]
                                      [--speakers george,nicolas] [--mixup ALPHA]
                                      [--speaker-adversarial WEIGHT] [--supcon WEIGHT]

SETTINGS gives the settings resolved from the data (clip length, fmax, batch size, labels): a
model folder trained on the data (its config.json), a config.json itself, or a TOML file of
those settings alone, on top of today's defaults. The default,
benchmarks/avdigits_screen_base.toml, holds what `crossmodal train` resolves on three of
avdigits' voices (george left out). It is the base of every screen since session 18 and
reproduces session 8's seed-0 figures for the default to the digit.
--config FILE (TOML, as `crossmodal train --config`) changes settings on top of it: the
candidate under test.

For each seed and each held-out speaker S: build the network with crossmodal's `build_network`
and keep its audio path (waveform -> gain, augmentation, log-mel, band normalization, crop,
warps, utterance normalization, SpecAugment, audio encoder, embedding, audio head). Adapt the
band normalization on the other speakers' clips, then train that path alone on all of their
clips for the config's epochs with training's own optimizer and schedule (AdamW, warmup then
cosine decay, gradient clipping) and label smoothing, without a validation split or early
stopping. Finally score the sound alone on S's clips.

Two training objectives that crossmodal does not have, screened here first (session 13):
--mixup ALPHA mixes each batch's waveforms with a shuffled copy of it, lam ~ Beta(ALPHA, ALPHA)
(the larger share kept by the row's own clip) and the one-hot labels with the same lam;
--speaker-adversarial WEIGHT adds a speaker classifier (Dense 64, ReLU, Dense) on the audio
embedding behind a gradient reversal of that weight, so the embedding learns to hide which
training voice spoke (Ganin and Lempitsky's domain-adversarial training, speakers as domains).
A third (session 18): --supcon WEIGHT adds a supervised contrastive loss (temperature 0.1) on a
unit-length 64-d projection of the audio embedding whose positives are the batch's clips of the
same digit spoken by another training voice, so one digit's voices are pulled together.

About 95 s per speaker on two cores, 2.5 times faster than a fused run of `loso.py`. It tracks
the fused model's sound alone: with defaults, seed 0 reads 0.794 here and 0.785 in `loso.py`.
It is a screen, not the estimate. The seed alone moves its four-speaker mean by several points,
so judge a candidate on two seeds or more and confirm it with `loso.py`. Prints one JSON
object: the accuracy per (speaker, seed) and the mean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loso import DEFAULT_DATA, speaker_of  # noqa: E402  (the speaker rule, defined once)

DEFAULT_BASE = Path(__file__).resolve().parent / "avdigits_screen_base.toml"


def settings_file(settings: Path) -> Path:
    """A model folder's config.json, or the file itself."""
    return settings / "config.json" if settings.is_dir() else settings


def base_settings(settings: Path) -> dict:
    """A model folder's or a config.json's settings, or a TOML file's on today's defaults."""
    import tomllib

    from crossmodal.config import RunConfig
    from crossmodal.errors import CrossmodalError
    from crossmodal.settings import merge

    path = settings_file(settings)
    if path.suffix.lower() != ".toml":
        return RunConfig.load(path).to_dict()
    try:
        return merge(RunConfig().to_dict(), tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CrossmodalError(f"cannot read {path}: {exc}") from None


def screen_config(settings: Path, config_file: Path | None, seed: int):
    """The base settings (a model folder, a config.json or a TOML file of the settings
    resolved from the data), the candidate's on top, the seed."""
    from crossmodal.config import RunConfig
    from crossmodal.settings import merge, read_config_file

    base = base_settings(settings)
    if config_file is not None:
        base = merge(base, read_config_file(config_file))
    base = merge(base, {"train": {"seed": seed}})
    return RunConfig.from_dict(base)


def load_clips(data: Path, cfg) -> tuple:
    """Every clip of a class-folder dataset as [N, samples] at the config's rate, with its label
    index in cfg.labels and its speaker (the file name before the first underscore)."""
    import numpy as np

    from crossmodal.data.decode import read_audio

    files = sorted(p for p in data.glob("*/*.wav") if p.parent.name in cfg.labels)
    waves = np.stack(
        [
            read_audio(str(p), sample_rate=cfg.audio.sample_rate, num_samples=cfg.audio.num_samples)
            for p in files
        ]
    )
    labels = np.array([cfg.labels.index(p.parent.name) for p in files])
    speakers = np.array([speaker_of(p) for p in files])
    return waves, labels, speakers


def mixup_batches(waves, targets, batch: int, alpha: float, seed: int):
    """Endless shuffled batches (waves [B, T], targets [B, K]) of mixed clips: each row with a
    shuffled row of its batch, lam ~ Beta(alpha, alpha) per row, the larger share its own."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(waves)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch + 1, batch):
            rows = order[start : start + batch]
            partners = rng.permutation(rows)
            lam = rng.beta(alpha, alpha, size=(len(rows), 1)).astype(np.float32)
            lam = np.maximum(lam, 1.0 - lam)  # [B, 1]
            yield (
                lam * waves[rows] + (1.0 - lam) * waves[partners],
                lam * targets[rows] + (1.0 - lam) * targets[partners],
            )


def gradient_reversal(weight: float):
    """A Keras layer: identity forward, gradient times -weight backward."""
    import keras
    import tensorflow as tf

    @tf.custom_gradient
    def reverse(x):
        return tf.identity(x), lambda dy: -weight * dy

    class GradientReversal(keras.layers.Layer):
        def call(self, x):
            return reverse(x)

    return GradientReversal(name="gradient_reversal")


def cross_speaker_supcon(temperature: float):
    """A Keras loss on unit-length embeddings [B, D], y_true [B, 2] = (label, speaker index):
    supervised contrastive (Khosla et al., 2020) whose positives for a clip are the clips of
    the same label spoken by *another* voice in the batch; every other clip is in the
    denominator. Clips with no such positive in the batch add nothing."""
    import tensorflow as tf

    def loss(y_true, z):
        z = tf.cast(z, tf.float32)
        label, who = y_true[:, 0], y_true[:, 1]
        n = tf.shape(z)[0]
        logits = tf.matmul(z, z, transpose_b=True) / temperature  # [B, B]
        self_mask = tf.eye(n, dtype=tf.bool)
        logits = tf.where(self_mask, -1e9, logits)
        log_prob = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
        positive = tf.logical_and(
            tf.equal(label[:, None], label[None, :]), tf.not_equal(who[:, None], who[None, :])
        )
        positive = tf.cast(positive, tf.float32)
        count = tf.reduce_sum(positive, axis=1)  # [B]
        per_clip = -tf.reduce_sum(positive * log_prob, axis=1) / tf.maximum(count, 1.0)
        has = tf.cast(count > 0, tf.float32)
        return tf.reduce_sum(per_clip * has) / tf.maximum(tf.reduce_sum(has), 1.0)

    return loss


def audio_path_accuracy(
    cfg, waves, labels, train, test, *, speakers=None, mixup=0.0, adversarial=0.0, supcon=0.0
) -> float:
    """Train the network's audio path alone on `train` rows and score it on `test` rows
    (`mixup` alpha, `adversarial` and `supcon` weights as the options above; 0 = off)."""
    import keras
    import numpy as np

    from crossmodal.model import build_network
    from crossmodal.train import _optimizer, adapt_audio_normalization, adaptation_subset

    t = cfg.train
    keras.utils.set_random_seed(t.seed)
    # One network's audio path: an ensemble's members would each be screened the same way.
    net = build_network(replace(cfg, model=replace(cfg.model, members=1)))
    adapt_audio_normalization(net, waves[adaptation_subset(np.flatnonzero(train))])
    head = net.get_layer("audio_head").output
    batch = t.batch_size or 32
    optimizer = _optimizer(replace(cfg, train=replace(t, batch_size=batch)), int(train.sum()))
    digit_loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=t.label_smoothing
    )
    x = waves[train]
    y = keras.utils.to_categorical(labels, cfg.num_classes)[train].astype(np.float32)
    embedding = net.get_layer("audio_embedding").output
    if supcon > 0 or adversarial > 0:
        names = sorted(set(speakers[train]))  # the training voices, as indices
        voice = np.array([names.index(s) for s in speakers[train]])
    if supcon > 0:
        tags = np.stack([labels[train], voice], axis=1).astype(np.float32)
        projected = keras.layers.Dense(64, name="supcon_projection")(embedding)
        unit = keras.layers.UnitNormalization(name="supcon_unit")(projected)
        model = keras.Model(net.input["audio"], [head, unit])
        model.compile(
            optimizer, [digit_loss, cross_speaker_supcon(0.1)], loss_weights=[1.0, supcon]
        )
        y = (y, tags)
    elif adversarial > 0:
        who = keras.utils.to_categorical(voice, len(names)).astype(np.float32)
        hidden = keras.layers.Dense(64, activation="relu", name="speaker_hidden")(
            gradient_reversal(adversarial)(embedding)
        )
        speaker = keras.layers.Dense(len(names), name="speaker_head")(hidden)
        model = keras.Model(net.input["audio"], [head, speaker])
        model.compile(
            optimizer, [digit_loss, keras.losses.CategoricalCrossentropy(from_logits=True)]
        )
        y = (y, who)
    else:
        model = keras.Model(net.input["audio"], head)
        model.compile(optimizer, digit_loss)
    if mixup > 0:
        if adversarial > 0 or supcon > 0:
            raise ValueError("--mixup is screened alone, without --speaker-adversarial or --supcon")
        steps = len(x) // batch
        batches = mixup_batches(x, y, batch, mixup, seed=t.seed)
        model.fit(batches, steps_per_epoch=steps, epochs=t.epochs, verbose=0)
    else:
        model.fit(x, y, batch_size=batch, epochs=t.epochs, verbose=0)
    scores = model.predict(waves[test], batch_size=256, verbose=0)
    if adversarial > 0 or supcon > 0:
        scores = scores[0]
    return float(np.mean(scores.argmax(axis=1) == labels[test]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "settings",
        type=Path,
        nargs="?",
        default=DEFAULT_BASE,
        help="a model folder, its config.json, or a TOML of data settings (default: %(default)s)",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=None, help="TOML: the candidate")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--speakers", default="", help="comma-separated (default: all)")
    parser.add_argument("--mixup", type=float, default=0.0, help="Beta alpha (0: off)")
    parser.add_argument(
        "--speaker-adversarial", type=float, default=0.0, help="reversal weight (0: off)"
    )
    parser.add_argument(
        "--supcon", type=float, default=0.0, help="cross-speaker contrastive weight (0: off)"
    )
    args = parser.parse_args()
    if sum(v > 0 for v in (args.mixup, args.speaker_adversarial, args.supcon)) > 1:
        print("error: screen one of --mixup, --speaker-adversarial, --supcon", file=sys.stderr)
        return 2
    if args.mixup < 0 or args.speaker_adversarial < 0 or args.supcon < 0:
        print("error: --mixup, --speaker-adversarial and --supcon must be >= 0", file=sys.stderr)
        return 2
    if not settings_file(args.settings).is_file():
        print(f"error: {args.settings} is no settings file nor a folder with one", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"error: no data at {args.data}", file=sys.stderr)
        return 2
    from crossmodal.errors import CrossmodalError

    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        configs = {seed: screen_config(args.settings, args.config, seed) for seed in seeds}
    except CrossmodalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    waves, labels, speakers = load_clips(args.data, configs[seeds[0]])
    held_out = args.speakers.split(",") if args.speakers else sorted(set(speakers))
    rows = []
    for seed, cfg in configs.items():
        for speaker in held_out:
            start = time.perf_counter()
            test = speakers == speaker
            accuracy = audio_path_accuracy(
                cfg,
                waves,
                labels,
                ~test,
                test,
                speakers=speakers,
                mixup=args.mixup,
                adversarial=args.speaker_adversarial,
                supcon=args.supcon,
            )
            row = {"speaker": speaker, "seed": seed, "sound_alone": round(accuracy, 4)}
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    mean = sum(r["sound_alone"] for r in rows) / len(rows)
    options = {
        "mixup": args.mixup,
        "speaker_adversarial": args.speaker_adversarial,
        "supcon": args.supcon,
    }
    summary = {"config": str(args.config), **options, "rows": rows, "mean": round(mean, 4)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
