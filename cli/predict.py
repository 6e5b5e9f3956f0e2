"""crossmodal predict MODEL FILE_OR_FOLDER... --out predictions.csv"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.options import Json, Modality, Quiet
from cli.output import (
    EXIT_INPUTS_FAILED,
    Output,
    handled,
    quiet_tensorflow,
    quiet_tensorflow_if_remote,
)


def predict(
    model: Annotated[Path, typer.Argument(help="A model folder written by `crossmodal train`.")],
    inputs: Annotated[
        list[Path], typer.Argument(help="Files, folders or manifests; pairs are matched by stem.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write rows to a .csv or .jsonl file.")
    ] = None,
    top_k: Annotated[int, typer.Option(min=1)] = 3,
    modality: Modality = "both",
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Decoding threads (default: the cores less one, at most 4)."),
    ] = None,
    json_output: Json = False,
    quiet: Quiet = False,
) -> None:
    """Predict labels for new files; a lone image or sound predicts with the other missing."""
    o = Output(quiet=quiet, json_mode=json_output)
    with handled(o):
        from crossmodal.predict import UntrainedAlone, check_output_file, unread, write_rows
        from crossmodal.predict import predict as run

        quiet_tensorflow_if_remote(model, *inputs, out)
        if out is not None:
            check_output_file(out, inputs)

        # Checks the model folder and the inputs (one line and exit 1 for a user's mistake)
        # before TensorFlow is imported; the model loads as the rows are consumed.
        rows = run(
            model,
            inputs,
            top_k=top_k,
            batch_size=batch_size,
            workers=workers,
            modality=modality,
            notice=None if quiet else _warn_duplicate,
        )
        quiet_tensorflow()
        alone = UntrainedAlone(rows, model)
        rows = iter(alone)
        failed = 0
        if out is not None:
            if json_output:
                rows = list(rows)
                failed = write_rows(iter(rows), out)
                o.result(rows)
            else:
                failed = write_rows(rows, out)
            o.info(f"wrote {out}")
        elif json_output:
            rows = list(rows)
            failed = sum(unread(r) for r in rows)
            o.result(rows)
        else:
            failed = _print_table(o, rows)
        for message in [] if quiet else alone.warnings():
            typer.echo(f"warning: {message}", err=True)
        if failed:
            why = (
                "could not be read"
                if modality == "both"
                else f"could not be read or has no {modality}"
            )
            typer.echo(f"error: {failed} row(s) name an input that {why}", err=True)
            raise typer.Exit(EXIT_INPUTS_FAILED)


def _warn_duplicate(message: str) -> None:
    """A second file for one stem: the user's data to fix, not an unreadable input, so a
    warning and no effect on the exit code."""
    from crossmodal.errors import one_line

    typer.echo(f"warning: {one_line(message)}; it is not predicted", err=True)


# A file name may hold a tab or a line break: escaped, so that each row stays one line of
# tab-separated fields (the backslash too, so that the escapes read back unambiguously).
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _print_table(o: Output, rows) -> int:
    """A table on a terminal (printed when every row is in); tab-separated lines with a header
    for pipes and logs, each written as its row arrives, so `predict ... | head` shows the
    first rows at once and memory stays bounded however many inputs there are."""
    from crossmodal.predict import unread

    header = ["image", "audio", "label", "probability", "top_k"]
    table = None
    if o.quiet:
        pass
    elif o.out.is_terminal:
        from rich.table import Table

        table = Table(*header)
    else:
        _write_tsv(header)
    failed = 0
    for row in rows:
        failed += unread(row)
        if "warning" in row and not o.quiet:  # predicted from the other file; no column for it
            typer.echo(f"warning: {row['warning']} (predicted without it)", err=True)
        if o.quiet:
            continue
        if "error" in row:
            fields = [row.get("image") or "-", row.get("audio") or "-", "ERROR", "", row["error"]]
        else:
            top = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in row["top_k"])
            fields = [
                row["image"] or "-",
                row["audio"] or "-",
                row["label"],
                "-" if row["probability"] is None else f"{row['probability']:.4f}",
                top,
            ]
        if table is not None:
            from rich.text import Text

            table.add_row(*(Text(f) for f in fields))  # names are text, never markup
        else:
            _write_tsv(fields)
    if table is not None:
        o.out.print(table)
    return failed


def _write_tsv(fields: list[str]) -> None:
    line = "\t".join(f.translate(_TSV_ESCAPES) for f in fields) + "\n"
    sys.stdout.buffer.write(line.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()
