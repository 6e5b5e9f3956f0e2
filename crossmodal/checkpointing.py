"""Per-epoch checkpoints that make a killed run resumable to the same final result.

Each epoch end saves, atomically: every model variable, every optimizer variable (moments,
iteration count, hence the learning-rate schedule), the random-generator states of the
augmentation and dropout layers, the early-stopping state (best value, patience counter,
best weights) and the plateau schedule's counters. Restoring all of it, and replaying the
data shuffles of the finished epochs, continues the run exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from crossmodal.errors import CrossmodalError


def seed_states(net) -> list:
    """The state variables of every random generator in the network's layers."""
    states = []
    for layer in net._flatten_layers(include_self=True, recursive=True):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator):
                states.append(value.state)
    return states


class EarlyStop(keras.callbacks.Callback):
    """Early stopping on `monitor`, the best epoch's weights kept for `restore_best`.

    As keras.callbacks.EarlyStopping(patience, start_from_epoch, restore_best_weights), with its
    state in plain attributes that `EpochCheckpoint` saves and restores, so that every fit in
    crossmodal, resumable or not, stops by the same rule.
    """

    def __init__(self, net, *, monitor: str, patience: int, start_from_epoch: int = 0):
        super().__init__()
        self.net = net
        self.monitor = monitor
        self.patience = patience
        self.start_from_epoch = start_from_epoch  # epochs before it are neither best nor waited
        self.best = math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped = False
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch, logs=None):
        self._watch(epoch, (logs or {}).get(self.monitor))

    def _watch(self, epoch: int, value) -> None:
        if epoch < self.start_from_epoch:  # as keras.callbacks.EarlyStopping(start_from_epoch)
            return
        if value is not None and np.isfinite(value) and value < self.best:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            self.best_weights = self.net.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped = True
                self.model.stop_training = True

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.net.set_weights(self.best_weights)


class Plateau(keras.callbacks.ReduceLROnPlateau):
    """keras.callbacks.ReduceLROnPlateau whose counters survive a resume: Keras resets them
    when a fit begins, so `EpochCheckpoint` saves `state()` and sets `resumed`, which is
    applied after that reset."""

    resumed: dict | None = None

    def state(self) -> dict:
        best = float(self.best)
        return {
            "best": best if math.isfinite(best) else None,
            "wait": int(self.wait),
            "cooldown_counter": int(self.cooldown_counter),
        }

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resumed is not None:
            best = self.resumed["best"]
            self.best = self.best if best is None else best
            self.wait = self.resumed["wait"]
            self.cooldown_counter = self.resumed["cooldown_counter"]


class EpochCheckpoint(EarlyStop):
    """Checkpointing and early stopping in one callback, so both resume together (with the
    plateau schedule's counters, when there is one: place `plateau` before this callback)."""

    def __init__(
        self,
        folder: Path,
        trainer,
        net,
        *,
        monitor: str,
        patience: int,
        start_from_epoch: int = 0,
        plateau: Plateau | None = None,
    ):
        super().__init__(net, monitor=monitor, patience=patience, start_from_epoch=start_from_epoch)
        self.folder = Path(folder)
        self.trainer = trainer
        self.plateau = plateau

    def _variables(self) -> list:
        seen, out = set(), []
        candidates = [
            *self.trainer.variables,
            *self.trainer.optimizer.variables,
            *seed_states(self.net),
        ]
        for v in candidates:
            key = id(v)
            if key not in seen:
                seen.add(key)
                out.append(v)
        return out

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._save(epoch + 1)

    # --- persistence ---
    def _save(self, epochs_done: int) -> None:
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.savez(tmp / "state.npz", *[np.asarray(v.numpy()) for v in self._variables()])
        if self.best_weights is not None:
            np.savez(tmp / "best.npz", *self.best_weights)
        meta = {
            "epochs_done": epochs_done,
            "best": self.best if math.isfinite(self.best) else None,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped": self.stopped,
            "plateau": self.plateau.state() if self.plateau is not None else None,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        old = self.folder.with_name(self.folder.name + ".old")
        if self.folder.exists():
            shutil.rmtree(old, ignore_errors=True)  # left by a kill after the swap below
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        shutil.rmtree(old, ignore_errors=True)

    def restore(self) -> int:
        """Load the last checkpoint into the trainer; returns the number of finished epochs."""
        folder = self.folder
        if not (folder / "meta.json").exists():
            folder = self.folder.with_name(self.folder.name + ".old")  # killed mid-swap
        if not (folder / "meta.json").exists():
            return 0
        meta = json.loads((folder / "meta.json").read_text())
        self.trainer.optimizer.build(self.trainer.trainable_variables)
        variables = self._variables()
        with np.load(folder / "state.npz") as saved:
            arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if [a.shape for a in arrays] != [tuple(v.shape) for v in variables]:
            why = (
                f"{len(arrays)} variables saved, {len(variables)} built"
                if len(arrays) != len(variables)
                else "variables of other shapes"
            )
            raise CrossmodalError(
                f"the checkpoint in {folder} does not fit the model ({why}): it was written "
                "by another version of crossmodal or Keras and cannot be resumed; train again "
                "without --resume"
            )
        for var, value in zip(variables, arrays, strict=True):
            var.assign(value)
        if (folder / "best.npz").exists():
            with np.load(folder / "best.npz") as best:
                self.best_weights = [best[f"arr_{i}"] for i in range(len(best.files))]
        self.best = meta["best"] if meta["best"] is not None else math.inf
        self.best_epoch, self.wait, self.stopped = meta["best_epoch"], meta["wait"], meta["stopped"]
        if self.plateau is not None:
            self.plateau.resumed = meta.get("plateau")
        return int(meta["epochs_done"])
