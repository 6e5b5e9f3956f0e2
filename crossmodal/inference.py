"""Run a model folder's serving signature over batches: the one inference path.

Evaluate and predict both go through the exported SavedModel, so what they measure is exactly
what a user serving the folder gets.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

MODALITIES = ("both", "image", "audio")
ONE_OF = {"image": "an image", "audio": "a sound"}  # "trained on no sample with a sound"


def presence_for(modality: str, image_present: np.ndarray, audio_present: np.ndarray):
    """Presence flags with the other modality removed; `keep` marks rows that still have input."""
    image_present = image_present.astype(bool)
    audio_present = audio_present.astype(bool)
    if modality == "image":
        audio_present = np.zeros_like(audio_present)
    elif modality == "audio":
        image_present = np.zeros_like(image_present)
    elif modality != "both":
        raise ValueError(f"unknown modality {modality!r}")
    return image_present, audio_present, image_present | audio_present


def run_serving(serve, batches: Iterable, modality: str = "both", embeddings: list | None = None):
    """(probabilities [N, K], labels [N], indices [N]) over (inputs, labels, index) batches.

    Rows left with no modality at all (say, an audio-only sample under --modality image) are
    dropped: there is nothing to predict from. With `embeddings` (a list), the shared-space
    embeddings of complete pairs are appended to it as (image [P, S], audio [P, S], labels [P]).
    """
    probs, labels, indices = [], [], []
    for inputs, y, index in batches:
        ip, ap, keep = presence_for(
            modality, inputs["image_present"].numpy(), inputs["audio_present"].numpy()
        )
        if not keep.any():
            continue
        out = serve(
            image=inputs["image"][keep],
            image_present=ip[keep],
            audio=inputs["audio"][keep],
            audio_present=ap[keep],
        )
        probs.append(out["probabilities"].numpy())
        if embeddings is not None:
            pairs = (ip & ap)[keep]
            embeddings.append(
                (
                    out["image_embedding"].numpy()[pairs],
                    out["audio_embedding"].numpy()[pairs],
                    np.asarray(y)[keep][pairs],
                )
            )
        labels.append(np.asarray(y)[keep])
        indices.append(np.asarray(index)[keep])
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(indices)


def retrieval_metrics(image: np.ndarray, audio: np.ndarray, labels: np.ndarray) -> dict:
    """Cross-modal retrieval among P pairs in the shared space (cosine similarity).

    `recall_at_k`: the sound's own image (or the image's own sound) is among the k nearest;
    `class_recall_at_k`: one of the k nearest has the same label, the fair figure when pairs
    share only their label (as in avdigits). With multi-hot labels [P, K] (a multi-label
    model), "the same label" is sharing at least one class.
    """
    sim = audio @ image.T  # [P, P]: row = a sound, column = an image
    out: dict = {"num_pairs": int(len(labels))}
    for name, s in (("audio_to_image", sim), ("image_to_audio", sim.T)):
        order = np.argsort(-s, axis=1)  # [P, P] nearest first
        own = order == np.arange(len(s))[:, None]
        if labels.ndim == 2:  # multi-hot
            same = ((labels[order] > 0) & (labels[:, None] > 0)).any(axis=-1)
        else:
            same = labels[order] == labels[:, None]
        out[name] = {}
        for k in (1, 5):
            if k <= len(s):
                out[name][f"recall_at_{k}"] = float(own[:, :k].any(axis=1).mean())
                out[name][f"class_recall_at_{k}"] = float(same[:, :k].any(axis=1).mean())
    return out
