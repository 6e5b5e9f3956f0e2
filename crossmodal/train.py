"""Train a model from a folder, a manifest or a prepared dataset, and write the model folder.

The run is built in a staging folder `.<MODEL>.partial` beside the final one, checkpointed at
the end of every epoch (weights, optimizer, random-generator states, early-stopping state), and
renamed into place only when complete. A killed run is continued with `resume=True`: it picks up
after its last completed epoch and ends exactly where an uninterrupted run with the same seed
would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossmodal import __version__, fsio
from crossmodal.config import (
    DEFAULT_FMAX,
    FUSION_NAMES,
    AudioConfig,
    ImageConfig,
    RunConfig,
    TrainConfig,
)
from crossmodal.data.preprocess import (
    PreparedDataset,
    PrepSettings,
    Progress,
    empty_classes,
    is_prepared,
    open_prepared,
    preprocess,
)
from crossmodal.errors import CrossmodalError, check_count, ensure_not_bootstrapping
from crossmodal.splits import compile_group_regex, group_split, stratified_split

EpochCallback = Callable[[int, int, dict], None]  # (epoch, epochs, logs)
Notice = Callable[[str], None]
AUTO_BATCH, MIN_STEPS, MIN_BATCH = 32, 16, 8
ADAPT_SAMPLES = 4096  # normalization statistics from at most this many training samples
STATE_FILE = "run.json"  # in the staging folder: what a resumed run needs to start again
PSEUDO_FILE = "pseudo_labels.json"  # in the staging folder: self-training's first stage
AUTO_FILE = "fusion_candidates.json"  # in the staging folder: `auto`'s candidates scored so far
# removed from the staging folder when it is done
LEFTOVERS = ("checkpoint", PSEUDO_FILE, AUTO_FILE)
THRESHOLDS_FILE = "thresholds.json"  # multi-label: per-class decision thresholds
METRICS_FILE = "metrics.json"  # validation metrics
LOGS = "logs"  # TensorBoard


@dataclass
class TrainResult:
    model_dir: Path | None  # None on a worker that is not the chief (it writes no folder)
    config: RunConfig
    history: list[dict]
    metrics: dict  # validation metrics per modality (empty without a validation split)
    dataset: dict
    split: dict
    seconds: float
    notes: list[str]


# --- data ----------------------------------------------------------------------------------


def load_dataset(
    source: str | Path,
    settings: PrepSettings,
    *,
    exact: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> PreparedDataset:
    """A prepared folder as it is, or a folder/manifest preprocessed into the cache.

    A prepared folder must already have every shape that `settings` fixes (the others are
    read from it); `exact` says that the shapes are a model's, for the message.
    """
    path = fsio.local_or_url(source)
    if is_prepared(path):
        prep = open_prepared(path)
        img, aud = prep.info["image"], prep.info["audio"]
        if aud["sample_rate"] != settings.sample_rate:
            raise CrossmodalError(
                f"{path} was prepared at {aud['sample_rate']} Hz but {settings.sample_rate} Hz "
                "is needed; give the raw data instead"
            )
        have = (img["height"], img["width"], img["channels"], aud["clip_seconds"])
        need = (settings.height, settings.width, settings.channels, settings.clip_seconds)
        if any(n is not None and n != h for h, n in zip(have, need, strict=True)):
            h, w, c, s = (h if n is None else n for h, n in zip(have, need, strict=True))
            who = "the model needs" if exact else "the settings ask for"
            raise CrossmodalError(
                f"{path} was prepared as {have[0]}x{have[1]}x{have[2]}, {have[3]:g} s; {who} "
                f"{h}x{w}x{c}, {s:g} s: give the raw data"
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


def label_map(from_classes: list[str], to_labels: tuple[str, ...], what: str) -> np.ndarray:
    """Dataset class ids -> model class ids; refuses labels the model does not know."""
    index = {name: i for i, name in enumerate(to_labels)}
    unknown = [c for c in from_classes if c not in index]
    if unknown:
        raise CrossmodalError(f"{what} has label(s) the model does not know: {', '.join(unknown)}")
    return np.array([index[c] for c in from_classes] or [0], dtype=np.int32)


def read_class_weights(spec: str) -> dict[str, float]:
    """--class-weight as a JSON object of label -> weight (a number >= 0): written inline
    (`{"cat": 2}`, as config.json records the weights a run used) or in a JSON file."""
    inline = is_inline_weights(spec)
    try:
        table = json.loads(spec if inline else fsio.read_text(spec))
    except (OSError, ValueError) as exc:
        what = "a JSON object" if inline else "'balanced', a JSON object or a JSON file"
        raise CrossmodalError(f"--class-weight {spec}: not {what} ({exc})") from None
    if not isinstance(table, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        for v in table.values()
    ):
        raise CrossmodalError(
            f"--class-weight {spec}: expected a JSON object of label: weight (numbers >= 0)"
        )
    return {str(k): float(v) for k, v in table.items()}


def is_inline_weights(spec: str | None) -> bool:
    """Whether a --class-weight value is the weights themselves, not a file naming them."""
    return bool(spec) and spec.lstrip().startswith("{")


def recorded_class_weights(cfg: RunConfig) -> RunConfig:
    """`cfg` with a --class-weight file replaced by the table it held, as it was (a label it
    does not name still weighs 1): config.json repeats the run even after the file is edited
    or gone, and on other data it applies as the file would have."""
    spec = cfg.train.class_weight
    if not spec or spec == "balanced":
        return cfg
    if is_inline_weights(spec):
        read_class_weights(spec)  # checked all the same
        return cfg
    inline = json.dumps(read_class_weights(spec), ensure_ascii=False)
    return cfg.replace(train=dataclasses.replace(cfg.train, class_weight=inline))


def check_before_work(
    cfg: RunConfig,
    data: str | Path | None,
    out: str | Path | None = None,
    *,
    resuming: bool = False,
) -> RunConfig:
    """What can be refused before TensorFlow is imported or any data is read, so that a typo
    costs neither: a local DATA or --val-dir that does not exist, an --out under a file,
    --group-regex, the --class-weight file, --noise-dir.

    Returns `cfg` with a --class-weight file replaced by its table (`recorded_class_weights`),
    so that the file is read once, here, and the run uses and records what it read."""
    if out is not None:
        fsio.check_creatable(out)
    if not resuming:  # a run goes on with what it started with, which --resume cannot change
        cfg.train.check_validation()
    compile_group_regex(cfg.train.group_regex)
    cfg = recorded_class_weights(cfg)  # reads and checks a --class-weight file
    if cfg.augment.noise_dir:
        from crossmodal.data.noise import check_noise_dir

        check_noise_dir(cfg.augment.noise_dir)
    for flag, path in (("", data), ("--val-dir: ", cfg.train.val_dir)):
        if path is not None and not fsio.is_remote(path) and not Path(path).exists():
            raise CrossmodalError(f"{flag}no such file or folder: {path}")
    return cfg


def _class_weights(
    cfg: RunConfig, prep: PreparedDataset, train_idx: list[int]
) -> np.ndarray | None:
    spec = cfg.train.class_weight
    if not spec:
        return None
    labels = list(cfg.labels)
    chosen = set(train_idx)
    counts = np.zeros(len(labels))
    for s in prep.samples:
        if s["index"] in chosen and s["label"] is not None:
            counts[labels.index(s["label"])] += 1
    if spec == "balanced":
        # sklearn's "balanced": n_samples / (n_classes * count), absent classes weigh 0
        return np.where(counts > 0, counts.sum() / (len(labels) * np.maximum(counts, 1)), 0.0)
    table = read_class_weights(spec)
    unknown = sorted(set(table) - set(labels))
    if unknown:
        raise CrossmodalError(
            f"--class-weight: unknown label(s) {', '.join(unknown)} (the data's labels are "
            f"{', '.join(labels)})"
        )
    weights = np.array([float(table.get(name, 1.0)) for name in labels])
    if not (weights * counts).any():  # every loss term 0: the model would learn nothing
        raise CrossmodalError("--class-weight: every class in the training data has weight 0")
    return weights


def _alignment(prep: PreparedDataset, train_idx: list[int], cfg: RunConfig) -> dict:
    """Decide cross-modal transfer from the data: who teaches whom, and whether to align."""
    chosen = set(train_idx)
    rows = [s for s in prep.samples if s["index"] in chosen]
    unlabeled_pairs = sum(1 for s in rows if s["label"] is None and s["image"] and s["audio"])
    labeled_image = sum(1 for s in rows if s["label"] is not None and s["image"])
    labeled_audio = sum(1 for s in rows if s["label"] is not None and s["audio"])
    mode = cfg.train.align
    active = mode == "on" or (mode == "auto" and unlabeled_pairs > 0)
    distill = None
    if active and labeled_audio == 0 and labeled_image > 0:
        distill = "image->audio"
    elif active and labeled_image == 0 and labeled_audio > 0:
        distill = "audio->image"
    return {
        "active": active,
        "distill": distill,
        "unlabeled_pairs": unlabeled_pairs,
        "labeled_image": labeled_image,
        "labeled_audio": labeled_audio,
    }


# --- the public entry point ----------------------------------------------------------------


def fixed_shapes(
    config: RunConfig,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    clip_seconds: float | None = None,
) -> tuple[tuple[int, int] | None, int | None, float | None]:
    """The image size, channels and clip length that training must use, None for each one
    to infer from the data: the arguments where given, else the config's value where it
    differs from the default. Each is fixed on its own, as the CLI's `--image-size`,
    `--channels` and `--clip-seconds` fix them."""
    img, default = config.image, ImageConfig()
    if image_size is None and (img.height, img.width) != (default.height, default.width):
        image_size = (img.height, img.width)
    if channels is None and img.channels != default.channels:
        channels = img.channels
    if clip_seconds is None and config.audio.clip_seconds != AudioConfig().clip_seconds:
        clip_seconds = config.audio.clip_seconds
    return image_size, channels, clip_seconds


def train(
    data: str | Path | None,
    out: str | Path,
    *,
    config: RunConfig | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    clip_seconds: float | None = None,
    overwrite: bool = False,
    resume: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    on_epoch: EpochCallback | None = None,
    notice: Notice | None = None,
) -> TrainResult:
    """Preprocess if needed, split, fit with early stopping, export and check the model folder.

    The image size, its channels and the clip length are each inferred from the data unless
    fixed: by `image_size`, `channels` and `clip_seconds`, or by a `config` whose image size,
    channels or `audio.clip_seconds` differ from the defaults (each on its own, as the CLI's
    `--image-size`, `--channels` and `--clip-seconds` fix them). `data` may be None when
    `config.data` names it.

    With `resume`, continue the killed run that was writing `out`: its settings and data are
    read from its staging folder, so `data`, the shape arguments and `config` must be None
    (a config may only choose where the run goes on: `train.strategy`).
    """
    ensure_not_bootstrapping()
    check_count("--workers", workers)
    if resume:
        strategy_only = config is None or config == RunConfig(
            train=dataclasses.replace(TrainConfig(), strategy=config.train.strategy)
        )
        if (
            data is not None
            or not strategy_only
            or (image_size, channels, clip_seconds)
            != (
                None,
                None,
                None,
            )
        ):
            raise CrossmodalError(
                "resume continues the run with its own data and settings: pass no data, no "
                "shape and no config (but for train.strategy)"
            )
    elif config is not None:
        if data is None and config.data:
            data = config.data
        image_size, channels, clip_seconds = fixed_shapes(
            config, image_size, channels, clip_seconds
        )
    from crossmodal.artifacts import commit_dir
    from crossmodal.distribute import choose_strategy
    from crossmodal.locking import output_lock, remove_stale

    start = time.time()
    notes: list[str] = []

    def say(message: str) -> None:
        notes.append(message)
        if notice is not None:
            notice(message)

    out = fsio.local_or_url(out)
    remote = fsio.is_remote(out)  # built in a local staging folder, copied there at the end
    if not remote:
        out = Path(os.path.abspath(out))  # "." and "dir/.." name a folder too
    staging = _remote_staging(out) if remote else out.with_name(f".{out.name}.partial")
    if data is not None and fsio.is_remote(data):
        data = fsio.normalize(data)
    if not resume:  # a resumed run's settings are read below, from its staging folder
        config = check_before_work(config or RunConfig(), data, out)
    if not remote:
        out.parent.mkdir(parents=True, exist_ok=True)
    placement = choose_strategy((config or RunConfig()).train.strategy)
    if resume and placement.kind == "multi-worker":
        # Only the chief keeps a staging folder; a resumed worker would wait on the others.
        raise CrossmodalError("--resume is not supported with --strategy multi-worker yet")
    if placement.replicas > 1 or placement.kind != "one-device":
        say(
            f"strategy {placement.kind}: {placement.replicas} replica(s)"
            + ("" if placement.is_chief else "; this worker is not the chief")
        )
    if not placement.is_chief:  # only the chief writes MODEL; the others write to a temp dir
        staging = Path(tempfile.mkdtemp(prefix="crossmodal-worker-")) / "partial"
        guard = _removed_on_exit(staging.parent)
    else:  # a remote MODEL's config.json, copied last, marks it complete; two runs on one
        # machine would share its local staging folder, which the lock keeps to one
        guard = output_lock(staging, name=str(out)) if remote else output_lock(out)
    with guard, contextlib.ExitStack() as on_exit:
        if placement.is_chief and not remote and _finish_interrupted_swap(staging, out):
            say(f"an earlier run had finished but was stopped before moving {out} into place: done")
        for name in remove_stale(out, kinds=("old",)) if placement.is_chief and not remote else ():
            say(f"removed {name}, left by an interrupted run")  # a swap killed half-way
        state = _resume_state(staging) if resume else None
        if resume:
            config = RunConfig.from_saved(state["config"])
            data = state["data"]
            image_size, channels, clip_seconds = (
                (config.image.height, config.image.width),
                config.image.channels,
                config.audio.clip_seconds,
            )
        elif fsio.exists(out) and placement.is_chief:
            if not overwrite:
                raise CrossmodalError(f"{out} already exists; pass --overwrite to replace it")
            if not _replaceable_model_dir(out):  # never a user's project folder
                raise CrossmodalError(
                    f"{out} exists and is not a model folder; --overwrite replaces only a "
                    "model folder (or an empty folder): choose another --out"
                )
            names = {n.rstrip("/") for n in fsio.folder_entries(out) or ()}
            added = sorted(n for n in names - _written_by_training() if not _os_clutter(n))
            if added:  # notes, an evaluation's reports: the swap would delete them unseen
                shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if added[3:] else "")
                raise CrossmodalError(
                    f"{out} holds {shown}, which training did not write and --overwrite would "
                    "delete: move them out of it first"
                )
        if data is None:
            raise CrossmodalError("no data given (pass DATA, or a --config that names its data)")
        cfg = config or RunConfig()
        if resume:  # before preprocessing, which can take minutes
            check_before_work(cfg, data, resuming=True)
        if not resume and staging.exists():
            shutil.rmtree(staging)
            say(f"discarded an incomplete earlier run in {staging} (pass --resume to continue one)")
        settings = PrepSettings(
            sample_rate=cfg.audio.sample_rate,
            height=image_size[0] if image_size else None,
            width=image_size[1] if image_size else None,
            channels=channels,
            clip_seconds=clip_seconds,
        )
        prep = load_dataset(data, settings, workers=workers, progress=progress)
        for note in prep.notes:
            say(note)
        if len(prep.classes) < 2:
            raise CrossmodalError(
                f"{data}: need at least two labeled classes, found {len(prep.classes)}"
            )
        empty = empty_classes(prep.info)
        if empty:
            raise CrossmodalError(
                f"{data}: class(es) {', '.join(empty)} have no usable sample (every file of "
                "theirs failed to decode; `crossmodal preprocess` lists why): fix or remove them"
            )
        for kind, one, others in (("image", "an image", "sounds"), ("audio", "a sound", "images")):
            if not prep.info["counts"][kind]:
                say(
                    f"warning: no sample has {one}: the model learns from the {others} alone, "
                    f"and its {kind} head stays untrained (a prediction from {one} alone "
                    "means nothing)"
                )
        img, aud = prep.info["image"], prep.info["audio"]
        fmax = cfg.audio.fmax
        if fmax <= 0:  # auto: nothing above the lowest source rate's Nyquist frequency
            lowest = aud.get("source_sample_rate_min") or cfg.audio.sample_rate
            fmax = round(min(DEFAULT_FMAX, 0.475 * min(lowest, cfg.audio.sample_rate)), 1)
        cfg = cfg.replace(
            image=ImageConfig(img["height"], img["width"], img["channels"]),
            audio=dataclasses.replace(cfg.audio, clip_seconds=aud["clip_seconds"], fmax=fmax),
            labels=tuple(prep.classes),
        )
        cfg = _with_absolute_paths(cfg, data)  # config.json repeats the run from any folder
        if prep.info.get("multi_label") and not cfg.model.multi_label:
            say("label cells hold several labels ('a;b'): training a multi-label model")
            cfg = cfg.replace(model=dataclasses.replace(cfg.model, multi_label=True))
        if cfg.model.multi_label and cfg.train.class_weight:
            raise CrossmodalError("--class-weight applies to single-label models only")
        val_prep, train_idx, val_idx, split = _make_split(cfg, prep, settings, workers, progress)
        unseen = [c for c in cfg.labels if val_prep is not None and c not in val_prep.classes]
        if unseen:
            say(
                f"warning: --val-dir has no sample of {', '.join(unseen)}: early stopping "
                "cannot see how the model does on them, and validation does not score them"
            )
        chosen = set(train_idx)
        if not any(s["label"] is not None for s in prep.samples if s["index"] in chosen):
            raise CrossmodalError(
                f"the {split['kind']} split leaves no labeled sample to train on"
                + (": hold out fewer groups" if split["kind"] == "group" else "")
            )
        if cfg.train.batch_size <= 0:
            batch = auto_batch_size(len(train_idx))
            cfg = cfg.replace(train=dataclasses.replace(cfg.train, batch_size=batch))
            if batch < AUTO_BATCH:
                say(
                    f"batch size {batch}: a small training set ({len(train_idx)} samples) "
                    "needs more steps per epoch"
                )
        _class_weights(cfg, prep, train_idx)  # refused here, before any training, if wrong
        align = _alignment(prep, train_idx, cfg)
        # (A resumed run's saved config already holds the fusion it trained with: an `auto`
        # choice made with transfer on stands.)
        if align["distill"] and cfg.model.fusion not in ("late", "auto") and not resume:
            say(
                f"cross-modal transfer ({align['distill']}, {align['unlabeled_pairs']} unlabeled "
                f"pairs): fusion '{cfg.model.fusion}' replaced by 'late', which predicts from "
                "either modality's head"
            )
            cfg = cfg.replace(model=dataclasses.replace(cfg.model, fusion="late"))
        elif align["active"]:
            say(f"aligning the modalities on {align['unlabeled_pairs']} unlabeled pair(s)")
        if cfg.train.mixed_precision:
            _mixed_precision(say, on_exit)
        job = _Job(cfg, prep, val_prep, train_idx, val_idx, align, staging, on_epoch, say)
        job.placement = placement
        # A resumed `auto` run that had chosen saved its choice in its config; the record of
        # why it chose, for metrics.json and the card, is kept beside it. One stopped while it
        # tried the candidates chooses now, reusing the candidates it had scored.
        selection = state.get("fusion_selection") if resume else None
        if cfg.model.fusion == "auto" and not val_idx:
            raise CrossmodalError("--fusion auto needs validation data (a split or --val-dir)")
        if not resume:  # before the candidates train: a run stopped among them resumes too
            staging.mkdir(parents=True)
            _write_state(staging, cfg, None)
        if cfg.model.fusion == "auto":
            cfg, selection = job.choose_fusion()
            job.cfg = cfg
            _write_state(staging, cfg, selection)
        try:
            self_training = job.self_train_labels(resume=resume)
            if self_training is not None:
                align = {**align, "self_training": self_training}
            history, metrics = job.fit_and_export(resume=resume)
            if selection is not None:
                metrics["fusion_selection"] = selection
            dataset_info = {**prep.info, "split": split, "alignment": align}
            (staging / "dataset.json").write_text(
                json.dumps(dataset_info, indent=2, ensure_ascii=False)
            )
            (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
            _write_card(staging, dataset_info, metrics, history)
            # run.json first: from here on the staging folder is a finished model, which the
            # next run moves into place if this one is stopped before it does.
            _remove_leftovers(staging, (STATE_FILE, *LEFTOVERS))
            if placement.is_chief:
                commit_dir(staging, out)
            else:
                shutil.rmtree(staging.parent, ignore_errors=True)
        except KeyboardInterrupt:
            raise  # the staging folder stays: `--resume` continues from its last epoch
    return TrainResult(
        model_dir=out if placement.is_chief else None,
        config=cfg,
        history=history,
        metrics=metrics,
        dataset=prep.info,
        split=split,
        seconds=time.time() - start,
        notes=notes,
    )


def _with_absolute_paths(cfg: RunConfig, data: str | Path) -> RunConfig:
    """`cfg` naming its data, --val-dir, --noise-dir and --class-weight file by absolute paths
    (remote ones as they are): config.json and run.json are read again from other folders, by
    `train --config MODEL/config.json` and `--resume`."""

    def absolute(path):
        return path if path is None or fsio.is_remote(path) else os.path.abspath(path)

    t, weights = cfg.train, cfg.train.class_weight
    return cfg.replace(
        data=absolute(str(data)),
        train=dataclasses.replace(
            t,
            val_dir=absolute(t.val_dir),
            class_weight=(
                weights
                if weights in (None, "", "balanced") or is_inline_weights(weights)
                else absolute(weights)
            ),
        ),
        augment=dataclasses.replace(cfg.augment, noise_dir=absolute(cfg.augment.noise_dir)),
    )


def _write_state(staging: Path, cfg: RunConfig, selection: dict | None) -> None:
    """run.json: what `--resume` needs to start the run again (`auto` chosen or not yet)."""
    state = {"config": cfg.to_dict(), "data": cfg.data, "fusion_selection": selection}
    _write_json(staging / STATE_FILE, state)


def _write_json(path: Path, value) -> None:
    """Whole or not at all (a local staging file that a kill may interrupt)."""
    fsio.atomic_write_bytes(json.dumps(value).encode("utf-8"), path)


def _finish_interrupted_swap(staging: Path, out: Path) -> bool:
    """Move a finished model left in `staging` into `out`; whether there was one.

    A run stopped between removing its run state and the swap (`commit_dir`: the old MODEL
    moved aside, the new one moved in) has finished training: its staging folder holds a
    complete model and no run.json. Discarding it as an incomplete run would lose it, and with
    it the old MODEL, already moved aside."""
    from crossmodal.artifacts import REQUIRED_FILES, commit_dir

    if not staging.is_dir() or (staging / STATE_FILE).exists():
        return False  # none, or an interrupted run that --resume continues
    if not all((staging / name).exists() for name in REQUIRED_FILES):
        return False  # stopped before it wrote anything
    _remove_leftovers(staging, LEFTOVERS)
    commit_dir(staging, out)
    return True


def _remove_leftovers(staging: Path, names: tuple[str, ...]) -> None:
    """The run's own files, in this order, from a finished staging folder."""
    for name in names:
        path = staging / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _remote_staging(out: str) -> Path:
    """The local staging folder of a run writing a remote MODEL (in the cache, so that
    `--resume` finds it again on this machine)."""
    import hashlib

    from crossmodal.data.preprocess import default_cache_root

    key = hashlib.sha256(out.encode()).hexdigest()[:16]
    return default_cache_root() / "runs" / f"{fsio.basename(out) or 'model'}-{key}.partial"


