"""Training on a cluster: two worker processes on this machine, MultiWorkerMirroredStrategy
over gRPC on 127.0.0.1 (CPU), each with its own TF_CONFIG, against a one-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import make_dataset

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
# Settings under which the tiny model learns in a few epochs (no dropout, no augmentation),
# so that "in line with a one-process run" means something.
MODEL_TOML = """
[model]
embed_dim = 16
filters = [8, 16]
audio_filters = [8, 16]
shared_dim = 8
dropout = 0.0
modality_dropout = 0.0
audio_pool = "avg"
[audio]
crop_frames = 0
utterance_norm = "none"
log_offset = 1e-6
num_mels = 64
"""  # the plain frontend: the tiny data's steady tones carry their class in the mean spectrum
FLAGS = [
    "--epochs", "16", "--batch-size", "8", "--learning-rate", "0.01", "--optimizer", "adam",
    "--schedule", "constant", "--no-augment", "--label-smoothing", "0", "--val-fraction", "0.25",
    "--seed", "3",
]  # fmt: skip


def free_ports(n: int) -> list[int]:
    """Ports nobody listens on now: bind to port 0, read the port, let it go."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_train_like_one_process(tmp_path):
    import tensorflow as tf

    from crossmodal.artifacts import open_model_dir
    from crossmodal.config import (
        AudioConfig,
        AugmentConfig,
        ModelConfig,
        RunConfig,
        TrainConfig,
    )
    from crossmodal.evaluate import evaluate
    from crossmodal.train import train

    data = make_dataset(tmp_path / "data")
    config = tmp_path / "small.toml"
    config.write_text(MODEL_TOML)
    out = tmp_path / "runs" / "model"
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp-worker{index}"  # where a non-chief stages its copy
        scratch.mkdir()
        task = {"type": "worker", "index": index}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
            "TMPDIR": str(scratch),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = [sys.executable, "-m", "cli.main", "train", str(data), "--out", str(out)]
        command += ["--config", str(config), "--strategy", "multi-worker", *FLAGS]
        log = open(tmp_path / f"worker{index}.log", "w")  # noqa: SIM115 (closed below)
        workers.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log), log))
    codes = []
    for proc, log in workers:
        try:
            codes.append(proc.wait(timeout=540))
        except subprocess.TimeoutExpired:
            for other, _ in workers:
                other.kill()
            codes.append("timeout")
        log.close()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    assert "2 replica(s)" in logs[0] and "not the chief" in logs[1]

    # The chief's folder is complete and loads; worker 1 left nothing anywhere.
    md = open_model_dir(out)
    assert "serving_default" in tf.saved_model.load(str(out / "saved_model")).signatures
    for name in ("model.keras", "dataset.json", "history.csv", "metrics.json", "README.md"):
        assert (out / name).exists(), name
    assert sorted(p.name for p in out.parent.iterdir()) == [".model.lock", "model"]
    assert list((tmp_path / "tmp-worker1").iterdir()) == []
    assert len(md.labels) == 3

    # A one-process run with the same settings: the same accuracy, give or take the float
    # differences of the all-reduce (Adam amplifies them over 16 epochs on 18 samples).
    cfg = RunConfig(
        model=ModelConfig(
            embed_dim=16,
            filters=(8, 16),
            audio_filters=(8, 16),
            shared_dim=8,
            dropout=0.0,
            modality_dropout=0.0,
            audio_pool="avg",
        ),
        audio=AudioConfig(crop_frames=0, utterance_norm="none", log_offset=1e-6, num_mels=64),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(
            epochs=16,
            batch_size=8,
            learning_rate=0.01,
            optimizer="adam",
            schedule="constant",
            label_smoothing=0.0,
            val_fraction=0.25,
            seed=3,
            strategy="one-device",
        ),
    )
    single = train(data, tmp_path / "single", config=cfg)
    assert single.config.model == md.config.model
    assert md.config.train.batch_size == single.config.train.batch_size == 8  # global batch
    cluster_acc = evaluate(out, data)["accuracy"]
    single_acc = evaluate(tmp_path / "single", data)["accuracy"]
    assert cluster_acc >= 0.75 and single_acc >= 0.75, (cluster_acc, single_acc)  # chance: 1/3
    assert abs(cluster_acc - single_acc) <= 0.15, (cluster_acc, single_acc)
    assert set(json.loads((out / "metrics.json").read_text())) >= {"both", "image", "audio"}


@pytest.mark.parametrize(
    "value, words",
    [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"cluster": [], "task": {}}', "must be JSON objects"),
        ('{"cluster": {}, "task": {"type": "worker", "index": "one"}}', "whole number"),
        ('{"cluster": {}, "task": {"type": "worker", "index": -1}}', "whole number"),
    ],
)
def test_a_malformed_tf_config_is_one_clear_error(monkeypatch, value, words):
    from crossmodal.distribute import tf_config
    from crossmodal.errors import CrossmodalError

    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(CrossmodalError, match=words):
        tf_config()


def test_a_tf_config_index_may_be_a_number_or_its_text(monkeypatch):
    from crossmodal.distribute import is_chief, tf_config

    for index, chief in (("0", True), (1, False)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}, "task": {"index": index}}))
        assert is_chief(tf_config()) is chief
