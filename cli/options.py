"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

# TF-free, and imported for --help already (cli.train reads MAX_MEMBERS)
from crossmodal.config import MAX_CLIP_SECONDS, MAX_SAMPLE_RATE

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Json = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")
]
Workers = Annotated[
    int | None, typer.Option("--workers", min=1, help="Decoding processes (default: all cores).")
]
ImageSize = Annotated[
    str | None,
    typer.Option("--image-size", help="Resize images to HEIGHTxWIDTH (default: inferred)."),
]


def _one_or_three(value: int | None) -> int | None:
    if value not in (None, 1, 3):
        raise typer.BadParameter(f"{value} is not 1 or 3")
    return value


Channels = Annotated[
    int | None,
    typer.Option(
        "--channels", help="1 (grayscale) or 3 (RGB) (default: inferred).", callback=_one_or_three
    ),
]
ClipSeconds = Annotated[
    float | None,
    typer.Option(
        "--clip-seconds",
        min=0.05,
        max=MAX_CLIP_SECONDS,
        help="Pad/crop audio to this length (default: inferred).",
    ),
]
SampleRate = Annotated[
    int,
    typer.Option(
        "--sample-rate",
        min=1000,
        max=MAX_SAMPLE_RATE,
        help="Resample all audio to this rate, in Hz.",
    ),
]
MODALITY_CHOICES = ("both", "image", "audio")  # crossmodal.inference.MODALITIES, TF-free


def _modality(value: str) -> str:
    if value not in MODALITY_CHOICES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(MODALITY_CHOICES)}")
    return value


Modality = Annotated[
    str,
    typer.Option(
        "--modality",
        callback=_modality,
        help="both, image or audio: remove the other modality from every sample.",
    ),
]
