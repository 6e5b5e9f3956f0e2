"""Tests for crossmodal.data.decode: every image mode and audio format we accept."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from crossmodal.data import decode
from crossmodal.data.decode import (
    DecodeError,
    fit_length,
    probe_audio,
    probe_image,
    read_audio,
    read_image,
)
from crossmodal.errors import CrossmodalError
from tests.synth import (
    sine,
    write_array_image,
    write_audio,
    write_image,
    write_palette_png,
    write_png,
    write_text,
    write_wav,
)


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


# --- images ---------------------------------------------------------------------------------


def test_decode_error_is_a_crossmodal_error():
    assert issubclass(DecodeError, CrossmodalError)


@pytest.mark.parametrize("value", [0, 257, 32_768, 65_535])
def test_16bit_png_scaled_to_8bit(tmp_path, value):
    path = write_png(tmp_path / "deep.png", (5, 3), "I;16", value)
    assert Image.open(path).mode.startswith("I")  # really stored 16-bit
    arr = read_image(str(path), height=3, width=5, channels=1)
    assert arr.dtype == np.uint8 and arr.shape == (3, 5, 1)
    expected = int(value / 65_535 * 255 + 0.5)  # full scale maps to full scale
    assert np.all(arr == expected)
    assert probe_image(str(path)).grayscale


def test_float_image_in_unit_range():
    from crossmodal.data.decode import _to_8bit

    img = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32), "F")
    out = np.asarray(_to_8bit(img, 1))
    np.testing.assert_array_equal(out, [[0, 128], [255, 64]])  # x * 255, rounded


def test_palette_colours(tmp_path):
    palette = [(255, 0, 0), (0, 0, 255), (10, 200, 30)]
    indices = np.array([[0, 1, 2], [2, 1, 0]])
    path = write_palette_png(tmp_path / "p.png", indices, palette)
    assert Image.open(path).mode == "P"
    arr = read_image(str(path), height=2, width=3, channels=3)
    np.testing.assert_array_equal(arr, np.array(palette, dtype=np.uint8)[indices])
    assert not probe_image(str(path)).grayscale


def test_grayscale_palette_detected(tmp_path):
    palette = [(v, v, v) for v in (0, 90, 255)]
    indices = np.array([[0, 1], [2, 1]])
    path = write_palette_png(tmp_path / "g.png", indices, palette)
    assert Image.open(path).mode == "P"
    assert probe_image(str(path)).grayscale
    arr = read_image(str(path), height=2, width=2, channels=1)
    np.testing.assert_array_equal(arr[..., 0], np.array([0, 90, 255])[indices])


def test_palette_with_transparency_composited_on_black(tmp_path):
    palette = [(255, 255, 255), (0, 255, 0)]
    path = write_palette_png(tmp_path / "t.png", np.array([[0, 1]]), palette, transparency=0)
    arr = read_image(str(path), height=1, width=2, channels=3)
    np.testing.assert_array_equal(arr[0], [[0, 0, 0], [0, 255, 0]])


def test_cmyk_jpeg(tmp_path):
    # pure cyan ink, no black: R = 255 - C = 0, G = B = 255
    path = write_image(tmp_path / "c.jpg", (8, 8), "CMYK", (255, 0, 0, 0), quality=95)
    assert Image.open(path).mode == "CMYK"
    arr = read_image(str(path), height=8, width=8, channels=3).astype(int)
    assert np.abs(arr - [0, 255, 255]).max() <= 6  # JPEG is lossy
    assert not probe_image(str(path)).grayscale


def test_rgba_transparent_is_black(tmp_path):
    rgba = np.array(
        [[[255, 0, 0, 0], [0, 255, 0, 255], [255, 255, 255, 128]]], dtype=np.uint8
    )  # transparent red, opaque green, half-transparent white
    path = write_array_image(tmp_path / "a.png", rgba, "RGBA")
    arr = read_image(str(path), height=1, width=3, channels=3).astype(int)
    assert arr[0, 0].tolist() == [0, 0, 0]
    assert arr[0, 1].tolist() == [0, 255, 0]
    assert np.abs(arr[0, 2] - 128).max() <= 1  # 255 * 128/255 over black
    assert not probe_image(str(path)).grayscale


def test_la_alpha_composited(tmp_path):
    la = np.array([[[200, 0], [200, 255]]], dtype=np.uint8)
    path = write_array_image(tmp_path / "la.png", la, "LA")
    assert probe_image(str(path)).grayscale
    arr = read_image(str(path), height=1, width=2, channels=1)
    assert arr[0, :, 0].tolist() == [0, 200]


def test_animated_gif_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (4, 4), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    arr = read_image(str(path), height=4, width=4, channels=3)
    assert np.all(arr == [255, 0, 0])


def test_rgb_to_one_channel_uses_luma(tmp_path):
    path = write_png(tmp_path / "rgb.png", (3, 2), "RGB", (200, 100, 50))
    arr = read_image(str(path), height=2, width=3, channels=1)
    assert arr.shape == (2, 3, 1)
    luma = 200 * 299 / 1000 + 100 * 587 / 1000 + 50 * 114 / 1000  # ITU-R 601-2
    assert np.all(np.abs(arr.astype(int) - luma) <= 1)


def test_gray_to_three_channels(tmp_path):
    path = write_png(tmp_path / "g.png", (3, 2), "L", 77)
    arr = read_image(str(path), height=2, width=3, channels=3)
    assert arr.shape == (2, 3, 3) and np.all(arr == 77)
    info = probe_image(str(path))
    assert (info.width, info.height, info.grayscale) == (3, 2, True)


@pytest.mark.parametrize("mode, value, gray", [("L", 5, True), ("1", 1, True), ("RGB", 5, False)])
def test_probe_grayscale_by_mode(tmp_path, mode, value, gray):
    path = write_png(tmp_path / "x.png", (4, 2), mode, value)
    info = probe_image(str(path))
    assert (info.width, info.height, info.grayscale) == (4, 2, gray)


def test_bilevel_image_to_full_range(tmp_path):
    path = write_png(tmp_path / "b.png", (2, 2), "1", 1)
    assert np.all(read_image(str(path), height=2, width=2, channels=1) == 255)


def test_resize_to_requested_size(tmp_path):
    # 6 wide, 4 high: top half white, bottom half black
    arr = np.zeros((4, 6), dtype=np.uint8)
    arr[:2] = 255
    path = write_array_image(tmp_path / "half.png", arr)
    same = read_image(str(path), height=4, width=6, channels=1)
    np.testing.assert_array_equal(same[..., 0], arr)  # no resize: exact
    out = read_image(str(path), height=8, width=3, channels=1)
    assert out.shape == (8, 3, 1)
    assert np.all(out[0] == 255) and np.all(out[-1] == 0)  # orientation kept (no h/w swap)
    flat = read_image(
        str(write_png(tmp_path / "u.png", (10, 7), "L", 99)), height=3, width=5, channels=1
    )
    assert flat.shape == (3, 5, 1) and np.all(flat == 99)


def test_other_formats(tmp_path):
    for ext in ("bmp", "webp", "gif", "jpg"):
        path = write_image(tmp_path / f"x.{ext}", (4, 3), "RGB", (0, 0, 0))
        arr = read_image(str(path), height=3, width=4, channels=3)
        assert arr.shape == (3, 4, 3) and arr.max() <= 3, ext


def _noise_png(path, side=64):
    rng = np.random.default_rng(0)
    return write_array_image(path, rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_truncated_png(tmp_path):
    path = _noise_png(tmp_path / "full.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError):
        read_image(str(path), height=64, width=64, channels=3)


@pytest.mark.parametrize(
    "content", [b"", b"hello, I am text\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40]
)
def test_unreadable_images(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DecodeError):
        probe_image(str(path))
    with pytest.raises(DecodeError):
        read_image(str(path), height=4, width=4, channels=1)


def test_missing_image_file(tmp_path):
    with pytest.raises(DecodeError):
        read_image(str(tmp_path / "nope.png"), height=4, width=4, channels=1)


@pytest.mark.parametrize(
    "pil_limit, side",
    [
        (100, 12),  # 144 px: above the limit, PIL only warns; the warning must still refuse
        (100, 20),  # 400 px: above twice the limit, PIL raises
        (10**9, 20),  # PIL would accept; decode's own check refuses
    ],
)
def test_decompression_bomb(tmp_path, monkeypatch, pil_limit, side):
    path = write_png(tmp_path / "big.png", (side, side), "L", 1)
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pil_limit)
    with pytest.raises(DecodeError, match="decompression bomb"):
        probe_image(str(path))
    with pytest.raises(DecodeError, match="decompression bomb"):
        read_image(str(path), height=4, width=4, channels=1)


def test_image_under_limit_still_reads(tmp_path, monkeypatch):
    path = write_png(tmp_path / "ok.png", (10, 10), "L", 1)
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_image(str(path), height=10, width=10, channels=1).shape == (10, 10, 1)


# --- audio ----------------------------------------------------------------------------------


def test_fit_length():
    x = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 3), [1, 2, 3])
    np.testing.assert_array_equal(fit_length(x, 7), [1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 5), x)


def test_probe_audio(tmp_path):
    path = write_wav(tmp_path / "s.wav", 0.25, 8_000, channels=2)
    info = probe_audio(str(path))
    assert (info.seconds, info.sample_rate, info.channels) == (0.25, 8_000, 2)


def test_same_rate_is_identity(tmp_path):
    wave = sine(0.1, 8_000, 440.0)
    path = write_audio(tmp_path / "s.wav", wave, 8_000, subtype="FLOAT")
    out = read_audio(str(path), sample_rate=8_000, num_samples=800)
    assert out.dtype == np.float32 and out.shape == (800,)
    np.testing.assert_array_equal(out, wave)


def test_stereo_mixed_to_mono(tmp_path):
    x = sine(0.1, 8_000, 300.0, amplitude=0.8)
    path = write_audio(tmp_path / "st.wav", np.stack([x, -x], axis=1), 8_000, subtype="PCM_16")
    out = read_audio(str(path), sample_rate=8_000, num_samples=800)
    assert np.abs(out).max() < 1e-3  # L + R cancel
    y = sine(0.1, 8_000, 300.0, amplitude=0.6)
    path = write_audio(tmp_path / "avg.wav", np.stack([y, np.zeros_like(y)], axis=1), 8_000)
    np.testing.assert_allclose(
        read_audio(str(path), sample_rate=8_000, num_samples=800), y / 2, atol=1e-4
    )


@pytest.mark.parametrize("src, dst, freq", [(8_000, 16_000, 440.0), (16_000, 8_000, 1_000.0)])
def test_resampling_keeps_pitch_and_scales_length(tmp_path, src, dst, freq):
    seconds = 0.5
    path = write_wav(tmp_path / "s.wav", seconds, src, freq, subtype="FLOAT")
    expected_len = int(seconds * dst)  # length scales by dst / src
    out = read_audio(str(path), sample_rate=dst, num_samples=3 * expected_len)
    nonzero = np.flatnonzero(np.abs(out) > 1e-3)
    assert abs(nonzero[-1] + 1 - expected_len) <= 4
    assert np.all(out[expected_len + 4 :] == 0)  # padding after the resampled clip
    assert abs(peak_hz(out[:expected_len], dst) - freq) <= dst / expected_len  # one FFT bin
    body = out[expected_len // 4 : 3 * expected_len // 4]  # away from the filter's edges
    assert abs(np.sqrt(np.mean(body**2)) - 0.5 / np.sqrt(2)) < 0.01  # amplitude kept


def test_pad_and_crop(tmp_path):
    wave = sine(0.05, 8_000, 440.0)  # 400 samples
    path = write_audio(tmp_path / "s.wav", wave, 8_000, subtype="FLOAT")
    padded = read_audio(str(path), sample_rate=8_000, num_samples=1_000)
    np.testing.assert_array_equal(padded[:400], wave)
    assert np.all(padded[400:] == 0)
    cropped = read_audio(str(path), sample_rate=8_000, num_samples=123)
    np.testing.assert_array_equal(cropped, wave[:123])


def test_nan_and_inf_zeroed(tmp_path):
    wave = sine(0.1, 8_000, 440.0)
    bad = wave.copy()
    bad[[10, 20, 30]] = [np.nan, np.inf, -np.inf]
    path = write_audio(tmp_path / "nan.wav", bad, 8_000, subtype="FLOAT")
    out = read_audio(str(path), sample_rate=8_000, num_samples=800)
    assert np.all(np.isfinite(out))
    assert out[10] == out[20] == out[30] == 0
    keep = np.ones(800, bool)
    keep[[10, 20, 30]] = False
    np.testing.assert_array_equal(out[keep], wave[keep])
    # through the resampler as well: one NaN must not spread over the whole clip
    resampled = read_audio(str(path), sample_rate=16_000, num_samples=1_600)
    assert np.all(np.isfinite(resampled))
    assert np.abs(resampled[800:1500]).max() > 0.4


def test_float_samples_clipped_to_unit_range(tmp_path):
    path = write_audio(
        tmp_path / "loud.wav", np.array([3.0, -2.0, 0.5], np.float32), 8_000, subtype="FLOAT"
    )
    np.testing.assert_array_equal(
        read_audio(str(path), sample_rate=8_000, num_samples=3), [1, -1, 0.5]
    )


@pytest.mark.parametrize(
    "subtype, atol",
    [
        ("PCM_U8", 2 / 2**8),  # one quantization step of 8-bit PCM is 1/128
        ("PCM_16", 2 / 2**16),
        ("PCM_24", 1e-6),
        ("PCM_32", 1e-6),
        ("FLOAT", 0.0),
        ("DOUBLE", 1e-7),
    ],
)
def test_wav_bit_depths(tmp_path, subtype, atol):
    wave = sine(0.05, 8_000, 440.0)
    path = write_audio(tmp_path / "s.wav", wave, 8_000, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype
    out = read_audio(str(path), sample_rate=8_000, num_samples=400)
    np.testing.assert_allclose(out, wave, atol=atol + 1e-7)


@pytest.mark.skipif("FLAC" not in sf.available_formats(), reason="libsndfile without FLAC")
def test_flac(tmp_path):
    wave = sine(0.05, 8_000, 440.0)
    path = write_audio(tmp_path / "s.flac", wave, 8_000, subtype="PCM_16")
    out = read_audio(str(path), sample_rate=8_000, num_samples=400)
    np.testing.assert_allclose(out, wave, atol=2 / 2**16)  # lossless apart from 16-bit


@pytest.mark.skipif("OGG" not in sf.available_formats(), reason="libsndfile without OGG")
def test_ogg_vorbis(tmp_path):
    path = write_wav(tmp_path / "s.ogg", 0.5, 16_000, 440.0, subtype="VORBIS")
    out = read_audio(str(path), sample_rate=16_000, num_samples=8_000)
    assert abs(peak_hz(out, 16_000) - 440.0) <= 2.0  # lossy, but the pitch survives
    assert abs(probe_audio(str(path)).seconds - 0.5) < 0.01


def test_one_sample_file(tmp_path):
    path = write_audio(tmp_path / "one.wav", np.array([0.25], np.float32), 8_000, subtype="FLOAT")
    out = read_audio(str(path), sample_rate=8_000, num_samples=50)
    assert out.shape == (50,)
    assert out[0] == 0.25 and np.all(out[1:] == 0)
    up = read_audio(str(path), sample_rate=16_000, num_samples=50)
    assert up.shape == (50,) and np.all(np.isfinite(up)) and np.all(up[4:] == 0)


@pytest.mark.parametrize("content", [b"", b"RIFF but not really a wave file at all\n"])
def test_unreadable_audio(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DecodeError):
        probe_audio(str(path))
    with pytest.raises(DecodeError):
        read_audio(str(path), sample_rate=8_000, num_samples=100)


def test_text_file_and_missing_audio(tmp_path):
    path = write_text(tmp_path / "notes.flac")
    with pytest.raises(DecodeError):
        read_audio(str(path), sample_rate=8_000, num_samples=100)
    with pytest.raises(DecodeError):
        read_audio(str(tmp_path / "nope.wav"), sample_rate=8_000, num_samples=100)


def test_header_only_wav_has_no_samples(tmp_path):
    path = write_audio(tmp_path / "empty.wav", np.zeros(0, np.float32), 8_000, subtype="PCM_16")
    with pytest.raises(DecodeError, match="no samples"):
        probe_audio(str(path))
    with pytest.raises(DecodeError, match="no samples"):
        read_audio(str(path), sample_rate=8_000, num_samples=100)


def test_truncated_wav(tmp_path):
    """libsndfile reads what is left of a WAV cut short without a word; the header says how
    much was written, and a file that holds less is refused as a truncated image is."""
    path = write_wav(tmp_path / "s.wav", 0.25, 8_000)
    data = path.read_bytes()
    data_at = data.index(b"data") + 8
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    for read in (probe_audio, lambda p: read_audio(p, sample_rate=8_000, num_samples=100)):
        with pytest.raises(DecodeError, match=r"declares 4,000 bytes .* holds 1,\d\d\d"):
            read(str(cut))
    # A length left "unknown" by a streaming writer (0xFFFFFFFF): the samples run to the end
    # of the file, whole; and a file short by less than a frame is whole enough.
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(data[: data_at - 4] + struct.pack("<I", 0xFFFFFFFF) + data[data_at:])
    wave = read_audio(str(streamed), sample_rate=8_000, num_samples=2_000)
    assert np.allclose(wave, read_audio(str(path), sample_rate=8_000, num_samples=2_000))
    short = tmp_path / "short.wav"
    short.write_bytes(data[:-2])
    assert read_audio(str(short), sample_rate=8_000, num_samples=100).shape == (100,)


def test_long_file_read_partially(tmp_path, monkeypatch):
    total = 80_000  # 10 s at 8 kHz
    path = write_audio(tmp_path / "long.wav", np.zeros(total, np.float32), 8_000, subtype="PCM_16")
    calls = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        calls.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    out = read_audio(str(path), sample_rate=16_000, num_samples=1_600)  # 0.1 s
    assert out.shape == (1_600,)
    assert calls, "read_audio did not go through SoundFile.read"
    # 1600 samples at 16 kHz need 800 source frames; allow a filter margin, never the file
    assert all(800 <= f <= 800 + 1_000 for f in calls), calls


# --- header fast paths (probe without the libraries) -----------------------------------------


def _library_probe_image(path) -> decode.ImageInfo:
    with decode._open_image(str(path)) as img:
        return decode.ImageInfo(img.width, img.height, decode._is_grayscale(img))


def _library_probe_audio(path) -> decode.AudioInfo:
    with sf.SoundFile(str(path)) as f:
        return decode.AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels)


@pytest.mark.parametrize(
    "mode, value",
    [
        ("L", 7),
        ("1", 1),
        ("I;16", 300),
        ("LA", (9, 200)),
        ("RGB", (1, 2, 3)),
        ("RGBA", (1, 2, 3, 4)),
    ],
)
def test_png_header_path_agrees_with_pillow(tmp_path, mode, value):
    path = write_png(tmp_path / f"{mode.replace(';', '')}.png", (7, 5), mode, value)
    head = decode._head(str(path))
    assert decode._png_info(head[0]) is not None  # the fast path was taken
    assert probe_image(str(path)) == _library_probe_image(path) == decode._png_info(head[0])


def test_png_header_path_leaves_the_unusual_to_pillow(tmp_path):
    palette = write_palette_png(tmp_path / "p.png", np.eye(4), [(0, 0, 0), (9, 9, 9)])
    assert decode._png_info(decode._head(str(palette))[0]) is None  # the palette decides
    assert probe_image(str(palette)) == _library_probe_image(palette)
    plain = write_png(tmp_path / "plain.png", (7, 5), "L", 7).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(plain[:40])  # IHDR whole, IDAT's header cut
    assert decode._png_info(cut.read_bytes()) is None
    big = bytearray(plain)
    big[16:24] = (100_000).to_bytes(4, "big") * 2  # 10^10 pixels: Pillow's bomb guard decides
    big[29:33] = zlib.crc32(bytes(big[12:29])).to_bytes(4, "big")  # IHDR's CRC, still valid
    assert decode._png_info(bytes(big)) is None
    (tmp_path / "big.png").write_bytes(big)
    with pytest.raises(DecodeError, match="decompression bomb"):
        probe_image(str(tmp_path / "big.png"))


@pytest.mark.parametrize(
    "subtype, channels, fmt",
    [
        ("PCM_16", 1, "WAV"),
        ("PCM_U8", 1, "WAV"),
        ("PCM_24", 2, "WAV"),
        ("PCM_32", 1, "WAV"),
        ("FLOAT", 2, "WAV"),
        ("DOUBLE", 1, "WAV"),
        ("PCM_16", 3, "WAVEX"),
        ("FLOAT", 1, "WAVEX"),
    ],
)
def test_wav_header_path_agrees_with_libsndfile(tmp_path, subtype, channels, fmt):
    path = tmp_path / f"{subtype}-{channels}-{fmt}.wav"
    wave = np.tile(sine(0.3, 11_025, 440)[:, None], (1, channels))
    sf.write(str(path), wave, 11_025, subtype=subtype, format=fmt)
    head = decode._head(str(path))
    assert decode._wav_info(*head) is not None  # the fast path was taken
    assert probe_audio(str(path)) == _library_probe_audio(path) == decode._wav_info(*head)


def test_wav_header_path_leaves_the_unusual_to_libsndfile(tmp_path):
    path = write_wav(tmp_path / "s.wav", 0.25, 8_000)
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # the data chunk claims more than the file holds
    assert decode._wav_info(*decode._head(str(cut))) is None
    with pytest.raises(DecodeError, match="truncated audio file"):  # as a truncated image is
        probe_audio(str(cut))
    adpcm = tmp_path / "adpcm.wav"
    sf.write(str(adpcm), sine(0.3, 8_000, 440), 8_000, subtype="IMA_ADPCM")
    assert decode._wav_info(*decode._head(str(adpcm))) is None
    assert probe_audio(str(adpcm)) == _library_probe_audio(adpcm)
    flac = write_audio(tmp_path / "s.flac", sine(0.25, 8_000, 440), 8_000)
    assert decode._wav_info(*decode._head(str(flac))) is None
    assert probe_audio(str(flac)).sample_rate == 8_000


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    # A phone stores a portrait photo as landscape pixels and EXIF orientation 6 ("rotate 90
    # clockwise to view"); 8 is the other way round.
    arr = np.zeros((20, 40), dtype=np.uint8)  # stored 40 wide, 20 high
    arr[:, :20] = 255  # the stored left half is white
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr, "L").save(path, exif=exif, quality=95)
    info = probe_image(str(path))
    seen = (info.width, info.height)
    out = read_image(str(path), height=seen[1], width=seen[0], channels=1)[..., 0]
    if orientation == 1:
        assert seen == (40, 20) and out[:, :20].mean() > 200 and out[:, 20:].mean() < 50
    else:
        assert seen == (20, 40)
        white_on_top = out[:20].mean() > 200 and out[20:].mean() < 50
        assert white_on_top == (orientation == 6)  # the stored left edge is seen at the top
