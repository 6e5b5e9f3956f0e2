"""Classification metrics computed from counts, with no TensorFlow dependency.

Everything here is derived from a confusion matrix (plus the max-probability
confidences for calibration), so the numbers are cheap, deterministic and
easy to check by hand.  Results are plain Python ``float``/``int`` values so
they can be dumped to JSON without a custom encoder.

Conventions (chosen to match scikit-learn with ``zero_division=0``):

* Rows of ``y_true`` equal to ``-1`` are *unlabeled* and are dropped before
  any metric is computed; ``num_samples`` counts labeled rows only.  Multi-label
  targets mark an unlabeled row with ``-1`` in every column (see ``labeled_rows``).
* Precision of a class that is never predicted is ``0.0``; recall of a class
  with no true samples is ``0.0``; F1 is ``2*TP / (2*TP + FP + FN)`` and
  ``0.0`` when that denominator is zero.
* Macro averages are taken over the classes that occur in ``y_true`` or in the
  predictions (scikit-learn's default, ``labels=None``): a class absent from the
  evaluation data and never predicted has no precision or recall to measure, so
  it does not count as a 0 (a perfect model on data of one class of four would
  read macro F1 0.25).  ``per_class`` still lists every label, with its support.
* ``weighted_f1`` weights each class by its support (classes with zero
  support contribute nothing).
* Predictions are ``argmax`` of the probabilities; ties resolve to the lowest
  class index, and top-k uses the same stable ordering so top-1 == accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

UNLABELED = -1
"""Value in ``y_true`` marking a row without a ground-truth label."""


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the ``[K, K]`` int64 confusion matrix (rows = true, cols = predicted).

    Vectorised with a single ``np.bincount`` over the flattened pair index so it
    stays fast for large evaluation sets.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    true = _as_class_indices(y_true, num_classes, name="y_true")
    pred = _as_class_indices(y_pred, num_classes, name="y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}")
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    labels: list[str],
    *,
    top_k: Sequence[int] = (1, 3, 5),
    num_bins: int = 15,
) -> dict[str, Any]:
    """Compute the full evaluation summary for one set of predictions.

    ``probabilities`` is ``[N, K]``; ``y_true`` is ``[N]`` with values in
    ``[0, K)`` or ``-1`` for unlabeled rows (excluded, see module docstring).
    Raises ``ValueError`` when there is nothing labeled to evaluate, because
    every metric would be undefined and a silent 0.0 would look like a result.
    """
    probs, true = _validated_inputs(y_true, probabilities, labels, num_bins)
    num_classes = len(labels)
    pred = np.argmax(probs, axis=1)
    matrix = confusion_matrix(true, pred, num_classes)
    per_class = _per_class_scores(matrix)
    support = per_class["support"]

    confidence = probs[np.arange(true.shape[0]), pred]
    reliability = _reliability(confidence, pred == true, num_bins)

    scored = (support > 0) | (matrix.sum(axis=0) > 0)  # in the data or predicted
    return {
        "num_samples": int(true.shape[0]),
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "macro_precision": float(per_class["precision"][scored].mean()),
        "macro_recall": float(per_class["recall"][scored].mean()),
        "macro_f1": float(per_class["f1"][scored].mean()),
        "weighted_f1": float((per_class["f1"] * support).sum() / support.sum()),
        "per_class": {
            label: {
                "precision": float(per_class["precision"][i]),
                "recall": float(per_class["recall"][i]),
                "f1": float(per_class["f1"][i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": list(labels), "matrix": matrix.tolist()},
        "top_k_accuracy": _top_k_accuracy(probs, true, top_k),
        "ece": reliability.pop("ece"),
        "reliability": reliability,
    }


def _as_class_indices(values: np.ndarray, num_classes: int, *, name: str) -> np.ndarray:
    """Coerce to a 1-D int64 array and reject out-of-range ids early.

    ``np.bincount`` would otherwise either crash on negatives or silently
    spill counts into the wrong cell for ids >= K.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    is_integral = np.issubdtype(arr.dtype, np.integer) or np.all(np.equal(np.mod(arr, 1), 0))
    if arr.size and not is_integral:
        raise ValueError(f"{name} must contain integer class ids")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name} has class ids outside [0, {num_classes}): min={arr.min()}, max={arr.max()}"
        )
    return arr


