"""A tiny paired dataset for end-to-end tests, where fusion is required by construction.

Three classes a, b, c. Classes a and b share the very same images (so image-only accuracy on
them is at most one half), classes a and c share the very same sounds. Audio is written at
16 kHz and images at 16x16 grayscale, the model's own shapes, so a bare SavedModel client needs
no resizing or resampling to reproduce `crossmodal predict`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from crossmodal.config import ModelConfig, RunConfig, TrainConfig

RATE = 16_000
SIZE = 16
CLASSES = ("a", "b", "c")
IMAGE_OF = {"a": "disc", "b": "disc", "c": "bar"}
SOUND_OF = {"a": 300.0, "b": 1200.0, "c": 300.0}


def _image(kind: str, k: int) -> np.ndarray:
    rng = np.random.default_rng(1000 * (kind == "bar") + k)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    disc = (yy - 8) ** 2 + (xx - 8) ** 2 < 25
    mask = disc if kind == "disc" else (xx > 6) & (xx < 10)
    img = np.where(mask, 220, 30) + rng.normal(0, 12, (SIZE, SIZE))
    return np.clip(img, 0, 255).astype(np.uint8)


def _sound(freq: float, k: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(int(freq) * 100 + k)
    t = np.arange(int(RATE * seconds)) / RATE
    wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.normal(size=t.size)
    return wave.astype(np.float32)


def make_dataset(root: Path, per_class: int = 8, seconds: float = 0.25) -> Path:
    for label in CLASSES:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            stem = f"g{k % 2}_{label}{k}"
            Image.fromarray(_image(IMAGE_OF[label], k), "L").save(folder / f"{stem}.png")
            sf.write(folder / f"{stem}.wav", _sound(SOUND_OF[label], k, seconds), RATE)
    return root


# One network, to keep training tests fast.
SMALL = ModelConfig(embed_dim=16, filters=(8, 16), audio_filters=(8, 16), shared_dim=8, members=1)


def tiny_config(**train_overrides):
    """A small network (one member: the ensemble default has tests of its own) and a short,
    seeded run for the tiny data."""
    fields = {"epochs": 4, "batch_size": 8, "val_fraction": 0.25, "seed": 5, "patience": 10}
    return RunConfig(model=SMALL, train=TrainConfig(**{**fields, **train_overrides}))
