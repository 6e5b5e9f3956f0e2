"""The model folder: a contract with users and their scripts.

    MODEL/
      saved_model/   serving_default(image uint8 [N,h,w,c], image_present bool [N],
                                     audio float32 [N,t], audio_present bool [N])
                       -> probabilities float32 [N,K], label string [N] (the argmax, also
                          for a multi-label model: its decisions use thresholds.json),
                          labels string [N,K] (class names in output order),
                          image_embedding, audio_embedding float32 [N,S] (the shared space;
                          S = members x shared_dim, a cosine is the members' mean cosine)
      model.keras    the Keras network, for fine-tuning (crossmodal never loads it; resuming
                     uses the staging folder's checkpoints)
      config.json    every resolved setting + format version + versions
      labels.json    class names in output order
      dataset.json   what it was trained on
      history.csv    per-epoch metrics
      metrics.json   validation metrics at the end of training

Images of any size and of 1-4 channels (gray, gray+alpha, RGB, RGBA) are converted and
resized in the graph; waveforms (at the model's sample rate) of any length are cropped or
padded in the graph; a batch of none gives empty outputs. The folder is built beside its
final place and renamed into it at the end, so a folder that exists is complete. A remote MODEL
(`gs://...`, any filesystem tf.io.gfile knows) is built in a local folder and copied over with
config.json last: a remote folder whose config.json exists is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from crossmodal import fsio
from crossmodal.config import FORMAT_VERSION, RunConfig
from crossmodal.errors import CrossmodalError

REQUIRED_FILES = ("saved_model", "config.json", "labels.json")
COMPLETE_MARKER = "config.json"  # copied last to a remote MODEL
ALL_FILES = (
    "saved_model",
    "model.keras",
    "config.json",
    "labels.json",
    "dataset.json",
    "history.csv",
)


def commit_dir(tmp: Path, out: Path | str) -> None:
    """Swap the finished folder into place (the old one, if any, is removed only now).

    A remote `out` is replaced by a copy of `tmp`, config.json last (its old config.json goes
    first), and `tmp` is removed."""
    if fsio.is_remote(out):
        fsio.copy_tree(tmp, out, marker=COMPLETE_MARKER)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    fsio.replace_dir(tmp, Path(out))


def export_saved_model(net, cfg: RunConfig, path: Path, *, temperature: float = 1.0) -> None:
    """Write the serving graph: frontends, network and label names in one SavedModel.

    `temperature` (from `--calibrate`) divides the logits before the softmax/sigmoid.
    """
    import tensorflow as tf

    from crossmodal.checkpointing import seed_states
    from crossmodal.features import fit_image, fit_waveform, to_channels

    img, aud = cfg.image, cfg.audio
    labels = list(cfg.labels)
    multi_label = cfg.model.multi_label

    def model_inputs(image, image_present, audio, audio_present):
        """Checked and fitted inputs of max(N, 1) rows: a batch of none runs as one absent
        row (Keras refuses empty batches), a placeholder of no pixels or samples as blank."""
        n = tf.shape(image_present)[0]
        same = tf.debugging.assert_equal(
            tf.stack([tf.shape(image)[0], tf.shape(audio)[0], tf.shape(audio_present)[0]]),
            n,
            message="image, image_present, audio and audio_present must hold the same number "
            "of samples",
        )
        rows = tf.maximum(n, 1)
        image_present = tf.concat([image_present, [False]], 0)[:rows]
        audio_present = tf.concat([audio_present, [False]], 0)[:rows]
        image = to_channels(image, img.channels)
        no_pixels = tf.equal(tf.size(image), 0)
        no_samples = tf.equal(tf.size(audio), 0)
        blank = tf.debugging.assert_equal(
            tf.logical_or(
                tf.logical_and(no_pixels, tf.reduce_any(image_present)),
                tf.logical_and(no_samples, tf.reduce_any(audio_present)),
            ),
            False,
            message="an image of no pixels or a sound of no samples must be marked absent",
        )
        with tf.control_dependencies([same, blank]):
            image = tf.cond(
                no_pixels,
                lambda: tf.zeros([rows, img.height, img.width, img.channels], tf.uint8),
                lambda: fit_image(image, img.height, img.width),
            )
            audio = tf.cond(
                no_samples,
                lambda: tf.zeros([rows, aud.num_samples], tf.float32),
                lambda: fit_waveform(audio, aud.num_samples),
            )
        return {
            "image": tf.ensure_shape(image, [None, img.height, img.width, img.channels]),
            "image_present": tf.cast(image_present, tf.float32),  # [rows]
            "audio": tf.ensure_shape(audio, [None, aud.num_samples]),
            "audio_present": tf.cast(audio_present, tf.float32),  # [rows]
        }

    class Serving(tf.Module):
        """What the SavedModel holds: the network's variables, the label names and the seed
        state of its random layers (inactive at inference, but captured by the graph).

        The variables, not the Keras network: saving a Keras model traces a default
        signature for it and for each model inside it, which no client uses, and walks
        every layer; that was most of the export's time."""

        def __init__(self, net):
            super().__init__()
            self.network_variables = list(net.variables)
            self.class_names = tf.constant(labels)
            self.seed_states = seed_states(net)

    module = Serving(net)

    # Not a method of the module either: tf.saved_model.save would trace a tf.function
    # attribute a second time (in its save context) to store it as a callable; the
    # signature is all a client uses.
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, None], tf.uint8, name="image"),
            tf.TensorSpec([None], tf.bool, name="image_present"),
            tf.TensorSpec([None, None], tf.float32, name="audio"),
            tf.TensorSpec([None], tf.bool, name="audio_present"),
        ]
    )
    def serve(image, image_present, audio, audio_present):
        n = tf.shape(image_present)[0]
        inputs = model_inputs(image, image_present, audio, audio_present)
        outputs = net(inputs, training=False)
        probs = outputs["probabilities"]  # [N, K], float32 under any precision policy
        if temperature != 1.0:
            scaled = tf.cast(outputs["logits"], tf.float32) / temperature  # [N, K]
            probs = tf.nn.sigmoid(scaled) if multi_label else tf.nn.softmax(scaled)
        probs = probs[:n]  # a batch of none ran as one row
        return {
            "probabilities": probs,
            "label": tf.gather(module.class_names, tf.argmax(probs, axis=-1)),  # [N]
            "labels": tf.tile(module.class_names[tf.newaxis, :], [n, 1]),  # [N, K]
            # Unit vectors in the shared space; meaningful for an input that is present.
            "image_embedding": tf.cast(outputs["image_shared"], tf.float32)[:n],  # [N, S]
            "audio_embedding": tf.cast(outputs["audio_shared"], tf.float32)[:n],  # [N, S]
        }

    tf.saved_model.save(
        module, str(path), signatures={"serving_default": serve.get_concrete_function()}
    )


