"""Training through the Python API on tiny data: resume, config files, alignment, auto fusion."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import make_dataset

pytest.importorskip("tensorflow")

from crossmodal.config import (  # noqa: E402
    AudioConfig,
    ImageConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from crossmodal.errors import CrossmodalError  # noqa: E402
from crossmodal.train import train  # noqa: E402

# One network, to keep these fast: the ensemble (the default, two members) has tests here too.
SMALL = ModelConfig(embed_dim=16, filters=(8, 16), audio_filters=(8, 16), shared_dim=8, members=1)


def tiny_config(**train_overrides) -> RunConfig:
    fields = {"epochs": 4, "batch_size": 8, "val_fraction": 0.25, "seed": 5, "patience": 10}
    return RunConfig(model=SMALL, train=TrainConfig(**{**fields, **train_overrides}))


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


def test_same_seed_same_metrics(data, tmp_path):
    a = train(data, tmp_path / "a", config=tiny_config(epochs=2))
    b = train(data, tmp_path / "b", config=tiny_config(epochs=2))
    assert a.history == b.history
    assert a.metrics["both"]["confusion_matrix"] == b.metrics["both"]["confusion_matrix"]


def test_resume_without_a_killed_run_is_a_user_error(tmp_path):
    with pytest.raises(CrossmodalError, match="nothing to resume"):
        train(None, tmp_path / "never", resume=True)


def test_a_stale_partial_run_is_discarded_and_said(data, tmp_path):
    stale = tmp_path / ".m.partial"
    stale.mkdir()
    (stale / "junk").write_text("x")
    notes = []
    train(data, tmp_path / "m", config=tiny_config(epochs=1), notice=notes.append)
    assert any("discarded an incomplete earlier run" in n for n in notes)
    assert not stale.exists()


def transfer_manifest(data: Path, path: Path) -> Path:
    """Half the images labeled (no sound), the other half unlabeled image+sound pairs."""
    rows = ["image,audio,label"]
    for label_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for k, png in enumerate(sorted(label_dir.glob("*.png"))):
            if k % 2 == 0:
                rows.append(f"{png},,{label_dir.name}")
            else:
                rows.append(f"{png},{png.with_suffix('.wav')},")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_cross_modal_transfer_is_switched_on_by_unlabeled_pairs(data, tmp_path):
    """Labeled images only, plus unlabeled image+sound pairs: the audio head learns from the
    image head (distillation) and the two embeddings are aligned (contrastive loss)."""
    manifest = transfer_manifest(data, tmp_path / "transfer.csv")
    notes = []
    result = train(manifest, tmp_path / "xm", config=tiny_config(), notice=notes.append)
    assert result.config.model.fusion == "late"
    assert any("image->audio" in n for n in notes)
    info = json.loads((tmp_path / "xm" / "dataset.json").read_text())
    assert info["alignment"]["distill"] == "image->audio"
    assert info["alignment"]["labeled_audio"] == 0 and info["alignment"]["unlabeled_pairs"] == 12
    st = info["alignment"]["self_training"]
    assert st["teacher"] == "image" and st["threshold"] == 0.7 and st["unlabeled_pairs"] == 12
    assert 0 <= st["pseudo_labeled"] <= 12 and 1 <= st["teacher_epochs"] <= 4
    assert not (tmp_path / "xm" / "pseudo_labels.json").exists()

    from crossmodal.evaluate import evaluate

    report = evaluate(tmp_path / "xm", data)
    assert "retrieval" in report
    assert report["retrieval"]["num_pairs"] == 24
    assert 0.0 <= report["retrieval"]["audio_to_image"]["recall_at_1"] <= 1.0
    # The sounds alone (the transfer's measure) report the same retrieval: it reads the pairs.
    audio = evaluate(tmp_path / "xm", data, modality="audio")
    assert audio["modality"] == "audio" and audio["retrieval"] == report["retrieval"]


def test_self_training_gives_the_unlabeled_modality_labels_to_learn_from(data, tmp_path):
    """A threshold that every teacher prediction passes labels every unlabeled pair, so the
    final fit trains the audio head on labels (its accuracy is tracked) instead of only
    matching the teacher; threshold 0 turns the first stage off."""
    manifest = transfer_manifest(data, tmp_path / "transfer.csv")
    on = train(manifest, tmp_path / "on", config=tiny_config(pseudo_label_threshold=1e-6))
    info = json.loads((tmp_path / "on" / "dataset.json").read_text())["alignment"]
    assert info["self_training"]["pseudo_labeled"] == info["self_training"]["unlabeled_pairs"]
    assert any(row["audio_accuracy"] > 0 for row in on.history)
    off = train(manifest, tmp_path / "off", config=tiny_config(pseudo_label_threshold=0.0))
    info = json.loads((tmp_path / "off" / "dataset.json").read_text())["alignment"]
    assert "self_training" not in info
    assert all(row["audio_accuracy"] == 0 for row in off.history)  # no audio label at all


def test_auto_fusion_tries_every_candidate_and_says_why(data, tmp_path):
    cfg = tiny_config(epochs=4).replace(model=ModelConfig(**{**SMALL.__dict__, "fusion": "auto"}))
    result = train(data, tmp_path / "auto", config=cfg)
    selection = json.loads((tmp_path / "auto" / "metrics.json").read_text())["fusion_selection"]
    assert set(selection["candidates"]) == {"concat", "late", "gated", "conv"}
    assert result.config.model.fusion == selection["chosen"] != "auto"
    assert selection["chosen"] in selection["why"]
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


def test_config_file_then_flags_then_repeat(data, tmp_path):
    from crossmodal.settings import read_config_file, resolve

    toml = tmp_path / "train.toml"
    toml.write_text(
        f'data = "{data}"\n[train]\nepochs = 1\nbatch_size = 8\nseed = 9\n'
        "[model]\nembed_dim = 16\nfilters = [8, 16]\naudio_filters = [8, 16]\nshared_dim = 8\n"
    )
    cfg, explicit = resolve(read_config_file(toml), {"train": {"seed": 11}})
    assert cfg.train.epochs == 1 and cfg.train.seed == 11 and cfg.model.filters == (8, 16)
    assert explicit == {"image": {}, "clip_seconds": None}
    first = train(cfg.data, tmp_path / "one", config=cfg)
    again_cfg, explicit = resolve(read_config_file(tmp_path / "one" / "config.json"), {})
    assert explicit["image"]["height"] == 16 and again_cfg.data == str(data)
    # A saved config repeats the run from Python alone: its data, image shape and clip length
    # are taken from it (the CLI passes the same through flags and `explicit`).
    again = train(None, tmp_path / "two", config=again_cfg)
    assert again.config == first.config
    assert again.history == first.history
    # A shape that differs from the data's is a request, as the CLI's --image-size is.
    smaller = again_cfg.replace(image=ImageConfig(12, 12, 1), audio=AudioConfig(clip_seconds=0.2))
    third = train(None, tmp_path / "three", config=smaller)
    assert third.config.image == ImageConfig(12, 12, 1)
    assert third.config.audio.clip_seconds == 0.2


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


def test_bad_settings_fail_before_training(tmp_path):
    from crossmodal.settings import read_config_file, resolve

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 2\nepoch = 3\n")
    with pytest.raises(CrossmodalError, match="unknown setting"):
        resolve(read_config_file(bad), {})
    bad.write_text("[train\n")
    with pytest.raises(CrossmodalError, match="not valid TOML"):
        read_config_file(bad)
    with pytest.raises(CrossmodalError, match="unknown optimizer"):
        TrainConfig(optimizer="lbfgs")


def test_class_weight_balanced_and_from_file(data, tmp_path):
    result = train(data, tmp_path / "bal", config=tiny_config(epochs=1, class_weight="balanced"))
    assert result.config.train.class_weight == "balanced"
    # The weights themselves, by hand: 3 a, 1 b, 0 c among the training rows (one unlabeled)
    # -> n / (K x count) = 4/9, 4/3, and 0 for an absent class; a file's weights, 1 by default.
    from types import SimpleNamespace

    from crossmodal.train import _class_weights

    rows = [("a", 0), ("a", 1), ("a", 2), ("b", 3), (None, 4), ("b", 5)]
    prep = SimpleNamespace(samples=[{"label": lab, "index": i} for lab, i in rows])
    cfg = tiny_config(class_weight="balanced").replace(labels=("a", "b", "c"))
    np.testing.assert_allclose(_class_weights(cfg, prep, [0, 1, 2, 3, 4]), [4 / 9, 4 / 3, 0])
    (tmp_path / "wb.json").write_text('{"b": 2.5}')
    cfg = tiny_config(class_weight=str(tmp_path / "wb.json")).replace(labels=("a", "b", "c"))
    np.testing.assert_allclose(_class_weights(cfg, prep, [0, 1]), [1.0, 2.5, 1.0])
    # ... and the loss uses them: every term is a mean weighted by class, so on a batch of two
    # a and two b, weights (3, 1) give (3 x the a-only loss + the b-only loss) / 4.
    from crossmodal.model import build_network
    from crossmodal.trainer import Trainer

    net = build_network(result.config)
    x, y = _one_batch(net, labels=[0, 0, 1, 1])
    out = net(x, training=False)

    def loss(*weights):
        trainer = Trainer(net, aux_weight=0.5, label_smoothing=0.1, class_weights=weights)
        return float(trainer.compute_loss(x, y, out))

    assert loss(3.0, 1.0, 1.0) == pytest.approx((3 * loss(1, 0, 0) + loss(0, 1, 0)) / 4, rel=1e-5)
    assert loss(3.0, 1.0, 1.0) != pytest.approx(loss(1.0, 1.0, 1.0), rel=1e-3)
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"zzz": 2.0}))
    with pytest.raises(CrossmodalError, match="unknown label"):
        train(data, tmp_path / "w", config=tiny_config(epochs=1, class_weight=str(weights)))


def test_multi_label_trains_evaluates_and_predicts_label_sets(data, tmp_path):
    """A manifest whose label cells hold several labels: sigmoid outputs, tuned thresholds."""
    from crossmodal.evaluate import evaluate
    from crossmodal.predict import predict

    rows = ["image,audio,label"]
    for label_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        tags = {"a": "round;low", "b": "round;high", "c": "bar;low"}[label_dir.name]
        for png in sorted(label_dir.glob("*.png")):
            rows.append(f"{png},{png.with_suffix('.wav')},{tags}")
    manifest = tmp_path / "multi.csv"
    manifest.write_text("\n".join(rows) + "\n")
    notes = []
    result = train(manifest, tmp_path / "ml", config=tiny_config(), notice=notes.append)
    assert result.config.model.multi_label and result.config.labels == (
        "bar",
        "high",
        "low",
        "round",
    )
    assert any("multi-label" in n for n in notes)
    thresholds = json.loads((tmp_path / "ml" / "thresholds.json").read_text())
    assert set(thresholds) == {"bar", "high", "low", "round"}
    report = evaluate(tmp_path / "ml", manifest, out=tmp_path / "report")
    for key in ("micro_f1", "macro_f1", "mean_average_precision", "subset_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    assert report["accuracy"] == report["subset_accuracy"]
    assert (tmp_path / "report" / "report.html").exists()
    row = next(iter(predict(tmp_path / "ml", [data / "a" / "g0_a0.png"])))
    assert isinstance(row["labels"], list) and row["label"] == ";".join(row["labels"])
    # The decisions are the tuned thresholds of thresholds.json, class by class.
    names = list(result.config.labels)
    (tmp_path / "ml" / "thresholds.json").write_text(
        json.dumps({n: (0.0 if n == "high" else 1.01) for n in names})
    )
    row = next(iter(predict(tmp_path / "ml", [data / "a" / "g0_a0.png"])))
    assert row["labels"] == ["high"]
    low = json.loads((tmp_path / "ml" / "thresholds.json").read_text())
    low.update(high=1.01, round=0.0, low=0.0)
    (tmp_path / "ml" / "thresholds.json").write_text(json.dumps(low))
    assert next(iter(predict(tmp_path / "ml", [data / "a" / "g0_a0.png"])))["labels"] == [
        "low",
        "round",
    ]
    everything = evaluate(tmp_path / "ml", manifest)  # "low" and "round" on every row
    assert everything["per_class"]["round"]["recall"] == 1.0
    assert everything["per_class"]["high"]["recall"] == 0.0


def test_calibrate_bakes_a_temperature_into_the_export(data, tmp_path):
    result = train(data, tmp_path / "cal", config=tiny_config(epochs=2, calibrate=True))
    temperature = result.metrics["calibration"]["temperature"]
    assert 0.05 <= temperature <= 20 and abs(np.log(temperature)) > 1e-3  # fitted, not 1
    # train() has already checked the SavedModel against softmax(logits / T) on a batch.
    assert "ece" in result.metrics["both"]


def test_an_ensemble_trains_exports_and_reloads_as_one_model(data, tmp_path):
    """train() checks the SavedModel against the live network on a batch; here the folder is
    reopened with plain Keras and TensorFlow: the SavedModel serves the averaged ensemble (with
    the test views for a sound alone), and model.keras reloads with its members."""
    import keras
    import tensorflow as tf

    cfg = tiny_config(epochs=2).replace(model=dataclasses.replace(SMALL, members=2))
    train(data, tmp_path / "ens", config=cfg)
    saved = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert saved["model"]["members"] == 2
    net = keras.saving.load_model(tmp_path / "ens" / "model.keras")
    serve = tf.saved_model.load(str(tmp_path / "ens" / "saved_model")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    x = {
        "image": rng.integers(0, 256, (3, *net.input["image"].shape[1:]), dtype=np.uint8),
        "image_present": np.array([1, 0, 1], np.float32),
        "audio": rng.normal(0, 0.1, (3, net.input["audio"].shape[1])).astype(np.float32),
        "audio_present": np.array([1, 1, 0], np.float32),
    }
    out = net(x, training=False)
    assert len(out["members"]) == 2
    from crossmodal.model import member_networks

    first, second = member_networks(net)
    for name in ("image_norm", "audio_norm"):  # adapted once, on the same training clips
        np.testing.assert_allclose(first.get_layer(name).mean, second.get_layer(name).mean)
        assert np.any(np.asarray(first.get_layer(name).variance) != 1.0)
    served = serve(
        image=x["image"],
        image_present=x["image_present"] > 0,
        audio=x["audio"],
        audio_present=x["audio_present"] > 0,
    )
    # Row 1 is a sound alone: served with the test views (`inference_network`); the pair and
    # the image alone are the trained network's own predictions.
    from crossmodal.config import RunConfig
    from crossmodal.model import inference_network

    saved = RunConfig.load(tmp_path / "ens" / "config.json")
    assert saved.audio.test_views
    viewed = inference_network(net, saved)
    np.testing.assert_allclose(
        served["probabilities"].numpy(), viewed(x, training=False)["probabilities"], atol=1e-5
    )
    np.testing.assert_allclose(
        served["probabilities"].numpy()[[0, 2]], out["probabilities"].numpy()[[0, 2]], atol=1e-5
    )
    assert served["audio_embedding"].shape[-1] == 2 * SMALL.shared_dim


def test_auto_batch_size_keeps_enough_steps_per_epoch():
    from crossmodal.train import auto_batch_size

    assert auto_batch_size(1700) == 32  # avdigits: 53 steps per epoch
    assert auto_batch_size(138) == 8  # sample data: 17 steps, not 5
    assert auto_batch_size(300) == 18
    assert auto_batch_size(10) == 8  # never below 8
    assert all(n // auto_batch_size(n) >= 16 for n in range(128, 5000, 37))


@pytest.mark.parametrize("kind", ["vgg", "vgg_sep"])
def test_deeper_audio_encoders_train_export_and_reload(data, tmp_path, kind):
    """train() checks the exported SavedModel against the live network; the saved config names
    the encoder, and model.keras rebuilds it with its second convolution per block."""
    import keras

    cfg = tiny_config(epochs=1).replace(model=dataclasses.replace(SMALL, audio_encoder=kind))
    train(data, tmp_path / kind, config=cfg)
    assert RunConfig.load(tmp_path / kind / "config.json").model.audio_encoder == kind
    net = keras.saving.load_model(tmp_path / kind / "model.keras")
    second = net.get_layer("audio_encoder").get_layer("audio_encoder_conv1_1")
    assert type(second).__name__ == {"vgg": "Conv2D", "vgg_sep": "SeparableConv2D"}[kind]


def test_training_without_a_validation_split_completes(data, tmp_path):
    """val_fraction 0: every sample trains, early stopping watches the training loss, and the
    history Keras writes (its CSVLogger adds val_ columns of "NA") reads back without them."""
    result = train(data, tmp_path / "m", config=tiny_config(val_fraction=0.0, epochs=2))
    assert len(result.history) == 2
    assert all(
        "loss" in row and not any(k.startswith("val_") for k in row) for row in result.history
    )
    assert "NA" in (tmp_path / "m" / "history.csv").read_text()  # what the reader must skip
    assert result.metrics == {}
    dataset = json.loads((tmp_path / "m" / "dataset.json").read_text())
    assert dataset["split"]["kind"] == "none"
    assert "no validation split" in (tmp_path / "m" / "README.md").read_text()


def test_early_stopping_watches_from_its_first_epoch():
    """Epochs before `start_from_epoch` neither count as best nor use up patience (as Keras'
    EarlyStopping(start_from_epoch)); the config puts it at `early_stop_from` of the epochs."""
    import keras

    from crossmodal.checkpointing import EpochCheckpoint

    class Net:
        weights = 0

        def get_weights(self):
            return [np.array(self.weights)]

    def run(start: int, losses: list[float]) -> EpochCheckpoint:
        net = Net()
        cb = EpochCheckpoint(Path("unused"), None, net, monitor="val_loss", patience=2,
                             start_from_epoch=start)  # fmt: skip
        cb.set_model(keras.Sequential())
        for epoch, loss in enumerate(losses):
            net.weights = epoch
            cb._watch(epoch, loss)
            if cb.stopped:
                break
        return cb

    losses = [1.0, 3.0, 2.9, 2.8, 2.7, 2.6]  # the lowest at once, then a slow descent
    early = run(0, losses)
    assert early.stopped and early.best_epoch == 0 and early.best_weights[0] == 0
    late = run(3, losses)
    assert not late.stopped and late.best_epoch == 5 and late.best_weights[0] == 5
    assert TrainConfig(epochs=40).first_watched_epoch == 20
    assert TrainConfig(epochs=40, early_stop_from=0.0).first_watched_epoch == 0
    with pytest.raises(CrossmodalError, match="early_stop_from"):
        TrainConfig(early_stop_from=1.0)


def test_early_stop_stops_and_restores_as_keras_does():
    """Every fit (the resumable one and self-training's first) stops by `EarlyStop`, which
    must agree with keras.callbacks.EarlyStopping(restore_best_weights=True) on when to stop
    and which epoch's weights to keep, over random loss curves, patiences and first epochs."""
    import keras

    from crossmodal.checkpointing import EarlyStop

    class Net:  # the weights are the epoch that set them
        stop_training = False
        epoch = 0

        def get_weights(self):
            return [np.array(self.epoch)]

        def set_weights(self, weights):
            self.epoch = int(weights[0])

    def fit(net, callback, losses):
        callback.set_model(net)
        callback.on_train_begin()
        for epoch, loss in enumerate(losses):
            net.epoch = epoch
            callback.on_epoch_end(epoch, {"val_loss": loss})
            if net.stop_training:
                break
        callback.on_train_end()
        if isinstance(callback, EarlyStop):
            callback.restore_best()
        return epoch, net.epoch  # the last epoch run, the epoch whose weights are kept

    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(200):
        losses = rng.random(int(rng.integers(1, 15))).tolist()
        patience, start = int(rng.integers(1, 5)), int(rng.integers(0, 5))
        net = Net()
        ours = fit(net, EarlyStop(net, monitor="val_loss", patience=patience,
                                  start_from_epoch=start), losses)  # fmt: skip
        keras_ = fit(Net(), keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, start_from_epoch=start,
            restore_best_weights=True), losses)  # fmt: skip
        assert ours == keras_, (losses, patience, start)
        outcomes.add((ours[0] < len(losses) - 1, ours[1] != ours[0]))
    assert len(outcomes) >= 3  # stopped early and ran to the end; kept an earlier epoch or not


