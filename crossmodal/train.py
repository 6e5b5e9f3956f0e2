"""Train a model from a folder, a manifest or a prepared dataset, and write the model folder."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossmodal import __version__
from crossmodal.config import ImageConfig, RunConfig
from crossmodal.data.preprocess import (
    PreparedDataset,
    PrepSettings,
    Progress,
    is_prepared,
    open_prepared,
    preprocess,
)
from crossmodal.errors import CrossmodalError
from crossmodal.splits import compile_group_regex, group_split, stratified_split

EpochCallback = Callable[[int, int, dict], None]  # (epoch, epochs, logs)
ADAPT_SAMPLES = 4096  # normalization statistics from at most this many training samples


@dataclass
class TrainResult:
    model_dir: Path
    config: RunConfig
    history: list[dict]
    metrics: dict  # validation metrics (empty when there was no validation split)
    dataset: dict
    split: dict
    seconds: float


def load_dataset(
    source: str | Path,
    settings: PrepSettings,
    *,
    exact: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> PreparedDataset:
    """A prepared folder as it is, or a folder/manifest preprocessed into the cache.

    With `exact`, a prepared folder must already have the requested shapes (evaluate needs the
    model's shapes, not the data's).
    """
    path = Path(source)
    if is_prepared(path):
        prep = open_prepared(path)
        img, aud = prep.info["image"], prep.info["audio"]
        if aud["sample_rate"] != settings.sample_rate:
            raise CrossmodalError(
                f"{path} was prepared at {aud['sample_rate']} Hz but {settings.sample_rate} Hz "
                "is needed; give the raw data instead"
            )
        if exact:
            have = (img["height"], img["width"], img["channels"], aud["clip_seconds"])
            need = (settings.height, settings.width, settings.channels, settings.clip_seconds)
            if have != need:
                raise CrossmodalError(
                    f"{path} was prepared as {have[0]}x{have[1]}x{have[2]}, {have[3]} s; the "
                    f"model needs {need[0]}x{need[1]}x{need[2]}, {need[3]} s; give the raw data"
                )
        return prep
    return preprocess(path, None, settings=settings, workers=workers, progress=progress)


def _split(prep: PreparedDataset, cfg: RunConfig) -> tuple[list[int], list[int], dict]:
    t = cfg.train
    pattern = compile_group_regex(t.group_regex)
    if pattern is not None or t.val_groups:
        train, val, groups = group_split(
            prep.samples, pattern, val_groups=t.val_groups, fraction=t.val_fraction, seed=t.seed
        )
        return train, val, {"kind": "group", "val_groups": groups, "regex": t.group_regex}
    if t.val_fraction > 0:
        train, val = stratified_split(prep.samples, t.val_fraction, t.seed)
        return train, val, {"kind": "stratified", "val_fraction": t.val_fraction}
    return [s["index"] for s in prep.samples], [], {"kind": "none"}


def _adapt_normalization(net, prep: PreparedDataset, train_idx: list[int]) -> None:
    """Fit the in-graph Normalization layers on present training samples only."""
    import tensorflow as tf

    from crossmodal.data.reader import make_dataset

    rng = np.random.default_rng(0)
    subset = rng.permutation(np.asarray(train_idx))[:ADAPT_SAMPLES]
    images, audios = [], []
    for inputs, _ in make_dataset(prep, subset, batch_size=256, cache=False):
        images.append(inputs["image"].numpy()[inputs["image_present"].numpy() > 0])
        audios.append(inputs["audio"].numpy()[inputs["audio_present"].numpy() > 0])
    image = np.concatenate(images)
    audio = np.concatenate(audios)
    if len(image):
        scaled = net.get_layer("image_scale")(tf.constant(image))
        net.get_layer("image_norm").adapt(scaled)
    if len(audio):
        spec = net.get_layer("log_mel")(net.get_layer("audio_gain")(tf.constant(audio)))
        net.get_layer("audio_norm").adapt(spec)


def _label_map(from_classes: list[str], to_labels: tuple[str, ...], what: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(to_labels)}
    unknown = [c for c in from_classes if c not in index]
    if unknown:
        raise CrossmodalError(f"{what} has label(s) the model does not know: {', '.join(unknown)}")
    return np.array([index[c] for c in from_classes] or [0], dtype=np.int32)


def train(
    data: str | Path,
    out: str | Path,
    *,
    config: RunConfig | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    clip_seconds: float | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Preprocess if needed, split, fit with early stopping, export and check the model folder."""
    from crossmodal.artifacts import commit_dir, staging_dir

    start = time.time()
    cfg = config or RunConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise CrossmodalError(f"{out} already exists; pass --overwrite to replace it")
    settings = PrepSettings(
        sample_rate=cfg.audio.sample_rate,
        height=image_size[0] if image_size else None,
        width=image_size[1] if image_size else None,
        channels=channels,
        clip_seconds=clip_seconds,
    )
    prep = load_dataset(data, settings, workers=workers, progress=progress)
    classes = prep.classes
    if len(classes) < 2:
        raise CrossmodalError(f"{data}: need at least two labeled classes, found {len(classes)}")
    img, aud = prep.info["image"], prep.info["audio"]
    cfg = cfg.replace(
        image=ImageConfig(img["height"], img["width"], img["channels"]),
        audio=dataclasses.replace(cfg.audio, clip_seconds=aud["clip_seconds"]),
        labels=tuple(classes),
    )
    val_prep = None
    if cfg.train.val_dir:
        val_settings = dataclasses.replace(
            settings,
            height=img["height"],
            width=img["width"],
            channels=img["channels"],
            clip_seconds=aud["clip_seconds"],
        )
        val_prep = load_dataset(
            cfg.train.val_dir, val_settings, exact=True, workers=workers, progress=progress
        )
        train_idx = [s["index"] for s in prep.samples]
        val_idx = [s["index"] for s in val_prep.samples if s["label"] is not None]
        split = {"kind": "val_dir", "val_dir": cfg.train.val_dir}
    else:
        train_idx, val_idx, split = _split(prep, cfg)
    split.update(train=len(train_idx), val=len(val_idx))

    tmp = staging_dir(out, overwrite)
    try:
        history, metrics = _fit_and_export(cfg, prep, val_prep, train_idx, val_idx, tmp, on_epoch)
        dataset_info = {**prep.info, "split": split}
        (tmp / "dataset.json").write_text(json.dumps(dataset_info, indent=2, ensure_ascii=False))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        commit_dir(tmp, out)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TrainResult(
        model_dir=out,
        config=cfg,
        history=history,
        metrics=metrics,
        dataset=prep.info,
        split=split,
        seconds=time.time() - start,
    )


