"""crossmodal train DATA --out MODEL"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.options import Channels, ClipSeconds, ImageSize, Json, Quiet, SampleRate, Workers
from cli.output import Output, handled, parse_size, quiet_tensorflow


def train(
    data: Annotated[Path, typer.Argument(help="Folder, manifest, or a preprocessed folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Stratified validation fraction.")
    ] = 0.15,
    val_dir: Annotated[
        Path | None, typer.Option(help="Validate on this folder/manifest instead of a split.")
    ] = None,
    group_regex: Annotated[
        str | None,
        typer.Option(
            help=r"Group split: regex on the stem, first group names the group, e.g. '^([a-z]+)_'."
        ),
    ] = None,
    val_group: Annotated[
        list[str] | None, typer.Option(help="Hold out this group for validation (repeatable).")
    ] = None,
    fusion: Annotated[str, typer.Option(help="concat, late, gated or conv.")] = "concat",
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.95)] = 0.3,
    modality_dropout: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Chance to hide one modality of a pair while training."
        ),
    ] = 0.25,
    patience: Annotated[int, typer.Option(min=1, help="Early-stopping patience, epochs.")] = 6,
    augment: Annotated[bool, typer.Option(help="Training-time augmentation.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for splits, initialization and shuffling.")] = 0,
    image_size: ImageSize = None,
    channels: Channels = None,
    clip_seconds: ClipSeconds = None,
    sample_rate: SampleRate = 16_000,
    workers: Workers = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
    json_output: Json = False,
    quiet: Quiet = False,
) -> None:
    """Train a fused image+audio classifier and write a self-contained model folder."""
    size = parse_size(image_size)
    o = Output(quiet=quiet, json_mode=json_output)
    with handled(o):
        from crossmodal.config import (
            AudioConfig,
            AugmentConfig,
            ModelConfig,
            RunConfig,
            TrainConfig,
        )

        cfg = RunConfig(
            audio=AudioConfig(sample_rate=sample_rate),
            augment=AugmentConfig(enabled=augment),
            model=ModelConfig(fusion=fusion, dropout=dropout, modality_dropout=modality_dropout),
            train=TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                weight_decay=weight_decay,
                patience=patience,
                val_fraction=val_fraction,
                val_dir=str(val_dir) if val_dir else None,
                group_regex=group_regex,
                val_groups=tuple(val_group or ()),
                seed=seed,
            ),
        )
        quiet_tensorflow()
        from crossmodal.train import train as run

        start = time.time()

        def on_epoch(epoch: int, total: int, logs: dict) -> None:
            parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "learning_rate")
            o.info(f"epoch {epoch}/{total} {parts} ({time.time() - start:.0f}s)")

        with o.progress() as progress:
            result = run(
                data,
                out,
                config=cfg,
                image_size=size,
                channels=channels,
                clip_seconds=clip_seconds,
                overwrite=overwrite,
                workers=workers,
                progress=progress,
                on_epoch=on_epoch,
            )
        o.info(f"wrote {result.model_dir} in {result.seconds:.0f}s ({len(result.history)} epochs)")
        for modality, m in result.metrics.items():
            scores = f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}"
            o.info(f"  validation {modality:>5}: {scores}")
        o.result(
            {
                "model_dir": str(result.model_dir),
                "seconds": round(result.seconds, 2),
                "epochs": len(result.history),
                "split": result.split,
                "validation": {
                    k: {key: v[key] for key in ("accuracy", "macro_f1", "num_samples")}
                    for k, v in result.metrics.items()
                },
                "config": dataclasses.asdict(result.config),
            }
        )