def test_a_split_that_leaves_nothing_labeled_to_train_on_is_refused(data, tmp_path):
    # Group g1 holds only unlabeled pairs and g0, all the labels, is held out for validation.
    rows = ["image,audio,label,group"]
    for wav in sorted(data.rglob("*.wav")):
        group = wav.stem.split("_")[0]
        label = wav.parent.name if group == "g0" else ""
        rows.append(f"{wav.with_suffix('.png')},{wav},{label},{group}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    with pytest.raises(CrossmodalError, match="leaves no labeled sample to train on"):
        train(manifest, tmp_path / "m", config=tiny_config(val_groups=("g0",)))
    assert not (tmp_path / "m").exists()


def test_a_named_validation_group_is_what_validation_holds(data, tmp_path):
    """--group-regex and --val-group through train(): the tiny data's stems begin g0_ or g1_
    (12 each); holding out g1 validates on its 12 samples, where the default split takes 6."""
    cfg = tiny_config(epochs=1, group_regex=r"^(g\d)_", val_groups=("g1",))
    result = train(data, tmp_path / "g", config=cfg)
    split = json.loads((tmp_path / "g" / "dataset.json").read_text())["split"]
    assert split["kind"] == "group" and split["val_groups"] == ["g1"]
    assert result.metrics["both"]["num_samples"] == 12


def _one_batch(net, labels):
    """(inputs, labels): labeled random pairs at the network's shapes."""
    rng = np.random.default_rng(0)
    n = len(labels)
    x = {
        "image": rng.integers(0, 256, (n, *net.input["image"].shape[1:]), dtype=np.uint8),
        "image_present": np.ones(n, np.float32),
        "audio": rng.normal(0, 0.1, (n, net.input["audio"].shape[1])).astype(np.float32),
        "audio_present": np.ones(n, np.float32),
    }
    return x, np.asarray(labels, np.int32)