def _fit_and_export(cfg, prep, val_prep, train_idx, val_idx, tmp: Path, on_epoch):
    import keras
    import tensorflow as tf

    from crossmodal.artifacts import export_saved_model
    from crossmodal.data.reader import make_dataset
    from crossmodal.metrics import classification_metrics
    from crossmodal.model import Trainer, build_network

    t = cfg.train
    keras.utils.set_random_seed(t.seed)
    tf.config.experimental.enable_op_determinism()

    net = build_network(cfg)
    _adapt_normalization(net, prep, train_idx)
    train_ds = make_dataset(prep, train_idx, batch_size=t.batch_size, shuffle=True, seed=t.seed)
    val_ds = None
    if val_idx:
        source = val_prep or prep
        label_map = _label_map(source.classes, cfg.labels, "validation data") if val_prep else None
        val_ds = make_dataset(source, val_idx, batch_size=t.batch_size, label_map=label_map)

    steps = max(1, int(np.ceil(len(train_idx) / t.batch_size)))
    schedule = keras.optimizers.schedules.CosineDecay(
        t.learning_rate * 0.1,
        decay_steps=max(1, t.epochs * steps - steps),
        warmup_target=t.learning_rate,
        warmup_steps=steps,
    )
    trainer = Trainer(net, aux_weight=cfg.model.aux_loss_weight, label_smoothing=t.label_smoothing)
    trainer.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=t.weight_decay))
    monitor = "val_loss" if val_ds is not None else "loss"
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=t.patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(tmp / "history.csv")),
    ]
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, t.epochs, dict(logs or {}))
            )
        )
    trainer.fit(train_ds, validation_data=val_ds, epochs=t.epochs, callbacks=callbacks, verbose=0)

    net.save(tmp / "model.keras")
    export_saved_model(net, cfg, tmp / "saved_model")
    cfg.save(
        tmp / "config.json",
        crossmodal_version=__version__,
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    (tmp / "labels.json").write_text(json.dumps(list(cfg.labels), ensure_ascii=False))
    history = _read_history(tmp / "history.csv")

    metrics: dict = {}
    serve = tf.saved_model.load(str(tmp / "saved_model")).signatures["serving_default"]
    if val_ds is not None:
        from crossmodal.inference import MODALITIES, run_serving

        source = val_prep or prep
        label_map = _label_map(source.classes, cfg.labels, "validation data") if val_prep else None
        ds = make_dataset(source, val_idx, batch_size=64, label_map=label_map, with_index=True)
        _check_export(net, serve, ds)
        for modality in MODALITIES:
            probs, labels, _ = run_serving(serve, ds, modality)
            if len(labels):
                metrics[modality] = classification_metrics(labels, probs, list(cfg.labels))
    return history, metrics


def _check_export(net, serve, ds, atol: float = 1e-4) -> None:
    """Every artifact is reloaded and checked: the SavedModel must match the live network."""
    inputs, _, _ = next(iter(ds))
    want = net(inputs, training=False)["probabilities"].numpy()
    got = serve(
        image=inputs["image"],
        image_present=inputs["image_present"] > 0,
        audio=inputs["audio"],
        audio_present=inputs["audio_present"] > 0,
    )["probabilities"].numpy()
    if not np.allclose(want, got, atol=atol):
        raise RuntimeError(
            f"exported SavedModel differs from the network by {abs(want - got).max()}"
        )


def _read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
