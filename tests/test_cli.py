"""End to end through the command line, on tiny data: artifacts, exit codes, and the
SavedModel served by a process that never imports crossmodal."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tiny import CLASSES, make_dataset

pytestmark = pytest.mark.e2e

TRAIN_FLAGS = ["--epochs", "4", "--batch-size", "8", "--val-fraction", "0.25", "--seed", "3"]


def run(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[1],
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "m"
    run("train", str(data), "--out", str(out), *TRAIN_FLAGS, "-q")
    return out


def test_help_and_bad_arguments_never_import_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        from typer.testing import CliRunner
        from cli.main import app
        r = CliRunner().invoke(app, ["--help"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(app, ["train", "--help"])
        assert r.exit_code == 0, r.output
        assert "tensorflow" not in sys.modules, "--help imported TensorFlow"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    none = run(check=False)  # no command: the help on stderr, and a failure for scripts
    assert none.returncode == 1 and none.stdout == "" and "Commands" in none.stderr
    bad = run("train", "nowhere", "--out", "x", "--fusion", "nope", check=False)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "unknown fusion" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_every_train_flag_sets_a_real_setting():
    """Each flag of `train` that maps to a setting names one that exists, and every mapped name
    is a parameter of the command."""
    import dataclasses
    import inspect

    from cli.train import FLAG_FIELDS, train
    from crossmodal.config import RunConfig

    parameters = inspect.signature(train).parameters
    for flag, (section, name) in FLAG_FIELDS.items():
        assert flag in parameters, flag
        assert name in {f.name for f in dataclasses.fields(getattr(RunConfig(), section))}, flag
    assert FLAG_FIELDS["members"] == ("model", "members")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train"], "missing option --out"),
        (["train", "--out", "m"], "missing argument DATA"),
        (["train", "x", "--out", "y", "--epochs", "many"], "--epochs"),
        (["train", "x", "--out", "y", "--members", "17"], "--members"),
        (["train", "x", "--out", "y", "--noise-dir", "nowhere"], "--noise-dir nowhere: not a"),
        (["train", "x", "--out", "y", "--flip", "sideways"], "unknown image_flip"),
        (["train", "x", "--out", "y", "--lone-modality", "own"], "unknown lone_modality"),
        (["bogus"], "No such command"),
        (["preprocess", "does-not-exist", "--out", "z"], "no such file or folder"),
        (["evaluate", "no-model", "no-data"], "no model folder"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(args, message):
    proc = run(*args, check=False)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_mistakes_with_a_model_or_outputs_are_one_line_before_tensorflow(model, data, tmp_path):
    """A wrong --modality, nothing to predict on, no model, an --out that cannot be written,
    --resume with settings it would ignore: exit 1, one line, and TensorFlow never imported."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not media")
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "file").write_text("a file")
    (weights := tmp_path / "weights.json").write_text('{"a": "heavy"}')
    (listed := tmp_path / "list.csv").write_text(f"image,audio\n{data / 'a' / 'g0_a0.png'},\n")
    a, nowhere = str(data / "a"), str(tmp_path / "nowhere")
    cases = [
        # the rows would replace the manifest they come from; the report, the model's metrics
        (["predict", str(model), str(listed), "-o", str(listed)], "is one of the inputs"),
        (["evaluate", str(model), str(data), "--out", str(model)], "is a model folder"),
        (["predict", str(model), a, "--modality", "bogus"], "'bogus' is not one of"),
        (["predict", str(model), str(tmp_path / "empty")], "no image or sound files"),
        (["predict", nowhere, a], "no model folder"),
        (["predict", str(model), a, "--out", str(tmp_path / "dir.csv")], "is a folder"),
        (["predict", str(model), a, "--out", str(tmp_path / "rows.txt")], ".csv or .jsonl"),
        (["evaluate", str(model), str(data), "--out", str(tmp_path / "file")], "not a folder"),
        (["evaluate", nowhere, str(data)], "no model folder"),
        (["train", "--resume", nowhere, "--epochs", "3", "--seed", "1"], "drop --epochs, --seed"),
        (["predict", str(model), a, "--out", str(tmp_path / "file" / "p.csv")], "not a folder"),
        (["evaluate", str(model), str(data), "--out", str(tmp_path / "file/r")], "not a folder"),
        # train's typos: refused before TensorFlow is imported or the data is preprocessed
        (["train", str(data), "--out", str(tmp_path / "file" / "m")], "file is not a folder"),
        (["train", nowhere, "--out", str(tmp_path / "m")], "no such file or folder"),
        (["train", str(data), "--out", str(tmp_path / "m"), "--val-dir", nowhere], "--val-dir"),
        (["train", str(data), "--out", str(tmp_path / "m"), "--group-regex", "("], "regular"),
        (["train", str(data), "--out", str(tmp_path / "m"), "--class-weight", nowhere], "JSON"),
        (
            ["train", str(data), "--out", str(tmp_path / "m"), "--class-weight", str(weights)],
            "expected a JSON",
        ),
    ]
    code = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from cli.main import main
        for args, message in json.loads(sys.argv[1]):
            sys.argv = ["crossmodal", *args]
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    main()
                except SystemExit as exc:
                    code = exc.code
            text = err.getvalue()
            assert code == 1, (args, code, text)
            assert message in text and len(text.strip().splitlines()) == 1, (args, text)
        assert "tensorflow" not in sys.modules, "a user's mistake imported TensorFlow"
        """
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True, cwd=root
    )
    assert proc.returncode == 0, proc.stderr
    assert not any(p.name.startswith((".m", "m")) for p in tmp_path.iterdir())  # nothing begun
    assert listed.read_text().startswith("image,audio\n")


def test_the_python_evaluate_refuses_mistakes_before_importing_tensorflow(model, data, tmp_path):
    """As the CLI does: a Python caller's wrong argument or model path costs no 4 s import."""
    (tmp_path / "file").write_text("x")
    code = textwrap.dedent(
        """
        import sys
        from crossmodal.errors import CrossmodalError
        from crossmodal.evaluate import evaluate
        model, data, file = sys.argv[1:]
        for args, kwargs, words in (
            ((model, data), {"modality": "sound"}, "--modality"),
            ((model, data), {"batch_size": 0}, "--batch-size"),
            ((model, data), {"fail_under": 2.0}, "fail-under"),
            ((model, data), {"out": file}, "not a folder"),
            ((file, data), {}, "model folder"),
        ):
            try:
                evaluate(*args, **kwargs)
                raise AssertionError(f"no error for {kwargs}")
            except CrossmodalError as exc:
                assert words in str(exc), (words, str(exc))
        assert "tensorflow" not in sys.modules, "a mistake imported TensorFlow"
        """
    )
    root = Path(__file__).resolve().parents[1]
    args = [str(model), str(data), str(tmp_path / "file")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=root
    )
    assert proc.returncode == 0, proc.stderr


