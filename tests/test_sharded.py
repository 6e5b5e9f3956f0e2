"""Preprocessing as parallel jobs: N sharded runs write parts whose union is one prepared
dataset, the same as an unsharded run (samples, counts, records), and trains the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import make_dataset

from crossmodal.data.preprocess import open_prepared, preprocess
from crossmodal.errors import CrossmodalError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 49 samples (one unusable): an unsharded run writes shards of 16, 16, 16 and 1 records.
    root = make_dataset(tmp_path_factory.mktemp("tiny") / "data", per_class=16)
    (root / "a" / "broken.png").write_bytes(b"not an image")  # a skipped file in one part
    (root / "notes.txt").write_text("ignored: outside a class folder")
    return root


def run_jobs(data: Path, out: Path, count: int, indices) -> None:
    """`crossmodal preprocess --num-shards N --shard-index I`, the jobs running at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.main", "preprocess", str(data), "--out", str(out)]
            + ["--num-shards", str(count), "--shard-index", str(i), "-q"],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in indices
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


@pytest.fixture(scope="module")
def sharded(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sharded") / "prep"
    run_jobs(data, out, 3, range(3))
    return out


def test_union_of_parts_is_the_unsharded_dataset(data, sharded, tmp_path):
    whole = preprocess(data, tmp_path / "whole", workers=1)
    union = open_prepared(sharded)
    assert sorted(p.name for p in sharded.iterdir() if not p.name.startswith(".")) == [
        "part-00000-of-00003",
        "part-00001-of-00003",
        "part-00002-of-00003",
    ]  # nothing else at the top
    assert union.samples == whole.samples  # indices, stems, labels, groups, files
    assert union.info["num_samples"] == whole.info["num_samples"] == 48
    assert union.info["counts"] == whole.info["counts"]
    assert union.classes == whole.classes and union.layout == whole.layout
    assert union.info["fingerprint"] == whole.info["fingerprint"]
    assert union.info["ignored"] == whole.info["ignored"]
    key = lambda k: (k["path"], k["reason"])  # noqa: E731
    assert sorted(union.info["skipped"], key=key) == sorted(whole.info["skipped"], key=key)
    assert len(union.info["skipped"]) == 1
    # The very records of the unsharded run, in the same order: shard k is job k % 3's.
    assert len(union.shard_paths) == len(whole.shard_paths) == 4
    assert b"".join(Path(p).read_bytes() for p in union.shard_paths) == b"".join(
        Path(p).read_bytes() for p in whole.shard_paths
    )
    # A part is itself a prepared folder: one third of the samples, shapes of the whole.
    part = open_prepared(sharded / "part-00001-of-00003")
    assert [s["index"] for s in part.samples] == list(range(16, 32))
    assert part.layout == whole.layout
    # Preparing the same part again finds it up to date; unsharded over the parts reuses them.
    assert preprocess(data, sharded, num_shards=3, shard_index=1).reused
    assert preprocess(data, sharded).reused


def test_missing_part_is_named(data, sharded, tmp_path):
    partial = tmp_path / "partial"
    run_jobs(data, partial, 3, [0, 2])
    with pytest.raises(CrossmodalError, match=r"1 of 3 parts missing.*part-00001-of-00003"):
        open_prepared(partial)
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "train", str(partial), "--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "part-00001-of-00003" in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    # An unfinished part (no dataset.json yet) counts as missing too.
    (partial / "part-00001-of-00003").mkdir()
    with pytest.raises(CrossmodalError, match="part-00001-of-00003"):
        open_prepared(partial)


def test_bad_shard_arguments_are_user_errors(data, tmp_path):
    with pytest.raises(CrossmodalError, match="--shard-index"):
        preprocess(data, tmp_path / "p", num_shards=3, shard_index=3)


def test_training_on_the_union_matches_unsharded(data, sharded, tmp_path):
    pytest.importorskip("tensorflow")
    from crossmodal.config import ModelConfig, RunConfig, TrainConfig
    from crossmodal.train import train

    config = RunConfig(
        model=ModelConfig(embed_dim=16, filters=(8, 16), audio_filters=(8, 16), shared_dim=8),
        train=TrainConfig(epochs=2, batch_size=8, val_fraction=0.25, seed=5),
    )
    whole = preprocess(data, tmp_path / "whole", workers=1)
    a = train(whole.path, tmp_path / "a", config=config)
    b = train(sharded, tmp_path / "b", config=config)
    assert a.split == b.split
    assert a.history == b.history
    assert a.metrics["both"]["confusion_matrix"] == b.metrics["both"]["confusion_matrix"]
