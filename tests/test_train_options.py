"""Training settings on tiny data: config files, class weights, multi-label, calibration,
ensembles and the deeper audio encoders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from tiny import SMALL, make_dataset, tiny_config

pytest.importorskip("tensorflow")

from crossmodal.config import (  # noqa: E402
    AudioConfig,
    ImageConfig,
    RunConfig,
    TrainConfig,
)
from crossmodal.errors import CrossmodalError  # noqa: E402
from crossmodal.train import train  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data")


def test_config_file_then_flags_then_repeat(data, tmp_path, monkeypatch):
    import os

    from crossmodal.settings import read_config_file, resolve

    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "train.toml"
    toml.write_text(  # DATA relative to the working folder, as a user types it
        f'data = "{os.path.relpath(data, tmp_path)}"\n'
        "[train]\nepochs = 1\nbatch_size = 8\nseed = 9\n"
        "[model]\nembed_dim = 16\nfilters = [8, 16]\naudio_filters = [8, 16]\nshared_dim = 8\n"
    )
    cfg, explicit = resolve(read_config_file(toml), {"train": {"seed": 11}})
    assert cfg.train.epochs == 1 and cfg.train.seed == 11 and cfg.model.filters == (8, 16)
    assert explicit == {"image": {}, "clip_seconds": None}
    first = train(cfg.data, tmp_path / "one", config=cfg)
    again_cfg, explicit = resolve(read_config_file(tmp_path / "one" / "config.json"), {})
    assert explicit["image"]["height"] == 16 and again_cfg.data == str(data)  # absolute
    # A saved config repeats the run from Python alone, from any working folder: its data,
    # image shape and clip length are taken from it (the CLI passes the same through flags
    # and `explicit`).
    monkeypatch.chdir(tmp_path / "one")
    again = train(None, tmp_path / "two", config=again_cfg)
    assert again.config == first.config
    assert again.history == first.history
    # A shape that differs from the data's is a request, as the CLI's --image-size is.
    smaller = again_cfg.replace(image=ImageConfig(12, 12, 1), audio=AudioConfig(clip_seconds=0.2))
    third = train(None, tmp_path / "three", config=smaller)
    assert third.config.image == ImageConfig(12, 12, 1)
    assert third.config.audio.clip_seconds == 0.2


def test_bad_settings_fail_before_training(tmp_path):
    from crossmodal.settings import read_config_file, resolve

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 2\nepoch = 3\n")
    with pytest.raises(CrossmodalError, match="unknown setting"):
        resolve(read_config_file(bad), {})
    bad.write_text("[train\n")
    with pytest.raises(CrossmodalError, match=f"^{bad}: not valid TOML"):  # the whole path
        read_config_file(bad)
    shouted = tmp_path / "BAD.JSON"
    shouted.write_text("{")
    with pytest.raises(CrossmodalError, match=f"^{shouted}: not valid JSON"):
        read_config_file(shouted)
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
    given = {t["label"]: t["probability"] for t in row["top_k"]}
    if "high" in given:  # the probability is the given label's, not the top class's
        assert row["probability"] == given["high"]
    low = json.loads((tmp_path / "ml" / "thresholds.json").read_text())
    low.update(high=1.01, round=0.0, low=0.0)
    (tmp_path / "ml" / "thresholds.json").write_text(json.dumps(low))
    top = next(iter(predict(tmp_path / "ml", [data / "a" / "g0_a0.png"], top_k=4)))
    assert top["labels"] == ["low", "round"]
    given = {t["label"]: t["probability"] for t in top["top_k"]}
    assert top["probability"] == min(given["low"], given["round"])
    (tmp_path / "ml" / "thresholds.json").write_text(json.dumps(dict.fromkeys(names, 1.01)))
    none = next(iter(predict(tmp_path / "ml", [data / "a" / "g0_a0.png"])))
    assert none["labels"] == [] and none["label"] == "" and none["probability"] is None
    from crossmodal.predict import write_rows

    write_rows(iter([none]), tmp_path / "none.csv")  # an empty cell, no crash
    assert (tmp_path / "none.csv").read_text().splitlines()[1].split(",")[2:4] == ["", ""]
    (tmp_path / "ml" / "thresholds.json").write_text(json.dumps(low))
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


def test_data_without_a_single_sound_trains_and_says_the_audio_head_is_untrained(tmp_path):
    """Images only: it trains, and the run says that a prediction from a sound means nothing
    (the review found evaluate and predict answering from that head without a word)."""
    images = make_dataset(tmp_path / "data", per_class=4)
    for wav in images.rglob("*.wav"):
        wav.unlink()
    result = train(images, tmp_path / "m", config=tiny_config(epochs=1))
    assert [n for n in result.notes if n.startswith("warning:")] == [
        "warning: no sample has a sound: the model learns from the images alone, and its audio "
        "head stays untrained (a prediction from a sound alone means nothing)"
    ]
    # Its figures are unknown, not 0; the card does not claim a clip length it inferred.
    import csv
    import subprocess
    import sys

    from crossmodal.evaluate import evaluate

    with open(tmp_path / "m" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(row["audio_accuracy"] == "nan" for row in rows)
    assert all(float(row["image_accuracy"]) >= 0 for row in rows)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "(a default: no sample had a sound)" in card
    assert "No training sample had a sound: the audio head never learned" in card
    # evaluate and predict say so when they answer from that head.
    full = make_dataset(tmp_path / "full", per_class=2)
    report = evaluate(tmp_path / "m", full)
    assert report["warnings"] == [
        f"{tmp_path / 'm'} trained on no sample with a sound: its audio head never learned, "
        "and the audio-alone figures mean nothing"
    ]
    assert evaluate(tmp_path / "m", full, modality="image")["warnings"] == []
    from crossmodal.predict import UntrainedAlone, predict

    wavs, pngs = sorted(full.rglob("*.wav")), sorted(full.rglob("*.png"))
    rows = UntrainedAlone(predict(tmp_path / "m", [*wavs[1:3], pngs[0]]), tmp_path / "m")
    assert len(list(rows)) == 3 and rows.counts == {"audio": 2}
    assert rows.warnings() == [
        f"2 row(s) were predicted from a sound alone, but {tmp_path / 'm'} trained on no "
        "sample with a sound: those predictions mean nothing"
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "predict", str(tmp_path / "m"),
         *map(str, wavs[1:3]), str(pngs[0])],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: 2 row(s) were predicted from a sound alone, but" in proc.stderr


def test_val_dir_validates_on_its_own_folder_and_is_checked_before_any_training(data, tmp_path):
    import shutil

    from crossmodal.settings import read_config_file, resolve

    val = make_dataset(tmp_path / "val", per_class=2)
    notes: list[str] = []
    result = train(
        data, tmp_path / "m", config=tiny_config(epochs=1, val_dir=str(val)), notice=notes.append
    )
    assert result.split["kind"] == "val_dir" and result.split["val"] == 6
    assert result.split["train"] == 24  # all of DATA trains: no split of it
    assert result.metrics["both"]["num_samples"] == 6
    assert not any("no sample of" in n for n in notes)

    # A label the model cannot output: refused before the first `auto` candidate trains, and
    # before the staging folder exists.
    shutil.copytree(val / "c", val / "zzz")
    notes.clear()
    cfg = tiny_config(epochs=1, val_dir=str(val))
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, fusion="auto"))
    with pytest.raises(CrossmodalError, match="training data lacks: zzz"):
        train(data, tmp_path / "m2", config=cfg, notice=notes.append)
    assert not any("auto fusion" in n for n in notes)
    assert not (tmp_path / ".m2.partial").exists()

    # A class the validation folder lacks: trained, and said.
    shutil.rmtree(val / "zzz")
    shutil.rmtree(val / "c")
    notes.clear()
    train(
        data, tmp_path / "m3", config=tiny_config(epochs=1, val_dir=str(val)), notice=notes.append
    )
    assert any("--val-dir has no sample of c" in n for n in notes)

    # A split setting beside --val-dir would be ignored: refused, in Python, files and flags.
    with pytest.raises(CrossmodalError, match="group_regex splits the data"):
        TrainConfig(val_dir="v", group_regex="^(g[01])_").check_validation()
    with pytest.raises(CrossmodalError, match="val_groups splits the data"):
        train(data, tmp_path / "m4", config=tiny_config(val_dir=str(val), val_groups=("g0",)))
    toml = tmp_path / "both.toml"
    toml.write_text('[train]\nval_dir = "v"\nval_fraction = 0.2\n')
    with pytest.raises(CrossmodalError, match="train.val_fraction splits the data"):
        read_config_file(toml)
    toml.write_text('[train]\nval_dir = "v"\ngroup_regex = "^(g)"\nval_groups = ["g"]\n')
    with pytest.raises(CrossmodalError, match="group_regex and train.val_groups split the"):
        read_config_file(toml)
    with pytest.raises(CrossmodalError, match="^--val-group splits the data"):
        resolve({}, {"train": {"val_dir": "v", "val_groups": ["g0"]}})
    toml.write_text('{"train": {"val_dir": null, "val_fraction": 0.2}}')
    json_file = toml.rename(tmp_path / "both.json")
    assert read_config_file(json_file)["train"]["val_fraction"] == 0.2  # val_dir null: no clash
    with pytest.raises(CrossmodalError, match="--val-fraction and --val-group split the data"):
        resolve({}, {"train": {"val_dir": "v", "val_fraction": 0.2, "val_groups": ["g0"]}})
    # On the command line one kind of setting sets the file's other kind aside: a saved
    # config.json (every setting written) repeated with --val-dir, or with a split flag.
    saved = read_config_file(tmp_path / "m" / "config.json")
    assert resolve(saved, {})[0].train.val_dir == str(val)
    split = resolve(saved, {"train": {"val_fraction": 0.3}})[0].train
    assert (split.val_dir, split.val_fraction) == (None, 0.3)
    grouped = {"train": {"group_regex": "^(g[01])_", "val_fraction": 0.3}}
    moved = resolve(grouped, {"train": {"val_dir": "w"}})[0].train
    assert (moved.val_dir, moved.group_regex, moved.val_fraction) == ("w", None, 0.15)
    moved.check_validation()
    named = {"train": {"group_regex": "^(g[01])_", "val_groups": ["g0"]}}
    fraction = resolve(named, {"train": {"val_fraction": 0.5}})[0].train
    assert (fraction.group_regex, fraction.val_groups, fraction.val_fraction) == (
        "^(g[01])_",
        (),
        0.5,
    )  # the groups are drawn by the fraction, not the file's named ones


def test_class_weights_are_recorded_and_refused_when_they_leave_nothing_to_learn(data, tmp_path):
    from crossmodal.settings import read_config_file, resolve
    from crossmodal.train import read_class_weights

    weights = tmp_path / "w.json"
    weights.write_text('{"b": 2.5}')
    result = train(data, tmp_path / "m", config=tiny_config(epochs=1, class_weight=str(weights)))
    recorded = {"b": 2.5}  # the file's table: a label it does not name weighs 1
    assert json.loads(result.config.train.class_weight) == recorded
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert json.loads(saved["train"]["class_weight"]) == recorded
    # The file is read once, before any work; repeating the run does not read it again:
    # editing or removing it changes nothing.
    from crossmodal.train import check_before_work

    checked = check_before_work(tiny_config(class_weight=str(weights)), data)
    assert json.loads(checked.train.class_weight) == recorded
    weights.unlink()
    cfg, _ = resolve(read_config_file(tmp_path / "m" / "config.json"), {})
    assert read_class_weights(cfg.train.class_weight) == recorded
    assert read_class_weights(' {"a": 0, "b": 3}') == {"a": 0.0, "b": 3.0}
    with pytest.raises(CrossmodalError, match="not a JSON object"):
        read_class_weights("{a: 1}")

    with pytest.raises(CrossmodalError, match="every class in the training data has weight 0"):
        train(
            data,
            tmp_path / "zero",
            config=tiny_config(epochs=1, class_weight='{"a": 0, "b": 0, "c": 0}'),
        )
    assert not (tmp_path / ".zero.partial").exists()


def test_calibrate_needs_validation_data(tmp_path):
    from crossmodal.train import check_before_work

    alone = TrainConfig(calibrate=True, val_fraction=0.0)
    with pytest.raises(CrossmodalError, match="calibrate.*validation data"):
        check_before_work(RunConfig(train=alone), None)
    TrainConfig(calibrate=True, val_fraction=0.0, val_groups=("g0",)).check_validation()
    TrainConfig(calibrate=True, val_fraction=0.0, val_dir="v").check_validation()
    # A model folder an older version wrote with it (then ignored) still opens.
    saved = RunConfig(train=alone).to_dict() | {"format_version": 1}
    assert RunConfig.from_saved(saved).train.calibrate


def test_overwrite_replaces_a_model_but_never_deletes_files_added_to_it(data, tmp_path):
    out = tmp_path / "m"
    first = train(data, out, config=tiny_config(epochs=1))
    with pytest.raises(CrossmodalError, match="pass --overwrite"):
        train(data, out, config=tiny_config(epochs=1))
    (out / "notes.md").write_text("why this model")
    (out / "eval").mkdir()
    with pytest.raises(CrossmodalError, match=r"holds eval, notes.md, which training did not"):
        train(data, out, config=tiny_config(epochs=1, seed=6), overwrite=True)
    assert (out / "notes.md").read_text() == "why this model"
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 5
    (out / "notes.md").unlink()
    (out / "eval").rmdir()
    (out / ".git").mkdir()  # a user's own dot folder is theirs too ...
    with pytest.raises(CrossmodalError, match=r"holds \.git, which"):
        train(data, out, config=tiny_config(epochs=1, seed=6), overwrite=True)
    (out / ".git").rmdir()
    (out / ".DS_Store").write_bytes(b"")  # ... a file browser's clutter is not
    second = train(data, out, config=tiny_config(epochs=1, seed=6), overwrite=True)
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 6
    assert first.model_dir == second.model_dir == out


def test_a_config_fixes_each_shape_on_its_own():
    """As the CLI's --image-size, --channels and --clip-seconds do: a config that sets the
    size leaves the channels to the data (RGB data stays RGB), and the other way round."""
    from crossmodal.train import fixed_shapes

    assert fixed_shapes(RunConfig()) == (None, None, None)
    assert fixed_shapes(RunConfig(image=ImageConfig(16, 16))) == ((16, 16), None, None)
    assert fixed_shapes(RunConfig(image=ImageConfig(channels=3))) == (None, 3, None)
    assert fixed_shapes(RunConfig(image=ImageConfig(16, 32, 3))) == ((16, 32), 3, None)
    assert fixed_shapes(RunConfig(audio=AudioConfig(clip_seconds=0.5))) == (None, None, 0.5)
    given = fixed_shapes(RunConfig(image=ImageConfig(16, 16)), (8, 8), 1, 0.25)
    assert given == ((8, 8), 1, 0.25)  # the arguments win


def test_a_prepared_folder_of_other_shapes_is_refused(data, tmp_path):
    """Its records hold decoded, resized pixels and cut clips: a shape they do not have is an
    error before training, never silently ignored."""
    from crossmodal.data.preprocess import PrepSettings, preprocess

    prepared = tmp_path / "prepared"
    preprocess(data, prepared, settings=PrepSettings(16_000, 8, 8, 1, 0.25), workers=1)
    for kwargs, asked in (
        ({"image_size": (16, 16)}, "16x16x1, 0.25 s"),
        ({"channels": 3}, "8x8x3, 0.25 s"),
        ({"config": RunConfig(audio=AudioConfig(clip_seconds=0.5))}, "8x8x1, 0.5 s"),
    ):
        with pytest.raises(CrossmodalError, match=f"prepared as 8x8x1, 0.25 s; .* {asked}"):
            train(prepared, tmp_path / "m", **kwargs)
        assert not (tmp_path / "m").exists()


def test_mixed_precision_is_set_back_when_the_run_ends(monkeypatch):
    """A run with --mixed-precision on a GPU must not leave Keras' global policy at float16
    for the next run in the same process (here a GPU is pretended: the CPU has none)."""
    import contextlib

    import keras
    import tensorflow as tf

    from crossmodal.train import _mixed_precision

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    said = []
    with contextlib.ExitStack() as on_exit:
        _mixed_precision(said.append, on_exit)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert said == ["mixed precision: float16 compute, float32 variables"]
