"""Background sounds from a user's folder (`--noise-dir`), mixed into training audio.

The folder's clips are decoded once, resampled to the model's rate, scaled to unit RMS and
joined into one "bank". Each training batch then takes a random window of the bank per clip
and mixes it in at a random SNR. This runs in the training input pipeline (a tf.data map on
whole batches, no Python per sample), so nothing of the noise is stored in the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossmodal.data.decode import DecodeError, probe_audio, read_audio
from crossmodal.data.scan import AUDIO_EXTENSIONS, is_hidden
from crossmodal.errors import CrossmodalError

MAX_BANK_SECONDS = 600.0  # bounds memory: 10 minutes at 16 kHz is 38 MB of float32


def check_noise_dir(folder: str | Path) -> Path:
    """The folder as a Path, or one clear error (cheap: no decoding, no TensorFlow), so that
    the CLI and `train` refuse a wrong folder before any slow work."""
    if "://" in str(folder):
        raise CrossmodalError(f"--noise-dir {folder}: must be a local folder")
    folder = Path(folder)
    if not folder.is_dir():
        raise CrossmodalError(f"--noise-dir {folder}: not a folder")
    return folder


def load_noise_bank(
    folder: str | Path, *, sample_rate: int, min_samples: int, max_seconds: float = MAX_BANK_SECONDS
) -> np.ndarray:
    """float32 [L] with L >= min_samples: every audio file under `folder`, each at unit RMS."""
    folder = check_noise_dir(folder)
    # Hidden entries are skipped as a data folder's are (scan.is_hidden).
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS
        and not any(is_hidden(part) for part in p.relative_to(folder).parts)
        and p.is_file()
    )
    if not files:
        raise CrossmodalError(
            f"--noise-dir {folder}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)})"
        )
    budget = int(max_seconds * sample_rate)
    parts: list[np.ndarray] = []
    for path in files:
        if budget <= 0:
            break
        try:
            seconds = probe_audio(str(path)).seconds
            n = min(budget, max(1, int(seconds * sample_rate)))
            wave = read_audio(str(path), sample_rate=sample_rate, num_samples=n)
        except DecodeError as exc:
            raise CrossmodalError(f"--noise-dir: {path}: {exc}") from None
        rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        if rms < 1e-6:
            continue  # silence is no background
        parts.append((wave / rms).astype(np.float32))
        budget -= n
    if not parts:
        raise CrossmodalError(f"--noise-dir {folder}: every audio file in it is silent")
    bank = np.concatenate(parts)
    if bank.shape[0] < min_samples:  # shorter than one clip: loop it
        bank = np.tile(bank, int(np.ceil(min_samples / bank.shape[0])))
    return bank


def add_background(ds, bank: np.ndarray, *, prob: float, snr_db: tuple[float, float], seed: int):
    """Map batches of (inputs, labels[, ...]) to the same with background mixed into the audio
    of rows that have audio, each with probability `prob`, at an SNR drawn from `snr_db`."""
    import tensorflow as tf

    bank_t = tf.constant(bank)  # [L]
    length = int(bank.shape[0])
    # One random seed pair per batch, different every epoch, reproducible from `seed`.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def mix(batch, pair):
        inputs = batch[0]
        audio = inputs["audio"]  # [N, T]
        n, t = tf.shape(audio)[0], tf.shape(audio)[1]
        s = [tf.stack([pair[0], pair[1] + k]) for k in range(3)]
        start = tf.random.stateless_uniform(
            [n], s[0], minval=0, maxval=tf.cast(length - t + 1, tf.int64), dtype=tf.int64
        )  # [N]
        window = start[:, tf.newaxis] + tf.range(tf.cast(t, tf.int64))[tf.newaxis, :]  # [N, T]
        noise = tf.gather(bank_t, window)  # [N, T], unit RMS
        p_signal = tf.reduce_mean(tf.square(audio), axis=-1, keepdims=True)  # [N, 1]
        p_noise = tf.maximum(tf.reduce_mean(tf.square(noise), axis=-1, keepdims=True), 1e-12)
        snr = tf.random.stateless_uniform([n, 1], s[1], snr_db[0], snr_db[1])  # [N, 1]
        scale = tf.sqrt(p_signal / (p_noise * tf.pow(10.0, snr / 10.0)))
        use = tf.random.stateless_uniform([n, 1], s[2]) < prob
        use = tf.logical_and(use, inputs["audio_present"][:, tf.newaxis] > 0)
        mixed = audio + tf.cast(use, tf.float32) * scale * noise
        return ({**inputs, "audio": mixed}, *batch[1:])

    return tf.data.Dataset.zip((ds, seeds)).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