def _validated_inputs(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], num_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes/values and drop unlabeled rows; returns ``(probs, y_true)``."""
    probs = np.asarray(probabilities, dtype=np.float64)
    true = np.asarray(y_true)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be [N, K], got shape {probs.shape}")
    if true.ndim != 1 or true.shape[0] != probs.shape[0]:
        raise ValueError(f"y_true shape {true.shape} does not match probabilities {probs.shape}")
    if probs.shape[0] == 0:
        raise ValueError("cannot compute metrics on an empty evaluation set (N=0)")
    if len(labels) != probs.shape[1]:
        raise ValueError(
            f"{len(labels)} labels given but probabilities have {probs.shape[1]} columns"
        )
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be unique (they key the per-class results)")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or infinite values")

    labeled = true != UNLABELED
    if not np.any(labeled):
        raise ValueError("no labeled samples: every y_true entry is -1 (unlabeled)")
    true = _as_class_indices(true[labeled], probs.shape[1], name="y_true")
    return probs[labeled], true


def _per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision/recall/F1/support per class, 0.0 wherever a ratio is 0/0."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    f1_denominator = predicted + support  # == 2*TP + FP + FN
    return {
        "precision": _safe_divide(tp, predicted),
        "recall": _safe_divide(tp, support),
        "f1": _safe_divide(2.0 * tp, f1_denominator),
        "support": support.astype(np.int64),
    }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise division returning 0.0 where the denominator is 0."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _top_k_accuracy(probs: np.ndarray, true: np.ndarray, top_k: Sequence[int]) -> dict[str, float]:
    """Top-k accuracy for k=1 and each requested k strictly below K.

    k >= K is skipped because it is trivially 1.0 and would only add noise to
    reports.  Ordering is a stable descending sort so ties break toward the
    lower class index, consistent with ``argmax`` (top-1 == accuracy).
    """
    num_classes = probs.shape[1]
    ks = sorted({1} | {int(k) for k in top_k if 1 <= int(k) < num_classes})
    ranking = np.argsort(-probs, axis=1, kind="stable")
    hits = ranking == true[:, None]
    return {str(k): float(hits[:, :k].any(axis=1).mean()) for k in ks}


def _reliability(confidence: np.ndarray, correct: np.ndarray, num_bins: int) -> dict[str, Any]:
    """Equal-width confidence bins over [0, 1] plus the expected calibration error.

    Bins are right-closed ``(lo, hi]`` (the first bin also holds exactly 0.0),
    following Guo et al. 2017.  ECE = sum_b (n_b / N) * |acc_b - conf_b|.
    Empty bins report ``confidence = accuracy = 0.0`` with ``count = 0``;
    consumers should use ``count`` to skip them (kept as floats, not NaN, so
    the output stays valid JSON).
    """
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bin_index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    count = np.bincount(bin_index, minlength=num_bins).astype(np.float64)
    conf_sum = np.bincount(bin_index, weights=confidence, minlength=num_bins)
    correct_sum = np.bincount(bin_index, weights=correct.astype(np.float64), minlength=num_bins)
    mean_conf = _safe_divide(conf_sum, count)
    mean_acc = _safe_divide(correct_sum, count)
    ece = float(np.sum(count / count.sum() * np.abs(mean_acc - mean_conf)))
    return {
        "ece": ece,
        "bin_edges": [float(e) for e in edges],
        "confidence": [float(c) for c in mean_conf],
        "accuracy": [float(a) for a in mean_acc],
        "count": [int(c) for c in count],
    }


# --- multi-label (sigmoid outputs, several labels per sample) ------------------------------


def labeled_rows(y_true: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the rows of an ``[N, K]`` multi-hot target matrix that carry labels.

    An unlabeled row is ``-1`` in every column; any negative entry counts, so no single
    column is trusted to carry the mark (a row read as labeled would turn -1 into a positive).
    """
    y = np.asarray(y_true)
    if y.size == 0:
        return np.zeros(len(y), bool)
    return np.all(y >= 0, axis=1)


