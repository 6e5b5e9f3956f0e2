"""The model card: MODEL/README.md and MODEL/training_curves.png, written at train time, and
the essentials of a model folder for `crossmodal info`.

Everything here reads and writes plain files (JSON, CSV, Markdown, PNG); TensorFlow is never
imported, so `crossmodal info` answers at once. The card is honest by construction: every
number in it comes from the folder's own config.json, dataset.json, metrics.json and
history.csv, and its limits section says what the validation figures do *not* show.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crossmodal import fsio
from crossmodal.config import WEAK_F1, first_watched_epoch, view_axes
from crossmodal.errors import CrossmodalError

MODEL_CARD = "README.md"
TRAINING_CURVES_PNG = "training_curves.png"
SMALL_VALIDATION = 100  # below this many validation samples, the card warns about uncertainty

_MODALITIES = ("both", "image", "audio")
_METRIC_ROWS = (
    ("num_samples", "Samples"),
    ("accuracy", "Accuracy"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
    ("macro_f1", "Macro F1"),
    ("weighted_f1", "Weighted F1"),
    ("ece", "ECE"),
)
_SUMMARY_METRICS = ("num_samples", "accuracy", "macro_f1", "weighted_f1", "ece")


def write_training_curves(model_dir: Path, history: Sequence[Mapping[str, Any]]) -> Path | None:
    """Write MODEL/training_curves.png (loss and accuracy, training and validation).

    Returns its path, or None (and writes nothing) when there is no history to draw.
    """
    if not history:
        return None
    from crossmodal.plots import training_curves_png

    path = Path(model_dir) / TRAINING_CURVES_PNG
    fsio.atomic_write_bytes(training_curves_png(list(history)), path)
    return path


def write_model_card(
    model_dir: Path,
    *,
    config: Mapping[str, Any],
    dataset: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
) -> Path:
    """Write MODEL/README.md from the folder's own records and return its path.

    `config` is config.json's content, `dataset` dataset.json's (with its "split"), `metrics`
    the validation metrics per modality ({"both": {...}, "image": ..., "audio": ...}; empty
    without a validation split) and `history` the rows of history.csv. Call it after
    write_training_curves so the card can show the curves.
    """
    model_dir = Path(model_dir)
    path = model_dir / MODEL_CARD
    text = render_model_card(
        config=config,
        dataset=dataset,
        metrics=metrics,
        history=history,
        curves=(model_dir / TRAINING_CURVES_PNG).is_file(),
    )
    fsio.atomic_write_bytes(text.encode("utf-8"), path)
    return path


def render_model_card(
    *,
    config: Mapping[str, Any],
    dataset: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    curves: bool = False,
) -> str:
    """The model card as Markdown (see write_model_card)."""
    labels = [str(label) for label in config.get("labels") or dataset.get("classes") or []]
    sections = [
        _title_section(config, labels),
        _data_section(dataset),
        _classes_section(labels),
        _settings_section(
            config, dataset.get("split") or {}, history, dataset.get("alignment") or {}
        ),
        _fusion_choice_section(metrics.get("fusion_selection")),
        _metrics_section(metrics, curves),
        _use_section(config, dataset, metrics, labels),
        _files_section(curves),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def card_summary(model_dir: str | Path) -> dict[str, Any]:
    """The essentials of a model folder, from its files alone (no TensorFlow).

    Raises CrossmodalError (one line, exit 1) when the folder is not a model folder, misses
    required files, has another format version, or holds unreadable JSON.
    """
    from crossmodal.artifacts import open_model_dir

    md = open_model_dir(model_dir)
    path = md.path
    info = md.info
    dataset = _read_json(fsio.join(path, "dataset.json"))
    metrics = _read_json(fsio.join(path, "metrics.json"))
    history = read_history(fsio.join(path, "history.csv"))
    split = (dataset or {}).get("split")
    model = info.get("model") or {}
    train = info.get("train") or {}
    image = info.get("image") or {}
    audio = info.get("audio") or {}
    trained = None
    if isinstance(split, Mapping) and isinstance(split.get("train"), int):
        trained = split["train"]
    elif dataset is not None:
        trained = dataset.get("num_samples")
    return {
        "path": str(path),
        "format_version": info.get("format_version"),
        "created": info.get("created"),
        "versions": {
            "crossmodal": info.get("crossmodal_version"),
            "tensorflow": info.get("tensorflow_version"),
            "keras": info.get("keras_version"),
        },
        "labels": list(md.labels),
        "num_classes": len(md.labels),
        "fusion": model.get("fusion"),
        "encoders": {"image": model.get("image_encoder"), "audio": model.get("audio_encoder")},
        "image": {k: image.get(k) for k in ("height", "width", "channels")},
        "audio": {
            "sample_rate": audio.get("sample_rate"),
            "clip_seconds": audio.get("clip_seconds"),
        },
        "data": None
        if dataset is None
        else {
            "source": dataset.get("source"),
            "num_samples": dataset.get("num_samples"),
            "num_skipped_files": len(skipped)
            if isinstance(skipped := dataset.get("skipped") or [], list)
            else None,
        },
        "trained_samples": trained,
        "split": split,
        "epochs": {
            "run": len(history) if history is not None else None,
            "max": train.get("epochs"),
            "best": _best_epoch(history or [], train),
        },
        "validation": None
        if metrics is None
        else {
            m: {k: metrics[m].get(k) for k in _SUMMARY_METRICS}
            for m in _MODALITIES
            if isinstance(metrics.get(m), Mapping)
        },
        "model_card": str(card) if fsio.isfile(card := fsio.join(path, MODEL_CARD)) else None,
    }


def read_history(path: Path | str) -> list[dict[str, float]] | None:
    """history.csv as rows of floats (empty cells and Keras' "NA" dropped: CSVLogger writes
    val_ columns even without a validation split); None when the file is absent."""
    path = fsio.local_or_url(path)
    if not fsio.isfile(path):
        return None
    try:
        text = fsio.read_bytes(path).decode("utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CrossmodalError(f"{path}: unreadable history ({exc})") from None
    out = []
    for row in rows:
        parsed: dict[str, float] = {}
        for key, value in row.items():
            if key is None or value in (None, ""):
                continue
            try:
                parsed[key] = float(value)
            except ValueError:
                continue
        out.append(parsed)
    return out


# --- reading ------------------------------------------------------------------


def _read_json(path: Path | str) -> dict | None:
    """A JSON object from an optional file: None when absent, an error when broken."""
    if not fsio.isfile(path):
        return None
    try:
        data = json.loads(fsio.read_text(path))
    except (OSError, ValueError) as exc:
        raise CrossmodalError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CrossmodalError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _best_epoch(
    history: Sequence[Mapping[str, Any]], train: Mapping[str, Any] | None = None
) -> int | None:
    """One-based epoch whose weights early stopping kept: the lowest validation loss (training
    loss without validation) among the epochs it watched, from `early_stop_from` of the
    epochs on (`TrainConfig.first_watched_epoch`); the last epoch when it watched none."""
    train = train or {}
    epochs, start = train.get("epochs"), train.get("early_stop_from")
    first = 0
    if isinstance(epochs, int) and isinstance(start, (int, float)):
        first = first_watched_epoch(epochs, start)

    def number(i: int) -> int:  # 0-based
        epoch = history[i].get("epoch")
        return int(epoch) if isinstance(epoch, (int, float)) else i

    def finite(i: int, key: str) -> bool:
        value = history[i].get(key)
        return isinstance(value, (int, float)) and math.isfinite(value)

    for key in ("val_loss", "loss"):
        rows = [i for i in range(len(history)) if finite(i, key)]
        if not rows:
            continue
        watched = [i for i in rows if number(i) >= first]
        if not watched:
            return number(len(history) - 1) + 1
        return number(min(watched, key=lambda i: float(history[i][key]))) + 1
    return None


# --- the card's sections --------------------------------------------------------


def _title_section(config: Mapping[str, Any], labels: list[str]) -> str:
    model = config.get("model") or {}
    versions = ", ".join(
        f"{name} {config[key]}"
        for key, name in (
            ("crossmodal_version", "crossmodal"),
            ("tensorflow_version", "TensorFlow"),
            ("keras_version", "Keras"),
        )
        if config.get(key)
    )
    lines = [
        "# Model card",
        "",
        f"A `{_md(model.get('fusion', '?'))}`-fusion image+audio classifier over "
        f"{len(labels)} classes, trained with crossmodal.",
    ]
    if config.get("created") or versions:
        created = f"Created {config['created']}" if config.get("created") else "Created"
        lines += ["", f"{created}{' with ' + versions if versions else ''}."]
    if config.get("format_version") is not None:
        lines.append(f"Model folder format version {config['format_version']}.")
    return "\n".join(lines)


def _data_section(dataset: Mapping[str, Any]) -> str:
    if not dataset:
        return "## Data\n\nNo record of the training data (dataset.json was not given)."
    counts = dataset.get("counts") or {}
    per_class = counts.get("per_class") or {}
    split = dataset.get("split") or {}
    lines = ["## Data", ""]
    source = dataset.get("source")
    kind = dataset.get("source_kind")
    lines.append(
        f"- Source: `{_md(source)}`" + (f" ({_md(kind)})" if kind else "")
        if source
        else "- Source: unknown"
    )
    total = dataset.get("num_samples")
    unlabeled = dataset.get("num_unlabeled") or 0
    lines.append(
        f"- Samples: {_num(total)}"
        + (f", of which {unlabeled} unlabeled" if unlabeled else "")
        + (
            f"; with an image {_num(counts.get('image'))}, with a sound "
            f"{_num(counts.get('audio'))}, with both {_num(counts.get('both'))}"
            if counts
            else ""
        )
    )
    if split:
        lines.append(
            f"- Used for training: {_num(split.get('train'))}; for validation: "
            f"{_num(split.get('val'))}"
        )
    image = dataset.get("image") or {}
    if image:
        how = "inferred from the data" if image.get("inferred") else "set by the user"
        # Folders written before channels had their own flag: "inferred" covered both.
        how_channels = (
            "inferred from the data"
            if image.get("channels_inferred", image.get("inferred"))
            else "set by the user"
        )
        if counts.get("image") == 0:  # nothing to infer them from
            no_image = "defaults: no sample had an image"
            how = no_image if image.get("inferred") else how
            inferred_channels = image.get("channels_inferred", image.get("inferred"))
            how_channels = no_image if inferred_channels else how_channels
        size = f"{_plain(image.get('height'))}x{_plain(image.get('width'))} pixels"
        channels = f"{_plain(image.get('channels'))} channel(s)"
        if how == how_channels:
            lines.append(f"- Images: {size}, {channels} ({how})")
        else:
            lines.append(f"- Images: {size} ({how}), {channels} ({how_channels})")
    audio = dataset.get("audio") or {}
    if audio:
        how = "inferred from the data" if audio.get("inferred") else "set by the user"
        if counts.get("audio") == 0 and audio.get("inferred"):  # nothing to infer it from
            how = "a default: no sample had a sound"
        lines.append(
            f"- Audio: mono at {_plain(audio.get('sample_rate'))} Hz, clips of "
            f"{_plain(audio.get('clip_seconds'))} s ({how})"
        )
    skipped = dataset.get("skipped") or []
    ignored = dataset.get("ignored") or []
    lines.append(
        f"- Skipped files: {len(skipped)}"
        + (f"; ignored (not media, outside class folders, ...): {len(ignored)}" if ignored else "")
    )
    if per_class:
        lines += ["", "| Class | Samples | With image | With sound |", "|---|---|---|---|"]
        for label, entry in per_class.items():
            lines.append(
                f"| {md_literal(label)} | {_num(entry.get('samples'))} "
                f"| {_num(entry.get('image'))} "
                f"| {_num(entry.get('audio'))} |"
            )
    return "\n".join(lines)


def _classes_section(labels: list[str]) -> str:
    if not labels:
        return ""
    items = "\n".join(f"{i}. `{_md(label)}`" for i, label in enumerate(labels))
    return f"## Classes\n\n{len(labels)} classes, in output order (index, name):\n\n{items}"


def _settings_section(
    config: Mapping[str, Any],
    split: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    alignment: Mapping[str, Any] | None = None,
) -> str:
    model = config.get("model") or {}
    train = config.get("train") or {}
    augment = config.get("augment") or {}
    audio = config.get("audio") or {}
    rows = [
        ("Fusion", model.get("fusion")),
        ("Image encoder", model.get("image_encoder")),
        ("Audio encoder", model.get("audio_encoder")),
        ("Embedding size", model.get("embed_dim")),
        ("Ensemble members", model.get("members")),
        ("Test-time audio views", _test_views_text(audio)),
        ("Epochs run", _epochs_run(history, train)),
        ("Best epoch (weights kept)", _best_epoch(history, train)),
        ("Batch size", train.get("batch_size")),
        ("Learning rate", train.get("learning_rate")),
        ("Optimizer", train.get("optimizer")),
        ("Weight decay", train.get("weight_decay")),
        ("Seed", train.get("seed")),
        ("Augmentation", "on" if augment.get("enabled") else "off" if augment else None),
        ("Modality dropout", model.get("modality_dropout")),
        ("A lone modality is scored by", _lone_text(model.get("lone_modality"))),
        ("Cross-modal transfer", _transfer_text(alignment or {})),
        ("Validation split", _split_text(split)),
    ]
    lines = ["## Settings", "", "| Setting | Value |", "|---|---|"]
    lines += [f"| {name} | {_plain(value)} |" for name, value in rows if value is not None]
    lines += ["", "Every setting is in `config.json`."]
    return "\n".join(lines)


def _lone_text(lone: str | None) -> str:
    """How a sample with one modality is predicted (configs before session 15 have no such
    setting: their models used the fusion)."""
    return "its own head" if lone == "head" else "the fusion, the other modality marked missing"


def _test_views_text(audio: Mapping[str, Any]) -> str | None:
    """The served model's views of a sound standing alone (`AudioConfig.test_views`); the card
    reads the saved config, so settings missing from it count as off."""
    crops = audio.get("test_crops_db") or [] if audio.get("crop_frames") else []
    warps = audio.get("test_freq_warps") or []
    # Without test crops the threshold axis is the training crop alone: one value either way.
    thresholds, spans = view_axes(bool(crops), audio.get("crop_threshold_db"), crops, warps)
    views = len(thresholds) * len(spans)
    if views == 1:  # only the training view: served as trained
        return None
    parts = []
    if crops:
        parts.append(
            f"crops at {', '.join(f'{_plain(t)} dB' for t in thresholds)} (activity thresholds)"
        )
    if warps:
        parts.append(f"mel-axis spans {', '.join(_plain(a) for a in spans)}")
    return f"for a sound alone, {views} views: {' x '.join(parts)}, predictions averaged"


def _transfer_text(alignment: Mapping[str, Any]) -> str | None:
    if not alignment.get("distill"):
        return None
    text = (
        f"{alignment['distill']} through {_num(alignment.get('unlabeled_pairs'))} unlabeled pairs"
    )
    st = alignment.get("self_training")
    if isinstance(st, Mapping):
        text += (
            f"; self-training: the {st.get('teacher')} head labeled "
            f"{_num(st.get('pseudo_labeled'))} of {_num(st.get('unlabeled_pairs'))} pairs "
            f"(confidence >= {_plain(st.get('threshold'))})"
        )
    return text


def _epochs_run(history: Sequence[Mapping[str, Any]], train: Mapping[str, Any]) -> str | None:
    if not history and train.get("epochs") is None:
        return None
    run = len(history)
    maximum = train.get("epochs")
    if maximum is None:
        return str(run)
    stopped = " (stopped early)" if run < maximum else ""
    return f"{run} of at most {maximum}{stopped}"


def _split_text(split: Mapping[str, Any]) -> str | None:
    kind = split.get("kind")
    if not kind:
        return None
    counts = ""
    if split.get("train") is not None or split.get("val") is not None:
        counts = f"; {_num(split.get('train'))} training, {_num(split.get('val'))} validation"
    if kind == "stratified":
        fraction = split.get("val_fraction")
        share = f" ({float(fraction):.0%} per class)" if fraction is not None else ""
        return f"stratified random{share}{counts}"
    if kind == "group":
        groups = ", ".join(str(g) for g in split.get("val_groups") or []) or "none"
        regex = f" by regex `{split['regex']}`" if split.get("regex") else ""
        return f"group split{regex}; validation groups: {groups}{counts}"
    if kind == "val_dir":
        return f"separate validation data `{split.get('val_dir')}`{counts}"
    if kind == "none":
        return "none (all data used for training)"
    return f"{kind}{counts}"


def _fusion_choice_section(selection: Any) -> str | None:
    """Why `--fusion auto` kept the fusion it did: each candidate's brief validation scores."""
    if not isinstance(selection, Mapping) or not isinstance(selection.get("candidates"), Mapping):
        return None
    brief = selection.get("brief_epochs")
    lines = [
        "## Fusion choice",
        "",
        f"Chosen by `--fusion auto`: {_plain(selection.get('why', selection.get('chosen')))}.",
        "",
        f"Validation accuracy of each candidate after {_num(brief)} epochs:",
        "",
        "| Candidate | Both | Image alone | Audio alone | Mean |",
        "|---|---|---|---|---|",
    ]
    for name, row in selection["candidates"].items():
        row = row if isinstance(row, Mapping) else {}  # validation accuracy per modality
        chosen = " (chosen)" if name == selection.get("chosen") else ""
        cells = [_num(row.get(key)) for key in (*_MODALITIES, "score")]
        lines.append(f"| {_plain(name)}{chosen} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metrics_section(metrics: Mapping[str, Any], curves: bool) -> str:
    lines = ["## Validation metrics", ""]
    present = [m for m in _MODALITIES if isinstance(metrics.get(m), Mapping)]
    if not present:
        lines.append(
            "None: there was no validation split. Measure the model with `crossmodal evaluate "
            "MODEL DATA` on held-out data before relying on it."
        )
    else:
        lines.append(
            "On the validation split, with both modalities and with each one alone (the other "
            "removed from every sample):"
        )
        lines += [
            "",
            "| Metric | " + " | ".join(present) + " |",
            "|---|" + "---|" * len(present),
        ]
        for key, name in _METRIC_ROWS:
            if any(key in metrics[m] for m in present):
                values = [_num(metrics[m].get(key)) for m in present]
                lines.append(f"| {name} | " + " | ".join(values) + " |")
        weak = _weak_classes(metrics.get("both") or metrics[present[0]])
        if weak:
            lines += ["", f"Weakest classes (F1 below {WEAK_F1}): {', '.join(weak)}."]
    if curves:
        lines += ["", f"![Training curves]({TRAINING_CURVES_PNG})"]
    return "\n".join(lines)


def _weak_classes(result: Mapping[str, Any]) -> list[str]:
    per_class = result.get("per_class") or {}
    # a class absent from the data (support 0) is not weak: there was nothing to score; the
    # report's table skips it the same way
    return [
        f"`{_md(label)}` ({float(scores['f1']):.2f})"
        for label, scores in per_class.items()
        if isinstance(scores.get("f1"), (int, float))
        and scores["f1"] < WEAK_F1
        and scores.get("support") != 0
    ]


def _use_section(
    config: Mapping[str, Any],
    dataset: Mapping[str, Any],
    metrics: Mapping[str, Any],
    labels: list[str],
) -> str:
    split = dataset.get("split") or {}
    image = config.get("image") or {}
    audio = config.get("audio") or {}
    trained = split.get("train", dataset.get("num_samples"))
    source = dataset.get("source") or "an unrecorded source"
    limits = [
        f"Trained on {_num(trained)} samples from `{_md(source)}`. It knows only the "
        f"{len(labels)} classes above and assigns every input to one of them: it has no "
        '"none of these" answer, and its confidence on unfamiliar inputs is not a reliable '
        "warning.",
        _split_limit(split),
    ]
    val_n = _validation_size(metrics, split)
    if val_n is not None and 0 < val_n < SMALL_VALIDATION:
        accuracy = (metrics.get("both") or {}).get("accuracy")
        interval = ""
        if isinstance(accuracy, (int, float)):
            low, high = _wilson(accuracy, val_n)
            interval = f" (accuracy {accuracy:.2f}, 95% interval about {low:.2f}–{high:.2f})"
        limits.append(f"Validation had only {val_n} samples: its figures are uncertain{interval}.")
    counts = dataset.get("counts") or {}
    for kind, one in (("image", "an image"), ("audio", "a sound")):
        if counts.get(kind) == 0:
            limits.append(
                f"No training sample had {one}: the {kind} head never learned, and a "
                f"prediction from {one} alone means nothing."
            )
    limits += [
        f"Inputs must match what was recorded: images are resized in the graph to "
        f"{_plain(image.get('height'))}x{_plain(image.get('width'))} with "
        f"{_plain(image.get('channels'))} channel(s); waveforms must be mono float32 at "
        f"{_plain(audio.get('sample_rate'))} Hz (another rate gives wrong answers without an "
        f"error) and are cropped or padded to {_plain(audio.get('clip_seconds'))} s.",
        "Either modality may be absent (pass its presence flag as false); the image and audio "
        "columns above show how well each one alone does.",
        "The SavedModel is a TensorFlow program: treat a model folder from an untrusted source "
        "as code. crossmodal never loads `model.keras` (Keras loads it in safe mode by default) "
        "and only parses the JSON files.",
    ]
    intended = (
        "Classifying paired image and sound recordings like the training data into the classes "
        "above, and as a baseline to compare other models against. Check it with `crossmodal "
        "evaluate` on data from where it will be used before relying on it."
    )
    return f"## Intended use\n\n{intended}\n\n## Limits\n\n" + "\n".join(
        f"- {item}" for item in limits if item
    )


def _split_limit(split: Mapping[str, Any]) -> str:
    kind = split.get("kind")
    if kind == "stratified":
        return (
            "Validation used a stratified random split: may overstate accuracy for unseen "
            "groups. Samples from one speaker, session or camera can sit on both sides; "
            "retrain with `--group-regex` or `--val-dir` to measure accuracy on unseen groups."
        )
    if kind == "group":
        groups = ", ".join(str(g) for g in split.get("val_groups") or [])
        return (
            f"Validation held out whole groups ({groups or 'none recorded'}): the figures "
            "estimate accuracy on unseen groups like these, not on other kinds of data."
        )
    if kind == "val_dir":
        return (
            f"Validation used separate data (`{_md(split.get('val_dir'))}`): the figures are "
            "only as representative as that data."
        )
    return (
        "There was no validation split: the model's accuracy was never measured on data it "
        "did not train on."
    )


def _validation_size(metrics: Mapping[str, Any], split: Mapping[str, Any]) -> int | None:
    both = metrics.get("both") or {}
    if isinstance(both.get("num_samples"), int):
        return both["num_samples"]
    val = split.get("val")
    return val if isinstance(val, int) else None


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion p observed on n samples."""
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _files_section(curves: bool) -> str:
    files = [
        ("saved_model/", "the serving graph (decoded pixels and raw waveforms in)"),
        ("model.keras", "the Keras network, for fine-tuning"),
        ("config.json", "every resolved setting and the versions used"),
        ("labels.json", "class names in output order"),
        ("dataset.json", "the training data's summary and the split"),
        ("history.csv", "loss and accuracy per epoch"),
        ("metrics.json", "the validation metrics above, in full"),
    ]
    if curves:
        files.append((TRAINING_CURVES_PNG, "the curves above"))
    return "## Files\n\n" + "\n".join(f"- `{name}`: {what}" for name, what in files)


# --- formatting -----------------------------------------------------------------


def _num(value: Any) -> str:
    """Metrics: floats to 4 decimals (as in report.md), ints as they are, missing as a dash."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return _plain(value)


def _plain(value: Any) -> str:
    """Settings and shapes: the shortest exact form (0.002, 0.65, 16000)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return _md(value)


def _md(value: Any) -> str:
    """Keep user text (labels, paths) from breaking a table row or a code span."""
    return str(value).replace("|", "\\|").replace("\n", " ").replace("`", "'")


_MD_SYNTAX = re.compile(r"([\\`*_\[\]<>&#~|!])")


def md_literal(value: Any) -> str:
    """User text (a class name) as literal Markdown outside a code span: every character that
    Markdown could read as syntax is backslash-escaped ("<unk>" is not an HTML tag, "__x__"
    not bold), and a line break, which would end a table row, becomes a space."""
    return _MD_SYNTAX.sub(r"\\\1", str(value).replace("\n", " "))