def test_overwrite_replaces_only_a_model_folder_and_os_errors_are_one_line(data, tmp_path):
    """--overwrite on a folder that is not a model (a user's project) is refused, its files
    untouched; a path the system refuses is one line, not a traceback."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "thesis.tex").write_text("years of work")
    proc = run("train", str(data), "--out", str(project), "--overwrite", check=False)
    assert proc.returncode == 1 and "is not a model folder" in proc.stderr, proc.stderr
    assert (project / "thesis.tex").read_text() == "years of work"
    # Another tool's config.json and saved_model/ do not make it a crossmodal model folder.
    (project / "config.json").write_text('{"hidden_size": 768}')
    (project / "saved_model").mkdir()
    proc = run("train", str(data), "--out", str(project), "--overwrite", check=False)
    assert proc.returncode == 1 and "is not a model folder" in proc.stderr, proc.stderr
    assert (project / "thesis.tex").exists() and (project / "saved_model").is_dir()
    proc = run("train", str(data), "--out", str(tmp_path / "project" / "thesis.tex" / "m"),
               check=False)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "thesis.tex" in proc.stderr


def test_train_mixes_background_sounds_from_a_noise_dir(data, tmp_path):
    import soundfile as sf

    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    sf.write(noise / "hum.wav", 0.2 * np.sin(np.arange(8000) * 0.3), 8000)
    sf.write(noise / "hiss.flac", 0.05 * rng.normal(size=4000), 16000)
    out = tmp_path / "m"
    proc = run(
        "train", str(data), "--out", str(out), *TRAIN_FLAGS, "--epochs", "1",
        "--noise-dir", str(noise), "--flip", "horizontal",
    )  # fmt: skip
    assert "background noise: 1 s" in proc.stdout + proc.stderr
    assert "epoch 1/1 " in proc.stdout + proc.stderr  # a plain line per epoch
    config = json.loads((out / "config.json").read_text())
    assert config["augment"]["noise_dir"] == str(noise)
    assert config["augment"]["image_flip"] == "horizontal"


def test_readme_main_job_trains_on_the_shipped_sample_data(tmp_path):
    """README's first command, with its defaults, on sample_data/. Each modality alone is
    built to be ambiguous there (the image cannot tell circle_low from circle_high, the sound
    cannot tell circle_high from square_high), so the fused model must beat both."""
    root = Path(__file__).resolve().parents[1]
    proc = run("train", str(root / "sample_data"), "--out", str(tmp_path / "sample"), "--json")
    report = json.loads(proc.stdout)
    val = report["validation"]
    assert val["both"]["num_samples"] >= 20
    assert val["both"]["accuracy"] >= 0.85, val
    assert val["both"]["accuracy"] > max(val["image"]["accuracy"], val["audio"]["accuracy"])


def test_version():
    assert run("--version").stdout.startswith("crossmodal ")


def test_preprocess_writes_records_and_reuses_its_cache(data, tmp_path):
    out = tmp_path / "prep"
    first = json.loads(run("preprocess", str(data), "--out", str(out), "--json").stdout)
    assert first["num_samples"] == 3 * 8 and first["classes"] == list(CLASSES)
    assert first["image"]["height"] == 16 and first["image"]["channels"] == 1
    assert first["audio"]["clip_seconds"] == 0.25 and first["reused"] is False
    assert (out / "dataset.json").exists() and list(out.glob("shard-*.bin"))
    again = json.loads(run("preprocess", str(data), "--out", str(out), "--json").stdout)
    assert again["reused"] is True


def test_train_writes_a_complete_model_folder(model):
    for name in (
        "saved_model",
        "model.keras",
        "config.json",
        "labels.json",
        "history.csv",
        "dataset.json",
    ):
        assert (model / name).exists(), name
    config = json.loads((model / "config.json").read_text())
    assert config["format_version"] == 1 and config["labels"] == list(CLASSES)
    assert config["tensorflow_version"] and config["crossmodal_version"]
    assert config["model"]["members"] == 2  # the default: an ensemble of two networks
    assert json.loads((model / "labels.json").read_text()) == list(CLASSES)
    with open(model / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) <= 4 and "val_loss" in rows[0]
    assert not list(model.parent.glob(".m.partial-*")), "staging folder left behind"


def test_train_refuses_to_overwrite(model, data):
    proc = run("train", str(data), "--out", str(model), check=False)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr


def test_evaluate_writes_reports_and_ablation(model, data, tmp_path):
    report = tmp_path / "report"
    proc = run("evaluate", str(model), str(data), "--out", str(report), "--json")
    metrics = json.loads(proc.stdout)
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "num_samples"):
        assert key in metrics
    assert metrics["num_samples"] == 24
    assert set(metrics["per_class"]) == set(CLASSES)
    assert metrics["confusion_matrix"]["labels"] == list(CLASSES)
    assert np.sum(metrics["confusion_matrix"]["matrix"]) == 24
    assert set(metrics["ablation"]) == {"both", "image", "audio"}
    # Each column really removes the other modality. Classes a and b share their images
    # sample for sample, a and c their sounds: from the image alone rows a and b of the
    # confusion matrix must be equal, from the sound alone rows a and c; with both, c's bars
    # tell it from a.
    rows = {
        m: dict(zip(CLASSES, r["confusion_matrix"]["matrix"], strict=True))
        for m, r in metrics["ablation"].items()
    }
    assert rows["image"]["a"] == rows["image"]["b"]
    assert rows["audio"]["a"] == rows["audio"]["c"]
    assert rows["both"]["a"] != rows["both"]["c"]
    assert json.loads((report / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert (report / "report.md").read_text().count("|") > 10
    assert (report / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_modality_and_fail_under_exit_2(model, data):
    # Classes a and b share the very same images: from the image alone at most 16 of 24
    # samples can be right, so 0.7 cannot be reached whatever the training did.
    proc = run(
        "evaluate",
        str(model),
        str(data),
        "--modality",
        "image",
        "--fail-under",
        "0.7",
        "--json",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["modality"] == "image" and metrics["accuracy"] <= 16 / 24
    assert "below --fail-under" in proc.stderr
    ok = run("evaluate", str(model), str(data), "--fail-under", "0.0", "-q")
    assert ok.stdout == ""


def test_evaluate_refuses_several_labels_for_a_single_label_model_and_warns_of_skipped_files(
    model, data, tmp_path
):
    rows = [f"{data / 'a' / 'g0_a0.png'},{data / 'a' / 'g0_a0.wav'},a;b"]
    (tmp_path / "several.csv").write_text("image,audio,label\n" + "\n".join(rows) + "\n")
    proc = run("evaluate", str(model), str(tmp_path / "several.csv"), check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "several labels" in proc.stderr and "single-label" in proc.stderr
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [
        f"{tmp_path / 'broken.png'},{data / 'a' / 'g0_a0.wav'},a",
        f"{data / 'b' / 'g0_b0.png'},{data / 'b' / 'g0_b0.wav'},",  # no label: not scored
        f"{data / 'c' / 'g1_c1.png'},{data / 'c' / 'g1_c1.wav'},c",
        f"{data / 'c' / 'g1_c1.png'},{data / 'c' / 'g1_c1.wav'},a",  # the same pair, relabeled
    ]
    half = tmp_path / "half.csv"
    half.write_text("image,audio,label\n" + "\n".join(rows) + "\n")
    proc = run("evaluate", str(model), str(half), "--json")
    assert "warning: 2 file(s) or row(s) could not be used" in proc.stderr
    assert "warning: 1 unlabeled sample(s) were not scored" in proc.stderr
    conflict = "rows 4 and 5 name the same pair with labels 'c' and 'a'; row 4's label is used"
    assert f"warning: {half}: {conflict}" in proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["warnings"] == [f"{half}: {conflict}"]
    assert sorted(k["path"] for k in metrics["skipped_files"]) == sorted(
        [str(tmp_path / "broken.png"), f"{half}:5"]
    )
    assert metrics["num_samples"] == 2 and metrics["num_unlabeled"] == 1


def test_predict_formats_and_lone_modalities(model, data, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "only.png").write_bytes((data / "c" / "g0_c0.png").read_bytes())
    (lone / "only_sound.wav").write_bytes((data / "b" / "g1_b1.wav").read_bytes())
    out_csv = tmp_path / "p.csv"
    run("predict", str(model), str(data / "a"), str(lone), "--out", str(out_csv))
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 + 2
    assert all(r["label"] in CLASSES for r in rows)
    lone_rows = [r for r in rows if "only" in (r["image"] + r["audio"])]
    assert {(bool(r["image"]), bool(r["audio"])) for r in lone_rows} == {
        (True, False),
        (False, True),
    }
    # which modalities each prediction read, as in JSONL
    used = {(r["image_used"], r["audio_used"]) for r in lone_rows}
    assert used == {("true", "false"), ("false", "true")}
    pairs = [r for r in rows if r not in lone_rows]
    assert all((r["image_used"], r["audio_used"]) == ("true", "true") for r in pairs)
    out_jsonl = tmp_path / "p.jsonl"
    run("predict", str(model), str(lone), "--out", str(out_jsonl), "--top-k", "2", "--workers", "1")
    rows = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert all(len(r["top_k"]) == 2 for r in rows)
    table = run("predict", str(model), str(lone))
    assert "only" in table.stdout


def test_predict_reports_broken_inputs_and_exits_3(model, data, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    (bad / "fine.wav").write_bytes((data / "a" / "g0_a0.wav").read_bytes())
    proc = run("predict", str(model), str(bad), "--json", check=False)
    assert proc.returncode == 3
    rows = json.loads(proc.stdout)
    assert [r.get("error") is not None for r in rows] == [True, False]
    assert "broken.png" in rows[0]["error"]


def test_a_second_image_for_a_stem_is_a_warning_not_an_unreadable_input(model, data, tmp_path):
    """a.png and a.jpg beside a.wav: a.png is used, a.jpg is named in a warning, and the run
    exits 0 (a.jpg is readable; exit 3 would say otherwise). -q keeps the warning quiet."""
    two = tmp_path / "two"
    two.mkdir()
    image = (data / "a" / "g0_a0.png").read_bytes()
    (two / "a.png").write_bytes(image)
    (two / "a.jpg").write_bytes(image)  # the name decides the preference, not the bytes
    (two / "a.wav").write_bytes((data / "a" / "g0_a0.wav").read_bytes())
    proc = run("predict", str(model), str(two), "--json", check=False)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["image"] == str(two / "a.png") and "error" not in row and "warning" not in row
    assert proc.stderr.strip() == (
        f"warning: {two / 'a.jpg'}: duplicate image for stem 'a': a.png is used; "
        "it is not predicted"
    )
    quiet = run("predict", str(model), str(two), "-o", str(tmp_path / "p.csv"), "-q")
    assert quiet.stderr == ""


def test_a_pair_with_an_unreadable_file_is_predicted_from_the_other_and_exits_3(
    model, data, tmp_path
):
    """The pair keeps its readable sound, but a script must not take it for a whole pair: the
    row warns (JSON, CSV column, a stderr line beside the table) and the exit code is 3."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"not a png")
    (bad / "x.wav").write_bytes((data / "a" / "g0_a0.wav").read_bytes())
    proc = run("predict", str(model), str(bad), "--json", check=False)
    assert proc.returncode == 3, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert "error" not in row and row["label"] and "x.png" in row["warning"]
    assert row["audio_used"] and not row["image_used"]
    out = tmp_path / "p.csv"
    proc = run("predict", str(model), str(bad), "--out", str(out), check=False)
    assert proc.returncode == 3 and "could not be read" in proc.stderr
    (csv_row,) = csv.DictReader(out.open())
    assert csv_row["label"] == row["label"] and "x.png" in csv_row["warning"]
    proc = run("predict", str(model), str(bad), check=False)
    assert proc.returncode == 3 and "warning:" in proc.stderr and "x.png" in proc.stderr
    assert row["label"] in proc.stdout


