"""Acceptance on real data (../shared/datasets/avdigits): spoken digits from four speakers
paired with MNIST handwriting. Skipped when the data is absent. Slow: each training takes a few
minutes, so models are trained once per session and shared between tests.

Speaker nicolas is held out of training entirely (the model validates on the default split of
the other three speakers' pairs), as `benchmarks/loso.py` does for every speaker in turn.
Bounds are the issues' targets where they are met, else the measured figures less a margin.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from avdigits_loso import HELD_OUT, SPEAKERS, loso

# Real training on a busy machine: the default per-test timeout (pyproject.toml) is too short.
pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(3600)]


@pytest.fixture(scope="session")
def held_out_model(avdigits, tmp_path_factory) -> tuple[Path, dict]:
    """Defaults, trained on the other three speakers (validation, early stopping and best
    weights use the default split of their pairs: nicolas is never seen before the test),
    then evaluated on nicolas's 500 pairs: both, image alone and sound alone."""
    from crossmodal.evaluate import evaluate
    from crossmodal.train import train

    work = tmp_path_factory.mktemp("accept")
    train_set = loso.speakers_manifest(avdigits, SPEAKERS - {HELD_OUT}, work / "train.csv")
    result = train(train_set, work / "model", config=None)
    assert result.dataset["num_samples"] == 1500
    test = loso.held_out_manifest(avdigits, HELD_OUT, work / "held_out.csv")
    report = evaluate(work / "model", test, out=work / "report")
    return work / "model", report["ablation"]


def test_fused_accuracy_on_an_unseen_speaker(held_out_model):
    """Issue 2: defaults, trained without nicolas: fused accuracy on nicolas >= 0.97."""
    _, metrics = held_out_model
    assert metrics["both"]["num_samples"] == 500
    assert metrics["both"]["accuracy"] >= 0.97, metrics["both"]["accuracy"]


def test_one_model_predicts_from_either_modality_alone(held_out_model):
    """Issue 3: the same fused model, with each modality removed from every sample.

    Issue 3 asks for 0.99 / 0.97 / 0.88 (both / image / audio) on unseen speakers; measured
    here on nicolas with the defaults (two ensemble members, 12 test views, session 12):
    0.990 / 0.968 / 0.818 (0.826 with the 4 crops alone, 0.812 with one view; one network:
    0.982 / 0.966 / 0.748; leave-one-speaker-out means in README). The
    bounds are the figures less a margin for another CPU's arithmetic, which acts like another
    seed: the seed alone moved one speaker's sound-alone figure by up to 5.8 points with one
    network, and the image alone by about 1. They guard what is reached; they do not claim
    the targets."""
    _, metrics = held_out_model
    assert metrics["both"]["accuracy"] >= 0.97, metrics["both"]["accuracy"]
    assert metrics["image"]["accuracy"] >= 0.95, metrics["image"]["accuracy"]
    assert metrics["audio"]["accuracy"] >= 0.74, metrics["audio"]["accuracy"]
    # The modality that is there carries the prediction: each alone beats chance by far,
    # and the fused model is at least as good as the better one alone.
    assert metrics["both"]["accuracy"] >= max(m["accuracy"] for m in metrics.values()) - 1e-9


def test_fused_model_holds_up_under_shift(held_out_model, avdigits, tmp_path):
    """Issue 4: the held-out speaker's samples corrupted: image pixel noise and an occluding
    patch, sound mixed with background babble at 5 dB SNR.

    Issue 4 asks for 0.95 here, and that is the bound; measured: 0.976 with the defaults (two
    ensemble members, session 10; one network read 0.964 with `seed = 0` and with `seed = 1`);
    0.936 before the training noise was clipped to the pixel range, 0.762 before cutout,
    per-image noise strength and babble augmentation."""
    from crossmodal.evaluate import evaluate
    from crossmodal.robustness import corrupt_folder

    model, _ = held_out_model
    clean = loso.held_out_folder(avdigits, HELD_OUT, tmp_path / "clean")
    noisy = corrupt_folder(clean, tmp_path / "noisy", snr_db=5.0, seed=0)
    report = evaluate(model, noisy, out=tmp_path / "noisy-report")
    assert report["num_samples"] == 500
    assert report["accuracy"] >= 0.95, report["ablation"]
