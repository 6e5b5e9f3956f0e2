"""crossmodal preprocess DATA --out PREP [--num-shards N --shard-index I]"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import Channels, ClipSeconds, ImageSize, Json, Quiet, SampleRate, Workers
from cli.output import Output, handled, parse_size, quiet_tensorflow_if_remote


def preprocess(
    data: Annotated[
        Path,
        typer.Argument(help="Folder DATA/<label>/<stem>.<ext> or a manifest (also gs://, s3://)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the records (also gs://, s3://).")
    ],
    image_size: ImageSize = None,
    channels: Channels = None,
    clip_seconds: ClipSeconds = None,
    sample_rate: SampleRate = 16_000,
    workers: Workers = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if any file could not be used.")
    ] = False,
    num_shards: Annotated[
        int,
        typer.Option(
            "--num-shards", min=1, help="Split the work into N parallel jobs (one part each)."
        ),
    ] = 1,
    shard_index: Annotated[
        int,
        typer.Option(
            "--shard-index",
            min=0,
            help="Which job this is, 0..N-1: writes PREP/part-0000I-of-0000N/.",
        ),
    ] = 0,
    json_output: Json = False,
    quiet: Quiet = False,
) -> None:
    """Decode, resize and resample every pair into sharded records plus dataset.json.

    With --num-shards N, N jobs (--shard-index 0..N-1, e.g. a cluster's job array) each write
    PREP/part-0000I-of-0000N/ (part-00003-of-00008); training on PREP reads their union once
    every part is there."""
    size = parse_size(image_size)
    o = Output(quiet=quiet, json_mode=json_output)
    with handled(o):
        from crossmodal.data.preprocess import PrepSettings, empty_classes
        from crossmodal.data.preprocess import preprocess as run
        from crossmodal.errors import one_line

        quiet_tensorflow_if_remote(data, out)

        settings = PrepSettings(
            sample_rate=sample_rate,
            height=size[0] if size else None,
            width=size[1] if size else None,
            channels=channels,
            clip_seconds=clip_seconds,
        )
        with o.progress() as progress:
            prep = run(
                data,
                out,
                settings=settings,
                workers=workers,
                progress=progress,
                strict=strict,
                num_shards=num_shards,
                shard_index=shard_index,
            )
        info = prep.info
        for note in prep.notes:
            # a warning about the data goes to stderr, as other warnings do
            warning = note.startswith("warning: ")
            say(o, note if warning else f"note: {note}", err=warning)
        say(o, summary_line(info, prep.path, prep.reused))
        empty = empty_classes(info)
        if empty and not quiet:
            typer.echo(
                f"warning: class(es) {one_line(', '.join(empty))} have no usable sample (every "
                "file of theirs failed to decode, listed as skipped); training refuses them",
                err=True,
            )
        for item in info["skipped"][:20]:
            say(o, f"  skipped {item['path']}: {item['reason']}")
        if len(info["skipped"]) > 20:
            say(o, f"  ... and {len(info['skipped']) - 20} more (see dataset.json)")
        o.result({**info, "path": str(prep.path), "reused": prep.reused, "notes": prep.notes})


def say(o: Output, text: str, *, err: bool = False) -> None:
    """Like Output.info, for text holding file names: they are printed as they are (no rich
    markup or emoji codes read into "a[/b].png" or "a:smile:.png"), on one line (a newline in
    a name is escaped, a long line is not wrapped), and safely when a name is not UTF-8 (Python
    keeps such bytes as lone surrogates, which a strict terminal encoding refuses). `err`:
    on stderr, as a warning is."""
    from crossmodal.errors import one_line

    if o.quiet:
        return
    text = one_line(text).encode("utf-8", "backslashreplace").decode("utf-8")
    console = o.err if o.json_mode or err else o.out
    console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)


def summary_line(info: dict, path: Path, reused: bool) -> str:
    counts = info["counts"]
    img, aud = info["image"], info["audio"]
    verb = "up to date" if reused else "wrote"
    return (
        f"{verb} {path}: {info['num_samples']} samples in {len(info['classes'])} classes "
        f"({counts['both']} pair{'' if counts['both'] == 1 else 's'}, "
        f"{counts['image'] - counts['both']} image only, "
        f"{counts['audio'] - counts['both']} audio only, {info['num_unlabeled']} unlabeled); "
        f"images {img['height']}x{img['width']}x{img['channels']}, audio {aud['clip_seconds']} s "
        f"at {aud['sample_rate']} Hz; {len(info['skipped'])} file(s) skipped, "
        f"{len(info['ignored'])} ignored"
    )