def test_predict_modality_without_that_input_exits_3_and_says_why(model, data, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "x.png").write_bytes((data / "c" / "g0_c0.png").read_bytes())
    proc = run("predict", str(model), str(lone), "--modality", "audio", "--json", check=False)
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)[0]["error"] == "no audio input"
    assert "could not be read or has no audio" in proc.stderr


def test_predict_reports_every_named_input_on_a_row_of_its_own(model, data, tmp_path):
    """What a user names is answered: a file that is not media, or a folder without any, gets
    an error row (not silence), a manifest needs no label column and one without a usable row
    does not stop the others, a manifest pair with a missing file is predicted from the other
    with a warning (as a folder pair is), and an error row names its file in its column."""
    work = tmp_path / "w"
    work.mkdir()
    image = work / "x.png"
    image.write_bytes((data / "c" / "g0_c0.png").read_bytes())
    notes = work / "notes.mp3"
    notes.write_bytes(b"an unsupported format")
    (work / "plain.csv").write_text("image,audio\nx.png,gone.wav\n")
    (work / "empty.csv").write_text("image,audio,label\nmissing.png,,\n")
    (texts := tmp_path / "texts").mkdir()
    (texts / "notes.txt").write_text("a typo'd folder")
    proc = run(
        "predict", str(model), str(image), str(notes), str(work / "plain.csv"),
        str(work / "empty.csv"), str(texts), "--json", check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    rows = json.loads(proc.stdout)
    by_error = {r.get("error", "").split(":")[0]: r for r in rows if "error" in r}
    assert "not an image, sound" in by_error[str(notes)]["error"]  # .mp3: neither column
    assert by_error[str(work / "missing.png")]["image"] == str(work / "missing.png")
    assert "does not exist" in by_error[str(work / "missing.png")]["error"]
    assert "no image or sound file" in by_error[str(texts)]["error"]  # not passed over
    predicted = [r for r in rows if "error" not in r]
    assert [r["image"] for r in predicted] == [str(image), str(image)]
    (from_manifest,) = [r for r in predicted if r["audio"]]
    assert from_manifest["audio"] == str(work / "gone.wav")
    assert "gone.wav: does not exist" in from_manifest["warning"]
    assert not from_manifest["audio_used"] and from_manifest["image_used"]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "y.png").write_bytes(b"not a png")
    (broken / "y.wav").write_bytes((data / "a" / "g0_a0.wav").read_bytes())
    proc = run("predict", str(model), str(broken), "--modality", "image", "--json", check=False)
    (row,) = json.loads(proc.stdout)
    assert proc.returncode == 3 and row["error"].startswith("no image input; ")
    assert "y.png: not a readable image" in row["error"]


