"""Turn a metrics dict (see ``crossmodal.metrics``) into files people read.

Outputs: ``metrics.json`` for machines, ``report.md`` for terminals and PR comments,
``report.html`` (one self-contained page: every figure inlined as a data URI, no scripts, no
network, a Content-Security-Policy that forbids fetching anything) and ``confusion.png`` for a
quick visual check. Every file is written atomically (temp file in the same folder +
``os.replace``) so an interrupted run never leaves a half-written report that looks valid.
Figures come from :mod:`crossmodal.plots`, which imports matplotlib lazily to keep CLI
start-up fast; TensorFlow is never imported here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal import fsio
from crossmodal.card import md_literal
from crossmodal.config import WEAK_F1

METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
CONFUSION_PNG = "confusion.png"
REPORT_HTML = "report.html"

THUMBNAIL_PX = 96  # longest side of a mistake's inline thumbnail
THUMBNAIL_MAX_FILE_BYTES = 2_000_000  # larger source images are named, not inlined

_SUMMARY_KEYS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
    ("macro_f1", "Macro F1"),
    ("weighted_f1", "Weighted F1"),
    ("ece", "ECE"),
    ("micro_f1", "Micro F1"),
    ("mean_average_precision", "Mean average precision"),
    ("subset_accuracy", "Subset accuracy"),
    ("hamming_loss", "Hamming loss"),
)
_CONTEXT_KEYS: tuple[tuple[str, str], ...] = (
    ("modality", "Modality"),
    ("model", "Model"),
    ("data", "Data"),
    ("num_skipped_files", "Skipped files"),
)
_MISTAKE_COLUMNS = ("#", "True", "Predicted", "Confidence", "Image", "Audio")
_MISSING = "—"


def write_metrics_json(metrics: dict[str, Any], path: Path) -> None:
    """Write ``metrics`` as indented JSON, atomically.

    NaN/inf are rejected (``allow_nan=False``) because they produce files that
    strict JSON parsers refuse; numpy scalars/arrays are converted to plain
    Python values so callers that assemble dicts by hand do not trip over them.
    """
    fsio.atomic_write_bytes(metrics_json_bytes(metrics), Path(path))


def metrics_json_bytes(metrics: dict[str, Any]) -> bytes:
    text = json.dumps(metrics, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    return (text + "\n").encode("utf-8")


def render_markdown(metrics: dict[str, Any], *, title: str = "Evaluation report") -> str:
    """Render a Markdown report; sections whose data is missing are skipped."""
    sections = [f"# {title}"]
    if metrics.get("warnings"):  # what makes a figure below meaningless: first
        sections.append(
            "## Warnings\n\n" + "\n".join(f"- {md_literal(w)}" for w in metrics["warnings"])
        )
    sections.append(_summary_section(metrics))
    if "per_class" in metrics:
        sections.append(_per_class_section(metrics["per_class"]))
    if "confusion_matrix" in metrics:
        sections.append(_confusion_section(metrics["confusion_matrix"]))
    if _has_reliability(metrics):
        sections.append(_reliability_section(metrics["reliability"]))
    if metrics.get("ablation"):
        sections.append(_ablation_section(metrics["ablation"]))
    if metrics.get("retrieval"):
        sections.append(_retrieval_section(metrics["retrieval"]))
    if "mistakes" in metrics:
        sections.append(_mistakes_section(metrics["mistakes"]))
    return "\n\n".join(sections) + "\n"


def plot_confusion(
    matrix: list[list[int]], labels: list[str], path: Path, *, normalize: bool = True
) -> None:
    """Save an annotated confusion-matrix PNG (rows = true, cols = predicted).

    With ``normalize`` each row is divided by its support, so cells read as
    "fraction of true class X predicted as Y" (rows with no support stay 0).
    """
    from crossmodal.plots import confusion_png

    fsio.atomic_write_bytes(confusion_png(matrix, list(labels), normalize=normalize), Path(path))


def write_report(metrics: dict[str, Any], out_dir: Path | str) -> list[Path | str]:
    """Write metrics.json, report.md, confusion.png and report.html into ``out_dir``
    (a multi-label model's report has no confusion.png); returns the paths written.

    Everything is rendered first and metrics.json is written last, so a failure never leaves
    a new metrics.json beside an old or partial report; a single-label ``metrics`` without a
    confusion matrix is refused before anything is written. A remote ``out_dir`` (any
    filesystem tf.io.gfile knows) is written in a local temporary folder and copied.
    """
    if fsio.is_remote(out_dir):
        with tempfile.TemporaryDirectory(prefix="crossmodal-report-") as local:
            written = write_report(metrics, Path(local))
            fsio.makedirs(out_dir)
            # An earlier report's metrics.json goes first and comes back last; its
            # confusion.png goes when this report has none (multi-label).
            stale = [METRICS_JSON] + (
                [] if (Path(local) / CONFUSION_PNG).exists() else [CONFUSION_PNG]
            )
            for name in stale:
                fsio.remove(fsio.join(out_dir, name))
            for path in sorted(written, key=lambda p: p.name == METRICS_JSON):  # metrics last
                fsio.copy_file(path, fsio.join(out_dir, path.name))
            return [fsio.join(out_dir, path.name) for path in written]
    return _write_local_report(metrics, Path(out_dir))


def _write_local_report(metrics: dict[str, Any], out_dir: Path) -> list[Path]:
    from crossmodal.plots import confusion_png

    confusion = metrics.get("confusion_matrix")
    has_confusion = (
        isinstance(confusion, Mapping) and "matrix" in confusion and "labels" in confusion
    )
    if not has_confusion and not metrics.get("multi_label"):
        raise ValueError("metrics must contain confusion_matrix with 'labels' and 'matrix'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path, html_path = (
        out_dir / METRICS_JSON,
        out_dir / REPORT_MD,
        out_dir / CONFUSION_PNG,
        out_dir / REPORT_HTML,
    )
    # A multi-label model has no single confusion matrix: no confusion.png then.
    confusion_bytes = (
        confusion_png(confusion["matrix"], list(confusion["labels"])) if has_confusion else None
    )
    # Everything is rendered before anything is written, and metrics.json (what scripts
    # read) goes last: a failure never leaves a new metrics.json beside an old report.
    metrics_bytes = metrics_json_bytes(metrics)  # refuses NaN before anything is written
    markdown = render_markdown(metrics).encode("utf-8")
    page = _render_html(metrics, title="Evaluation report", confusion_bytes=confusion_bytes)
    # An earlier report's metrics.json goes before anything new is written: a write that
    # fails half-way (a full disk) leaves no metrics.json beside files of two reports.
    json_path.unlink(missing_ok=True)
    fsio.atomic_write_bytes(markdown, md_path)
    if confusion_bytes is not None:
        fsio.atomic_write_bytes(confusion_bytes, png_path)
    else:
        png_path.unlink(missing_ok=True)  # an earlier report's matrix would not match
    fsio.atomic_write_bytes(page.encode("utf-8"), html_path)
    fsio.atomic_write_bytes(metrics_bytes, json_path)
    return [p for p in (json_path, md_path, png_path, html_path) if p.exists()]


def render_html(metrics: dict[str, Any], *, title: str = "Evaluation report") -> str:
    """One self-contained, valid HTML5 page with the same numbers as ``render_markdown``.

    Sections (each only when its data is present): summary, per-class table, normalized
    confusion matrix, per-class F1 bars, reliability diagram, modality ablation, and the most
    confidently wrong samples with their file names (and a small inline thumbnail when the
    image file exists and is small). Figures are PNG data URIs; there are no scripts and no
    external URLs, and the page's Content-Security-Policy forbids loading anything else.
    """
    return _render_html(metrics, title=title, confusion_bytes=None)


# --- file writing -----------------------------------------------------------


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
    rows = [[name, _fmt(value)] for name, value in _summary_rows(metrics)]
    return "## Summary\n\n" + _table(["Metric", "Value"], rows)


def _summary_rows(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(name, value) pairs shared by the Markdown and HTML summaries."""
    rows: list[tuple[str, Any]] = []
    for key, name in _CONTEXT_KEYS:
        if key in metrics:
            rows.append((name, metrics[key] if key == "num_skipped_files" else str(metrics[key])))
    if "num_samples" in metrics:
        rows.append(("Samples", metrics["num_samples"]))
    rows += [(name, metrics[key]) for key, name in _SUMMARY_KEYS if key in metrics]
    rows += [(f"Top-{k} accuracy", value) for k, value in _top_k_items(metrics)]
    return rows


def _per_class_section(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per class so weak classes are easy to spot."""
    columns = ("precision", "recall", "f1", "support")
    rows = [
        [md_literal(label)] + [_fmt(scores.get(col)) for col in columns]
        for label, scores in per_class.items()
    ]
    return "## Per-class metrics\n\n" + _table(
        ["Label", "Precision", "Recall", "F1", "Support"], rows
    )


def _confusion_section(confusion: Mapping[str, Any]) -> str:
    """Raw counts, true labels as rows, so the table matches the PNG."""
    labels = [md_literal(label) for label in confusion["labels"]]
    rows = [
        [f"**{label}**"] + [_fmt(v) for v in row]
        for label, row in zip(labels, confusion["matrix"], strict=True)
    ]
    header = ["True \\ Predicted", *labels]
    return (
        "## Confusion matrix\n\nRows are true labels, columns are predicted labels.\n\n"
        + _table(header, rows)
    )


ABLATION_NOTE = (
    "The same model, each column on the samples that hold its modality: both, every sample as "
    "it is (pairs, and lone images or sounds); image, the samples with an image, their sound "
    "removed; audio, the samples with a sound, their image removed. On data of complete pairs "
    "the three columns score the same samples."
)


def _ablation_section(ablation: Mapping[str, Mapping[str, Any]]) -> str:
    """Side-by-side comparison of the same metrics per input modality."""
    modalities = list(ablation)
    rows = [[name] + [_fmt(v) for v in values] for name, values in _ablation_rows(ablation)]
    header = ["Metric", *(md_literal(str(m)) for m in modalities)]
    return "## Modality ablation\n\n" + ABLATION_NOTE + "\n\n" + _table(header, rows)


def _ablation_rows(ablation: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(metric name, one value per modality) rows shared by Markdown and HTML."""
    modalities = list(ablation)
    metric_rows = (("num_samples", "Samples"), *_SUMMARY_KEYS)
    top_ks: dict[str, None] = {}
    for result in ablation.values():
        top_ks.update((k, None) for k, _ in _top_k_items(result))
    rows = [
        (name, [ablation[m].get(key) for m in modalities])
        for key, name in metric_rows
        if any(key in ablation[m] for m in modalities)
    ]
    rows += [
        (
            f"Top-{k} accuracy",
            [(ablation[m].get("top_k_accuracy") or {}).get(k) for m in modalities],
        )
        for k in sorted(top_ks, key=int)
    ]
    return rows


_RETRIEVAL_DIRECTIONS = (("audio_to_image", "sound -> image"), ("image_to_audio", "image -> sound"))
_RETRIEVAL_KEYS = (
    ("recall_at_1", "Recall@1 (its pair)"),
    ("recall_at_5", "Recall@5 (its pair)"),
    ("class_recall_at_1", "Recall@1 (same class)"),
    ("class_recall_at_5", "Recall@5 (same class)"),
)


def _retrieval_note(retrieval: Mapping[str, Any]) -> str:
    return (
        f"Each of the data's {retrieval.get('num_pairs', '?')} complete pairs queries the other "
        "modality in the shared space (cosine similarity)."
    )


def _retrieval_rows(retrieval: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """(metric name, one value per direction) rows shared by Markdown and HTML."""
    return [
        (name, [(retrieval.get(d) or {}).get(key) for d, _ in _RETRIEVAL_DIRECTIONS])
        for key, name in _RETRIEVAL_KEYS
    ]


def _retrieval_section(retrieval: Mapping[str, Any]) -> str:
    rows = [[name] + [_fmt(v) for v in values] for name, values in _retrieval_rows(retrieval)]
    header = ["Metric", *(label for _, label in _RETRIEVAL_DIRECTIONS)]
    return f"## Cross-modal retrieval\n\n{_retrieval_note(retrieval)}\n\n" + _table(header, rows)


def _reliability_section(reliability: Mapping[str, Sequence[Any]]) -> str:
    """Calibration per confidence bin (non-empty bins only): the reliability diagram's numbers."""
    rows = [
        [md_literal(bin_range)] + [_fmt(v) for v in values]
        for bin_range, *values in _reliability_rows(reliability)
    ]
    return (
        "## Calibration\n\nNon-empty confidence bins: when accuracy is below the mean "
        "confidence, the model is overconfident there.\n\n"
        + _table(["Confidence bin", "Samples", "Mean confidence", "Accuracy"], rows)
    )


def _reliability_rows(reliability: Mapping[str, Sequence[Any]]) -> list[list[Any]]:
    edges = list(reliability["bin_edges"])
    rows = []
    for i, n in enumerate(reliability["count"]):
        if n:
            rows.append(
                [
                    f"{float(edges[i]):.2f}–{float(edges[i + 1]):.2f}",
                    int(n),
                    reliability["confidence"][i],
                    reliability["accuracy"][i],
                ]
            )
    return rows


def _has_reliability(metrics: Mapping[str, Any]) -> bool:
    reliability = metrics.get("reliability")
    return isinstance(reliability, Mapping) and all(
        key in reliability for key in ("bin_edges", "confidence", "accuracy", "count")
    )


def _mistakes_section(mistakes: Sequence[Mapping[str, Any]]) -> str:
    """The most confidently wrong samples, with the files to look at."""
    if not mistakes:
        return "## Most confidently wrong\n\nNo mistakes."
    rows = [
        [
            str(i),
            md_literal(m.get("true", _MISSING)),
            md_literal(m.get("predicted", _MISSING)),
            _fmt(m.get("confidence")),
            _md_path(m.get("image")),
            _md_path(m.get("audio")),
        ]
        for i, m in enumerate(mistakes, 1)
    ]
    return "## Most confidently wrong\n\n" + _table(list(_MISTAKE_COLUMNS), rows)


def _md_path(path: Any) -> str:
    """A file name as a code span (so `_` and `*` stay literal); a dash when absent."""
    if not path:
        return _MISSING
    text = str(path).replace("\n", " ")
    if "`" in text:
        return md_literal(text)
    return "`" + text.replace("|", "\\|") + "`"  # GFM reads a "|" in a code span as a column


def _top_k_items(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Top-k entries sorted numerically (JSON keys are strings)."""
    top_k = metrics.get("top_k_accuracy") or {}
    return sorted(((str(k), v) for k, v in top_k.items()), key=lambda item: int(item[0]))


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Minimal GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any, escape: Callable[[str], str] = md_literal) -> str:
    """Floats to 4 decimals, ints as-is, missing values as a dash; text through `escape`
    (Markdown's by default)."""
    if value is None:
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return escape(str(value))


# --- html -------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1d2330; background: #fafbfc; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.5rem; }
h1 { margin: 0 0 .25rem; font-size: 1.6rem; }
h2 { margin: 2rem 0 .6rem; font-size: 1.2rem; border-bottom: 1px solid #d8dde6;
  padding-bottom: .25rem; }
nav ul { list-style: none; padding: 0; margin: .75rem 0 0; display: flex; flex-wrap: wrap;
  gap: .4rem 1rem; }
nav a, a { color: #1f5fbf; }
table { border-collapse: collapse; margin: .5rem 0 1rem; background: #fff; }
th, td { border: 1px solid #d8dde6; padding: .3rem .6rem; text-align: left;
  vertical-align: middle; }
thead th { background: #eef1f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .85rem; word-break: break-all; }
tr.weak td { background: #fff3f3; }
figure { margin: .5rem 0 1rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #d8dde6; background: #fff; }
figcaption { color: #5a6478; font-size: .9rem; }
img.thumb { display: block; image-rendering: pixelated; border: 1px solid #d8dde6; }
.note { color: #5a6478; }
details { margin: .25rem 0 1rem; }
footer { color: #5a6478; font-size: .85rem; padding: 2rem 1.25rem; }
"""

# Nothing may be fetched: images only from data: URIs, styles only inline, no scripts.
_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


def _render_html(metrics: Mapping[str, Any], *, title: str, confusion_bytes: bytes | None) -> str:
    from crossmodal import __version__, plots

    sections: list[tuple[str, str, str]] = []  # (id, heading, body)
    if metrics.get("warnings"):
        items = "".join(f"<li>{_h(w)}</li>" for w in metrics["warnings"])
        sections.append(("warnings", "Warnings", f"<ul>{items}</ul>"))
    sections.append(
        ("summary", "Summary", _html_table(["Metric", "Value"], _summary_cells(metrics)))
    )
    per_class = metrics.get("per_class") or {}
    if per_class:
        sections.append(("per-class", "Per-class metrics", _html_per_class(per_class)))
    confusion = metrics.get("confusion_matrix")
    if isinstance(confusion, Mapping) and "matrix" in confusion and "labels" in confusion:
        png = confusion_bytes or plots.confusion_png(confusion["matrix"], list(confusion["labels"]))
        body = _html_figure(
            png,
            "Normalized confusion matrix",
            "Rows are true labels, columns are predicted labels; each row sums to 1.",
        ) + _html_details("Counts", _html_confusion_counts(confusion))
        sections.append(("confusion", "Confusion matrix", body))
    if per_class:
        body = _html_figure(
            plots.f1_bars_png(per_class),
            "F1 per class",
            f"Bars below {WEAK_F1} are red; a class with no true sample (n=0) is grey, as "
            "there was nothing to score; n is the number of true samples of the class.",
        )
        sections.append(("f1", "F1 per class", body))
    if _has_reliability(metrics):
        rel = metrics["reliability"]
        ece = metrics.get("ece")
        caption = "Accuracy per confidence bin against the diagonal of perfect calibration"
        caption += f"; ECE {_fmt_html(ece)}." if ece is not None else "."
        rows = [[_cell(r[0]), *(_cell(v, num=True) for v in r[1:])] for r in _reliability_rows(rel)]
        body = _html_figure(plots.reliability_png(rel), "Reliability diagram", caption)
        body += _html_details(
            "Bins",
            _html_table(["Confidence bin", "Samples", "Mean confidence", "Accuracy"], rows),
        )
        sections.append(("reliability", "Reliability", body))
    ablation = metrics.get("ablation")
    if ablation:
        rows = [
            [_cell(name, header=True), *(_cell(v, num=True) for v in values)]
            for name, values in _ablation_rows(ablation)
        ]
        body = f'<p class="note">{_h(ABLATION_NOTE)}</p>\n'
        body += _html_table(["Metric", *(str(m) for m in ablation)], rows)
        sections.append(("ablation", "Modality ablation", body))
    retrieval = metrics.get("retrieval")
    if retrieval:
        rows = [
            [_cell(name, header=True), *(_cell(v, num=True) for v in values)]
            for name, values in _retrieval_rows(retrieval)
        ]
        body = f'<p class="note">{_h(_retrieval_note(retrieval))}</p>\n'
        body += _html_table(["Metric", *(label for _, label in _RETRIEVAL_DIRECTIONS)], rows)
        sections.append(("retrieval", "Cross-modal retrieval", body))
    if "mistakes" in metrics:
        sections.append(("mistakes", "Most confidently wrong", _html_mistakes(metrics["mistakes"])))

    esc = _h
    nav = "\n".join(f'<li><a href="#{sid}">{esc(heading)}</a></li>' for sid, heading, _ in sections)
    body = "\n".join(
        f'<section id="{sid}">\n<h2>{esc(heading)}</h2>\n{content}\n</section>'
        for sid, heading, content in sections
    )
    subtitle = " · ".join(
        f"{name}: {esc(str(metrics[key]))}" for key, name in _CONTEXT_KEYS[:3] if key in metrics
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">
<meta name="generator" content="crossmodal {esc(__version__)}">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{esc(title)}</h1>
{f'<p class="note">{subtitle}</p>' if subtitle else ""}
<nav aria-label="Sections">
<ul>
{nav}
</ul>
</nav>
</header>
<main>
{body}
</main>
<footer>Generated by crossmodal {esc(__version__)}. Self-contained: nothing on this page is
loaded from elsewhere.</footer>
</body>
</html>
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt_html(value: Any) -> str:
    """Like the Markdown formatting, with HTML's escaping instead of Markdown's."""
    return _fmt(value, escape=_h)


def _cell(value: Any, *, num: bool = False, header: bool = False, cls: str = "") -> str:
    """One table cell; numbers right-aligned, text escaped."""
    text = _fmt_html(value)
    if header:
        return f'<th scope="row">{text}</th>'
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    return f'<td class="{classes}">{text}</td>' if classes else f"<td>{text}</td>"


def _summary_cells(metrics: Mapping[str, Any]) -> list[list[str]]:
    return [
        [_cell(name, header=True), _cell(value, num=not isinstance(value, str))]
        for name, value in _summary_rows(metrics)
    ]


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, row_classes: Sequence[str] = ()
) -> str:
    """A table from escaped header texts and ready-made cells."""
    head = "".join(f'<th scope="col">{_h(name)}</th>' for name in header)
    body = []
    for i, row in enumerate(rows):
        cls = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        attr = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attr}>{''.join(row)}</tr>")
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def _html_per_class(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    columns = ("precision", "recall", "f1", "support")
    rows, classes = [], []
    for label, scores in per_class.items():
        rows.append([_cell(label, header=True), *(_cell(scores.get(c), num=True) for c in columns)])
        f1, support = scores.get("f1"), scores.get("support")
        # a class absent from the data (support 0) is not weak: there was nothing to score
        weak = isinstance(f1, (int, float)) and f1 < WEAK_F1 and support != 0
        classes.append("weak" if weak else "")
    return _html_table(["Label", "Precision", "Recall", "F1", "Support"], rows, row_classes=classes)


def _html_confusion_counts(confusion: Mapping[str, Any]) -> str:
    labels = [str(label) for label in confusion["labels"]]
    rows = [
        [_cell(label, header=True), *(_cell(v, num=True) for v in row)]
        for label, row in zip(labels, confusion["matrix"], strict=True)
    ]
    return _html_table(["True \\ Predicted", *labels], rows)


def _html_figure(png: bytes, alt: str, caption: str) -> str:
    width, height = _png_size(png)
    size = f' width="{width}" height="{height}"' if width else ""
    return (
        f'<figure>\n<img src="{_data_uri(png)}" alt="{_h(alt)}"{size}>\n'
        f"<figcaption>{_h(caption)}</figcaption>\n</figure>"
    )


def _html_details(summary: str, content: str) -> str:
    return f"<details>\n<summary>{_h(summary)}</summary>\n{content}\n</details>"


def _html_mistakes(mistakes: Sequence[Mapping[str, Any]]) -> str:
    if not mistakes:
        return '<p class="note">No mistakes.</p>'
    rows = []
    for i, m in enumerate(mistakes, 1):
        image = m.get("image")
        thumb = _thumbnail(image) if image else None
        if thumb is not None:
            png, (width, height) = thumb
            scale = max(1, THUMBNAIL_PX // max(width, height, 1))  # tiny images: shown larger
            width, height = width * scale, height * scale
            preview = (
                f'<img class="thumb" src="{_data_uri(png)}" alt="{_h(Path(str(image)).name)}" '
                f'width="{width}" height="{height}">'
            )
        else:
            preview = _MISSING
        rows.append(
            [
                _cell(i, num=True),
                _cell(m.get("true")),
                _cell(m.get("predicted")),
                _cell(m.get("confidence"), num=True),
                f"<td>{preview}</td>",
                _cell(image, cls="path"),
                _cell(m.get("audio"), cls="path"),
            ]
        )
    note = (
        '<p class="note">Wrong predictions sorted by the confidence of the predicted class, '
        "highest first: look at these files first.</p>\n"
    )
    header = ["#", "True", "Predicted", "Confidence", "Preview", "Image", "Audio"]
    return note + _html_table(header, rows)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk; (0, 0) when the bytes are not a PNG."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        return 0, 0
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _remote_image(url: str) -> io.BytesIO | None:
    """A small remote image's bytes; None when absent, too large or unreadable."""
    try:
        if not fsio.isfile(url) or fsio.size_and_mtime(url)[0] > THUMBNAIL_MAX_FILE_BYTES:
            return None
        return io.BytesIO(fsio.read_bytes(url))
    except Exception:  # tf.errors.OpError (permissions, a store that refuses): no thumbnail
        return None


def _thumbnail(path: Any) -> tuple[bytes, tuple[int, int]] | None:
    """A PNG re-encode of a small image file, longest side at most THUMBNAIL_PX; None when the
    file is absent, too large, or not an image PIL can read."""
    from PIL import Image

    from crossmodal.data.decode import upright

    try:
        if fsio.is_remote(str(path)):  # an image on gs://, s3://, ...: read it into memory
            file = _remote_image(str(path))
            if file is None:
                return None
        else:
            file = Path(str(path))
            if not file.is_file() or file.stat().st_size > THUMBNAIL_MAX_FILE_BYTES:
                return None
        with Image.open(file) as image:
            image.seek(0)
            image.draft(None, (THUMBNAIL_PX, THUMBNAIL_PX))  # JPEG: decode at reduced size
            image = upright(image)  # as training saw it
            if image.mode not in ("1", "L", "LA", "RGB", "RGBA"):
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            return buffer.getvalue(), image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
