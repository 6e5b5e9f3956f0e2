"""Training through the Python API on tiny data: determinism, cross-modal transfer, splits,
early stopping. Resuming is in test_train_resume.py, settings and model options in
test_train_options.py (files of their own so that `make test` spreads them over workers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny import make_dataset, tiny_config

pytest.importorskip("tensorflow")

from crossmodal.config import (  # noqa: E402
    TrainConfig,
)
from crossmodal.errors import CrossmodalError  # noqa: E402
from crossmodal.train import train  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data")


def test_same_seed_same_metrics(data, tmp_path, monkeypatch):
    from crossmodal.trainer import Trainer

    traces = []  # train_step runs in Python only while tf.function traces it
    step = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self, d: traces.append(1) or step(self, d))
    a = train(data, tmp_path / "a", config=tiny_config(epochs=2))
    # Traced once per run: a step that built the optimizer would be traced twice (tf.function
    # traces a function that creates variables again without), and tracing is most of a
    # short run's time.
    assert len(traces) == 1
    b = train(data, tmp_path / "b", config=tiny_config(epochs=2))
    assert a.history == b.history
    assert a.metrics["both"]["confusion_matrix"] == b.metrics["both"]["confusion_matrix"]


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
    # no audio label at all: the audio head's accuracy is not measured, not 0
    assert all(np.isnan(row["audio_accuracy"]) for row in off.history)


def test_auto_batch_size_keeps_enough_steps_per_epoch():
    from crossmodal.train import auto_batch_size

    assert auto_batch_size(1700) == 32  # avdigits: 53 steps per epoch
    assert auto_batch_size(138) == 8  # sample data: 17 steps, not 5
    assert auto_batch_size(300) == 18
    assert auto_batch_size(10) == 8  # never below 8
    assert all(n // auto_batch_size(n) >= 16 for n in range(128, 5000, 37))


def test_training_without_a_validation_split_completes(data, tmp_path, monkeypatch):
    """val_fraction 0: every sample trains, early stopping watches the training loss, and the
    history Keras writes (its CSVLogger adds val_ columns of "NA") reads back without them.
    The exported SavedModel is still checked against the network, on training rows."""
    import crossmodal.train as training

    checked = []
    check = training._check_export
    monkeypatch.setattr(
        training, "_check_export", lambda net, serve, ds, **kw: checked.append(
            sum(int(len(batch[2])) for batch in ds)
        ) or check(net, serve, ds, **kw)
    )  # fmt: skip
    result = train(data, tmp_path / "m", config=tiny_config(val_fraction=0.0, epochs=2))
    assert checked == [24]  # every training row of the tiny data (8 pairs of 3 classes)
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