@contextlib.contextmanager
def _removed_on_exit(folder: Path):
    """A non-chief worker's temporary folder, removed however the run ends."""
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def auto_batch_size(num_train: int) -> int:
    """32, or smaller (down to 8) so that an epoch has at least 16 steps."""
    return int(max(MIN_BATCH, min(AUTO_BATCH, num_train // MIN_STEPS)))


def _resume_state(staging: Path) -> dict:
    try:
        return json.loads((staging / STATE_FILE).read_text())
    except (OSError, ValueError):
        raise CrossmodalError(
            f"nothing to resume: no interrupted run in {staging} (train without --resume)"
        ) from None


def _make_split(cfg, prep, settings, workers, progress):
    if not cfg.train.val_dir:
        train_idx, val_idx, split = _split(prep, cfg)
        split.update(train=len(train_idx), val=len(val_idx))
        return None, train_idx, val_idx, split
    val_settings = dataclasses.replace(
        settings,
        height=cfg.image.height,
        width=cfg.image.width,
        channels=cfg.image.channels,
        clip_seconds=cfg.audio.clip_seconds,
    )
    val_prep = load_dataset(
        cfg.train.val_dir, val_settings, exact=True, workers=workers, progress=progress
    )
    # Before any training (an `auto` run trains its candidates first): a label the model
    # cannot output would fail the first validation.
    unknown = sorted(set(val_prep.classes) - set(cfg.labels))
    if unknown:
        raise CrossmodalError(
            f"--val-dir {cfg.train.val_dir} has label(s) the training data lacks: "
            f"{', '.join(unknown)}"
        )
    train_idx = [s["index"] for s in prep.samples]
    val_idx = [s["index"] for s in val_prep.samples if s["label"] is not None]
    split = {
        "kind": "val_dir",
        "val_dir": cfg.train.val_dir,
        "train": len(train_idx),
        "val": len(val_idx),
    }
    return val_prep, train_idx, val_idx, split


def _mixed_precision(say: Notice, on_exit: contextlib.ExitStack) -> None:
    """float16 compute for this run on a GPU; Keras' global policy is set back as the run
    ends, so that a later run in the same process builds float32 layers again."""
    import keras
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        on_exit.callback(
            keras.mixed_precision.set_global_policy, keras.mixed_precision.global_policy()
        )
        keras.mixed_precision.set_global_policy("mixed_float16")
        say("mixed precision: float16 compute, float32 variables")
    else:
        say("--mixed-precision ignored: no GPU (float16 is slower than float32 on a CPU)")


def _write_card(staging: Path, dataset_info: dict, metrics: dict, history: list[dict]) -> None:
    """MODEL/README.md (the model card) and training_curves.png, which the card links to."""
    from crossmodal.card import write_model_card, write_training_curves

    config = json.loads((staging / "config.json").read_text())
    write_training_curves(staging, history)
    write_model_card(staging, config=config, dataset=dataset_info, metrics=metrics, history=history)


# --- the fitting job -------------------------------------------------------------------------


class _Job:
    """Everything one fit needs, so fusion selection and the final fit share the set-up."""

    placement = None  # crossmodal.distribute.Placement, set by train()

    def __init__(self, cfg, prep, val_prep, train_idx, val_idx, align, staging, on_epoch, say):
        self.cfg = cfg
        self.prep = prep
        self.val_prep = val_prep
        self.train_idx = train_idx
        self.val_idx = val_idx
        self.align = align
        self.staging = staging
        self.on_epoch = on_epoch
        self.say = say
        self.noise_bank = None
        self.pseudo = None  # [max index + 1] class ids replacing the records' (self-training)
        aug = cfg.augment
        if aug.enabled and aug.noise_dir:
            from crossmodal.data.noise import load_noise_bank

            self.noise_bank = load_noise_bank(
                aug.noise_dir,
                sample_rate=cfg.audio.sample_rate,
                min_samples=cfg.audio.num_samples,
            )
            say(
                f"background noise: {self.noise_bank.shape[0] / cfg.audio.sample_rate:.0f} s "
                f"from {aug.noise_dir}"
            )

    # datasets
    def _targets(self, prep):
        """Multi-hot targets for a multi-label model (None: class ids from the records)."""
        from crossmodal.data.reader import multi_hot_targets

        if not self.cfg.model.multi_label:
            return None
        unknown = sorted(set(prep.classes) - set(self.cfg.labels))
        if unknown:
            raise CrossmodalError(f"labels the model does not know: {', '.join(unknown)}")
        return multi_hot_targets(prep, self.cfg.labels)

    def train_ds(self):
        from crossmodal.data.reader import make_dataset

        t = self.cfg.train
        ds = make_dataset(
            self.prep,
            self.train_idx,
            batch_size=t.batch_size,
            shuffle=True,
            seed=t.seed,
            targets=self._targets(self.prep),
            labels=self.pseudo,
        )
        if self.noise_bank is not None:
            from crossmodal.data.noise import add_background

            aug = self.cfg.augment
            ds = add_background(
                ds, self.noise_bank, prob=aug.noise_dir_prob, snr_db=aug.noise_dir_snr_db,
                seed=t.seed,
            )  # fmt: skip
        return self._sharded(ds)

    def _sharded(self, ds):
        """Across workers, split by batch (the records are cached, not re-read per worker)."""
        import tensorflow as tf

        if ds is None or self.placement is None or self.placement.kind != "multi-worker":
            return ds
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return ds.with_options(options)

    def first_train_rows(self, n: int):
        """One batch of the first `n` training rows as validation batches come (the export's
        check when there is no validation split)."""
        from crossmodal.data.reader import make_dataset

        return make_dataset(
            self.prep,
            self.train_idx[:n],
            batch_size=n,
            targets=self._targets(self.prep),
            labels=self.pseudo,
            with_index=True,
        )

    def val_ds(self, batch_size: int | None = None, with_index: bool = False):
        from crossmodal.data.reader import make_dataset

        if not self.val_idx:
            return None
        source = self.val_prep or self.prep
        targets = self._targets(source)
        mapping = None
        if self.val_prep is not None and targets is None:
            mapping = label_map(source.classes, self.cfg.labels, "validation data")
        ds = make_dataset(
            source,
            self.val_idx,
            batch_size=batch_size or self.cfg.train.batch_size,
            label_map=mapping,
            targets=targets,
            labels=self.pseudo if self.val_prep is None else None,
            with_index=with_index,
        )
        return ds if with_index else self._sharded(ds)

    def build(self, cfg):
        import keras
        import tensorflow as tf

        t = cfg.train
        # Expected, not alarming: the shared-space projections (no alignment) or the missing
        # embeddings (no absent modality in the data) get no gradient in some runs.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        keras.utils.set_random_seed(t.seed)
        tf.config.experimental.enable_op_determinism()
        scope = self.placement.strategy.scope() if self.placement else contextlib.nullcontext()
        with scope:
            return self._build(cfg, t)

    def _build(self, cfg, t):
        from crossmodal.model import build_network
        from crossmodal.trainer import Trainer

        net = build_network(cfg)
        _adapt_normalization(net, self.prep, self.train_idx)
        trainer = Trainer(
            net,
            aux_weight=cfg.model.aux_loss_weight,
            label_smoothing=t.label_smoothing,
            class_weights=_class_weights(cfg, self.prep, self.train_idx),
            distill=self.align["distill"],
            # After self-training the pseudo-labels replace distillation: matching the soft
            # teacher as well held the student back (audio 0.45 with it, 0.77 without, on an
            # unseen speaker of avdigits).
            distill_weight=0.0 if self.pseudo is not None else t.distill_weight,
            contrastive_weight=t.contrastive_weight if self.align["active"] else 0.0,
            temperature=t.contrastive_temperature,
            multi_label=cfg.model.multi_label,
        )
        trainer.compile(optimizer=_optimizer(cfg, len(self.train_idx)))
        # Built now, not by the first step: a step that creates the optimizer's variables is
        # traced twice by tf.function (once to create them, once without), and tracing the
        # step is most of a short run's time.
        trainer.optimizer.build(trainer.trainable_variables)
        return net, trainer

    def choose_fusion(self):
        """`--fusion auto`: train each candidate briefly and keep the best on validation."""
        from crossmodal.inference import MODALITIES

        brief = max(2, min(6, self.cfg.train.epochs // 4))
        saved = self.staging / AUTO_FILE  # what a stopped run had scored: not trained again
        scores = json.loads(saved.read_text()) if saved.exists() else {}
        for name in FUSION_NAMES:
            if name in scores:
                acc = scores[name]
                self.say(
                    f"auto fusion: {name} after {brief} epochs (scored before the run was "
                    f"stopped): both {acc['both']:.3f}, image {acc['image']:.3f}, audio "
                    f"{acc['audio']:.3f}"
                )
                continue
            # One network per candidate, whatever model.members: the choice is the fusion's.
            model = dataclasses.replace(self.cfg.model, fusion=name, members=1)
            net, trainer = self.build(self.cfg.replace(model=model))
            trainer.fit(self.train_ds(), epochs=brief, verbose=0)
            acc = {m: _net_accuracy(net, self.val_ds(64, with_index=True), m) for m in MODALITIES}
            acc["score"] = float(np.mean([acc[m] for m in MODALITIES]))
            scores[name] = acc
            _write_json(saved, scores)
            self.say(
                f"auto fusion: {name} after {brief} epochs: both {acc['both']:.3f}, image "
                f"{acc['image']:.3f}, audio {acc['audio']:.3f}"
            )
        best = max(FUSION_NAMES, key=lambda n: (scores[n]["score"], -FUSION_NAMES.index(n)))
        why = (
            f"'{best}' had the best mean validation accuracy over both, image alone and audio "
            f"alone ({scores[best]['score']:.4f}) after {brief} epochs of each candidate"
        )
        self.say(f"auto fusion chose {why}")
        cfg = self.cfg.replace(model=dataclasses.replace(self.cfg.model, fusion=best))
        return cfg, {"brief_epochs": brief, "candidates": scores, "chosen": best, "why": why}

    def _progress(self, epochs: int) -> list:
        """A callback reporting each finished epoch to `on_epoch`, when there is one."""
        import keras

        if self.on_epoch is None:
            return []
        report = self.on_epoch
        return [
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: report(e + 1, epochs, dict(logs or {}))
            )
        ]

    def self_train_labels(self, *, resume: bool) -> dict | None:
        """Cross-modal self-training, first stage. With labels on one modality only, fit once
        (the same objective: the labeled modality, distillation and alignment through the
        pairs), then let that fit's head for the labeled modality label the unlabeled pairs
        where it is confident. The final fit learns the other modality from those labels as
        from any labeled pair: a far stronger signal than distillation alone, whose teacher is
        still guessing in the first epochs."""
        import tensorflow as tf

        from crossmodal.checkpointing import EarlyStop
        from crossmodal.data.reader import make_dataset

        t = self.cfg.train
        threshold = t.pseudo_label_threshold
        if not self.align["distill"] or threshold <= 0 or self.cfg.model.multi_label:
            return None
        saved = self.staging / PSEUDO_FILE
        if resume and saved.exists():
            info = json.loads(saved.read_text())
            self.pseudo = np.asarray(info.pop("labels"), dtype=np.int32)
            return info
        teacher = self.align["distill"].split("->")[0]
        self.say(
            f"self-training: a first fit learns from the labeled {teacher}s, then labels the "
            "unlabeled pairs it is sure of for the final fit"
        )
        net, trainer = self.build(self.cfg)
        val_ds = self.val_ds()
        monitor = "val_loss" if val_ds is not None else "loss"
        stop = EarlyStop(
            net, monitor=monitor, patience=t.patience, start_from_epoch=t.first_watched_epoch
        )
        callbacks: list = [*([_plateau(t, monitor)] if t.schedule == "plateau" else []), stop]
        callbacks += self._progress(t.epochs)
        fit = trainer.fit(
            self.train_ds(), validation_data=val_ds, epochs=t.epochs, callbacks=callbacks,
            verbose=0,
        )  # fmt: skip
        stop.restore_best()
        top = max(s["index"] for s in self.prep.samples) + 1
        table = np.full(top, -1, dtype=np.int32)
        pairs = confident = 0
        for inputs, y, index in make_dataset(self.prep, batch_size=256, with_index=True):
            y, index = y.numpy(), index.numpy()
            table[index] = y
            unlabeled_pair = (
                (inputs["image_present"].numpy() > 0) & (inputs["audio_present"].numpy() > 0)
            ) & (y < 0)
            if not unlabeled_pair.any():
                continue
            logits = net(inputs, training=False)[f"{teacher}_logits"]
            probs = tf.nn.softmax(logits).numpy()  # [B, K]
            keep = unlabeled_pair & (probs.max(axis=1) >= threshold)
            table[index[keep]] = probs.argmax(axis=1)[keep]
            pairs += int(unlabeled_pair.sum())
            confident += int(keep.sum())
        info = {
            "teacher": teacher,
            "threshold": threshold,
            "teacher_epochs": len(fit.history.get("loss", [])),
            "unlabeled_pairs": pairs,
            "pseudo_labeled": confident,
        }
        self.say(
            f"self-training: {confident} of {pairs} unlabeled pairs labeled by the {teacher} "
            f"head (confidence >= {threshold:g}); final fit"
        )
        _write_json(saved, {**info, "labels": table.tolist()})  # read back by --resume
        self.pseudo = table
        return info

    def fit_and_export(self, *, resume: bool):
        import keras
        import tensorflow as tf

        from crossmodal.artifacts import export_saved_model
        from crossmodal.card import read_history
        from crossmodal.checkpointing import EpochCheckpoint
        from crossmodal.model import inference_network

        cfg, staging = self.cfg, self.staging
        t = cfg.train
        net, trainer = self.build(cfg)
        val_ds = self.val_ds()
        monitor = "val_loss" if val_ds is not None else "loss"
        plateau = _plateau(t, monitor) if t.schedule == "plateau" else None
        checkpoint = EpochCheckpoint(
            staging / "checkpoint",
            trainer,
            net,
            monitor=monitor,
            patience=t.patience,
            start_from_epoch=t.first_watched_epoch,
            plateau=plateau,
        )
        train_ds = self.train_ds()
        initial_epoch = checkpoint.restore() if resume else 0
        if resume:
            if initial_epoch == 0:
                self.say("resuming: no epoch had completed; starting from the first")
            else:
                self.say(f"resuming after epoch {initial_epoch} of {t.epochs}")
            for _ in range(initial_epoch):  # replay the shuffles of the epochs already done
                for _ in train_ds:
                    pass
            # An epoch logged but killed before its checkpoint runs again: log it once.
            _trim_history(staging / "history.csv", initial_epoch)
        callbacks = [
            # First: it logs the epoch's learning rate for history.csv; and before the
            # checkpoint, which saves its counters.
            *([plateau] if plateau is not None else []),
            keras.callbacks.CSVLogger(str(staging / "history.csv"), append=resume),
            keras.callbacks.TensorBoard(log_dir=str(staging / LOGS), write_graph=True),
            checkpoint,
        ]
        callbacks += self._progress(t.epochs)
        if initial_epoch < t.epochs and not checkpoint.stopped:
            trainer.fit(
                train_ds,
                validation_data=val_ds,
                epochs=t.epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                verbose=0,
            )
        checkpoint.restore_best()

        # What is served (and validated): the trained weights, with test-time crops if any.
        served = inference_network(net, cfg)
        fitted = self.calibrate(served) if t.calibrate else None
        temperature = 1.0 if fitted is None else fitted
        net.save(staging / "model.keras")
        export_saved_model(served, cfg, staging / "saved_model", temperature=temperature)
        cfg.save(
            staging / "config.json",
            crossmodal_version=__version__,
            tensorflow_version=tf.__version__,
            keras_version=keras.__version__,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        (staging / "labels.json").write_text(json.dumps(list(cfg.labels), ensure_ascii=False))
        history = read_history(staging / "history.csv") or []
        metrics = self.validate(served, staging, temperature=temperature)
        if fitted is not None:  # not a temperature of 1 that nothing was fitted to
            metrics["calibration"] = {"temperature": temperature}
        if cfg.model.multi_label and not (staging / THRESHOLDS_FILE).exists():
            labels = list(cfg.labels)  # no validation data to tune on: 0.5 for every class
            (staging / THRESHOLDS_FILE).write_text(json.dumps(dict.fromkeys(labels, 0.5), indent=2))
        return history, metrics

    def calibrate(self, net) -> float | None:
        """Temperature scaling on the fused validation logits (`--calibrate`); None when the
        split left no validation data (the config refuses asking for none at all)."""
        from crossmodal.metrics import fit_temperature, labeled_rows

        ds = self.val_ds(64)
        if ds is None:
            self.say("warning: --calibrate ignored: no validation data to fit a temperature on")
            return None
        logits, labels = [], []
        for inputs, y in ds:
            logits.append(net(inputs, training=False)["logits"].numpy())
            labels.append(y.numpy())
        z, y = np.concatenate(logits), np.concatenate(labels)
        keep = labeled_rows(y) if y.ndim == 2 else y >= 0
        temperature = fit_temperature(z[keep], y[keep], multi_label=self.cfg.model.multi_label)
        self.say(f"calibrated: temperature {temperature:.3f} fitted on the validation split")
        return temperature

    def validate(self, net, staging: Path, temperature: float = 1.0) -> dict:
        """Validation metrics through the exported SavedModel, after checking it matches."""
        import tensorflow as tf

        from crossmodal.inference import MODALITIES, run_serving
        from crossmodal.metrics import (
            classification_metrics,
            labeled_rows,
            multilabel_metrics,
            tune_thresholds,
        )

        serve = tf.saved_model.load(str(staging / "saved_model")).signatures["serving_default"]
        ds = self.val_ds(64, with_index=True)
        _check_export(
            net,
            serve,
            ds if ds is not None else self.first_train_rows(64),  # no validation split
            temperature=temperature,
            multi_label=self.cfg.model.multi_label,
        )
        if ds is None:
            return {}
        labels = list(self.cfg.labels)
        metrics = {}
        thresholds = None
        for modality in MODALITIES:
            probs, y, _ = run_serving(serve, ds, modality)
            if not len(y):
                continue
            if not self.cfg.model.multi_label:
                metrics[modality] = classification_metrics(y, probs, labels)
                continue
            if thresholds is None:  # tuned once, on the fused validation predictions
                keep = labeled_rows(y)
                thresholds = tune_thresholds(y[keep], probs[keep])
                (staging / THRESHOLDS_FILE).write_text(
                    json.dumps(dict(zip(labels, thresholds.tolist(), strict=True)), indent=2)
                )
            metrics[modality] = multilabel_metrics(y, probs, labels, thresholds)
        return metrics


def _replaceable_model_dir(out: Path | str) -> bool:
    """What `--overwrite` may replace: a folder of nothing but what training writes (a copy
    to a remote store killed half-way), an empty folder, or a crossmodal model folder of any
    version (saved_model/ and a config.json that crossmodal wrote), though train() then refuses
    files added to it rather than delete them. Another project's `config.json` and
    `saved_model/` are not enough."""
    names = fsio.folder_entries(out)
    if names is None:
        return False
    if names <= _written_by_training():
        return True
    if not {"config.json", "saved_model"} <= names:
        return False
    try:
        info = json.loads(fsio.read_text(fsio.join(out, "config.json")))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and {"format_version", "crossmodal_version"} <= set(info)


def _os_clutter(name: str) -> bool:
    """What a file browser leaves in any folder it shows (not a user's own dot files, such
    as a .git folder, which --overwrite must not delete unseen)."""
    return name in (".DS_Store", "Thumbs.db", "desktop.ini") or name.startswith("._")


def _written_by_training() -> set[str]:
    """The names training writes into a model folder."""
    from crossmodal.artifacts import ALL_FILES
    from crossmodal.card import MODEL_CARD, TRAINING_CURVES_PNG

    return {*ALL_FILES, MODEL_CARD, TRAINING_CURVES_PNG, METRICS_FILE, THRESHOLDS_FILE, LOGS}


def _optimizer(cfg: RunConfig, num_train: int):
    import keras

    t = cfg.train
    steps = max(1, int(np.ceil(num_train / t.batch_size)))
    if t.schedule == "cosine":
        warmup = int(round(t.warmup_epochs * steps))
        lr = keras.optimizers.schedules.CosineDecay(
            t.learning_rate * (0.1 if warmup else 1.0),
            decay_steps=max(1, t.epochs * steps - warmup),
            warmup_target=t.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    else:
        lr = t.learning_rate  # constant, or reduced by the plateau callback
    common = {"learning_rate": lr, "clipnorm": t.clipnorm}
    if t.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=t.weight_decay, **common)
    if t.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    return keras.optimizers.SGD(
        momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay or None, **common
    )


def _plateau(t, monitor: str):
    """Halve the learning rate when `monitor` (the early-stopping one) stops improving."""
    from crossmodal.checkpointing import Plateau

    return Plateau(
        monitor=monitor,
        factor=0.5,
        patience=max(1, t.patience // 2),
        min_lr=t.learning_rate / 100,
    )


def _adapt_normalization(net, prep: PreparedDataset, train_idx: list[int]) -> None:
    """Fit the in-graph Normalization layers on present training samples only."""
    import tensorflow as tf

    from crossmodal.data.reader import make_dataset
    from crossmodal.model import member_networks

    images, audios = [], []
    for inputs, _ in make_dataset(prep, adaptation_subset(train_idx), batch_size=256, cache=False):
        images.append(inputs["image"].numpy()[inputs["image_present"].numpy() > 0])
        audios.append(inputs["audio"].numpy()[inputs["audio_present"].numpy() > 0])
    image = np.concatenate(images)
    audio = np.concatenate(audios)
    if len(image):
        members = member_networks(net)
        scaled = members[0].get_layer("image_scale")(tf.constant(image))  # same in every member
        for member in members:
            member.get_layer("image_norm").adapt(scaled)
    if len(audio):
        adapt_audio_normalization(net, audio)


def adaptation_subset(train_idx) -> np.ndarray:
    """The training rows the normalization statistics come from: at most ADAPT_SAMPLES, drawn
    the same way every run."""
    return np.random.default_rng(0).permutation(np.asarray(train_idx))[:ADAPT_SAMPLES]


def adapt_audio_normalization(net, audio: np.ndarray) -> None:
    """Fit the per-band normalization on waveforms [N, T] as the network sees them: gain
    normalized, then log-mel. An ensemble's members share one frontend design, so the log-mel
    is computed once and every member's normalization adapted on it."""
    import tensorflow as tf

    from crossmodal.model import member_networks

    members = member_networks(net)
    spec = members[0].get_layer("log_mel")(members[0].get_layer("audio_gain")(tf.constant(audio)))
    for member in members:
        member.get_layer("audio_norm").adapt(spec)


def _net_accuracy(net, ds, modality: str) -> float:
    from crossmodal.inference import presence_for

    correct = total = 0
    for inputs, labels, _ in ds:
        ip, ap, keep = presence_for(
            modality, inputs["image_present"].numpy(), inputs["audio_present"].numpy()
        )
        if not keep.any():
            continue
        x = {
            "image": inputs["image"].numpy()[keep],
            "image_present": ip[keep].astype(np.float32),
            "audio": inputs["audio"].numpy()[keep],
            "audio_present": ap[keep].astype(np.float32),
        }
        probs = net(x, training=False)["probabilities"].numpy()
        truth = labels.numpy()[keep]
        if truth.ndim == 2:  # multi-label: subset accuracy at 0.5
            correct += int(np.all((probs >= 0.5) == (truth > 0.5), axis=1).sum())
        else:
            correct += int((probs.argmax(axis=1) == truth).sum())
        total += int(keep.sum())
    return correct / max(total, 1)


def _check_export(net, serve, ds, *, temperature=1.0, multi_label=False, atol=1e-4) -> None:
    """Every artifact is reloaded and checked: the SavedModel must match the live network."""
    import tensorflow as tf

    inputs, _, _ = next(iter(ds))
    out = net(inputs, training=False)
    want = out["probabilities"].numpy()
    if temperature != 1.0:
        scaled = tf.cast(out["logits"], tf.float32) / temperature
        want = (tf.nn.sigmoid(scaled) if multi_label else tf.nn.softmax(scaled)).numpy()
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


def _trim_history(path: Path, epochs: int) -> None:
    """Keep the header and the first `epochs` rows of a CSVLogger file."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        path.write_text("".join(lines[: epochs + 1]))
