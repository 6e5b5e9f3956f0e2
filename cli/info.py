"""crossmodal info MODEL: what a model folder holds, read from its files (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import Json, Quiet
from cli.output import Output, handled, quiet_tensorflow_if_remote


def info(
    model: Annotated[Path, typer.Argument(help="A model folder written by `crossmodal train`.")],
    json_output: Json = False,
    quiet: Quiet = False,
) -> None:
    """Show a model's essentials: classes, inputs, settings, data, split and validation."""
    o = Output(quiet=quiet, json_mode=json_output)
    with handled(o):
        from crossmodal.card import card_summary

        quiet_tensorflow_if_remote(model)
        summary = card_summary(model)
        if json_output:
            o.result(summary)
        elif not quiet:
            rows = _rows(summary)
            if o.out.is_terminal:
                o.out.print(_grid(rows))
            else:  # a pipe or a log: one unwrapped, unpadded line a row
                width = max(len(name) for name, _ in rows)
                for name, value in rows:
                    typer.echo(f"{name:<{width}}  {value}")


def _grid(rows: list[tuple[str, str]]):
    """The rows as a two-column grid; every value is plain text (no rich markup)."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in rows:
        grid.add_row(Text(name), Text(value))
    return grid


def _rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (name, value) lines, those without a value left out."""
    rows: list[tuple[str, str]] = []

    def row(name: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            rows.append((name, str(value)))

    versions = s.get("versions") or {}
    row("path", s["path"])
    row(
        "made by",
        ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + (f" on {s['created']}" if s.get("created") else ""),
    )
    row("format version", s.get("format_version"))
    row("classes", f"{s['num_classes']}: " + ", ".join(s["labels"]))
    encoders = s.get("encoders") or {}
    row(
        "architecture",
        f"{s.get('fusion')} fusion; encoders image={encoders.get('image')}, "
        f"audio={encoders.get('audio')}",
    )
    image, audio = s.get("image") or {}, s.get("audio") or {}
    row(
        "image input",
        f"{image.get('height')}x{image.get('width')}, {image.get('channels')} channel(s) "
        "(any size is resized in the graph)",
    )
    row(
        "audio input",
        f"mono float32 at {audio.get('sample_rate')} Hz, clips of {audio.get('clip_seconds')} s",
    )
    data = s.get("data") or {}
    if data:
        row(
            "data",
            f"{data.get('source')}: {data.get('num_samples')} samples, "
            f"{data.get('num_skipped_files')} skipped file(s)",
        )
    row("trained on", f"{s['trained_samples']} samples" if s.get("trained_samples") else None)
    row("split", _split(s.get("split")))
    epochs = s.get("epochs") or {}
    if epochs.get("run") is not None:
        best = f", best {epochs['best']}" if epochs.get("best") else ""
        row("epochs", f"{epochs['run']} of at most {epochs.get('max')}{best}")
    validation = s.get("validation")
    if validation:
        for modality, m in validation.items():
            row(
                f"validation {modality}",
                f"accuracy {_f(m.get('accuracy'))}, macro F1 {_f(m.get('macro_f1'))}, "
                f"ECE {_f(m.get('ece'))} on {m.get('num_samples')} samples",
            )
    elif validation is not None or s.get("split"):
        row("validation", "none (no validation split)")
    row("model card", s.get("model_card"))
    return rows


def _split(split: Any) -> str | None:
    if not isinstance(split, dict) or not split.get("kind"):
        return None
    kind = split["kind"]
    counts = f"{split.get('train')} train / {split.get('val')} validation"
    if kind == "stratified":
        return f"stratified random, {counts} (may overstate accuracy for unseen groups)"
    if kind == "group":
        groups = split.get("val_groups") or []
        groups = ", ".join(map(str, groups)) if isinstance(groups, list) else str(groups)
        return f"by group, validation groups {groups or '—'}; {counts}"
    if kind == "val_dir":
        return f"separate validation data {split.get('val_dir')}; {counts}"
    return str(kind)


def _f(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "—"
