"""The in-graph frontends: shapes, physics, and the same numbers eagerly and inside tf.data."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from crossmodal.config import AudioConfig  # noqa: E402
from crossmodal.data.decode import fit_length  # noqa: E402
from crossmodal.features import (  # noqa: E402
    AudioViews,
    CepstralLifter,
    GainNormalization,
    LogMel,
    ScaleImage,
    SpeechCrop,
    fit_image,
    fit_waveform,
    to_channels,
    warp_mel_axis,
)

CFG = AudioConfig(sample_rate=16_000, clip_seconds=0.5, num_mels=40)


def sine(freq: float, seconds: float = 0.5, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def mel_center_hz(cfg: AudioConfig) -> np.ndarray:
    """Centre frequency of each mel band, from the HTK mel formula tf.signal uses."""

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)

    edges = np.linspace(mel(cfg.fmin), mel(cfg.effective_fmax), cfg.num_mels + 2)
    return 700.0 * np.expm1(edges[1:-1] / 1127.0)


def test_log_mel_shape_matches_config():
    layer = LogMel.from_audio_config(CFG)
    out = layer(tf.zeros([3, CFG.num_samples]))
    assert out.shape == (3, CFG.num_frames, CFG.num_mels, 1)
    assert layer.compute_output_shape((None, CFG.num_samples)) == (
        None,
        CFG.num_frames,
        CFG.num_mels,
        1,
    )


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0])
def test_log_mel_peak_is_in_the_band_of_the_tone(freq):
    spec = LogMel.from_audio_config(CFG)(tf.constant(sine(freq)[None])).numpy()[0, :, :, 0]
    band = int(np.argmax(spec.mean(axis=0)))
    centres = mel_center_hz(CFG)
    assert abs(centres[band] - freq) <= 0.1 * freq + 60


def test_silence_is_finite():
    spec = LogMel.from_audio_config(CFG)(tf.zeros([1, CFG.num_samples])).numpy()
    assert np.all(np.isfinite(spec))
    assert np.allclose(spec, np.log(CFG.log_offset), atol=1e-3)


def test_frontends_agree_eagerly_and_inside_tf_data():
    """big_vision's rule: graph mode and eager mode can differ; check they do not."""
    rng = np.random.default_rng(0)
    waves = rng.normal(0, 0.1, (4, CFG.num_samples)).astype(np.float32)
    gain, mel = GainNormalization(), LogMel.from_audio_config(CFG)
    eager = mel(gain(tf.constant(waves))).numpy()
    ds = tf.data.Dataset.from_tensor_slices(waves).batch(2).map(lambda w: mel(gain(w)))
    graph = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_allclose(eager, graph, rtol=1e-5, atol=1e-5)

    images = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    scale = ScaleImage()
    eager_img = scale(tf.constant(images)).numpy()
    ds_img = tf.data.Dataset.from_tensor_slices(images).batch(4).map(scale)
    np.testing.assert_allclose(eager_img, next(iter(ds_img)).numpy())
    np.testing.assert_allclose(eager_img, images / 255.0, rtol=1e-6)


def test_gain_normalization_equalizes_loudness():
    quiet, loud = sine(440) * 0.01, sine(440) * 0.9
    out = GainNormalization()(tf.constant(np.stack([quiet, loud]))).numpy()
    rms = np.sqrt((out**2).mean(axis=1))
    np.testing.assert_allclose(rms, [0.1, 0.1], rtol=1e-3)
    silent = GainNormalization()(tf.zeros([1, 100])).numpy()
    assert np.all(silent == 0)


@pytest.mark.parametrize("length", [10, 800, 1600, 5000])
def test_fit_waveform_matches_preprocessing(length):
    wave = np.arange(1, length + 1, dtype=np.float32)
    graph = fit_waveform(tf.constant(wave[None]), 1600).numpy()[0]
    np.testing.assert_array_equal(graph, fit_length(wave, 1600))


def test_fit_image_identity_and_resize():
    img = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
    same = fit_image(tf.constant(img), 16, 16).numpy()
    np.testing.assert_array_equal(same, img)
    flat = np.full((1, 32, 24, 3), 77, dtype=np.uint8)
    resized = fit_image(tf.constant(flat), 16, 16).numpy()
    assert resized.shape == (1, 16, 16, 3)
    assert np.all(resized == 77)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("channels", [1, 3])
def test_to_channels_converts_to_the_level_as_decoding_with_pillow_does(mode, channels):
    """A served image of any of the four layouts reaches the network as `crossmodal predict`'s
    decoding gives it: every (value, alpha) pair, and random colours."""
    from PIL import Image

    from crossmodal.data.decode import _to_8bit

    rng = np.random.default_rng(3)
    value, alpha = np.meshgrid(np.arange(256), np.arange(256))  # every pair once
    planes = {"L": [value], "LA": [value, alpha], "RGB": [value], "RGBA": [value]}[mode]
    if mode.startswith("RGB"):
        planes = [value, rng.integers(0, 256, value.shape), rng.integers(0, 256, value.shape)]
        planes += [alpha] if mode == "RGBA" else []
    arr = np.stack(planes, -1).astype(np.uint8)  # [256, 256, c]
    pil = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    want = np.asarray(_to_8bit(pil, channels)).reshape(256, 256, channels)
    got = to_channels(tf.constant(arr[None]), channels).numpy()[0]
    np.testing.assert_array_equal(got, want)


