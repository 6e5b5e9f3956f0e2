"""crossmodal evaluate MODEL DATA --out REPORT"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import Json, Modality, Quiet, Workers
from cli.output import Output, handled, quiet_tensorflow, quiet_tensorflow_if_remote


def evaluate(
    model: Annotated[Path, typer.Argument(help="A model folder written by `crossmodal train`.")],
    data: Annotated[Path, typer.Argument(help="Labeled folder, manifest or preprocessed folder.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write metrics.json, report.md, report.html, confusion.png here."
        ),
    ] = None,
    modality: Modality = "both",
    fail_under: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Exit 2 when accuracy is below this (for CI)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    workers: Workers = None,
    json_output: Json = False,
    quiet: Quiet = False,
) -> None:
    """Measure a model on labeled data: accuracy, precision, recall, F1, confusion, ablation."""
    from crossmodal.errors import ThresholdNotMet

    o = Output(quiet=quiet, json_mode=json_output)
    with handled(o):
        from crossmodal.artifacts import open_model_dir
        from crossmodal.errors import one_line
        from crossmodal.evaluate import check_report_dir

        quiet_tensorflow_if_remote(model, data, out)
        open_model_dir(model)  # a wrong path or a broken folder: one line, before TensorFlow
        if out is not None:
            check_report_dir(out)
        quiet_tensorflow()
        from crossmodal.evaluate import evaluate as run

        threshold_error = None
        with o.progress() as progress:
            try:
                metrics = run(
                    model,
                    data,
                    out=out,
                    modality=modality,
                    batch_size=batch_size,
                    workers=workers,
                    progress=progress,
                    fail_under=fail_under,
                )
            except ThresholdNotMet as exc:
                threshold_error = exc
                metrics = exc.metrics
        o.info(
            f"{metrics['modality']}: accuracy {metrics['accuracy']:.4f}, macro F1 "
            f"{metrics['macro_f1']:.4f} on {metrics['num_samples']} samples"
        )
        for m, r in metrics.get("ablation", {}).items():
            name = m if m == "both" else f"{m} alone"
            o.info(f"  {name:>11}: accuracy {r['accuracy']:.4f}")  # aligned on the colons
        skipped = metrics.get("skipped_files") or []
        if skipped and not quiet:  # scored without them: say so, as predict does
            first = skipped[0]
            typer.echo(
                f"warning: {len(skipped)} file(s) or row(s) could not be used and were left "
                f"out (such as {one_line(first['path'])}: {one_line(first['reason'])}; all in "
                "metrics.json skipped_files)",
                err=True,
            )
        for warning in [] if quiet else metrics.get("warnings") or []:
            typer.echo(f"warning: {warning}", err=True)
        if metrics.get("num_unlabeled") and not quiet:
            typer.echo(
                f"warning: {metrics['num_unlabeled']} unlabeled sample(s) were not scored",
                err=True,
            )
        if out is not None:
            o.info(f"report in {out}")
        o.result(metrics)
        if threshold_error is not None:
            raise threshold_error
