"""Tests for crossmodal.report and crossmodal.plots: JSON, Markdown, HTML and PNGs."""

from __future__ import annotations

import base64
import html.parser
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossmodal import plots
from crossmodal.metrics import classification_metrics
from crossmodal.report import (
    plot_confusion,
    render_html,
    render_markdown,
    write_metrics_json,
    write_report,
)

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


def test_warnings_come_first_in_both_reports_and_are_escaped() -> None:
    warning = "m trained on no sample with a sound: <audio> | head"
    md = render_markdown(make_metrics(warnings=[warning]))
    assert md.index("## Warnings") < md.index("## Summary")
    assert "- m trained on no sample with a sound: \\<audio\\> \\| head" in md
    page = render_html(make_metrics(warnings=[warning]))
    assert "<li>m trained on no sample with a sound: &lt;audio&gt; | head</li>" in page
    assert page.index(">Warnings<") < page.index(">Summary<")
    assert "Warnings" not in render_markdown(make_metrics(warnings=[]))
    assert "Warnings" not in render_html(make_metrics())


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


RETRIEVAL = {
    "num_pairs": 24,
    "audio_to_image": {
        "recall_at_1": 0.25,
        "class_recall_at_1": 0.5,
        "recall_at_5": 0.625,
        "class_recall_at_5": 0.875,
    },
    "image_to_audio": {
        "recall_at_1": 0.125,
        "class_recall_at_1": 0.375,
        "recall_at_5": 0.5,
        "class_recall_at_5": 1.0,
    },
}


def test_markdown_retrieval_table() -> None:
    assert "retrieval" not in render_markdown(make_metrics()).lower()
    md = render_markdown(dict(make_metrics(modality="audio"), retrieval=RETRIEVAL))
    section = md.split("## Cross-modal retrieval", 1)[1].split("\n## ", 1)[0]
    assert "24 complete pairs" in section
    assert "| Metric | sound -> image | image -> sound |" in section
    assert "| Recall@1 (its pair) | 0.2500 | 0.1250 |" in section
    assert "| Recall@5 (its pair) | 0.6250 | 0.5000 |" in section
    assert "| Recall@1 (same class) | 0.5000 | 0.3750 |" in section
    assert "| Recall@5 (same class) | 0.8750 | 1.0000 |" in section


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
    assert [p.name for p in paths] == ["metrics.json", "report.md", "confusion.png", "report.html"]
    assert all(p.parent == out_dir and p.is_file() for p in paths)
    assert json.loads(paths[0].read_text()) == metrics
    assert "## Per-class metrics" in paths[1].read_text()
    assert_valid_png(paths[2])
    assert paths[3].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "confusion.png",
        "metrics.json",
        "report.html",
        "report.md",
    ]