def test_to_channels_refuses_other_layouts_and_passes_empty_batches():
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 \\(gray\\)"):
        to_channels(tf.zeros([1, 2, 2, 5], tf.uint8), 1)
    assert to_channels(tf.zeros([0, 0, 0, 3], tf.uint8), 1).shape == (0, 0, 0, 1)


def test_pre_emphasis_is_the_first_difference_filter_folded_into_the_mel_matrix():
    """The folded filter gives the log-mel of the waveform filtered by y[n] = x[n] - a x[n-1]:
    a low tone loses energy against a high one, and the layer round-trips its setting."""
    import dataclasses

    a = 0.97
    cfg = dataclasses.replace(CFG, log_offset=1e-6)
    plain = LogMel.from_audio_config(cfg)
    tilted = LogMel.from_audio_config(dataclasses.replace(cfg, pre_emphasis=a))
    for freq in (200.0, 3000.0):
        x = sine(freq)
        filtered = np.concatenate([x[:1], x[1:] - a * x[:-1]]).astype(np.float32)
        want = plain(tf.constant(filtered[None])).numpy()
        got = tilted(tf.constant(x[None])).numpy()
        band = int(np.argmax(want[0, :, :, 0].mean(axis=0)))
        # Close where the tone's energy is (exact for a steady tone up to windowing).
        np.testing.assert_allclose(got[0, 1:, band, 0], want[0, 1:, band, 0], atol=0.05)
    low = (
        tilted(tf.constant(sine(200.0)[None])).numpy().max()
        - plain(tf.constant(sine(200.0)[None])).numpy().max()
    )
    high = (
        tilted(tf.constant(sine(3000.0)[None])).numpy().max()
        - plain(tf.constant(sine(3000.0)[None])).numpy().max()
    )
    assert low < -2.0 and high > 0.0  # natural-log units: 200 Hz down ~20 dB, 3 kHz up
    assert LogMel.from_config(tilted.get_config()).pre_emphasis == a


