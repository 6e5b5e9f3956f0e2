"""Figures as PNG bytes: confusion matrix, per-class F1, reliability diagram, training curves.

Every function returns the encoded PNG instead of writing a file, so the same figure can be
saved beside a report or inlined into ``report.html`` as a data URI. matplotlib is imported
lazily (inside the functions) and only through ``Figure`` + ``FigureCanvasAgg``: no pyplot, no
global figure state, no GUI backend, nothing leaks between calls or threads. TensorFlow is
never imported here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crossmodal.config import WEAK_F1

DPI = 120


def confusion_png(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], normalize: bool = True
) -> bytes:
    """An annotated confusion matrix (rows = true, cols = predicted).

    With ``normalize`` each row is divided by its support, so cells read as "fraction of true
    class X predicted as Y" (rows with no support stay 0, never NaN).
    """
    labels = [_literal(label) for label in labels]
    counts = _square_matrix(matrix, labels)
    values = _row_normalize(counts) if normalize else counts
    size = _figure_size(len(labels))

    fig, ax = _figure(size, size)
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _annotate_cells(ax, values, normalize=normalize, vmax=vmax)
    _label_axes(ax, labels)
    ax.set_title("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)")
    return _png(fig)


def f1_bars_png(per_class: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Horizontal bars of F1 per class (in label order, first at the top), support annotated."""
    if not per_class:
        raise ValueError("per_class is empty: nothing to plot")
    labels = [_literal(label) for label in per_class]
    f1 = np.array([_number(scores.get("f1")) for scores in per_class.values()])
    support = [scores.get("support") for scores in per_class.values()]
    height = min(max(2.5, 0.32 * len(labels) + 1.5), 18.0)

    fig, ax = _figure(6.4, height)
    rows = np.arange(len(labels))
    ax.barh(rows, f1, color=f1_bar_colors(per_class), height=0.7)
    for row, value, n in zip(rows, f1, support, strict=True):
        note = f"{value:.2f}" if n is None else f"{value:.2f} (n={int(n)})"
        ax.text(min(value + 0.01, 0.82), row, note, va="center", fontsize=8)
    ax.set_yticks(rows)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("F1")
    ax.set_title("F1 per class")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def f1_bar_colors(per_class: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One colour per class, in order: grey for a class absent from the data, red below
    ``WEAK_F1``, blue otherwise."""
    colors = []
    for scores in per_class.values():
        # support 0: nothing was scored, its F1 of 0 is a convention, not a weakness
        if scores.get("support") == 0:
            colors.append("#9e9e9e")
        elif _number(scores.get("f1")) < WEAK_F1:
            colors.append("#d62728")
        else:
            colors.append("#1f77b4")
    return colors


def reliability_png(reliability: Mapping[str, Sequence[float]]) -> bytes:
    """Reliability diagram: accuracy per confidence bin against the diagonal (perfect
    calibration), with the number of samples per bin underneath. Empty bins are not drawn."""
    edges = np.asarray(reliability["bin_edges"], dtype=np.float64)
    confidence = np.asarray(reliability["confidence"], dtype=np.float64)
    accuracy = np.asarray(reliability["accuracy"], dtype=np.float64)
    count = np.asarray(reliability["count"], dtype=np.float64)
    bins = len(edges) - 1
    if bins < 1 or not (len(confidence) == len(accuracy) == len(count) == bins):
        raise ValueError("reliability needs bin_edges (B+1) and confidence/accuracy/count (B)")
    lefts, widths = edges[:-1], np.diff(edges)
    filled = count > 0

    centers = lefts + widths / 2
    fig, (ax, ax_count) = _figure(5.2, 5.6, rows=2, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.bar(
        lefts[filled],
        accuracy[filled],
        width=widths[filled],
        align="edge",
        color="#1f77b4",
        alpha=0.8,
        edgecolor="black",
        linewidth=0.5,
        label="accuracy in bin",
    )
    ax.plot(
        centers[filled],
        confidence[filled],
        linestyle="none",
        marker="D",
        markersize=4,
        color="#d62728",
        label="mean confidence in bin",
    )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("Accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)

    ax_count.bar(lefts, count, width=widths, align="edge", color="gray", edgecolor="black")
    ax_count.set_xlim(0.0, 1.0)
    ax_count.set_xlabel("Confidence")
    ax_count.set_ylabel("Samples")
    return _png(fig)


def training_curves_png(history_rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Loss and accuracy per epoch, training and (when logged) validation.

    Rows are history.csv rows (``epoch`` zero-based as Keras logs it, ``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``); values may be strings and any column may be missing.
    Epochs are drawn one-based.
    """
    if not history_rows:
        raise ValueError("history is empty: nothing to plot")
    epochs = [_number(row.get("epoch"), default=float(i)) + 1 for i, row in enumerate(history_rows)]
    fig, (ax_loss, ax_acc) = _figure(9.0, 3.6, cols=2)
    for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        for prefix, name, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = [_number(row.get(prefix + key)) for row in history_rows]
            if all(math.isnan(v) for v in values):
                continue
            ax.plot(epochs, values, style, marker="o", markersize=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("Epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    ax_acc.set_ylim(0.0, 1.02)
    return _png(fig)


# --- helpers ----------------------------------------------------------------


def _figure(width: float, height: float, *, rows: int = 1, cols: int = 1, height_ratios=None):
    """A figure on its own Agg canvas, and its axes (one, or a tuple when several)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    if rows == 1 and cols == 1:
        return fig, fig.add_subplot()
    kwargs = {"height_ratios": height_ratios} if height_ratios else {}
    axes = fig.subplots(rows, cols, gridspec_kw=kwargs, squeeze=True)
    return fig, tuple(np.ravel(axes))


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _number(value: Any, default: float = math.nan) -> float:
    """A float from a number or a CSV string; missing or unparsable values become ``default``."""
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _literal(label: Any) -> str:
    """A class name drawn as written: matplotlib reads text between two "$" as a formula
    ("$100_$200" raised, "$5-$10" lost its signs)."""
    return str(label).replace("$", r"\$")


def _square_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> np.ndarray:
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


def _label_axes(ax: Any, labels: list[str]) -> None:
    """Tick labels on both axes; x labels rotate when they would collide."""
    ticks = np.arange(len(labels))
    longest = max(len(label) for label in labels)
    rotate = len(labels) > 6 or longest > 6
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(
        labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8
    )
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
