"""The corruption tools behind the shifted test sets."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from tiny import make_dataset

from crossmodal.errors import CrossmodalError
from crossmodal.robustness import corrupt_folder, corrupt_image, mix_at_snr, pink_noise


def test_mix_at_snr_hits_the_ratio():
    rng = np.random.default_rng(0)
    signal = np.sin(np.arange(16000) / 7.0)
    for snr in (-5.0, 5.0, 20.0):
        mixed = mix_at_snr(signal, pink_noise(16000, rng), snr)
        measured = 10 * np.log10(np.mean(signal**2) / np.mean((mixed - signal) ** 2))
        assert abs(measured - snr) < 1e-6


def test_pink_noise_has_falling_spectrum():
    noise = pink_noise(1 << 15, np.random.default_rng(1))
    power = np.abs(np.fft.rfft(noise)) ** 2
    low, high = power[10:100].mean(), power[5000:10000].mean()
    assert low > 20 * high


def test_corrupt_image_noises_and_occludes():
    flat = np.full((28, 28), 200, np.uint8)
    out = corrupt_image(flat, np.random.default_rng(2), noise_std=20, patch_fraction=0.5)
    assert out.shape == flat.shape and out.dtype == np.uint8
    assert np.sum(out == 128) >= 14 * 14  # the patch
    assert np.std(out[out != 128].astype(float)) > 5  # the noise


def test_corrupt_folder_keeps_names_labels_and_lengths(tmp_path):
    src = make_dataset(tmp_path / "src", per_class=3)
    dst = corrupt_folder(src, tmp_path / "dst", snr_db=5, seed=0)
    for f in src.rglob("*.*"):
        twin = dst / f.relative_to(src)
        assert twin.exists(), twin
        if f.suffix == ".wav":
            a, ra = sf.read(f)
            b, rb = sf.read(twin)
            assert ra == rb and len(a) == len(b) and not np.allclose(a, b)
        else:
            assert Image.open(twin).size == Image.open(f).size


def test_corrupt_folder_keeps_ogg_sounds_and_palette_colour(tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    rate = 16000
    sf.write(src / "x.ogg", 0.3 * np.sin(np.arange(rate // 2) / 5.0), rate)  # Ogg Vorbis
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (255, 0, 0)  # half red, half black
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(src / "x.png")
    dst = corrupt_folder(tmp_path / "src", tmp_path / "dst", snr_db=10, seed=0)
    wave, got_rate = sf.read(dst / "a" / "x.ogg")
    assert got_rate == rate and len(wave) == rate // 2
    with Image.open(dst / "a" / "x.png") as im:
        assert im.mode == "RGB"  # the palette's colour kept, not turned grey


def test_corrupt_folder_refuses_to_overwrite_data(tmp_path):
    src = make_dataset(tmp_path / "src", per_class=1)
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    for dst, words in (
        (src, "overlaps"),
        (src / "inside", "overlaps"),
        (tmp_path, "overlaps"),  # a folder around the source
        (busy, "not an empty folder"),
    ):
        with pytest.raises(CrossmodalError, match=words):
            corrupt_folder(src, dst)
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before
    assert (busy / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert corrupt_folder(src, tmp_path / "empty") == tmp_path / "empty"  # an empty folder is fine
    assert (
        sorted(p.relative_to(tmp_path / "empty") for p in (tmp_path / "empty").rglob("*")) == before
    )


def test_corrupt_folder_leaves_no_partial_copy(tmp_path):
    src = make_dataset(tmp_path / "src", per_class=2)
    broken = next(src.rglob("*.wav"))
    broken.write_bytes(b"RIFF, but not a sound")  # read after its pair's image was written
    with pytest.raises(sf.LibsndfileError):
        corrupt_folder(src, tmp_path / "dst")
    assert not (tmp_path / "dst").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temporary folder left either
