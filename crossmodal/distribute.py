"""tf.distribute for training: which strategy, and which process writes the model folder.

- one-device: the default strategy (one CPU or GPU).
- mirrored: MirroredStrategy over the GPUs of this machine.
- multi-worker: MultiWorkerMirroredStrategy over the cluster in the standard TF_CONFIG
  environment variable ({"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}).
- auto: multi-worker when TF_CONFIG names a cluster of several tasks, mirrored when more than
  one GPU is visible, else one-device.

`--batch-size` is global: each of R replicas gets batch_size / R samples per step, so the
optimisation (and the learning rate) is the same whatever R is; only the chief (the `chief` task,
or worker 0) writes the model folder, the others write to temporary folders that are removed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from crossmodal.errors import CrossmodalError


@dataclass(frozen=True)
class Placement:
    strategy: object  # tf.distribute.Strategy
    kind: str
    is_chief: bool
    replicas: int


def tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError:
        raise CrossmodalError("TF_CONFIG is not valid JSON") from None
    if not isinstance(config, dict):
        raise CrossmodalError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    task, cluster = config.get("task", {}), config.get("cluster", {})
    if not isinstance(task, dict) or not isinstance(cluster, dict):
        raise CrossmodalError("TF_CONFIG's 'cluster' and 'task' must be JSON objects")
    index = task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int | str) or not str(index).isdigit():
        raise CrossmodalError(f"TF_CONFIG's task index must be a whole number >= 0, got {index!r}")
    return config


def _cluster_size(config: dict) -> int:
    return sum(len(v) for v in config.get("cluster", {}).values() if isinstance(v, list))


def is_chief(config: dict) -> bool:
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in config.get("cluster", {}):
        return kind == "chief"
    return kind == "worker" and index == 0


def choose_strategy(kind: str) -> Placement:
    """Create the strategy; call before any other TensorFlow work of the run."""
    import tensorflow as tf

    config = tf_config()
    if kind == "auto":
        if _cluster_size(config) > 1:
            kind = "multi-worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "one-device"
    if kind == "one-device":
        strategy = tf.distribute.get_strategy()
        return Placement(strategy, kind, True, strategy.num_replicas_in_sync)
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        return Placement(strategy, kind, True, strategy.num_replicas_in_sync)
    if _cluster_size(config) < 1:
        raise CrossmodalError("--strategy multi-worker needs TF_CONFIG with a cluster and a task")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Placement(strategy, kind, is_chief(config), strategy.num_replicas_in_sync)
