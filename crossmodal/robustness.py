"""Shifted test sets: the same samples, corrupted the way real data differs from training data.

Images get Gaussian pixel noise and an occluding patch; sounds get background noise mixed in at a
chosen signal-to-noise ratio. The background is, by default, "babble": other recordings from
the same folder, summed, the hardest realistic noise for speech; `noise="pink"` uses synthetic
1/f noise instead. Used by the robustness acceptance test and available to users:

    from crossmodal.robustness import corrupt_folder
    corrupt_folder("data/test", "data/test-noisy", snr_db=5, seed=0)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from crossmodal import fsio
from crossmodal.data.decode import _is_grayscale, upright
from crossmodal.data.scan import IMAGE_EXTENSIONS, scan_folder
from crossmodal.errors import CrossmodalError


def corrupt_image(
    pixels: np.ndarray,
    rng: np.random.Generator,
    *,
    noise_std: float = 40.0,
    patch_fraction: float = 0.3,
) -> np.ndarray:
    """uint8 [H, W(, C)]: add N(0, noise_std) noise, then a random square patch of mid gray
    whose side is `patch_fraction` of the shorter side."""
    img = pixels.astype(np.float64) + rng.normal(0.0, noise_std, pixels.shape)
    h, w = pixels.shape[:2]
    side = max(1, int(round(patch_fraction * min(h, w))))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    img[top : top + side, left : left + side] = 128.0
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.arange(len(spectrum))
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.std(noise) + 1e-12)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that 10 log10(P_signal / P_noise) = snr_db."""
    p_signal = np.mean(signal**2)
    p_noise = np.mean(noise**2) + 1e-12
    scale = np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return signal + scale * noise


def corrupt_folder(
    src: str | Path,
    dst: str | Path,
    *,
    snr_db: float = 5.0,
    noise: str = "babble",
    image_noise_std: float = 40.0,
    patch_fraction: float = 0.3,
    babble_voices: int = 3,
    seed: int = 0,
) -> Path:
    """Write a corrupted copy of a class-folder dataset (same names, same labels) to `dst`, a
    new or empty folder outside `src`. The copy is built beside `dst` and moved into place when
    complete, so an interrupted call leaves no half-written `dst`."""
    rng = np.random.default_rng(seed)
    src, dst = Path(src), Path(dst)
    _check_destination(src, dst)
    result = scan_folder(src)
    audio_files = [s.audio for s in result.samples if s.audio]
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_corrupted(
            result.samples, audio_files, tmp, rng, snr_db=snr_db, noise=noise,
            image_noise_std=image_noise_std, patch_fraction=patch_fraction,
            babble_voices=babble_voices,
        )  # fmt: skip
        fsio.replace_dir(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _check_destination(src: Path, dst: Path) -> None:
    """Refuse a `dst` that would overwrite data: `src` itself, a folder inside or around it,
    or a folder that already holds files."""
    if not src.is_dir():
        raise CrossmodalError(f"no such folder: {src}")
    a, b = src.resolve(), dst.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise CrossmodalError(f"{dst} overlaps {src}: write the corrupted copy to another folder")
    if dst.is_symlink() or (dst.exists() and (not dst.is_dir() or any(dst.iterdir()))):
        raise CrossmodalError(f"{dst} already exists and is not an empty folder")


def _write_corrupted(
    samples, audio_files, dst: Path, rng, *, snr_db, noise, image_noise_std, patch_fraction,
    babble_voices,
) -> None:  # fmt: skip
    for sample in samples:
        folder = dst / sample.label
        folder.mkdir(parents=True, exist_ok=True)
        if sample.image:
            with Image.open(sample.image) as im:
                mode = "L" if _is_grayscale(im) else "RGB"  # a palette may hold colour
                pixels = np.asarray(upright(im).convert(mode))  # written without its EXIF
            out = Image.fromarray(
                corrupt_image(
                    pixels, rng, noise_std=image_noise_std, patch_fraction=patch_fraction
                ),
                mode,
            )
            suffix = Path(sample.image).suffix
            out.save(
                folder
                / (
                    Path(sample.image).stem
                    + (suffix if suffix.lower() in IMAGE_EXTENSIONS else ".png")
                )
            )
        if sample.audio:
            wave, rate = sf.read(sample.audio, dtype="float64", always_2d=True)
            wave = wave.mean(axis=1)
            if noise == "babble" and len(audio_files) > 1:
                background = np.zeros_like(wave)
                others = [f for f in audio_files if f != sample.audio]
                for pick in rng.choice(
                    len(others), size=min(babble_voices, len(others)), replace=False
                ):
                    other, other_rate = sf.read(others[pick], dtype="float64", always_2d=True)
                    other = other.mean(axis=1)
                    if other_rate != rate:
                        import soxr

                        other = soxr.resample(other, other_rate, rate)
                    other = np.resize(other, wave.shape)  # loop or cut to the same length
                    background += np.roll(other, rng.integers(0, len(other)))
            else:
                background = pink_noise(len(wave), rng)
            mixed = mix_at_snr(wave, background, snr_db)
            peak = np.max(np.abs(mixed))
            if peak > 0.999:
                mixed = mixed * (0.999 / peak)
            name = folder / Path(sample.audio).name
            # 16-bit PCM where the format holds it; Ogg Vorbis and others take their own
            pcm = sf.check_format(name.suffix[1:].upper(), "PCM_16")
            sf.write(name, mixed.astype(np.float32), rate, subtype="PCM_16" if pcm else None)
