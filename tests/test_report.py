"""Tests for crossmodal.report: JSON, Markdown and the confusion PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossmodal.metrics import classification_metrics
from crossmodal.report import plot_confusion, render_markdown, write_metrics_json, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_metrics(**extra: Any) -> dict[str, Any]:
    """Hand-checkable metrics: same example as test_metrics (a: P=1, R=2/3, F1=0.8)."""
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2]
    probs = np.full((8, 3), 0.2)
    probs[np.arange(8), y_pred] = 0.6
    metrics = classification_metrics(y_true, probs, ["a", "b", "c"])
    metrics.update(extra)
    return metrics


def assert_valid_png(path: Path, min_side: int = 200) -> tuple[int, int]:
    image_module = pytest.importorskip("PIL.Image")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with image_module.open(path) as image:
        image.verify()
    with image_module.open(path) as image:
        width, height = image.size
    assert min(width, height) >= min_side
    assert max(width, height) <= 4000
    return width, height


def test_json_round_trip(tmp_path: Path) -> None:
    metrics = make_metrics(modality="both")
    path = tmp_path / "metrics.json"
    write_metrics_json(metrics, path)
    assert json.loads(path.read_text()) == metrics
    assert path.read_text().startswith("{\n  ")  # indent=2
    assert list(json.loads(path.read_text())) == list(metrics)  # key order preserved
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp leftovers


def test_json_converts_numpy_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("old")
    write_metrics_json({"x": np.float32(0.5), "n": np.int64(3), "v": np.arange(2)}, path)
    assert json.loads(path.read_text()) == {"x": 0.5, "n": 3, "v": [0, 1]}


def test_json_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    with pytest.raises(ValueError):
        write_metrics_json({"x": float("nan")}, path)
    assert list(tmp_path.iterdir()) == []


def test_markdown_summary_per_class_and_confusion() -> None:
    md = render_markdown(make_metrics(), title="My eval")
    assert md.startswith("# My eval\n")
    assert "| Accuracy | 0.7500 |" in md
    assert "| Samples | 8 |" in md
    assert "| Top-1 accuracy | 0.7500 |" in md
    assert "| ECE |" in md
    # per-class rows: label, precision, recall, f1, support
    assert "| a | 1.0000 | 0.6667 | 0.8000 | 3 |" in md
    assert "| b | 0.5000 | 0.5000 | 0.5000 | 2 |" in md
    assert "| c | 0.7500 | 1.0000 | 0.8571 | 3 |" in md
    # confusion matrix, true labels as rows
    assert "| True \\ Predicted | a | b | c |" in md
    assert "| **a** | 2 | 1 | 0 |" in md
    assert "| **c** | 0 | 0 | 3 |" in md
    assert "Modality ablation" not in md


def test_markdown_mentions_modality() -> None:
    md = render_markdown(make_metrics(modality="image"))
    assert "| Modality | image |" in md


def test_markdown_ablation_table() -> None:
    both = make_metrics()
    image = dict(both, accuracy=0.5, macro_f1=0.25)
    audio = dict(both, accuracy=0.125)
    md = render_markdown(dict(both, ablation={"both": both, "image": image, "audio": audio}))
    assert "## Modality ablation" in md
    ablation = md.split("## Modality ablation", 1)[1]
    assert "| Metric | both | image | audio |" in ablation
    assert "| Accuracy | 0.7500 | 0.5000 | 0.1250 |" in ablation
    assert "| Macro F1 | 0.7190 | 0.2500 | 0.7190 |" in ablation
    assert "| Top-1 accuracy |" in ablation


def test_markdown_escapes_pipes_in_labels() -> None:
    metrics = {
        "accuracy": 1.0,
        "per_class": {"dog|bark": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}},
    }
    md = render_markdown(metrics)
    assert "| dog\\|bark | 1.0000 |" in md


@pytest.mark.parametrize("num_classes", [2, 7, 30])
def test_plot_confusion_sizes(tmp_path: Path, num_classes: int) -> None:
    rng = np.random.default_rng(num_classes)
    matrix = rng.integers(0, 20, size=(num_classes, num_classes)).tolist()
    matrix[0] = [0] * num_classes  # an empty row must not produce NaN
    labels = [f"class_{i:02d}" for i in range(num_classes)]
    path = tmp_path / "cm.png"
    plot_confusion(matrix, labels, path)
    width, height = assert_valid_png(path)
    if num_classes == 30:
        assert min(width, height) >= 1000  # canvas grows with K


def test_plot_confusion_counts(tmp_path: Path) -> None:
    path = tmp_path / "counts.png"
    plot_confusion([[3, 1], [0, 4]], ["neg", "pos"], path, normalize=False)
    assert_valid_png(path)


def test_plot_confusion_shape_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "x.png")


def test_write_report(tmp_path: Path) -> None:
    metrics = make_metrics()
    out_dir = tmp_path / "nested" / "run1"
    paths = write_report(metrics, out_dir)
    assert [p.name for p in paths] == ["metrics.json", "report.md", "confusion.png"]
    assert all(p.parent == out_dir and p.is_file() for p in paths)
    assert json.loads(paths[0].read_text()) == metrics
    assert "## Per-class metrics" in paths[1].read_text()
    assert_valid_png(paths[2])
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "confusion.png",
        "metrics.json",
        "report.md",
    ]


def test_write_report_requires_confusion_matrix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="confusion_matrix"):
        write_report({"accuracy": 1.0}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
