"""Resuming a killed training run (and `--fusion auto`, whose choice a resume must keep)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import SMALL, make_dataset, tiny_config

pytest.importorskip("tensorflow")

from crossmodal.config import (  # noqa: E402
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from crossmodal.errors import CrossmodalError  # noqa: E402
from crossmodal.train import train  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data")


class Kill(KeyboardInterrupt):
    """Stands in for a SIGINT arriving after an epoch."""


@pytest.mark.parametrize("variant", ["defaults", "noise-dir", "ensemble", "plateau"])
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(data, tmp_path, variant):
    """Also with --noise-dir (its per-batch seeds are replayed with the shuffles), with two
    ensemble members (every member's weights, optimizer and random states are checkpointed)
    and with the plateau schedule (its counters, which Keras resets when a fit begins)."""
    cfg = tiny_config()
    if variant == "plateau":  # the rate halves after one epoch without a new best
        cfg = tiny_config(schedule="plateau", patience=2, epochs=6, early_stop_from=0.9)
    if variant == "ensemble":
        cfg = cfg.replace(model=dataclasses.replace(SMALL, members=2))
    if variant == "noise-dir":
        import soundfile as sf

        (tmp_path / "noise").mkdir()
        rng = np.random.default_rng(0)
        sf.write(tmp_path / "noise" / "n.wav", 0.1 * rng.normal(size=16000), 16000)
        aug = dataclasses.replace(cfg.augment, noise_dir=str(tmp_path / "noise"))
        cfg = cfg.replace(augment=aug)
    full = train(data, tmp_path / "full", config=cfg)
    if variant == "plateau":  # the counters at the kill decide a later halving
        rates = [r["learning_rate"] for r in full.history]
        assert len(set(rates[2:])) > 1, rates

    def die_after_two(epoch, total, logs):
        if epoch == 2:
            raise Kill()

    with pytest.raises(Kill):
        train(data, tmp_path / "cut", config=cfg, on_epoch=die_after_two)
    assert not (tmp_path / "cut").exists(), "an interrupted run must not look complete"
    partial = tmp_path / ".cut.partial"
    assert (partial / "checkpoint" / "meta.json").exists()
    # A kill can land between the history line of an epoch and its checkpoint (that epoch
    # runs again: it must be logged once), and after a checkpoint swap but before the old
    # copy was removed (the next save must not trip over it).
    lines = (partial / "history.csv").read_text().splitlines(keepends=True)
    (partial / "history.csv").write_text("".join(lines) + lines[-1])
    shutil.copytree(partial / "checkpoint", partial / "checkpoint.old")
    if variant == "defaults":  # through the command line, as a user resumes
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "train", "--resume", str(tmp_path / "cut")],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        notes = [proc.stdout]
        metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    else:
        notes = []
        metrics = train(None, tmp_path / "cut", resume=True, notice=notes.append).metrics
    assert any("resuming after epoch 2" in n for n in notes)
    history, full_history = (_history(tmp_path / name) for name in ("cut", "full"))
    assert [round(r["loss"], 5) for r in history] == [round(r["loss"], 5) for r in full_history]
    for modality in ("both", "image", "audio"):
        assert metrics[modality]["accuracy"] == full.metrics[modality]["accuracy"]
    np.testing.assert_allclose(history[-1]["val_loss"], full_history[-1]["val_loss"], rtol=1e-5)


def _history(model_dir: Path) -> list[dict]:
    import csv

    with open(model_dir / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != "NA"} for row in csv.DictReader(f)]


def test_resume_without_a_killed_run_is_a_user_error(tmp_path):
    with pytest.raises(CrossmodalError, match="nothing to resume"):
        train(None, tmp_path / "never", resume=True)


def test_resume_takes_nothing_but_the_strategy(tmp_path):
    """A resumed run goes on with its own data and settings: anything else is refused at
    once rather than dropped without a word (the CLI refuses such flags the same way)."""
    for kwargs in (
        {"data": "elsewhere"},
        {"config": RunConfig(train=TrainConfig(epochs=3))},
        {"clip_seconds": 0.5},
    ):
        args = {"data": None, **kwargs}
        with pytest.raises(CrossmodalError, match="resume continues the run with its own"):
            train(args.pop("data"), tmp_path / "m", resume=True, **args)


def test_a_stale_partial_run_is_discarded_and_said(data, tmp_path):
    stale = tmp_path / ".m.partial"
    stale.mkdir()
    (stale / "junk").write_text("x")
    notes = []
    train(data, tmp_path / "m", config=tiny_config(epochs=1), notice=notes.append)
    assert any("discarded an incomplete earlier run" in n for n in notes)
    assert not stale.exists()


def test_a_finished_run_stopped_before_its_swap_is_moved_into_place(data, tmp_path):
    """Stopped after its run state was removed but before the swap (the old MODEL moved aside,
    or still in place with the checkpoint not yet removed): the next run moves the finished
    model in instead of discarding it, and removes the old one."""
    out = tmp_path / "m"
    train(data, out, config=tiny_config(epochs=1))
    finished = tmp_path / "finished"
    shutil.copytree(out, finished)
    (finished / "marker").write_text("the new model")
    staging = tmp_path / ".m.partial"
    for old_in_place in (False, True):
        shutil.copytree(finished, staging)
        if old_in_place:  # stopped before the checkpoint went
            (staging / "checkpoint").mkdir()
        else:  # stopped between the two renames of the swap
            out.rename(tmp_path / ".m.old-999999")
        notes = []
        with pytest.raises(CrossmodalError, match="already exists"):
            train(data, out, config=tiny_config(epochs=1), notice=notes.append)
        assert any("had finished but was stopped" in n for n in notes), notes
        assert (out / "marker").read_text() == "the new model"
        assert not (out / "checkpoint").exists() and not staging.exists()
        left = sorted(p.name for p in tmp_path.iterdir() if p.name != ".m.lock")
        assert left == ["finished", "m"]  # the old model is gone too
        (out / "marker").unlink()


def test_auto_fusion_tries_every_candidate_and_says_why(data, tmp_path):
    cfg = tiny_config(epochs=4).replace(model=ModelConfig(**{**SMALL.__dict__, "fusion": "auto"}))
    result = train(data, tmp_path / "auto", config=cfg)
    selection = json.loads((tmp_path / "auto" / "metrics.json").read_text())["fusion_selection"]
    assert set(selection["candidates"]) == {"concat", "late", "gated", "conv"}
    assert result.config.model.fusion == selection["chosen"] != "auto"
    assert selection["chosen"] in selection["why"]
    card = (tmp_path / "auto" / "README.md").read_text()
    assert f"| {selection['chosen']} (chosen) |" in card and selection["why"] in card
    assert (
        json.loads((tmp_path / "auto" / "config.json").read_text())["model"]["fusion"]
        == (selection["chosen"])
    )

    def die_after_two(epoch, total, logs):
        if epoch == 2:
            raise Kill()

    with pytest.raises(Kill):  # killed in the final fit, after the choice
        train(data, tmp_path / "cut", config=cfg, on_epoch=die_after_two)
    train(None, tmp_path / "cut", resume=True)
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())["fusion_selection"]
    assert resumed == selection


def test_auto_fusion_stopped_among_its_candidates_resumes_without_training_them_again(
    data, tmp_path
):
    cfg = tiny_config(epochs=4).replace(model=ModelConfig(**{**SMALL.__dict__, "fusion": "auto"}))
    full = json.loads(
        (train(data, tmp_path / "full", config=cfg).model_dir / "metrics.json").read_text()
    )["fusion_selection"]

    def stop_after_late(message: str) -> None:
        if message.startswith("auto fusion: late"):
            raise Kill()  # two of the four candidates scored

    with pytest.raises(Kill):
        train(data, tmp_path / "cut", config=cfg, notice=stop_after_late)
    assert (tmp_path / ".cut.partial" / "run.json").exists()
    notes: list[str] = []
    result = train(None, tmp_path / "cut", resume=True, notice=notes.append)
    reused = [n for n in notes if "scored before the run was stopped" in n]
    assert [n.split()[2] for n in reused] == ["concat", "late"]
    assert any(n.startswith("auto fusion: gated after") for n in notes)
    # The choice and every candidate's scores are those of the run that was never stopped.
    assert result.metrics["fusion_selection"] == full
    assert result.config.model.fusion == full["chosen"]
    assert not (tmp_path / ".cut.partial").exists()
    assert not (tmp_path / "cut" / "fusion_candidates.json").exists()


def test_auto_fusion_with_cross_modal_transfer_resumes_with_the_fusion_it_chose(
    data, tmp_path, monkeypatch
):
    """Transfer keeps `auto` (any fusion's lone sound is its audio head's), which may choose
    `concat`; a resumed run replaced that with `late`, as for a fusion the user named, and the
    checkpoint of the other network failed to load."""
    from test_train import transfer_manifest

    monkeypatch.setattr("crossmodal.train.FUSION_NAMES", ("concat", "gated"))  # never late
    manifest = transfer_manifest(data, tmp_path / "transfer.csv")
    cfg = tiny_config(epochs=4, pseudo_label_threshold=0.0)
    cfg = cfg.replace(model=dataclasses.replace(SMALL, fusion="auto"))

    def die_after_two(epoch, total, logs):
        if epoch == 2:
            raise Kill()

    with pytest.raises(Kill):
        train(manifest, tmp_path / "cut", config=cfg, on_epoch=die_after_two)
    result = train(None, tmp_path / "cut", resume=True)
    chosen = result.metrics["fusion_selection"]["chosen"]
    assert chosen in ("concat", "gated") and result.config.model.fusion == chosen


def test_a_checkpoint_that_does_not_fit_the_model_is_one_clear_error(tmp_path):
    """A checkpoint from another version (other layers, other shapes) cannot be resumed: a
    user's error to fix by training again, not a traceback."""
    import keras

    from crossmodal.checkpointing import EpochCheckpoint

    def model(units: int, layers: int = 1):
        m = keras.Sequential(
            [keras.Input((3,)), *(keras.layers.Dense(units) for _ in range(layers))]
        )
        m.compile(optimizer="adam", loss="mse")
        return m

    saved = model(4)
    saved.optimizer.build(saved.trainable_variables)
    cb = EpochCheckpoint(tmp_path / "ck", saved, saved, monitor="loss", patience=2)
    cb.set_model(saved)
    cb._save(1)
    same = model(4)
    assert EpochCheckpoint(tmp_path / "ck", same, same, monitor="loss", patience=2).restore() == 1
    for other, why in ((model(5), "variables of other shapes"), (model(4, 2), "saved, 1")):
        with pytest.raises(CrossmodalError, match=f"does not fit the model \\(.*{why}"):
            EpochCheckpoint(tmp_path / "ck", other, other, monitor="loss", patience=2).restore()


def test_a_model_folder_whose_run_was_stopped_says_how_to_finish_it(tmp_path):
    from crossmodal.artifacts import open_model_dir

    with pytest.raises(CrossmodalError, match=r"^no model folder at \S+$"):
        open_model_dir(tmp_path / "m")
    (tmp_path / ".m.partial").mkdir()  # what a killed `train --out m` leaves
    with pytest.raises(
        CrossmodalError, match="stopped before writing it: `crossmodal train --resume"
    ):
        open_model_dir(tmp_path / "m")