@dataclass
class ModelDir:
    """An opened, checked model folder."""

    path: Path | str  # text for a remote folder (gs://...)
    config: RunConfig
    labels: list[str]
    info: dict  # config.json as written (versions, format)

    def thresholds(self):
        """Multi-label decision thresholds [K], in label order (thresholds.json)."""
        import numpy as np

        try:
            table = json.loads(fsio.read_text(fsio.join(self.path, "thresholds.json")))
            return np.array([float(table[name]) for name in self.labels])
        except (OSError, ValueError, KeyError) as exc:
            raise CrossmodalError(f"{self.path}: missing or bad thresholds.json ({exc})") from None

    def untrained_modalities(self) -> list[str]:
        """The modalities ("image", "audio") no training sample held: their heads never
        learned, and a prediction from one of them alone means nothing. From dataset.json's
        counts; empty when it is absent or silent (a model folder of another tool's making)."""
        try:
            info = json.loads(fsio.read_text(fsio.join(self.path, "dataset.json")))
            counts = info["counts"]
            return [m for m in ("image", "audio") if counts[m] == 0]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def load_serving(self):
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(fsio.join(self.path, "saved_model")))
        except (OSError, ValueError) as exc:
            raise CrossmodalError(f"{self.path}: cannot load saved_model ({exc})") from None
        return loaded.signatures["serving_default"]


def _unfinished_run(path: Path | str) -> str:
    """A hint when a training run that was to write `path` stopped before it did (its local
    staging folder, `.NAME.partial`, is there)."""
    if fsio.is_remote(path):
        return ""
    out = Path(os.path.abspath(path))
    if not out.with_name(f".{out.name}.partial").is_dir():
        return ""
    return f" (a training run stopped before writing it: `crossmodal train --resume {path}`)"


def open_model_dir(path: str | Path) -> ModelDir:
    """Check format version and files, then read the config; refuse with what is wrong."""
    path = fsio.local_or_url(path)
    try:
        folder = fsio.isdir(path)
    except Exception as exc:  # a remote store that refuses (no credentials, bad bucket)
        raise CrossmodalError(f"cannot read {path}: {fsio.reason(exc)}") from None
    if not folder:
        raise CrossmodalError(f"no model folder at {path}{_unfinished_run(path)}")
    missing = [name for name in REQUIRED_FILES if not fsio.exists(fsio.join(path, name))]
    if missing:
        raise CrossmodalError(
            f"{path} is not a complete model folder: missing {', '.join(missing)}"
        )
    try:
        info = json.loads(fsio.read_text(fsio.join(path, "config.json")))
        labels = json.loads(fsio.read_text(fsio.join(path, "labels.json")))
    except (OSError, ValueError) as exc:
        raise CrossmodalError(f"{path}: unreadable config.json or labels.json ({exc})") from None
    if not isinstance(info, dict):
        raise CrossmodalError(f"{path}: config.json is not a JSON object")
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise CrossmodalError(
            f"{path} has model format {version!r}, this crossmodal reads format "
            f"{FORMAT_VERSION}; "
            "retrain it or use a matching crossmodal version"
        )
    config = RunConfig.from_saved(info)
    if list(config.labels) != labels:
        raise CrossmodalError(f"{path}: labels.json does not match config.json")
    return ModelDir(path=path, config=config, labels=labels, info=info)
