"""Every input and output path on a filesystem of tf.io.gfile: `ram://` stands in for gs://
and s3:// (it lives in this process, so everything here runs in-process, workers=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tiny import make_dataset

from crossmodal import fsio
from crossmodal.errors import CrossmodalError

ROOT = Path(__file__).resolve().parents[1]


def test_urls_survive_pathlib_and_local_paths_stay_local():
    assert fsio.normalize(Path("gs://bucket/data/x.png")) == "gs://bucket/data/x.png"
    assert fsio.normalize(Path("ram://b/m")) == "ram://b/m"
    assert fsio.is_remote(Path("s3://b/k")) and fsio.is_remote("hdfs://nn:8020/x")
    assert not fsio.is_remote("data/x.png") and not fsio.is_remote(Path("/tmp/x"))
    assert fsio.join("gs://b/prep", "part-00000-of-00002/shard-00000.bin") == (
        "gs://b/prep/part-00000-of-00002/shard-00000.bin"
    )
    assert fsio.parent("gs://b/prep/x") == "gs://b/prep" and fsio.basename("gs://b/m/") == "m"
    assert fsio.join(Path("/tmp/p"), "a") == Path("/tmp/p/a")


def test_local_preprocessing_never_imports_tensorflow(tmp_path):
    make_dataset(tmp_path / "data", per_class=2)
    code = (
        "import sys\n"
        "from crossmodal.data.preprocess import preprocess, open_prepared\n"
        f"preprocess({str(tmp_path / 'data')!r}, {str(tmp_path / 'prep')!r}, workers=1)\n"
        f"open_prepared({str(tmp_path / 'prep')!r})\n"
        "assert 'tensorflow' not in sys.modules, 'local preprocessing imported TensorFlow'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


def upload(local: Path, url: str) -> str:
    """Copy a local folder tree to `url` with tf.io.gfile."""
    import tensorflow as tf

    for folder, _, files in os.walk(local):
        rel = os.path.relpath(folder, local)
        target = url if rel == "." else f"{url}/{rel}"
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}", overwrite=True)
    return url


@pytest.fixture
def ram(tmp_path) -> str:
    pytest.importorskip("tensorflow")
    root = f"ram://crossmodal-{uuid.uuid4().hex[:8]}"
    upload(make_dataset(tmp_path / "data"), f"{root}/data")
    return root


def test_train_evaluate_predict_with_every_path_in_ram(ram, tmp_path):
    import tensorflow as tf

    from crossmodal.artifacts import open_model_dir
    from crossmodal.card import card_summary
    from crossmodal.config import ModelConfig, RunConfig, TrainConfig
    from crossmodal.data.preprocess import PrepSettings, open_prepared, preprocess
    from crossmodal.data.scan import scan
    from crossmodal.evaluate import evaluate
    from crossmodal.predict import predict, write_rows
    from crossmodal.train import train

    gfile = tf.io.gfile
    data, model, report = f"{ram}/data", f"{ram}/models/m", f"{ram}/reports/r"
    scanned = scan(data)
    assert len(scanned.samples) == 24 and scanned.samples[0].image.startswith(f"{data}/a/")

    config = RunConfig(
        model=ModelConfig(embed_dim=16, filters=(8, 16), audio_filters=(8, 16), shared_dim=8),
        train=TrainConfig(epochs=2, batch_size=8, val_fraction=0.25, seed=5),
    )
    result = train(data, model, config=config)
    assert result.config.data == data
    for name in ("config.json", "labels.json", "model.keras", "dataset.json", "history.csv"):
        assert gfile.exists(f"{model}/{name}"), name
    assert gfile.exists(f"{model}/saved_model/saved_model.pb")
    assert not gfile.exists(f"{ram}/models/.m.partial")  # staged locally, copied over
    runs = Path(os.environ["CROSSMODAL_CACHE"]) / "runs"
    # the local staging is gone; its lock file stays, as a local MODEL's does
    assert all(p.name.endswith(".partial.lock") and p.is_file() for p in runs.iterdir())
    md = open_model_dir(model)
    assert md.labels == ["a", "b", "c"]
    assert "serving_default" in tf.saved_model.load(f"{model}/saved_model").signatures
    assert card_summary(model)["epochs"]["run"] == 2

    metrics = evaluate(model, data, out=report)
    for name in ("metrics.json", "report.md", "confusion.png", "report.html"):
        assert gfile.exists(f"{report}/{name}"), name
    with gfile.GFile(f"{report}/metrics.json") as f:
        assert json.load(f)["accuracy"] == metrics["accuracy"]
    assert metrics["num_samples"] == 24 and metrics["data"] == data

    # A prepared folder in ram:// (records read by tf.data through gfile) gives the same.
    settings = PrepSettings(
        height=md.config.image.height,
        width=md.config.image.width,
        channels=md.config.image.channels,
        clip_seconds=md.config.audio.clip_seconds,
    )
    prep = preprocess(data, f"{ram}/prep", settings=settings)
    assert prep.path == f"{ram}/prep" and gfile.exists(f"{ram}/prep/dataset.json")
    assert open_prepared(f"{ram}/prep").samples == prep.samples
    assert evaluate(model, f"{ram}/prep")["accuracy"] == metrics["accuracy"]

    rows = list(predict(model, [f"{data}/a", f"{data}/c/g0_c0.png"]))
    assert len(rows) == 9 and all("error" not in r for r in rows)
    assert rows[-1]["image"] == f"{data}/c/g0_c0.png" and rows[-1]["audio"] is None
    assert write_rows(iter(rows), f"{ram}/out/predictions.csv") == 0
    with gfile.GFile(f"{ram}/out/predictions.csv") as f:
        assert len(f.read().strip().splitlines()) == 10  # a header and nine rows


def test_remote_manifest_and_sharded_parts_in_ram(ram):
    import tensorflow as tf

    from crossmodal.data.preprocess import open_prepared, preprocess
    from crossmodal.data.scan import scan

    rows = ["image,audio,label", "a/g0_a0.png,a/g0_a0.wav,a", ",b/g1_b1.wav,b", "c/nope.png,,c"]
    with tf.io.gfile.GFile(f"{ram}/data/list.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    scanned = scan(f"{ram}/data/list.csv")
    assert [s.audio for s in scanned.samples] == [
        f"{ram}/data/a/g0_a0.wav",
        f"{ram}/data/b/g1_b1.wav",
    ]
    assert scanned.skipped[0]["path"] == f"{ram}/data/c/nope.png"

    whole = preprocess(f"{ram}/data", f"{ram}/whole")
    for index in (1, 0):
        preprocess(f"{ram}/data", f"{ram}/parts", num_shards=2, shard_index=index)
    union = open_prepared(f"{ram}/parts")
    assert union.samples == whole.samples and union.info["counts"] == whole.info["counts"]
    tf.io.gfile.rmtree(f"{ram}/parts/part-00001-of-00002")
    with pytest.raises(CrossmodalError, match="part-00001-of-00002"):
        open_prepared(f"{ram}/parts")


def test_a_scheme_without_a_filesystem_is_named_not_reported_missing():
    # Unregistered, every gfile call fails as "not implemented", which callers would report as
    # "no such file": the error says what is missing instead.
    with pytest.raises(CrossmodalError, match="nosuchfs:// paths need a TensorFlow filesystem"):
        fsio.exists("nosuchfs://bucket/model")


def test_a_second_run_on_the_same_remote_model_is_refused(ram, tmp_path):
    # Both would build in the same local staging folder: the second must not wipe the first's.
    from crossmodal.locking import output_lock
    from crossmodal.train import _remote_staging, train

    out = f"{ram}/m"
    make_dataset(tmp_path / "data", per_class=2)
    with (
        output_lock(_remote_staging(out)),
        pytest.raises(CrossmodalError, match=f"{out} is being written by another"),
    ):
        train(tmp_path / "data", out)


def test_an_out_in_a_folder_that_cannot_be_written_is_refused_before_any_work(
    tmp_path, monkeypatch
):
    """A read-only mount (or a folder without write permission): one line naming the folder,
    not a failure after the whole evaluation. (Root may write anywhere, so access(2) is faked.)"""

    real = os.access
    locked = tmp_path / "ro"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    with pytest.raises(CrossmodalError, match=f"cannot write in {locked}"):
        fsio.check_creatable(locked / "new" / "report")
    fsio.check_creatable(tmp_path / "new" / "report")  # a writable folder is fine
