"""The model card (MODEL/README.md, training_curves.png), card_summary and `crossmodal info`,
on model folders built by hand: no training, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from crossmodal.card import (
    card_summary,
    read_history,
    render_model_card,
    write_model_card,
    write_training_curves,
)
from crossmodal.config import FORMAT_VERSION, AudioConfig, ImageConfig, RunConfig, TrainConfig
from crossmodal.errors import CrossmodalError
from crossmodal.metrics import classification_metrics

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["cat", "dog|wolf"]
HISTORY = [
    {"epoch": 0.0, "accuracy": 0.5, "loss": 1.2, "val_accuracy": 0.5, "val_loss": 1.1},
    {"epoch": 1.0, "accuracy": 0.7, "loss": 0.8, "val_accuracy": 0.75, "val_loss": 0.7},
    {"epoch": 2.0, "accuracy": 0.8, "loss": 0.6, "val_accuracy": 0.7, "val_loss": 0.9},
]


def make_dataset_info(split: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": 1,
        "kind": "crossmodal-prepared-dataset",
        "source": "pets/",
        "source_kind": "folder",
        "classes": LABELS,
        "num_samples": 60,
        "num_unlabeled": 0,
        "counts": {
            "per_class": {
                "cat": {"samples": 30, "image": 30, "audio": 29},
                "dog|wolf": {"samples": 30, "image": 28, "audio": 30},
            },
            "image": 58,
            "audio": 59,
            "both": 57,
        },
        "image": {"height": 24, "width": 32, "channels": 3, "inferred": True},
        "audio": {"sample_rate": 8000, "clip_seconds": 0.5, "num_samples": 4000, "inferred": True},
        "skipped": [{"path": "pets/cat/x.png", "reason": "cannot decode"}] * 3,
        "ignored": [],
        "split": split,
    }


def make_validation_metrics() -> dict[str, Any]:
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    probs = np.tile([0.8, 0.2], (10, 1))
    probs[5:] = [0.1, 0.9]
    result = {"both": classification_metrics(y_true, probs, LABELS)}
    probs[:, :] = [0.6, 0.4]
    result["image"] = classification_metrics(y_true, probs, LABELS)
    return result


def make_model_dir(
    root: Path, split: dict[str, Any] | None = None, *, with_optional: bool = True
) -> Path:
    """A model folder as train writes it, minus the networks (an empty saved_model/)."""
    model = root / "model"
    (model / "saved_model").mkdir(parents=True)
    cfg = RunConfig(
        image=ImageConfig(24, 32, 3),
        audio=AudioConfig(sample_rate=8000, clip_seconds=0.5),
        # as train() resolves and saves them; early stopping watching every epoch
        train=TrainConfig(epochs=40, batch_size=32, early_stop_from=0.0),
        labels=tuple(LABELS),
    )
    cfg.save(
        model / "config.json",
        crossmodal_version="0.1.0",
        tensorflow_version="2.21.0",
        keras_version="3.15.1",
        created="2026-01-02T03:04:05Z",
    )
    (model / "labels.json").write_text(json.dumps(LABELS))
    if with_optional:
        split = split or {"kind": "stratified", "val_fraction": 0.15, "train": 50, "val": 10}
        (model / "dataset.json").write_text(json.dumps(make_dataset_info(split)))
        (model / "metrics.json").write_text(json.dumps(make_validation_metrics()))
        rows = ["epoch,accuracy,loss,val_accuracy,val_loss"]
        rows += [
            ",".join(str(r[k]) for k in ("epoch", "accuracy", "loss", "val_accuracy", "val_loss"))
            for r in HISTORY
        ]
        (model / "history.csv").write_text("\n".join(rows) + "\n")
    return model


def card_inputs(model: Path) -> dict[str, Any]:
    return {
        "config": json.loads((model / "config.json").read_text()),
        "dataset": json.loads((model / "dataset.json").read_text()),
        "metrics": json.loads((model / "metrics.json").read_text()),
        "history": read_history(model / "history.csv"),
    }


# --- the card -----------------------------------------------------------------


def test_model_card_has_every_section(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    curves = write_training_curves(model, HISTORY)
    assert curves == model / "training_curves.png"
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = write_model_card(model, **card_inputs(model))
    assert path == model / "README.md"
    card = path.read_text(encoding="utf-8")
    for heading in (
        "# Model card",
        "## Data",
        "## Classes",
        "## Settings",
        "## Validation metrics",
        "## Intended use",
        "## Limits",
    ):
        assert f"\n{heading}\n" in f"\n{card}"
    # data summary: source, counts per class and modality, shapes, skipped files
    assert "`pets/`" in card and "Samples: 60" in card and "with both 57" in card
    assert "| cat | 30 | 30 | 29 |" in card and "| dog\\|wolf | 30 | 28 | 30 |" in card
    assert "24x32 pixels, 3 channel(s)" in card and "8000 Hz" in card and "0.5 s" in card
    assert "Skipped files: 3" in card
    # classes in output order, settings
    assert "0. `cat`\n1. `dog\\|wolf`" in card
    for row in (
        "| Fusion | concat |",
        "| Image encoder | cnn |",
        "| Epochs run | 3 of at most 40 (stopped early) |",
        "| Best epoch (weights kept) | 2 |",
        "| Batch size | 32 |",
        "| Learning rate | 0.002 |",
        "| Seed | 0 |",
        "| Augmentation | on |",
    ):
        assert row in card, row
    assert "stratified random (15% per class); 50 training, 10 validation" in card
    # validation metrics for every modality present
    assert "| Metric | both | image |" in card
    assert "| Accuracy | 0.9000 | 0.4000 |" in card
    assert "![Training curves](training_curves.png)" in card
    # honest limits
    assert "Trained on 50 samples from `pets/`" in card
    assert "stratified random split: may overstate accuracy for unseen groups" in card
    assert "only 10 samples" in card and "95% interval" in card
    assert "mono float32 at 8000 Hz" in card and "as code" in card


def test_model_card_group_split_and_no_validation(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path, {"kind": "group", "val_groups": ["bob"], "regex": "^(\\w+)_"})
    inputs = card_inputs(model)
    card = render_model_card(**inputs)
    assert "may overstate" not in card
    assert "held out whole groups (bob)" in card and "validation groups: bob" in card

    inputs["dataset"]["split"] = {"kind": "none", "train": 60, "val": 0}
    card = render_model_card(**{**inputs, "metrics": {}, "history": []})
    assert "None: there was no validation split" in card
    assert "never measured on data it did not train on" in card
    assert "Training curves" not in card


def test_model_card_says_how_labels_crossed_modalities(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path, {"kind": "stratified", "val_fraction": 0.15})
    inputs = card_inputs(model)
    assert "Cross-modal transfer" not in render_model_card(**inputs)
    inputs["dataset"]["alignment"] = {
        "distill": "image->audio",
        "unlabeled_pairs": 750,
        "self_training": {
            "teacher": "image", "threshold": 0.7, "pseudo_labeled": 688, "unlabeled_pairs": 750,
        },
    }  # fmt: skip
    card = render_model_card(**inputs)
    assert (
        "| Cross-modal transfer | image->audio through 750 unlabeled pairs; self-training: the "
        "image head labeled 688 of 750 pairs (confidence >= 0.7) |" in card
    )


def test_model_card_says_why_auto_fusion_chose_its_fusion(tmp_path: Path) -> None:
    inputs = card_inputs(make_model_dir(tmp_path))
    assert "Fusion choice" not in render_model_card(**inputs)
    scores = {"concat": (0.9, 0.5, 0.3), "late": (0.8, 0.7, 0.6), "gated": (0.1, 0.1, 0.1)}
    candidates = {
        name: {"both": b, "image": i, "audio": a, "score": (b + i + a) / 3}
        for name, (b, i, a) in scores.items()
    }
    why = "'late' had the best mean validation accuracy (0.7000) after 3 epochs of each"
    inputs["metrics"] = {
        **inputs["metrics"],
        "fusion_selection": {"brief_epochs": 3, "candidates": candidates, "chosen": "late",
                             "why": why},
    }  # fmt: skip
    card = render_model_card(**inputs)
    assert f"Chosen by `--fusion auto`: {why}." in card
    assert "after 3 epochs:" in card
    assert "| late (chosen) | 0.8000 | 0.7000 | 0.6000 | 0.7000 |" in card
    assert "| concat | 0.9000 | 0.5000 | 0.3000 | 0.5667 |" in card


def test_model_card_names_the_test_time_views(tmp_path: Path) -> None:
    inputs = card_inputs(make_model_dir(tmp_path))
    audio = inputs["config"]["audio"]
    audio.update(test_crops_db=[], test_freq_warps=[], crop_threshold_db=25.0)
    assert "Test-time audio views" not in render_model_card(**inputs)
    audio["test_crops_db"] = [20.0, 32.5]
    assert (
        "| Test-time audio views | for a sound alone, 3 views: crops at 25 dB, 20 dB, 32.5 dB "
        "(activity thresholds), predictions averaged |" in render_model_card(**inputs)
    )
    audio["test_freq_warps"] = [0.95, 1.05]
    assert (
        "| Test-time audio views | for a sound alone, 9 views: crops at 25 dB, 20 dB, 32.5 dB "
        "(activity thresholds) x mel-axis spans 1, 0.95, 1.05, predictions averaged |"
        in render_model_card(**inputs)
    )
    audio["crop_frames"] = 0  # no crop: only the warps vary
    assert (
        "| Test-time audio views | for a sound alone, 3 views: mel-axis spans 1, 0.95, 1.05, "
        "predictions averaged |" in render_model_card(**inputs)
    )
    audio.update(crop_frames=32, test_crops_db=[25.0, 20.0], test_freq_warps=[1.0, 0.9])
    assert (  # each view once, as served (`AudioConfig.test_views`)
        "| Test-time audio views | for a sound alone, 4 views: crops at 25 dB, 20 dB "
        "(activity thresholds) x mel-axis spans 1, 0.9, predictions averaged |"
        in render_model_card(**inputs)
    )
    audio.update(test_crops_db=[25.0], test_freq_warps=[1.0])  # the training view alone
    assert "Test-time audio views" not in render_model_card(**inputs)
    audio.update(crop_frames=0, test_crops_db=[20.0])
    del audio["test_freq_warps"]  # a folder saved before the warps
    assert "Test-time audio views" not in render_model_card(**inputs)


def test_training_curves_need_history(tmp_path: Path) -> None:
    assert write_training_curves(tmp_path, []) is None
    assert list(tmp_path.iterdir()) == []


def test_card_module_never_imports_tensorflow() -> None:
    code = "import crossmodal.card, cli.info, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- card_summary -----------------------------------------------------------------


def test_card_summary(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    s = card_summary(model)
    assert s["path"] == str(model) and s["format_version"] == FORMAT_VERSION
    assert s["versions"] == {"crossmodal": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1"}
    assert s["labels"] == LABELS and s["num_classes"] == 2
    assert s["fusion"] == "concat" and s["encoders"] == {"image": "cnn", "audio": "cnn"}
    assert s["image"] == {"height": 24, "width": 32, "channels": 3}
    assert s["audio"] == {"sample_rate": 8000, "clip_seconds": 0.5}
    assert s["trained_samples"] == 50 and s["split"]["kind"] == "stratified"
    assert s["data"] == {"source": "pets/", "num_samples": 60, "num_skipped_files": 3}
    assert s["epochs"] == {"run": 3, "max": 40, "best": 2}
    assert s["validation"]["both"]["accuracy"] == pytest.approx(0.9)
    assert set(s["validation"]) == {"both", "image"}
    assert s["model_card"] is None
    json.dumps(s, allow_nan=False)


def test_card_summary_without_optional_files(tmp_path: Path) -> None:
    s = card_summary(make_model_dir(tmp_path, with_optional=False))
    assert s["data"] is None and s["split"] is None and s["validation"] is None
    assert s["epochs"]["run"] is None and s["labels"] == LABELS


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda m: (m / "labels.json").unlink(), "missing labels.json"),
        (lambda m: (m / "metrics.json").write_text("{nope"), "unreadable JSON"),
        (
            lambda m: (m / "config.json").write_text(
                json.dumps({**json.loads((m / "config.json").read_text()), "format_version": 99})
            ),
            "model format 99",
        ),
    ],
)
def test_card_summary_errors(tmp_path: Path, breakage, message: str) -> None:
    model = make_model_dir(tmp_path)
    breakage(model)
    with pytest.raises(CrossmodalError, match=message):
        card_summary(model)


# --- crossmodal info --------------------------------------------------------------


def test_info_human(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    result = CliRunner().invoke(app, ["info", str(model)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in (
        "cat, dog|wolf",
        "concat fusion",
        "24x32, 3 channel(s)",
        "8000 Hz",
        "50 samples",
        "may overstate",
        "accuracy 0.9000",
        "3 of at most 40, best 2",
    ):
        assert text in result.output, text
    # Not a terminal (a pipe, a log): one line a row, however narrow, and no trailing blanks
    narrow = CliRunner().invoke(app, ["info", str(model)], env={"COLUMNS": "40"})
    lines = narrow.output.splitlines()
    assert lines == [line.rstrip() for line in lines] and lines[0].startswith("path ")
    assert any("accuracy 0.9000" in line and line.startswith("validation") for line in lines)


def test_info_json_and_quiet(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    result = CliRunner().invoke(app, ["info", str(model), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(card_summary(model)))
    quiet = CliRunner().invoke(app, ["info", str(model), "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""


@pytest.mark.parametrize("kind", ["absent", "not-a-model", "wrong-version"])
def test_info_errors_are_one_line_exit_1(tmp_path: Path, kind: str) -> None:
    if kind == "absent":
        target = tmp_path / "nowhere"
    elif kind == "not-a-model":
        target = tmp_path / "empty"
        target.mkdir()
    else:
        target = make_model_dir(tmp_path)
        config = json.loads((target / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**config, "format_version": 0}))
    result = CliRunner().invoke(app, ["info", str(target), "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_info_never_imports_tensorflow(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    code = textwrap.dedent(
        f"""
        import sys
        from typer.testing import CliRunner
        from cli.main import app
        r = CliRunner().invoke(app, ["info", {str(model)!r}, "--json"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(app, ["info", {str(model)!r}])
        assert r.exit_code == 0, r.output
        assert "tensorflow" not in sys.modules, "info imported TensorFlow"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_card_says_which_image_settings_the_user_set():
    from crossmodal.card import _data_section

    image = {"height": 48, "width": 48, "channels": 1}
    size_only = _data_section({"image": {**image, "inferred": False, "channels_inferred": True}})
    assert "48x48 pixels (set by the user), 1 channel(s) (inferred from the data)" in size_only
    both = _data_section({"image": {**image, "inferred": False, "channels_inferred": False}})
    assert "48x48 pixels, 1 channel(s) (set by the user)" in both
    old = _data_section({"image": {**image, "inferred": True}})  # a folder from before the flag
    assert "48x48 pixels, 1 channel(s) (inferred from the data)" in old


def test_the_card_says_a_shape_was_a_default_only_when_no_sample_could_set_it():
    from crossmodal.card import _data_section

    counts = {"image": 0, "audio": 0}
    image = {"height": 32, "width": 32, "channels": 1}
    audio = {"sample_rate": 16000, "clip_seconds": 1.0}
    guessed = _data_section(
        {"counts": counts, "image": {**image, "inferred": True},
         "audio": {**audio, "inferred": True}}
    )  # fmt: skip
    assert "32x32 pixels, 1 channel(s) (defaults: no sample had an image)" in guessed
    assert "clips of 1 s (a default: no sample had a sound)" in guessed
    chosen = _data_section(
        {"counts": counts, "image": {**image, "inferred": False, "channels_inferred": True},
         "audio": {**audio, "inferred": False}}
    )  # fmt: skip
    assert "32x32 pixels (set by the user), 1 channel(s) (defaults: no sample" in chosen
    assert "clips of 1 s (set by the user)" in chosen


def test_info_reads_odd_field_types_in_a_hand_edited_folder(tmp_path: Path) -> None:
    # dataset.json is the user's to edit; a field of another type is shown, never a traceback.
    model = make_model_dir(tmp_path)
    dataset = json.loads((model / "dataset.json").read_text())
    dataset.update(skipped=5, split={"kind": "group", "val_groups": 5, "train": 1, "val": 1})
    (model / "dataset.json").write_text(json.dumps(dataset))
    assert card_summary(model)["data"]["num_skipped_files"] is None
    result = CliRunner().invoke(app, ["info", str(model)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "validation groups 5" in result.output


def test_best_epoch_is_the_one_early_stopping_kept() -> None:
    """Epochs before `early_stop_from` are not watched: a lower loss there is not the kept
    weights (the card named it once); none watched keeps the last epoch's."""
    from crossmodal.card import _best_epoch

    history = [{"epoch": e, "val_loss": v} for e, v in enumerate([0.5, 0.2, 0.4, 0.3, 0.6, 0.7])]
    assert _best_epoch(history, {"epochs": 6, "early_stop_from": 0.0}) == 2
    assert _best_epoch(history, {"epochs": 6, "early_stop_from": 0.5}) == 4
    assert (
        _best_epoch(history[:2], {"epochs": 6, "early_stop_from": 0.5}) == 2
    )  # none watched: the last
    assert _best_epoch([{"epoch": 0, "loss": 1.0}], {}) == 1
    assert _best_epoch([], {}) is None


def test_weakest_classes_skip_a_class_absent_from_validation() -> None:
    """A class with no validation sample (support 0) scores F1 0 by convention: it is not
    weak, there was nothing to score, as the report's table already treats it."""
    from crossmodal.card import _metrics_section

    y_true = np.array([0, 0, 0, 0, 1, 1])
    probs = np.tile([0.2, 0.7, 0.1], (6, 1))
    probs[0] = [0.9, 0.05, 0.05]  # cat: F1 0.40, dog: F1 0.57, owl: never seen
    result = classification_metrics(y_true, probs, ["cat", "dog", "owl"])
    assert result["per_class"]["owl"]["support"] == 0
    card = _metrics_section({"both": result}, curves=False)
    assert "Weakest classes (F1 below 0.5): `cat` (0.40)." in card
    assert "owl" not in card
