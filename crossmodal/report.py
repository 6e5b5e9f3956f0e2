"""Turn a metrics dict (see ``crossmodal.metrics``) into files people read.

Outputs: ``metrics.json`` for machines, ``report.md`` for humans and
``confusion.png`` for a quick visual check.  Every file is written atomically
(temp file in the same folder + ``os.replace``) so an interrupted run never
leaves a half-written report that looks valid.  matplotlib is imported lazily
inside :func:`plot_confusion` to keep CLI start-up fast; TensorFlow is never
imported here.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
CONFUSION_PNG = "confusion.png"

_SUMMARY_KEYS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
    ("macro_f1", "Macro F1"),
    ("weighted_f1", "Weighted F1"),
    ("ece", "ECE"),
)
_MISSING = "—"


def write_metrics_json(metrics: dict[str, Any], path: Path) -> None:
    """Write ``metrics`` as indented JSON, atomically.

    NaN/inf are rejected (``allow_nan=False``) because they produce files that
    strict JSON parsers refuse; numpy scalars/arrays are converted to plain
    Python values so callers that assemble dicts by hand do not trip over them.
    """
    text = json.dumps(metrics, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    _atomic_write_bytes((text + "\n").encode("utf-8"), Path(path))


def render_markdown(metrics: dict[str, Any], *, title: str = "Evaluation report") -> str:
    """Render a Markdown report; sections whose data is missing are skipped."""
    sections = [f"# {title}", _summary_section(metrics)]
    if "per_class" in metrics:
        sections.append(_per_class_section(metrics["per_class"]))
    if "confusion_matrix" in metrics:
        sections.append(_confusion_section(metrics["confusion_matrix"]))
    if metrics.get("ablation"):
        sections.append(_ablation_section(metrics["ablation"]))
    return "\n\n".join(sections) + "\n"


def plot_confusion(
    matrix: list[list[int]], labels: list[str], path: Path, *, normalize: bool = True
) -> None:
    """Save an annotated confusion-matrix PNG (rows = true, cols = predicted).

    With ``normalize`` each row is divided by its support, so cells read as
    "fraction of true class X predicted as Y" (rows with no support stay 0).
    Uses the Agg canvas directly instead of pyplot: no global figure state, no
    GUI backend, nothing leaks between calls.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = _square_matrix(matrix, labels)
    values = _row_normalize(counts) if normalize else counts.astype(np.float64)
    size = _figure_size(len(labels))

    fig = Figure(figsize=(size, size), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _annotate_cells(ax, values, normalize=normalize, vmax=vmax)
    _label_axes(ax, labels, normalize=normalize)
    fig.tight_layout()

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    _atomic_write_bytes(buffer.getvalue(), Path(path))


def write_report(metrics: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write metrics.json, report.md and confusion.png into ``out_dir``.

    Validates up front that a confusion matrix is present so a failure does
    not leave a partial set of files behind.
    """
    confusion = metrics.get("confusion_matrix")
    if not isinstance(confusion, Mapping) or "matrix" not in confusion or "labels" not in confusion:
        raise ValueError("metrics must contain confusion_matrix with 'labels' and 'matrix'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (
        out_dir / METRICS_JSON,
        out_dir / REPORT_MD,
        out_dir / CONFUSION_PNG,
    )
    write_metrics_json(metrics, json_path)
    _atomic_write_bytes(render_markdown(metrics).encode("utf-8"), md_path)
    plot_confusion(confusion["matrix"], list(confusion["labels"]), png_path)
    return [json_path, md_path, png_path]


# --- file writing -----------------------------------------------------------


def _atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write to a temp file next to ``path`` then ``os.replace`` it into place.

    Same folder so the rename stays on one filesystem (and is atomic there).
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    """Convert numpy values that ``json`` cannot serialise on its own."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# --- markdown ---------------------------------------------------------------


def _summary_section(metrics: Mapping[str, Any]) -> str:
    """Headline numbers; modality and top-k rows appear only when present."""
    rows: list[list[str]] = []
    if "modality" in metrics:
        rows.append(["Modality", _escape(str(metrics["modality"]))])
    if "num_samples" in metrics:
        rows.append(["Samples", _fmt(metrics["num_samples"])])
    rows += [[name, _fmt(metrics[key])] for key, name in _SUMMARY_KEYS if key in metrics]
    for k, value in _top_k_items(metrics):
        rows.append([f"Top-{k} accuracy", _fmt(value)])
    return "## Summary\n\n" + _table(["Metric", "Value"], rows)


def _per_class_section(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per class so weak classes are easy to spot."""
    columns = ("precision", "recall", "f1", "support")
    rows = [
        [_escape(label)] + [_fmt(scores.get(col)) for col in columns]
        for label, scores in per_class.items()
    ]
    return "## Per-class metrics\n\n" + _table(
        ["Label", "Precision", "Recall", "F1", "Support"], rows
    )


def _confusion_section(confusion: Mapping[str, Any]) -> str:
    """Raw counts, true labels as rows, so the table matches the PNG."""
    labels = [_escape(label) for label in confusion["labels"]]
    rows = [
        [f"**{label}**"] + [_fmt(v) for v in row]
        for label, row in zip(labels, confusion["matrix"], strict=True)
    ]
    header = ["True \\ Predicted", *labels]
    return (
        "## Confusion matrix\n\nRows are true labels, columns are predicted labels.\n\n"
        + _table(header, rows)
    )


def _ablation_section(ablation: Mapping[str, Mapping[str, Any]]) -> str:
    """Side-by-side comparison of the same metrics per input modality."""
    modalities = list(ablation)
    metric_rows = (("num_samples", "Samples"), *_SUMMARY_KEYS)
    top_ks: dict[str, None] = {}
    for result in ablation.values():
        top_ks.update((k, None) for k, _ in _top_k_items(result))
    rows = [
        [name] + [_fmt(ablation[m].get(key)) for m in modalities]
        for key, name in metric_rows
        if any(key in ablation[m] for m in modalities)
    ]
    rows += [
        [f"Top-{k} accuracy"]
        + [_fmt(ablation[m].get("top_k_accuracy", {}).get(k)) for m in modalities]
        for k in sorted(top_ks, key=int)
    ]
    header = ["Metric", *(_escape(str(m)) for m in modalities)]
    return "## Modality ablation\n\n" + _table(header, rows)


def _top_k_items(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Top-k entries sorted numerically (JSON keys are strings)."""
    top_k = metrics.get("top_k_accuracy") or {}
    return sorted(((str(k), v) for k, v in top_k.items()), key=lambda item: int(item[0]))


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Minimal GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    """Floats to 4 decimals, ints as-is, missing values as a dash."""
    if value is None:
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return _escape(str(value))


def _escape(text: str) -> str:
    """Keep user-provided labels from breaking the table layout."""
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- plotting helpers -------------------------------------------------------


def _square_matrix(matrix: list[list[int]], labels: list[str]) -> np.ndarray:
    """Validate that the matrix is K x K with one label per row."""
    counts = np.asarray(matrix, dtype=np.float64)
    k = len(labels)
    if k == 0 or counts.shape != (k, k):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {k} labels")
    return counts


def _row_normalize(counts: np.ndarray) -> np.ndarray:
    """Divide each row by its sum; empty rows stay all-zero instead of NaN."""
    totals = counts.sum(axis=1, keepdims=True)
    out = np.zeros_like(counts)
    np.divide(counts, totals, out=out, where=totals > 0)
    return out


def _figure_size(num_classes: int) -> float:
    """Grow the canvas with K so cells and text stay legible up to K=30."""
    return float(min(max(4.5, 0.5 * num_classes + 2.5), 18.0))


def _annotate_cells(ax: Any, values: np.ndarray, *, normalize: bool, vmax: float) -> None:
    """Write each cell's value, switching to white text on dark cells."""
    k = values.shape[0]
    font_size = max(6.0, 11.0 - 0.15 * k)
    for (row, col), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalize else f"{int(round(value))}"
        color = "white" if value > 0.5 * vmax else "black"
        ax.text(col, row, text, ha="center", va="center", color=color, fontsize=font_size)


def _label_axes(ax: Any, labels: list[str], *, normalize: bool) -> None:
    """Tick labels on both axes; x labels rotate when they would collide."""
    ticks = np.arange(len(labels))
    longest = max(len(str(label)) for label in labels)
    rotate = len(labels) > 6 or longest > 6
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(
        labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8
    )
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)")