def test_report_files_follow_the_umask_and_metrics_json_is_written_last(
    tmp_path: Path, monkeypatch
) -> None:
    """mkstemp makes 0600 files: reports must be readable by others (CI artifact servers),
    and metrics.json (what scripts read) must not be new while the others are old."""
    import os

    out_dir = tmp_path / "run"
    order: list[str] = []
    from crossmodal import fsio

    real = fsio.atomic_write_bytes

    def spy(data, path):
        order.append(Path(path).name)
        real(data, path)

    monkeypatch.setattr(fsio, "atomic_write_bytes", spy)
    old = os.umask(0o022)
    try:
        paths = write_report(make_metrics(), out_dir)
    finally:
        os.umask(old)
    assert order[-1] == "metrics.json" and len(order) == 4
    for path in paths:
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def test_a_report_that_cannot_be_json_leaves_the_old_one_whole(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    write_report(make_metrics(), out_dir)
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    with pytest.raises(ValueError):
        write_report({**make_metrics(), "accuracy": float("nan")}, out_dir)
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before


def test_a_report_that_fails_half_way_leaves_no_metrics_json_of_another_report(
    tmp_path: Path,
) -> None:
    """A write that fails after report.md (here report.html is a folder; a full disk in
    life) must not leave the earlier report's metrics.json beside the new report.md."""
    out_dir = tmp_path / "run"
    write_report(make_metrics(), out_dir)
    (out_dir / "report.html").unlink()
    (out_dir / "report.html").mkdir()
    with pytest.raises(OSError):
        write_report(make_metrics(data="new data"), out_dir)
    assert not (out_dir / "metrics.json").exists()


def test_a_remote_report_replaces_every_file_of_an_earlier_one() -> None:
    """ram:// stands for gs://: a multi-label report (no confusion matrix) removes the
    single-label report's confusion.png there, as it does locally."""
    pytest.importorskip("tensorflow")
    from crossmodal import fsio

    out_dir = "ram://reports/remote-run"
    write_report(make_metrics(), out_dir)
    assert fsio.exists(f"{out_dir}/confusion.png")
    multi = {
        "multi_label": True,
        "accuracy": 0.5,
        "num_samples": 2,
        "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}},
    }
    write_report(multi, out_dir)
    assert not fsio.exists(f"{out_dir}/confusion.png")
    assert json.loads(fsio.read_text(f"{out_dir}/metrics.json"))["multi_label"] is True


def test_write_report_requires_confusion_matrix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="confusion_matrix"):
        write_report({"accuracy": 1.0}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- plots ------------------------------------------------------------------


def assert_png_bytes(data: bytes, min_side: int = 150) -> tuple[int, int]:
    image_module = pytest.importorskip("PIL.Image")
    import io

    assert data[:8] == PNG_MAGIC
    with image_module.open(io.BytesIO(data)) as image:
        image.verify()
    with image_module.open(io.BytesIO(data)) as image:
        width, height = image.size
    assert min_side <= min(width, height) and max(width, height) <= 4000
    return width, height


def test_confusion_png_bytes_normalized_and_counts() -> None:
    assert_png_bytes(plots.confusion_png([[3, 1], [0, 0]], ["neg", "pos"]))
    assert_png_bytes(plots.confusion_png([[3, 1], [0, 4]], ["neg", "pos"], normalize=False))
    with pytest.raises(ValueError, match="does not match"):
        plots.confusion_png([[1]], ["a", "b"])


def test_f1_bars_png() -> None:
    metrics = make_metrics()
    assert_png_bytes(plots.f1_bars_png(metrics["per_class"]))
    many = {f"class_{i}": {"f1": i / 40, "support": i} for i in range(40)}
    _, height = assert_png_bytes(plots.f1_bars_png(many))
    assert height > 1000  # grows with the number of classes
    with pytest.raises(ValueError):
        plots.f1_bars_png({})


def test_reliability_png() -> None:
    assert_png_bytes(plots.reliability_png(make_metrics()["reliability"]))
    empty_bins = {"bin_edges": [0.0, 0.5, 1.0], "confidence": [0, 0], "accuracy": [0, 0]}
    assert_png_bytes(plots.reliability_png({**empty_bins, "count": [0, 0]}))
    with pytest.raises(ValueError):
        plots.reliability_png({**empty_bins, "count": [1]})


def test_training_curves_png_with_and_without_validation() -> None:
    rows = [
        {"epoch": "0", "loss": "2.0", "accuracy": "0.3", "val_loss": "2.1", "val_accuracy": "0.25"},
        {"epoch": "1", "loss": "1.5", "accuracy": "0.5", "val_loss": "", "val_accuracy": "0.4"},
        {"epoch": 2.0, "loss": 1.0, "accuracy": 0.7, "val_loss": 1.2, "val_accuracy": 0.6},
    ]
    assert_png_bytes(plots.training_curves_png(rows))
    train_only = [{"epoch": i, "loss": 1.0 / (i + 1), "accuracy": 0.1 * i} for i in range(5)]
    assert_png_bytes(plots.training_curves_png(train_only))
    with pytest.raises(ValueError):
        plots.training_curves_png([])


# --- html -------------------------------------------------------------------

VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr", "area", "base"}


class TagChecker(html.parser.HTMLParser):
    """Checks that non-void tags nest and close properly; collects ids, links and images."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.urls: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.doctype = ""
        self.text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.append(values["id"])
        self.urls += [values[k] for k in ("src", "href", "action") if k in values]
        if tag == "img":
            self.images.append(values)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.errors.append(f"self-closing <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(page: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.doctype.lower() == "doctype html"
    assert checker.errors == [] and checker.stack == []
    assert len(checker.ids) == len(set(checker.ids))
    return checker


def full_metrics(tmp_path: Path) -> dict[str, Any]:
    image_module = pytest.importorskip("PIL.Image")
    picture = tmp_path / "cat & <dog>.png"
    image_module.new("RGB", (300, 150), (200, 30, 30)).save(picture)
    both = make_metrics(modality="both", model="runs/m", data="data<x>", num_skipped_files=2)
    both["ablation"] = {
        m: {k: v for k, v in both.items() if k not in ("reliability", "mistakes")}
        for m in ("both", "image", "audio")
    }
    both["mistakes"] = [
        {
            "image": str(picture),
            "audio": "snd/a_1.wav",
            "true": "a",
            "predicted": "b",
            "confidence": 0.93,
        },
        {"image": None, "audio": "snd/only.wav", "true": "c", "predicted": "a", "confidence": 0.6},
        {
            "image": str(tmp_path / "gone.png"),
            "audio": None,
            "true": "b",
            "predicted": "c",
            "confidence": 0.55,
        },
    ]
    return both


def test_render_html_has_every_section(tmp_path: Path) -> None:
    metrics = full_metrics(tmp_path)
    page = render_html(metrics, title="Eval <1>")
    checker = check_html(page)
    assert '<html lang="en">' in page and '<meta charset="utf-8">' in page
    assert "<title>Eval &lt;1&gt;</title>" in page
    for section in ("summary", "per-class", "confusion", "f1", "reliability", "ablation"):
        assert section in checker.ids
    assert "retrieval" not in checker.ids
    page = render_html(dict(metrics, retrieval=RETRIEVAL), title="Eval")
    retrieval = check_html(page)
    assert "retrieval" in retrieval.ids
    assert "Cross-modal retrieval" in " ".join(retrieval.text) and "0.6250" in page
    assert "mistakes" in checker.ids
    text = " ".join(checker.text)
    for number in ("0.7500", "0.8000", "0.8571"):  # accuracy, F1 of a, F1 of c
        assert number in text
    assert "Modality ablation" in text and "Top-1 accuracy" in text
    # file names of the mistakes, escaped in the markup and intact in the text
    assert "cat &amp; &lt;dog&gt;.png" in page
    assert "snd/a_1.wav" in text and "snd/only.wav" in text and "gone.png" in text
    assert "data&lt;x&gt;" in page and "data<x>" not in page


def weak_and_absent_metrics() -> dict[str, Any]:
    """a: F1 0.8, b: F1 0 (weak), c: F1 0.75, d: absent from the data and never predicted."""
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = [0, 0, 1, 2, 2, 2, 2, 2]
    probs = np.full((8, 4), 0.1)
    probs[np.arange(8), y_pred] = 0.7
    return classification_metrics(y_true, probs, ["a", "b", "c", "d"])


def test_html_marks_weak_classes_but_not_classes_absent_from_the_data() -> None:
    metrics = weak_and_absent_metrics()
    page = render_html(dict(metrics, modality="both"), title="Eval")
    rows = re.findall(r'<tr( class="weak")?><th[^>]*>(\w)</th>', page)
    assert {label for weak, label in rows if weak} == {"b"}
    assert {label for _, label in rows} >= {"a", "b", "c", "d"}


def test_f1_bars_are_grey_for_a_class_absent_from_the_data() -> None:
    # the bars agree with the table: red only for b; d (support 0) is grey
    metrics = weak_and_absent_metrics()
    blue, red, grey = "#1f77b4", "#d62728", "#9e9e9e"
    assert plots.f1_bar_colors(metrics["per_class"]) == [blue, red, blue, grey]
    page = render_html(dict(metrics, modality="both"), title="Eval")
    caption = re.search(r"<figcaption>(.*?)</figcaption>", page.split('id="f1"')[1]).group(1)
    assert "are red" in caption and "(n=0) is grey" in caption


def test_render_html_is_self_contained(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    import io

    page = render_html(full_metrics(tmp_path))
    checker = check_html(page)
    assert "script" not in checker.tags and "link" not in checker.tags
    assert "http://" not in page and "https://" not in page
    for url in checker.urls:
        assert url.startswith(("#", "data:image/png;base64,")), url
    # confusion, F1, reliability, and one thumbnail (the other mistakes have no readable image)
    assert len(checker.images) == 4
    for img in checker.images:
        assert img.get("alt")
        data = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        with image_module.open(io.BytesIO(data)) as image:
            image.load()
            size = image.size
        scale = int(img["width"]) // size[0]  # tiny thumbnails are shown enlarged
        assert scale >= 1 and (int(img["width"]), int(img["height"])) == (
            size[0] * scale,
            size[1] * scale,
        )
    thumbnail = [img for img in checker.images if "thumb" in img.get("class", "")]
    assert len(thumbnail) == 1 and max(int(thumbnail[0]["width"]), 96) == 96
    assert "Content-Security-Policy" in page and "img-src data:" in page


def test_render_html_minimal_metrics() -> None:
    page = render_html({"accuracy": 0.5, "num_samples": 2})
    checker = check_html(page)
    assert checker.images == [] and "summary" in checker.ids and "0.5000" in page


def test_render_html_escapes_labels() -> None:
    metrics = make_metrics()
    metrics["per_class"] = {"<b>x</b>": metrics["per_class"]["a"]}
    page = render_html(metrics)
    check_html(page)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_markdown_mistakes_and_calibration(tmp_path: Path) -> None:
    md = render_markdown(full_metrics(tmp_path))
    mistakes = md.split("## Most confidently wrong", 1)[1]
    assert "| # | True | Predicted | Confidence | Image | Audio |" in mistakes
    assert "| 1 | a | b | 0.9300 | `" in mistakes and "`snd/a_1.wav` |" in mistakes
    assert "| 2 | c | a | 0.6000 | — | `snd/only.wav` |" in mistakes
    calibration = md.split("## Calibration", 1)[1].split("##", 1)[0]
    assert "| Confidence bin | Samples | Mean confidence | Accuracy |" in calibration
    assert "| 0.53–0.60 | 8 | 0.6000 | 0.7500 |" in calibration  # every max-prob is 0.6
    assert "| Model | runs/m |" in md and "| Skipped files | 2 |" in md
    assert "No mistakes." in render_markdown(make_metrics(mistakes=[]))


def test_markdown_writes_labels_literally() -> None:
    # "<unk>" would be an HTML tag (blank on GitHub) and "__x__" bold; a path in a code span
    # keeps its underscores as they are.
    scores = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    metrics = {
        "accuracy": 1.0,
        "per_class": {"<unk>": scores, "__x__": scores},
        "mistakes": [
            {"true": "<unk>", "predicted": "__x__", "confidence": 0.9, "image": "a_b.png"}
        ],
    }
    md = render_markdown(metrics)
    assert "| \\<unk\\> | 1.0000 |" in md and "| \\_\\_x\\_\\_ | 1.0000 |" in md
    assert "`a_b.png`" in md


def test_plots_draw_dollar_signs_in_labels_as_text() -> None:
    # matplotlib reads text between two "$" as a formula: "$100_$200" raised.
    labels = ["$100_$200", "$5-$10"]
    assert plots.confusion_png([[1, 0], [0, 1]], labels)[:8] == b"\x89PNG\r\n\x1a\n"
    per_class = {label: {"precision": 1.0, "recall": 1.0, "f1": 1.0} for label in labels}
    assert plots.f1_bars_png(per_class)[:8] == b"\x89PNG\r\n\x1a\n"
