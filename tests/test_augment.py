"""Training-only augmentation: each layer does what it says in training and nothing at
inference; background noise from a folder is mixed at the asked SNR into rows with audio."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
sf = pytest.importorskip("soundfile")

from crossmodal.augment import (  # noqa: E402
    Cutout,
    ImageNoise,
    SpecAugment,
    SpecWarp,
    WaveformAugment,
    bend_source,
    image_augmentation,
)
from crossmodal.config import AugmentConfig  # noqa: E402
from crossmodal.data.noise import add_background, load_noise_bank  # noqa: E402
from crossmodal.errors import CrossmodalError  # noqa: E402


def snr_db(clean: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(clean**2, -1) / np.mean((mixed - clean) ** 2, -1))


def speechlike(n: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.normal(size=(n, t))).astype(np.float32)


@pytest.mark.parametrize(
    "layer",
    [
        WaveformAugment(6.0, 100, babble_prob=1.0, seed=0),
        ImageNoise(0.3, seed=0),
        Cutout(0.5, 1.0, seed=0),
        SpecAugment(4, 4, seed=0),
        SpecWarp(seed=0),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_every_augmentation_is_the_identity_at_inference(layer):
    shape = [4, 400] if isinstance(layer, WaveformAugment) else [4, 12, 10, 1]
    x = tf.random.uniform(shape, seed=1)
    assert np.array_equal(layer(x, training=False).numpy(), x.numpy())
    assert not np.array_equal(layer(x, training=True).numpy(), x.numpy())


def test_babble_is_other_clips_of_the_batch_at_the_drawn_snr():
    audio = speechlike(6, 4000)
    layer = WaveformAugment(
        0.0, 0, snr_db=(0, 0), noise_prob=0.0, babble_prob=1.0, babble_snr_db=(7, 7),
        babble_voices=2, seed=0,
    )  # fmt: skip
    mixed = layer(audio, training=True).numpy()
    np.testing.assert_allclose(snr_db(audio, mixed), 7.0, atol=1e-3)
    # What was added is a multiple of the two neighbours' sum, not random noise.
    babble = np.roll(audio, 1, axis=0) + np.roll(audio, 2, axis=0)
    added = mixed - audio
    for row in range(6):
        assert abs(np.corrcoef(added[row], babble[row])[0, 1]) > 0.999


def test_babble_leaves_a_silent_row_silent():
    audio = speechlike(4, 2000)
    audio[2] = 0.0  # an absent sound
    layer = WaveformAugment(0.0, 0, noise_prob=0.0, babble_prob=1.0, seed=0)
    assert np.all(layer(audio, training=True).numpy()[2] == 0.0)


def test_babble_never_mixes_a_clip_with_itself():
    audio = speechlike(2, 2000)  # two voices asked for, one other clip in the batch
    layer = WaveformAugment(
        0.0, 0, noise_prob=0.0, babble_prob=1.0, babble_snr_db=(5, 5), babble_voices=2, seed=0
    )
    added = layer(audio, training=True).numpy() - audio
    assert abs(np.corrcoef(added[0], audio[1])[0, 1]) > 0.999
    alone = layer(audio[:1], training=True).numpy()
    np.testing.assert_array_equal(alone, audio[:1])  # nobody else: nothing added


def test_image_noise_strength_varies_per_image_up_to_its_maximum():
    x = tf.fill([200, 16, 16, 1], 0.5)  # mid-gray: 0.2 std is 2.5 std from either clip
    std = ImageNoise(0.2, seed=3)(x, training=True).numpy().reshape(200, -1).std(axis=1)
    assert std.max() <= 0.2 * 1.15 and std.min() < 0.03 and 0.07 < std.mean() < 0.13


def test_image_noise_stays_a_valid_image_as_a_stored_noisy_photo_does():
    black = tf.zeros([200, 16, 16, 1])
    noisy = ImageNoise(0.2, seed=3)(black, training=True).numpy()
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    # Clipped noise brightens a black background (mean about 0.4 std), as in a stored photo.
    assert 0.02 < noisy.mean() < 0.06
    raw = ImageNoise(0.2, seed=3, clip=False)(black, training=True).numpy()
    assert raw.min() < 0.0 and abs(raw.mean()) < 0.005
    layer = ImageNoise(0.2, seed=3, clip=False)
    assert type(layer).from_config(layer.get_config()).clip is False
    for clip in (True, False):  # the setting reaches the layer
        net = image_augmentation(AugmentConfig(image_noise_clip=clip), seed=0)
        assert [x.clip for x in net.layers if isinstance(x, ImageNoise)] == [clip]


def test_cutout_covers_one_square_with_one_gray_level():
    x = tf.zeros([300, 20, 20, 1])
    y = Cutout(0.5, 1.0, seed=0)(x, training=True).numpy()[..., 0]
    sides = []
    for img in y:
        rows, cols = np.nonzero(img)
        if rows.size == 0:
            continue
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h == w and rows.size == h * w  # a filled square
        assert np.unique(img[rows, cols]).size == 1  # of one level
        sides.append(h)
    assert max(sides) <= 10 and len(sides) > 250


def test_cutout_probability_is_respected():
    x = tf.zeros([1000, 20, 20, 1])
    y = Cutout(0.5, 0.3, seed=0)(x, training=True).numpy()
    covered = (y.reshape(1000, -1) != 0).any(axis=1).mean()
    assert 0.22 < covered < 0.34


@pytest.mark.parametrize("flip", ["none", "horizontal", "vertical", "both"])
def test_flips_only_when_asked(flip):
    layers = image_augmentation(AugmentConfig(image_flip=flip), seed=0).layers
    names = [type(layer).__name__ for layer in layers]
    assert ("RandomFlip" in names) == (flip != "none")


def test_unknown_flip_is_refused():
    with pytest.raises(CrossmodalError, match="image_flip"):
        AugmentConfig(image_flip="diagonal")


@pytest.mark.parametrize("axis", ["time", "freq"])
def test_bends_keep_the_axis_in_order_up_to_the_bound_the_config_allows(axis):
    """A bend below MAX_BEND moves every position forward of the one before (a ramp stays a
    ramp); twice the bound folds the axis back on itself, so the config refuses it."""
    from crossmodal.config import MAX_BEND

    frames, mels = 32, 40
    ramp = np.arange(frames if axis == "time" else mels, dtype=np.float32)
    spec = np.broadcast_to(
        ramp[:, None] if axis == "time" else ramp[None, :], (frames, mels)
    ).astype(np.float32)
    batch = tf.constant(np.repeat(spec[None, :, :, None], 256, axis=0))  # [256, F, M, 1]
    dim = 1 if axis == "time" else 2

    def steps(bend):
        warp = SpecWarp(0.0, 0.0, 0.0, **{f"{axis}_bend": bend}, seed=1)
        out = warp(batch, training=True).numpy()[..., 0]
        return np.diff(out, axis=dim)

    assert steps(0.999 * MAX_BEND).min() >= -1e-5
    assert steps(2 * MAX_BEND).min() < -0.1
    # The bound is tight: at the worst corners (|a1| = |a2| = bend) the source positions keep
    # increasing just below it and turn back just above it.
    corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], np.float32)

    def least_step(bend):
        return float(np.diff(bend_source(bend * corners, 1001).numpy(), axis=1).min())

    assert least_step(0.999 * MAX_BEND) > 0 > least_step(1.001 * MAX_BEND)
    with pytest.raises(CrossmodalError, match=f"spec_{axis}_bend"):
        AugmentConfig(**{f"spec_{axis}_bend": 0.2})
    AugmentConfig(**{f"spec_{axis}_bend": 0.1})  # what the screen used: allowed


# --- background noise from a folder -------------------------------------------------------


def write_wav(path, wave, rate):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate)


def test_noise_bank_reads_every_clip_resampled_at_unit_rms(tmp_path):
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "a.wav", 0.5 * rng.normal(size=8000).clip(-1, 1), 8000)  # 1 s
    write_wav(tmp_path / "sub" / "b.flac", 0.01 * rng.normal(size=16000), 16000)  # 1 s
    write_wav(tmp_path / "silent.wav", np.zeros(4000), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    bank = load_noise_bank(tmp_path, sample_rate=16000, min_samples=100)
    assert bank.dtype == np.float32 and bank.shape == (32000,)  # silence skipped
    for part in (bank[:16000], bank[16000:]):
        assert np.sqrt(np.mean(part**2)) == pytest.approx(1.0, rel=1e-3)


def test_noise_bank_skips_hidden_entries(tmp_path):
    # A zip made on a Mac holds "._x.wav" AppleDouble files and a "__MACOSX/" folder: not audio.
    write_wav(tmp_path / "rain.wav", 0.1 * np.random.default_rng(0).normal(size=1600), 16000)
    for junk in ("._rain.wav", "__MACOSX/._rain.wav", ".hidden/x.wav"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_bytes(b"\x00\x05\x16\x07 not audio")
    bank = load_noise_bank(tmp_path, sample_rate=16000, min_samples=100)
    assert bank.shape == (1600,)


def test_noise_bank_shorter_than_a_clip_is_looped(tmp_path):
    write_wav(tmp_path / "short.wav", np.sin(np.arange(1000) / 5.0), 16000)
    bank = load_noise_bank(tmp_path, sample_rate=16000, min_samples=5000)
    assert bank.shape[0] >= 5000


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "holds no audio files"),
        (lambda d: write_wav(d / "z.wav", np.zeros(100), 16000), "silent"),
        (lambda d: (d / "bad.wav").write_bytes(b"RIFF...."), "bad.wav"),
    ],
    ids=["empty", "silent", "unreadable"],
)
def test_noise_dir_problems_are_one_clear_error(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(CrossmodalError, match=message):
        load_noise_bank(tmp_path, sample_rate=16000, min_samples=100)


def test_missing_or_remote_noise_dir_is_refused(tmp_path):
    with pytest.raises(CrossmodalError, match="not a folder"):
        load_noise_bank(tmp_path / "nope", sample_rate=16000, min_samples=100)
    with pytest.raises(CrossmodalError, match="must be a local folder"):
        load_noise_bank("gs://bucket/noise", sample_rate=16000, min_samples=100)


def batches(audio, present):
    inputs = {"audio": audio, "audio_present": present, "image_present": np.ones_like(present)}
    return tf.data.Dataset.from_tensor_slices((inputs, np.arange(len(present)))).batch(4)


def test_background_is_mixed_at_the_drawn_snr_into_rows_with_audio_only():
    audio = speechlike(8, 3000)
    present = np.array([1, 1, 0, 1, 1, 1, 1, 0], np.float32)
    audio[present == 0] = 0.0
    bank = np.random.default_rng(1).normal(size=20000).astype(np.float32)
    ds = add_background(batches(audio, present), bank, prob=1.0, snr_db=(5.0, 5.0), seed=0)
    mixed = np.concatenate([inputs["audio"].numpy() for inputs, _ in ds])
    assert np.all(mixed[present == 0] == 0.0)
    np.testing.assert_allclose(snr_db(audio[present == 1], mixed[present == 1]), 5.0, atol=0.01)


def test_background_changes_every_epoch_and_repeats_with_the_seed():
    audio, present = speechlike(4, 1000), np.ones(4, np.float32)
    bank = np.random.default_rng(1).normal(size=50000).astype(np.float32)

    def epochs(seed):
        ds = add_background(batches(audio, present), bank, prob=1.0, snr_db=(0, 20), seed=seed)
        return [np.concatenate([x["audio"].numpy() for x, _ in ds]) for _ in range(2)]

    first, second = epochs(7)
    assert not np.allclose(first, second)
    again = epochs(7)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])


def test_background_probability_is_respected():
    audio, present = speechlike(400, 200), np.ones(400, np.float32)
    bank = np.random.default_rng(1).normal(size=5000).astype(np.float32)
    ds = add_background(batches(audio, present), bank, prob=0.25, snr_db=(5, 5), seed=0)
    mixed = np.concatenate([x["audio"].numpy() for x, _ in ds])
    changed = np.any(mixed != audio, axis=1).mean()
    assert 0.17 < changed < 0.33
