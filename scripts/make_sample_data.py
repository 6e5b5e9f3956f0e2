"""Generate a small, deterministic paired image+sound data set for crossmodal.

Design
------
Four classes are built so that each modality on its own is ambiguous for some
classes, while the two together identify every class:

    label          image      sound
    circle_low     circle     low tone  (~220 Hz)
    circle_high    circle     high tone (~660 Hz)
    square_high    square     high tone (~660 Hz)
    triangle_mid   triangle   mid tone  (~392 Hz)

An image-only model cannot tell circle_low from circle_high, and an audio-only
model cannot tell circle_high from square_high, so each single modality caps
near 75% accuracy; a fused model can reach ~100%.

Layout: ``<out>/<label>/<stem>.png`` and ``<out>/<label>/<stem>.wav``; files
sharing a stem in one label folder form one pair.  Stems are
``s{session}_{index:03d}``, with ``index`` running over the whole data set
(so stems are unique across folders) and ``session`` (1..4) assigned
round-robin, so a group split on ``^(s\\d+)_`` can hold out a session.  Two lone
files exercise missing modalities: ``circle_low/s1_lone_image.png`` (no sound)
and ``triangle_mid/s2_lone_audio.wav`` (no image).

Images are 32x32 grayscale ("L") PNGs: a bright shape on a dark background of
random brightness, with random position (always fully inside), circumradius
7..12 px, random rotation (square/triangle), filled, drawn at 4x
and downsampled for smooth edges, then Gaussian pixel noise (sigma 10).

Sounds are mono 16-bit PCM WAVs at 8000 Hz (deliberately not 16 kHz, so the
tool's resampler is exercised), 0.35..0.65 s long: a fundamental with +-3%
jitter plus 2-3 weaker harmonics, an attack/decay envelope, 0..0.1 s of
leading silence, white noise at a random 10..25 dB SNR, and a random peak
level of 0.3..0.9.

Every file gets its own random generator derived from ``--seed`` and the
file's position, so output is byte-for-byte reproducible.  Only numpy,
pillow and soundfile are used.

Usage::

    python scripts/make_sample_data.py [--seed 0] [--per-class 40] [--out DIR]

The output folder is deleted and rewritten, but only if it holds nothing
except .png/.wav/.md files (i.e. what this script makes); otherwise the
script refuses.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
SUPERSAMPLE = 4
SAMPLE_RATE = 8000
N_SESSIONS = 4
ALLOWED_SUFFIXES = {".png", ".wav", ".md"}
DEFAULT_PER_CLASS = 40  # keeps the folder under ~2.5 MB on disk (du -sh)

# label -> (shape, nominal fundamental in Hz)
CLASSES: dict[str, tuple[str, float]] = {
    "circle_low": ("circle", 220.0),
    "circle_high": ("circle", 660.0),
    "square_high": ("square", 660.0),
    "triangle_mid": ("triangle", 392.0),
}
TONE_NAMES = {220.0: "low", 392.0: "mid", 660.0: "high"}

LONE_IMAGE = ("circle_low", "s1_lone_image")
LONE_AUDIO = ("triangle_mid", "s2_lone_audio")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sample_data"


# --------------------------------------------------------------------- images
def make_image(shape: str, rng: np.random.Generator) -> Image.Image:
    """Draw one noisy 32x32 grayscale shape image."""
    radius = rng.uniform(7.0, 12.0)
    margin = radius + 1.0
    cx = rng.uniform(margin, IMAGE_SIZE - margin)
    cy = rng.uniform(margin, IMAGE_SIZE - margin)
    background = int(rng.integers(10, 61))
    foreground = int(rng.integers(180, 251))
    filled = True  # filled shapes: a small training set learns them in a minute
    width = 1

    s = SUPERSAMPLE
    big = Image.new("L", (IMAGE_SIZE * s, IMAGE_SIZE * s), background)
    draw = ImageDraw.Draw(big)
    fill = foreground if filled else None
    if shape == "circle":
        box = [(cx - radius) * s, (cy - radius) * s, (cx + radius) * s, (cy + radius) * s]
        draw.ellipse(box, fill=fill, outline=foreground, width=width * s)
    else:
        n_vertices = {"square": 4, "triangle": 3}[shape]
        theta = rng.uniform(0.0, 2.0 * np.pi)
        angles = theta + 2.0 * np.pi * np.arange(n_vertices) / n_vertices
        points = [((cx + radius * np.cos(a)) * s, (cy + radius * np.sin(a)) * s) for a in angles]
        if filled:
            draw.polygon(points, fill=foreground)
        else:
            draw.line(points + points[:1], fill=foreground, width=width * s, joint="curve")
    small = big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)

    pixels = np.asarray(small, dtype=np.float64)
    pixels = pixels + rng.normal(0.0, 10.0, pixels.shape)
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="L")


# ---------------------------------------------------------------------- audio
def make_tone(base_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Synthesize one noisy harmonic tone as float32 samples in [-1, 1]."""
    duration = rng.uniform(0.35, 0.65)
    n_total = int(round(duration * SAMPLE_RATE))
    offset = int(round(rng.uniform(0.0, 0.1) * SAMPLE_RATE))
    n_tone = n_total - offset

    f0 = base_hz * rng.uniform(0.97, 1.03)
    t = np.arange(n_tone) / SAMPLE_RATE
    tone = np.sin(2.0 * np.pi * f0 * t + rng.uniform(0.0, 2.0 * np.pi))
    n_harmonics = int(rng.integers(2, 4))  # 2 or 3 overtones
    for k in range(2, n_harmonics + 2):
        if k * f0 >= 0.45 * SAMPLE_RATE:
            break
        amp = rng.uniform(0.1, 0.5) / (k - 1)  # always weaker than f0
        tone += amp * np.sin(2.0 * np.pi * k * f0 * t + rng.uniform(0.0, 2.0 * np.pi))

    # Linear attack, exponential decay, short release so the end does not click.
    attack = max(1, int(rng.uniform(0.005, 0.03) * SAMPLE_RATE))
    decay_tau = rng.uniform(0.15, 0.5)
    envelope = np.exp(-np.maximum(t - attack / SAMPLE_RATE, 0.0) / decay_tau)
    envelope[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    release = min(int(0.01 * SAMPLE_RATE), n_tone)
    envelope[n_tone - release :] *= np.linspace(1.0, 0.0, release)
    tone *= envelope

    signal = np.zeros(n_total)
    signal[offset:] = tone
    snr_db = rng.uniform(10.0, 25.0)
    signal_power = np.mean(tone**2)
    noise_power = signal_power / (10.0 ** (snr_db / 10.0))
    signal += rng.normal(0.0, np.sqrt(noise_power), n_total)

    peak = rng.uniform(0.3, 0.9)
    signal *= peak / np.max(np.abs(signal))
    return signal.astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> None:
    sf.write(str(path), samples, SAMPLE_RATE, subtype="PCM_16")


# -------------------------------------------------------------------- helpers
def file_rng(seed: int, *key: int) -> np.random.Generator:
    """Independent generator per file, so each file depends only on its key."""
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def check_output_folder(out: Path) -> None:
    """Exit with a one-line error unless ``out`` is safe to delete."""
    if not out.exists():
        return
    if not out.is_dir():
        sys.exit(f"error: {out} exists and is not a directory; refusing to touch it")
    for path in out.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            continue
        if path.suffix.lower() not in ALLOWED_SUFFIXES or path.is_symlink():
            sys.exit(
                f"error: {out} contains {path.relative_to(out)}, which this "
                "script does not make; refusing to delete it"
            )


def write_readme(out: Path, seed: int, per_class: int, counts: dict[str, tuple[int, int]]) -> None:
    command = "python scripts/make_sample_data.py"
    if seed != 0:
        command += f" --seed {seed}"
    if per_class != DEFAULT_PER_CLASS:
        command += f" --per-class {per_class}"
    if out.resolve() != DEFAULT_OUT:
        command += f" --out {out}"

    rows = []
    for label, (shape, hz) in CLASSES.items():
        n_png, n_wav = counts[label]
        rows.append(
            f"| `{label}` | {shape} | {TONE_NAMES[hz]} (~{hz:.0f} Hz) | {n_png} | {n_wav} |"
        )
    total_png = sum(c[0] for c in counts.values())
    total_wav = sum(c[1] for c in counts.values())
    n_pairs = per_class * len(CLASSES)

    text = f"""# crossmodal sample data

Synthetic paired image+sound data set, generated by `scripts/make_sample_data.py`
(see its docstring for the full design). Regenerate with:

```
{command}
```

Seed {seed}, {per_class} pairs per class, {n_pairs} pairs in total.

## Classes

Each modality alone is ambiguous for some classes; together they are not.
Image-only and audio-only classifiers cap near 75% accuracy, fused ~100%.

| label | image | sound | .png | .wav |
|---|---|---|---|---|
{chr(10).join(rows)}
| **total** | | | {total_png} | {total_wav} |

- The image cannot separate `circle_low` from `circle_high`.
- The sound cannot separate `circle_high` from `square_high`.

## Layout

`<label>/<stem>.png` + `<label>/<stem>.wav` with the same stem form one pair.
Stems are `s{{session}}_{{index:03d}}`: `index` is unique over the whole set and
`session` (1..{N_SESSIONS}) is assigned round-robin, so a group split with the
regex `^(s\\d+)_` can hold out a session.

Two lone files exercise missing modalities:

- `{LONE_IMAGE[0]}/{LONE_IMAGE[1]}.png`: image with no sound.
- `{LONE_AUDIO[0]}/{LONE_AUDIO[1]}.wav`: sound with no image.

## Formats

- Images: {IMAGE_SIZE}x{IMAGE_SIZE} grayscale ("L") PNG; bright shape on a
  dark background of random brightness; random position, size (circumradius
  7..12 px) and rotation, filled; Gaussian pixel noise (sigma 10).
- Sounds: mono 16-bit PCM WAV at **{SAMPLE_RATE} Hz** (not 16 kHz, so the
  resampler is exercised), 0.35..0.65 s; fundamental with +-3% jitter plus 2-3
  weaker harmonics, attack/decay envelope, 0..0.1 s leading silence, white noise
  at 10..25 dB SNR, peak level 0.3..0.9.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--per-class",
        type=int,
        default=DEFAULT_PER_CLASS,
        help=f"image+sound pairs per class (default: {DEFAULT_PER_CLASS})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error("--per-class must be at least 1")
    if args.seed < 0:
        parser.error("--seed must be non-negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    check_output_folder(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    counts: dict[str, tuple[int, int]] = {}
    index = 0
    for label, (shape, hz) in CLASSES.items():
        folder = out / label
        folder.mkdir()
        for _ in range(args.per_class):
            stem = f"s{index % N_SESSIONS + 1}_{index:03d}"
            make_image(shape, file_rng(args.seed, index, 0)).save(folder / f"{stem}.png")
            write_wav(folder / f"{stem}.wav", make_tone(hz, file_rng(args.seed, index, 1)))
            index += 1
        counts[label] = (args.per_class, args.per_class)

    label, stem = LONE_IMAGE
    shape = CLASSES[label][0]
    make_image(shape, file_rng(args.seed, index, 0)).save(out / label / f"{stem}.png")
    counts[label] = (counts[label][0] + 1, counts[label][1])
    label, stem = LONE_AUDIO
    write_wav(
        out / label / f"{stem}.wav", make_tone(CLASSES[label][1], file_rng(args.seed, index, 1))
    )
    counts[label] = (counts[label][0], counts[label][1] + 1)

    write_readme(out, args.seed, args.per_class, counts)
    n_files = sum(a + b for a, b in counts.values())
    print(f"wrote {n_files} files ({index} pairs + 2 lone) and README.md to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