def test_noise_floor_removes_a_steady_background_and_ignores_padding():
    """Spectral subtraction: a tone over white noise keeps its band while the noise-only
    bands lose most of their magnitude (a low quantile leaves the noise's upper swings); a
    clip padded with exact zeros gets the same floor as the unpadded clip (padding is not
    background); the layer round-trips its setting."""
    import dataclasses

    from crossmodal.features import band_noise_floor

    rng = np.random.default_rng(0)
    n = CFG.num_samples
    x = (0.02 * rng.standard_normal(n)).astype(np.float32)
    x[n // 4 : 3 * n // 4] += sine(1000.0)[n // 4 : 3 * n // 4]
    padded = np.concatenate([x, np.zeros(n // 2, np.float32)])
    plain = LogMel.from_audio_config(CFG)
    cleaned = LogMel.from_audio_config(dataclasses.replace(CFG, noise_floor=0.1))
    silence = float(np.log(CFG.log_offset))  # the log-mel of exact silence
    a = plain(tf.constant(x[None])).numpy()[0, :, :, 0]
    b = cleaned(tf.constant(x[None])).numpy()[0, :, :, 0]
    tone = int(np.argmax(a.mean(axis=0)))
    far = [m for m in range(CFG.num_mels) if abs(m - tone) > 6]
    assert a[:, far].mean() > silence + 0.05  # the noise lifts the plain log-mel ...
    noise_before = np.median(np.exp(a[:, far]) - CFG.log_offset)
    noise_after = np.median(np.exp(b[:, far]) - CFG.log_offset)
    assert noise_after < 0.5 * noise_before  # ... and most of it is gone after subtraction
    mid = a.shape[0] // 2
    assert b[mid, tone] > a[mid, tone] - 0.1  # the tone survives
    mel = tf.exp(plain(tf.constant(padded[None]))[..., 0]) - CFG.log_offset
    mel_short = tf.exp(plain(tf.constant(x[None]))[..., 0]) - CFG.log_offset
    np.testing.assert_allclose(
        band_noise_floor(mel, 0.1).numpy(), band_noise_floor(mel_short, 0.1).numpy(), rtol=0.2
    )
    assert np.all(band_noise_floor(tf.zeros([2, 5, 3]), 0.1).numpy() == 0.0)
    assert LogMel.from_config(cleaned.get_config()).noise_floor == 0.1


def peaked_log_mel(frames: int = 40, mels: int = 8, peak: int = 20, slope_db: float = 3.0):
    """A raw log-mel [1, F, M, 1] (log_offset 0) whose level falls `slope_db` dB per frame on
    each side of frame `peak`, and a feature map holding each frame's index."""
    level_db = -slope_db * np.abs(np.arange(frames) - peak)  # [F]
    raw = np.repeat((level_db * np.log(10) / 20)[:, None], mels, axis=1)  # natural log
    index = np.repeat(np.arange(frames, dtype=np.float32)[:, None], mels, axis=1)
    return raw[None, :, :, None].astype(np.float32), index[None, :, :, None]


@pytest.mark.parametrize("threshold_db, margin", [(10.0, 0), (10.0, 2), (31.0, 1)])
def test_speech_crop_cuts_the_frames_within_the_threshold_of_the_loudest(threshold_db, margin):
    raw, index = peaked_log_mel()
    half = int(threshold_db // 3.0)  # frames on each side of the peak within the threshold
    crop = SpeechCrop(frames=9, threshold_db=threshold_db, margin=margin)([raw, index])
    rows = crop.numpy()[0, :, 0, 0]  # the frame index each output row was read from
    assert rows[0] == pytest.approx(20 - half - margin)
    assert rows[-1] == pytest.approx(20 + half + margin)
    assert np.all(np.diff(rows) > 0)


def test_speech_crop_views_are_the_crops_at_their_thresholds_stacked_as_channels():
    raw, index = peaked_log_mel()
    views = SpeechCrop(frames=12, threshold_db=10.0, margin=1, views_db=(4.0, 31.0))
    out = views([raw, index]).numpy()
    assert out.shape == (1, 12, 8, 3)
    assert views.compute_output_shape([(None, 40, 8, 1)] * 2) == (None, 12, 8, 3)
    for channel, db in enumerate((10.0, 4.0, 31.0)):
        alone = SpeechCrop(frames=12, threshold_db=db, margin=1)([raw, index]).numpy()
        np.testing.assert_allclose(out[..., channel], alone[..., 0], atol=1e-5)
    assert out[0, 0, 0, 1] > out[0, 0, 0, 0] > out[0, 0, 0, 2]  # a wider crop starts earlier


def test_warp_mel_axis_reads_the_mel_axis_over_a_fixed_span():
    """Span a: output band j reads input band j * a (bilinear); past the top it reads `fill`."""
    mels = np.tile(np.arange(9, dtype=np.float32), (2, 3, 1))[..., None]  # [2, 3, 9, 1]: band
    np.testing.assert_allclose(warp_mel_axis(mels, 1.0).numpy(), mels, atol=1e-6)
    low = warp_mel_axis(mels, 0.5).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(low, np.arange(9) * 0.5, atol=1e-5)  # stretched upwards
    high = warp_mel_axis(mels, 1.25, fill=-7.0).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(high[:7], np.arange(7) * 1.25, atol=1e-5)  # compressed
    assert high[8] == -7.0  # band 8 would read band 10, past the top


def test_audio_views_batch_every_crop_and_warp_view_after_view():
    """[R + 1, F, M, 1] (the last row padding) -> [V * R + 1, ...]: view v of clip r at row
    v * R + r, each the cut at its threshold (as `SpeechCrop`) read with its mel span (as
    `warp_mel_axis`), then one row of zeros."""
    raw, index = peaked_log_mel()
    raw2, index2 = peaked_log_mel(peak=12)
    raw, index = np.concatenate([raw, raw2]), np.concatenate([index, index2 * 2])  # R = 2
    index = index + np.arange(8, dtype=np.float32)[None, None, :, None]  # bands differ too
    pad = np.zeros_like(raw[:1])
    padded = [np.concatenate([raw, pad]), np.concatenate([index, pad])]
    views = [(10.0, 1.0), (31.0, 1.0), (10.0, 0.8)]
    layer = AudioViews(views, frames=12, margin=1)
    out = layer(padded).numpy()
    assert out.shape == (7, 12, 8, 1)
    for v, (db, span) in enumerate(views):
        cut = SpeechCrop(frames=12, threshold_db=db, margin=1)([raw, index])
        want = warp_mel_axis(cut, span).numpy()
        np.testing.assert_allclose(out[2 * v : 2 * v + 2], want, atol=1e-5, err_msg=str(v))
    assert not out[6].any()  # the padding row
    assert not np.allclose(out[0:2], out[4:6])  # the warp changed the view
    # frames 0: no cut, the whole clip warped.
    whole = AudioViews([(0.0, 0.8)], frames=0)(padded).numpy()
    np.testing.assert_allclose(whole[:2], warp_mel_axis(index, 0.8).numpy(), atol=1e-5)
    # No clip to view: the padding row alone.
    assert layer([pad, pad]).numpy().shape == (1, 12, 8, 1)
    restored = AudioViews.from_config(layer.get_config())
    assert restored.views == layer.views and restored.frames == 12


def test_cepstral_lifter_smooths_every_channel_alike():
    rng = np.random.default_rng(0)
    spec = rng.normal(size=(2, 5, 16, 3)).astype(np.float32)
    lifter = CepstralLifter(keep=4)
    out = lifter(spec).numpy()
    for c in range(3):
        np.testing.assert_allclose(
            out[..., c : c + 1], lifter(spec[..., c : c + 1]).numpy(), atol=1e-5
        )
    assert not np.allclose(out, spec)  # the fine structure is gone ...
    np.testing.assert_allclose(lifter(out).numpy(), out, atol=1e-4)  # ... and stays gone