def tune_thresholds(y_true: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per class, the threshold in 0.05..0.95 that maximizes F1 on (validation) data.

    A class without positives keeps 0.5: there is nothing to tune it on.
    """
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(probabilities, dtype=np.float64)
    candidates = np.round(np.arange(0.05, 0.951, 0.05), 2)
    best = np.full(y.shape[1], 0.5)
    for k in range(y.shape[1]):
        if not y[:, k].any():
            continue
        pred = p[:, k][None, :] >= candidates[:, None]  # [T, N]
        tp = (pred & y[:, k]).sum(axis=1)
        fp = (pred & ~y[:, k]).sum(axis=1)
        fn = (~pred & y[:, k]).sum(axis=1)
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        best[k] = candidates[int(np.argmax(f1))]  # first best: the lowest threshold on ties
    return best


def _average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall step curve (sklearn's average_precision_score).

    Tied scores are one threshold: precision and recall are taken at the end of each block of
    equal scores, so the figure does not depend on the order of tied samples.
    """
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    tp = np.cumsum(y[order].astype(np.float64))
    last = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1]  # each block's end
    tp = tp[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0.0, tp]) / max(tp[-1], 1.0)
    return float((precision * recall_gain).sum())


def multilabel_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], thresholds: np.ndarray
) -> dict[str, Any]:
    """Micro/macro precision, recall and F1 at the given thresholds (macro: over the classes
    with a positive or a prediction), mean average precision over classes with positives,
    subset accuracy (every label right), Hamming loss.

    Rows with a negative (-1) target are unlabeled and excluded (``labeled_rows``).
    `accuracy` is the subset accuracy, so `--fail-under` means the same strict thing here.
    """
    y = np.asarray(y_true)
    keep = labeled_rows(y)
    y = y[keep].astype(bool)
    p = np.asarray(probabilities, dtype=np.float64)[keep]
    if len(y) == 0:
        raise ValueError("cannot compute metrics on an empty evaluation set (N=0)")
    pred = p >= np.asarray(thresholds)[None, :]
    tp = (pred & y).sum(axis=0).astype(float)
    fp = (pred & ~y).sum(axis=0).astype(float)
    fn = (~pred & y).sum(axis=0).astype(float)
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    # macro averages over the classes with a positive in the data or a prediction, as for
    # single-label (all classes when there is neither)
    scored = (tp + fn + fp) > 0
    scored = scored if scored.any() else np.ones_like(scored)
    micro_p = float(tp.sum() / max(tp.sum() + fp.sum(), 1))
    micro_r = float(tp.sum() / max(tp.sum() + fn.sum(), 1))
    ap = [_average_precision(y[:, k], p[:, k]) for k in range(y.shape[1]) if y[:, k].any()]
    return {
        "multi_label": True,
        "accuracy": float(np.mean(np.all(pred == y, axis=1))),
        "subset_accuracy": float(np.mean(np.all(pred == y, axis=1))),
        "hamming_loss": float(np.mean(pred != y)),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)),
        "macro_precision": float(precision[scored].mean()),
        "macro_recall": float(recall[scored].mean()),
        "macro_f1": float(f1[scored].mean()),
        "mean_average_precision": float(np.mean(ap)) if ap else 0.0,
        "num_samples": int(len(y)),
        "thresholds": {name: float(t) for name, t in zip(labels, thresholds, strict=True)},
        "per_class": {
            name: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(y[:, k].sum()),
            }
            for k, name in enumerate(labels)
        },
    }


def fit_temperature(logits: np.ndarray, y_true: np.ndarray, *, multi_label: bool = False) -> float:
    """Temperature T minimizing the negative log-likelihood of softmax(logits / T) (or sigmoid,
    multi-label) on held-out data: golden-section search over log T in [1/20, 20]."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        if multi_label:
            t = np.maximum(y, 0)
            return float(np.mean(np.logaddexp(0, s) - t * s))
        s = s - s.max(axis=1, keepdims=True)
        log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        return float(-np.mean(log_p[np.arange(len(y)), y]))

    lo, hi = np.log(1 / 20), np.log(20)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))
