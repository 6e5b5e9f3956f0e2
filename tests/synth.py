"""Tiny synthetic media files for tests, written on the fly (no committed binaries).

Import as `from tests.synth import ...` (tests/ is a package). Sizes follow PIL: `size` is
(width, height). Every writer creates missing parent folders and returns the path it wrote.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

# --- audio ---------------------------------------------------------------------------------


def sine(seconds: float, rate: int, freq: float, amplitude: float = 0.5) -> np.ndarray:
    """float32 [round(seconds * rate)] sine starting at phase 0."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(
    path: str | Path,
    data: np.ndarray,
    rate: int,
    *,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write `data` ([frames] or [frames, channels]) with soundfile."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format=format)
    return path


def write_wav(
    path: str | Path,
    seconds: float,
    rate: int,
    freq: float = 440.0,
    channels: int = 1,
    subtype: str = "PCM_16",
    amplitude: float = 0.5,
    format: str | None = None,
) -> Path:
    """A sine of `freq` Hz, the same signal on every channel."""
    wave = sine(seconds, rate, freq, amplitude)
    data = wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)
    return write_audio(path, data, rate, subtype=subtype, format=format)


# --- images --------------------------------------------------------------------------------


def write_image(
    path: str | Path,
    size: tuple[int, int] = (8, 8),
    mode: str = "L",
    value: int | float | tuple = 128,
    *,
    format: str | None = None,
    **save_kwargs,
) -> Path:
    """A uniform image of `mode` filled with `value`; the format follows the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode in ("I;16", "I;16L", "I;16B"):
        img = Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint16))
    else:
        img = Image.new(mode, size, value)
    img.save(path, format=format, **save_kwargs)
    return path


def write_png(
    path: str | Path,
    size: tuple[int, int] = (8, 8),
    mode: str = "L",
    value: int | float | tuple = 128,
) -> Path:
    """A uniform PNG (`size` is (width, height))."""
    return write_image(path, size, mode, value, format="PNG")


def write_palette_png(
    path: str | Path, indices: np.ndarray, palette: Sequence[tuple[int, int, int]], **info
) -> Path:
    """A mode-'P' PNG whose pixels are `indices` [h, w] into `palette` (a list of RGB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(indices, dtype=np.uint8), "P")
    img.putpalette([c for rgb in palette for c in rgb])
    img.save(path, format="PNG", **info)
    return path


def write_array_image(path: str | Path, array: np.ndarray, mode: str | None = None) -> Path:
    """Save a uint8 array ([h, w] or [h, w, c]) as an image; the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)
    return path


def write_text(path: str | Path, text: str = "this is not media\n") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def touch(path: str | Path) -> Path:
    """An empty file (scanning never reads content, so empty media files are enough)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def settle(root: str | Path, seconds_ago: float = 60.0) -> Path:
    """Date `root` and every folder under it `seconds_ago`: the scan then trusts their mtimes
    (a folder changed within the last couple of seconds may still change unseen)."""
    root = Path(root)
    when = int((time.time() - seconds_ago) * 1e9)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.utime(folder, ns=(when, when))
    return root


# --- datasets ------------------------------------------------------------------------------


def make_folder_dataset(
    root: str | Path,
    classes: Iterable[str],
    per_class: int,
    *,
    image: bool = True,
    audio: bool = True,
    size: tuple[int, int] = (8, 8),
    mode: str = "L",
    seconds: float = 0.1,
    rate: int = 8_000,
    stem: str = "s{i:03d}",
) -> Path:
    """DATA/<class>/<stem>.png + .wav; class k's images have value 40*(k+1) (mode 'L')."""
    root = Path(root)
    for k, label in enumerate(classes):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            name = stem.format(i=i, label=label)
            if image:
                value = 40 * (k + 1) if mode in ("L", "P") else (40 * (k + 1),) * len(mode)
                write_png(root / label / f"{name}.png", size, mode, value)
            if audio:
                write_wav(root / label / f"{name}.wav", seconds, rate, 220.0 * (k + 1))
    return root


def write_csv(path: str | Path, rows: list[dict], columns: Sequence[str] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(columns or (rows[0].keys() if rows else ["image", "audio", "label"]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


# --- hostile files -------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return (
        len(data).to_bytes(4, "big")
        + kind
        + data
        + (zlib.crc32(kind + data) & 0xFFFFFFFF).to_bytes(4, "big")
    )


def write_bomb_png(path: str | Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims `width` x `height` 8-bit gray pixels (a decompression
    bomb as a decoder sees it: the header alone must make it refuse, before any pixel)."""
    import zlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    idat = zlib.compress(b"\x00" * 1024)  # far too little data: it never gets that far
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )
    return path


def write_corrupt_png(path: str | Path, size: tuple[int, int] = (8, 8)) -> Path:
    """A PNG with a valid header (it probes fine) and garbage pixel data (it cannot decode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"this is not zlib data at all")
        + png_chunk(b"IEND", b"")
    )
    return path


def truncate(path: str | Path, keep: int | float) -> Path:
    """Cut a file to `keep` bytes (an int) or to that fraction of its size (a float)."""
    path = Path(path)
    data = path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:n])
    return path


def write_long_wav(
    path: str | Path, seconds: float, rate: int = 8_000, chunk_seconds: float = 30.0
) -> Path:
    """A long 16-bit mono WAV written chunk by chunk (never held in memory whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = sine(chunk_seconds, rate, 440.0, 0.3)
    total = int(round(seconds * rate))
    with sf.SoundFile(str(path), "w", rate, 1, subtype="PCM_16", format="WAV") as f:
        written = 0
        while written < total:
            part = chunk[: total - written]
            f.write(part)
            written += len(part)
    return path


def write_animated_gif(
    path: str | Path,
    colours: Sequence[tuple[int, int, int]] = ((255, 0, 0), (0, 0, 255), (0, 255, 0)),
    size: tuple[int, int] = (8, 8),
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.new("RGB", size, c) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path