def test_predict_table_keeps_one_line_per_row_and_stops_quietly_on_a_closed_pipe(
    model, data, tmp_path
):
    odd = tmp_path / "odd"
    odd.mkdir()
    for name in ("tab\tname.png", "new\nline.png"):
        (odd / name).write_bytes((data / "c" / "g0_c0.png").read_bytes())
    lines = run("predict", str(model), str(odd)).stdout.splitlines()
    assert len(lines) == 3 and all(line.count("\t") == 4 for line in lines)
    assert any(line.startswith(str(odd / "tab\\tname.png") + "\t") for line in lines)
    # A reader that stops early (`| head`): no "Broken pipe" error, the exit status of a
    # tool killed by SIGPIPE.
    code = (
        "import sys, typer\nfrom cli.output import handled\ntry:\n    with handled():\n"
        "        for i in range(200000):\n            print('row', i)\n"
        "except typer.Exit as e:\n    sys.exit(e.exit_code)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


def test_predict_table_writes_each_row_to_a_pipe_as_it_arrives(capfdbinary):
    """Not held back until every input is predicted: `predict M big/ | head` shows rows at
    once, and memory does not grow with the number of inputs."""
    from cli.output import Output
    from cli.predict import _print_table

    before_second = []

    def rows():
        yield {"image": "a.png", "audio": None, "label": "x", "probability": 0.5,
               "top_k": [{"label": "x", "probability": 0.5}]}  # fmt: skip
        before_second.append(capfdbinary.readouterr().out.decode())
        yield {"image": None, "audio": "b.wav", "error": "cannot read b.wav"}

    assert _print_table(Output(), rows()) == 1  # one row names an input that failed
    assert before_second[0].splitlines() == [
        "image\taudio\tlabel\tprobability\ttop_k",
        "a.png\t-\tx\t0.5000\tx 0.500",
    ]
    assert capfdbinary.readouterr().out.decode().splitlines() == [
        "-\tb.wav\tERROR\t\tcannot read b.wav"
    ]
    assert _print_table(Output(quiet=True), rows()) == 1
    assert capfdbinary.readouterr().out == b""


@pytest.mark.parametrize("interrupted", [True, False])
def test_an_error_that_a_ctrl_c_turned_into_is_an_interrupt_not_a_traceback(interrupted):
    """TensorFlow stopped mid-trace by Ctrl-C once raised a TypeError from the loss instead of
    KeyboardInterrupt: that is exit 130 and one line; the same error without a Ctrl-C is a bug
    and keeps its traceback."""
    code = textwrap.dedent(
        f"""
        import os, signal, sys, typer
        from cli.output import handled
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as cli.main.main() does
        try:
            with handled():
                if {interrupted}:
                    try:
                        os.kill(os.getpid(), signal.SIGINT)
                    except KeyboardInterrupt:
                        pass  # swallowed on the way, as a library may
                raise TypeError("Failed to convert elements of (None,) to Tensor")
        except typer.Exit as e:
            sys.exit(e.exit_code)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    if interrupted:
        assert (proc.returncode, proc.stderr) == (130, "interrupted\n")
    else:
        assert proc.returncode == 1 and "Traceback" in proc.stderr and "TypeError" in proc.stderr


def test_nested_handled_blocks_report_an_interrupt_once_and_keep_inner_exit_codes():
    code = textwrap.dedent(
        """
        import os, signal, sys, typer
        from cli.output import handled
        from crossmodal.errors import CrossmodalError
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as cli.main.main() does
        codes = []
        for inner in (KeyboardInterrupt(), CrossmodalError("bad")):
            try:
                with handled():
                    try:
                        os.kill(os.getpid(), signal.SIGINT)
                    except KeyboardInterrupt:
                        pass
                    with handled():
                        raise inner
            except typer.Exit as e:
                codes.append(e.exit_code)
        print(codes)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert proc.stdout.strip() == "[130, 1]"
    assert proc.stderr == "interrupted\nerror: bad\n"


@pytest.mark.parametrize("modality", ["both", "audio"])
def test_predict_rows_do_not_depend_on_batching(model, data, tmp_path, modality):
    """The pipelined predict (decode threads, model thread, row formatting) keeps input order
    and gives every row the same answer whatever the batch size, across batches that hold
    only unreadable files, lone images (no audio under --modality audio) and mixed rows."""
    from crossmodal.predict import predict

    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a_broken.png", "b_broken.png", "c_broken.wav"):
        (bad / name).write_bytes(b"not media")
    (bad / "d_only.png").write_bytes((data / "c" / "g0_c0.png").read_bytes())
    inputs = [data / "a", bad, data / "b"]
    one_batch = list(predict(model, inputs, modality=modality, batch_size=64))
    assert len(one_batch) == 8 + 4 + 8
    for batch_size in (1, 2, 5):
        rows = list(predict(model, inputs, modality=modality, batch_size=batch_size, workers=2))
        assert [(r["image"], r["audio"]) for r in rows] == [
            (r["image"], r["audio"]) for r in one_batch
        ]
        for got, want in zip(rows, one_batch, strict=True):
            assert got.get("error") == want.get("error")
            assert got.get("label") == want.get("label")
            if "top_k" in want:
                assert [t["label"] for t in got["top_k"]] == [t["label"] for t in want["top_k"]]
                np.testing.assert_allclose(
                    [t["probability"] for t in got["top_k"]],
                    [t["probability"] for t in want["top_k"]],
                    atol=1e-5,
                )
    errors = {Path(r["image"] or r["audio"]).name: r["error"] for r in one_batch if "error" in r}
    assert {"a_broken.png", "b_broken.png", "c_broken.wav"} <= set(errors)
    if modality == "audio":
        assert errors["d_only.png"] == "no audio input"
        assert all(not r["image_used"] for r in one_batch if "error" not in r)
    else:
        assert "d_only.png" not in errors


BARE_CLIENT = """
import json, sys
import numpy as np, soundfile as sf, tensorflow as tf
from PIL import Image
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
rows = []
for image, audio in json.loads(sys.argv[2]):
    img = np.zeros((1, 1, 1, 1), np.uint8)
    if image:
        img = np.asarray(Image.open(image))[None, :, :, None]
    wav = sf.read(audio, dtype="float32")[0][None] if audio else np.zeros((1, 1), np.float32)
    out = serve(image=tf.constant(img), image_present=tf.constant([image is not None]),
                audio=tf.constant(wav), audio_present=tf.constant([audio is not None]))
    rows.append({"p": out["probabilities"].numpy()[0].tolist(),
                 "label": out["label"].numpy()[0].decode()})
assert "crossmodal" not in sys.modules
print(json.dumps(rows))
"""


def test_bare_saved_model_matches_crossmodal_predict(model, data, tmp_path):
    pairs = [
        (str(data / "a" / "g0_a0.png"), str(data / "a" / "g0_a0.wav")),
        (str(data / "c" / "g1_c3.png"), None),
        (None, str(data / "b" / "g0_b2.wav")),
    ]
    bare = subprocess.run(
        [sys.executable, "-c", BARE_CLIENT, str(model / "saved_model"), json.dumps(pairs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    served = json.loads(bare.stdout)
    for (image, audio), want in zip(pairs, served, strict=True):
        files = [f for f in (image, audio) if f]
        rows = json.loads(run("predict", str(model), *files, "--json", "--top-k", "3").stdout)
        assert len(rows) == 1
        probs = {t["label"]: t["probability"] for t in rows[0]["top_k"]}
        got = [probs[label] for label in CLASSES]
        np.testing.assert_allclose(got, want["p"], atol=1e-5)
        assert rows[0]["label"] == want["label"]


def test_model_folders_of_another_format_or_incomplete_are_refused(model, data, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(model, old)
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    proc = run("predict", str(old), str(data / "a"), check=False)
    assert proc.returncode == 1 and "format 99" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    shutil.rmtree(broken / "saved_model")
    proc = run("evaluate", str(broken), str(data), check=False)
    assert proc.returncode == 1 and "missing saved_model" in proc.stderr


def test_cli_modality_choices_are_the_core_ones():
    """cli/options.py keeps its own copy (importing the core's pulls numpy into --help)."""
    from cli.options import MODALITY_CHOICES
    from crossmodal.inference import MODALITIES

    assert MODALITY_CHOICES == MODALITIES


def test_messages_stay_one_line_in_logs(capsys, monkeypatch):
    """A library's error of several lines (TensorFlow's "... \n You may be trying to load on a
    different device") is joined; a long line on stderr (an epoch's metrics under --json) is
    not wrapped at the terminal's width."""
    from cli.output import Output, error_line
    from crossmodal.errors import CrossmodalError

    assert error_line(CrossmodalError("cannot load (first\n You may\n\nbell\x07)")) == (
        "cannot load (first You may bell\\x07)"
    )
    monkeypatch.setenv("COLUMNS", "40")
    line = "epoch 1/1 " + " ".join(f"metric_{k}=0.{k:04d}" for k in range(12))
    Output(json_mode=True).info(line)
    assert capsys.readouterr().err == line + "\n"
