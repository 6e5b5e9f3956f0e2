"""Tests for crossmodal.metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossmodal.metrics import classification_metrics, confusion_matrix


def one_hot_probs(pred: list[int], num_classes: int, confidence: float = 0.6) -> np.ndarray:
    """Probabilities whose argmax is ``pred`` with the given max probability."""
    rest = (1.0 - confidence) / (num_classes - 1)
    probs = np.full((len(pred), num_classes), rest)
    probs[np.arange(len(pred)), pred] = confidence
    return probs


# Hand-worked 3-class example (labels a, b, c):
#   y_true = [0, 0, 0, 1, 1, 2, 2, 2]
#   y_pred = [0, 0, 1, 1, 2, 2, 2, 2]
# Confusion matrix (rows = true):
#   a: [2, 1, 0]
#   b: [0, 1, 1]
#   c: [0, 0, 3]
# TP = [2, 1, 3], predicted = col sums = [2, 2, 4], support = row sums = [3, 2, 3]
# precision = TP/predicted = [1, 1/2, 3/4]
# recall    = TP/support   = [2/3, 1/2, 1]
# f1        = 2TP/(predicted+support) = [4/5, 1/2, 6/7]
# accuracy  = 6/8 = 0.75
# macro P = (1 + 1/2 + 3/4)/3 = 3/4
# macro R = (2/3 + 1/2 + 1)/3 = 13/18
# macro F1 = (4/5 + 1/2 + 6/7)/3 = (151/70)/3 = 151/210
# weighted F1 = (3*4/5 + 2*1/2 + 3*6/7)/8 = (209/35)/8 = 209/280
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
Y_PRED = [0, 0, 1, 1, 2, 2, 2, 2]
LABELS = ["a", "b", "c"]


def test_confusion_matrix_hand_example() -> None:
    cm = confusion_matrix(Y_TRUE, np.array(Y_PRED), 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [0, 0, 3]])


def test_confusion_matrix_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 3)


def test_confusion_matrix_length_mismatch() -> None:
    with pytest.raises(ValueError, match="length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)


def test_classification_metrics_hand_example() -> None:
    m = classification_metrics(Y_TRUE, one_hot_probs(Y_PRED, 3), LABELS)
    assert m["num_samples"] == 8
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["macro_precision"] == pytest.approx(3 / 4)
    assert m["macro_recall"] == pytest.approx(13 / 18)
    assert m["macro_f1"] == pytest.approx(151 / 210)
    assert m["weighted_f1"] == pytest.approx(209 / 280)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 4 / 5, "support": 3}
    )
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_class"]["c"] == pytest.approx(
        {"precision": 0.75, "recall": 1.0, "f1": 6 / 7, "support": 3}
    )
    assert m["confusion_matrix"] == {"labels": LABELS, "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 3]]}
    # K=3: only k=1 survives the default (1, 3, 5) because k must be < K.
    assert m["top_k_accuracy"] == {"1": pytest.approx(0.75)}


def test_output_is_plain_json_types() -> None:
    m = classification_metrics(Y_TRUE, one_hot_probs(Y_PRED, 3), LABELS)

    def check(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)
        else:
            assert type(value) in (int, float, str), (value, type(value))

    check(m)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_class_never_predicted() -> None:
    # y_true = [0, 1, 2, 2], y_pred = [0, 1, 1, 1]; class c is never predicted.
    # a: P=1/1, R=1/1, F1=1;  b: TP=1, predicted=3, support=1 -> P=1/3, R=1, F1=2/4
    # c: TP=0, predicted=0 -> P=0.0 by convention, R=0/2=0, F1=0
    m = classification_metrics(np.array([0, 1, 2, 2]), one_hot_probs([0, 1, 1, 1], 3), LABELS)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["macro_precision"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert m["macro_f1"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_class_absent_from_the_data_and_never_predicted_is_left_out_of_macro_averages() -> None:
    # Class c has no support and is never predicted: it has nothing to score, and macro
    # averages leave it out (sklearn's default labels); a and b are perfect -> 1.0.
    m = classification_metrics(np.array([0, 1, 0, 1]), one_hot_probs([0, 1, 0, 1], 3), LABELS)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == pytest.approx(1.0)
    assert m["macro_precision"] == m["macro_recall"] == pytest.approx(1.0)
    assert m["weighted_f1"] == pytest.approx(1.0)


def test_class_absent_from_y_true_but_predicted() -> None:
    # y_true = [0, 1], y_pred = [2, 1]: c predicted once with no support -> P=0, R=0.
    m = classification_metrics(np.array([0, 1]), one_hot_probs([2, 1], 3), LABELS)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["per_class"]["a"]["recall"] == 0.0
    # a predicted class counts in the macro average even without support: a 0, b 1, c 0
    assert m["macro_f1"] == pytest.approx(1 / 3)


def test_perfect_prediction() -> None:
    y = np.array([0, 1, 2, 1, 0])
    m = classification_metrics(y, np.eye(3)[y], LABELS)
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1"):
        assert m[key] == pytest.approx(1.0)
    assert m["ece"] == pytest.approx(0.0)
    assert m["reliability"]["count"][-1] == 5  # confidence 1.0 lands in the last bin


def test_binary_case() -> None:
    # K=2: y_true = [0, 0, 1, 1], y_pred = [0, 1, 1, 1]
    # a: P=1/1, R=1/2, F1=2/3; b: P=2/3, R=1, F1=4/5
    m = classification_metrics(
        np.array([0, 0, 1, 1]), one_hot_probs([0, 1, 1, 1], 2), ["neg", "pos"]
    )
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["neg"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["pos"]["f1"] == pytest.approx(4 / 5)
    assert m["top_k_accuracy"] == {"1": pytest.approx(0.75)}


def test_unlabeled_rows_are_excluded() -> None:
    y_with_unlabeled = np.array([0, -1, 0, 0, 1, 1, -1, 2, 2, 2])
    pred_with_unlabeled = [0, 2, 0, 1, 1, 2, 0, 2, 2, 2]
    m = classification_metrics(y_with_unlabeled, one_hot_probs(pred_with_unlabeled, 3), LABELS)
    reference = classification_metrics(Y_TRUE, one_hot_probs(Y_PRED, 3), LABELS)
    assert m == reference
    assert m["num_samples"] == 8


def test_empty_input_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        classification_metrics(np.array([], dtype=int), np.zeros((0, 3)), LABELS)


def test_all_unlabeled_raises() -> None:
    with pytest.raises(ValueError, match="no labeled"):
        classification_metrics(np.array([-1, -1]), one_hot_probs([0, 1], 3), LABELS)


@pytest.mark.parametrize(
    ("y_true", "probs", "labels", "match"),
    [
        (np.array([0, 1]), np.zeros(3), LABELS, r"\[N, K\]"),
        (np.array([0, 1, 2]), np.zeros((2, 3)), LABELS, "does not match"),
        (np.array([0, 1]), np.zeros((2, 3)), ["a", "b"], "labels"),
        (np.array([0, 1]), np.zeros((2, 3)), ["a", "a", "b"], "unique"),
        (np.array([0, 5]), np.zeros((2, 3)), LABELS, "outside"),
        (np.array([0, 1]), np.array([[np.nan, 0, 0], [0, 1, 0]]), LABELS, "NaN"),
    ],
)
def test_invalid_inputs(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, probs, labels)


def test_ece_perfectly_calibrated() -> None:
    # All confidences 0.75 (one bin) and exactly 75% correct -> |0.75 - 0.75| = 0.
    y_true = np.array([0, 0, 0, 1] * 3)
    probs = np.tile([0.75, 0.25], (12, 1))
    m = classification_metrics(y_true, probs, ["x", "y"], num_bins=10)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    assert sum(m["reliability"]["count"]) == 12


def test_ece_overconfident() -> None:
    # Confidence 0.95 but only half right -> ECE = |0.5 - 0.95| = 0.45.
    y_true = np.array([0, 1] * 5)
    probs = np.tile([0.95, 0.05], (10, 1))
    m = classification_metrics(y_true, probs, ["x", "y"], num_bins=10)
    assert m["ece"] == pytest.approx(0.45)


def test_ece_two_bins_and_reliability() -> None:
    # 4 samples at conf 0.95, all correct: gap 0.05, weight 4/10
    # 6 samples at conf 0.65 (class y), 3 correct: gap |0.5 - 0.65| = 0.15, weight 6/10
    # ECE = 0.4*0.05 + 0.6*0.15 = 0.11
    probs = np.array([[0.95, 0.05]] * 4 + [[0.35, 0.65]] * 6)
    y_true = np.array([0] * 4 + [1, 1, 1, 0, 0, 0])
    m = classification_metrics(y_true, probs, ["x", "y"], num_bins=10)
    assert m["ece"] == pytest.approx(0.11)
    rel = m["reliability"]
    assert len(rel["bin_edges"]) == 11
    assert len(rel["count"]) == len(rel["confidence"]) == len(rel["accuracy"]) == 10
    assert rel["count"][9] == 4 and rel["count"][6] == 6
    assert rel["confidence"][6] == pytest.approx(0.65)
    assert rel["accuracy"][6] == pytest.approx(0.5)
    assert rel["accuracy"][9] == pytest.approx(1.0)
    assert rel["count"][0] == 0 and rel["confidence"][0] == 0.0


def test_top_k_accuracy() -> None:
    # K=4. Row rankings (desc): r0 [0,1,2,3], r1 [1,2,0,3], r2 [3,2,1,0]
    # y_true = [0, 0, 1]: rank of truth = 1st, 3rd, 3rd
    # top1 = 1/3, top2 = 1/3, top3 = 3/3; k=5 >= K dropped, k=4 (== K) dropped.
    probs = np.array(
        [
            [0.4, 0.3, 0.2, 0.1],
            [0.25, 0.4, 0.3, 0.05],
            [0.1, 0.2, 0.3, 0.4],
        ]
    )
    m = classification_metrics(np.array([0, 0, 1]), probs, list("abcd"), top_k=(2, 3, 4, 5))
    assert m["top_k_accuracy"] == {
        "1": pytest.approx(1 / 3),
        "2": pytest.approx(1 / 3),
        "3": pytest.approx(1.0),
    }
    assert m["top_k_accuracy"]["1"] == pytest.approx(m["accuracy"])


def test_top1_matches_accuracy_with_ties() -> None:
    # Ties break toward the lower index for both argmax and top-k.
    probs = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    m = classification_metrics(np.array([0, 1]), probs, LABELS, top_k=(2,))
    assert m["accuracy"] == 0.5
    assert m["top_k_accuracy"] == {"1": 0.5, "2": 1.0}


def test_matches_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=200)
    y_true[y_true == 4] = 3  # make class 4 absent from y_true
    probs = rng.dirichlet(np.ones(6), size=200)
    labels = [f"c{i}" for i in range(6)]
    probs[:, 2] = 0.0  # class 2 is never predicted: in the data only
    probs[:, 5] = 0.0  # class 5 is neither in the data nor predicted: not scored
    m = classification_metrics(y_true, probs, labels)
    y_pred = probs.argmax(axis=1)
    kw = {"zero_division": 0}  # sklearn's default labels: those in y_true or y_pred
    assert m["macro_precision"] == pytest.approx(
        sk.precision_score(y_true, y_pred, average="macro", **kw)
    )
    assert m["macro_recall"] == pytest.approx(
        sk.recall_score(y_true, y_pred, average="macro", **kw)
    )
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", **kw))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="weighted", **kw))
    np.testing.assert_array_equal(
        m["confusion_matrix"]["matrix"], sk.confusion_matrix(y_true, y_pred, labels=list(range(6)))
    )


def test_fit_temperature_cools_overconfident_logits_and_keeps_calibrated_ones():
    from crossmodal.metrics import fit_temperature

    rng = np.random.default_rng(0)
    n, k = 4000, 4
    true_logits = rng.normal(0, 1.5, (n, k))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    assert abs(fit_temperature(true_logits, y) - 1.0) < 0.1  # already calibrated
    assert abs(fit_temperature(true_logits * 3.0, y) - 3.0) < 0.3  # three times too sharp


def test_multilabel_metrics_and_thresholds_by_hand():
    from crossmodal.metrics import multilabel_metrics, tune_thresholds

    y = np.array([[1, 0], [0, 1], [1, 1], [-1, -1]])  # the last row is unlabeled
    p = np.array([[0.9, 0.2], [0.3, 0.6], [0.7, 0.4], [0.5, 0.5]])
    thresholds = tune_thresholds(y[:3], p[:3])
    # class 0: positives score 0.9, 0.7, the negative 0.3 -> lowest perfect threshold 0.35
    # class 1: positives 0.6, 0.4, the negative 0.2 -> 0.25
    np.testing.assert_allclose(thresholds, [0.35, 0.25])
    m = multilabel_metrics(y, p, ["a", "b"], thresholds)
    assert m["num_samples"] == 3 and m["subset_accuracy"] == 1.0 and m["micro_f1"] == 1.0
    fixed = multilabel_metrics(y, p, ["a", "b"], np.array([0.5, 0.5]))
    # at 0.5 the (1, 1) row loses its second label: 3 of 4 positives found, no false positive
    assert fixed["subset_accuracy"] == 2 / 3
    assert abs(fixed["micro_recall"] - 0.75) < 1e-12 and fixed["micro_precision"] == 1.0
    assert fixed["hamming_loss"] == 1 / 6


def test_multilabel_metrics_leave_out_a_row_with_a_negative_target_in_any_column():
    from crossmodal.metrics import labeled_rows, multilabel_metrics

    # the last row's -1 is not in column 0: read as labeled, its -1 became a positive
    y = np.array([[1, 0], [0, 1], [1, 1], [0, -1]])
    p = np.array([[0.9, 0.2], [0.3, 0.6], [0.7, 0.7], [0.1, 0.1]])
    np.testing.assert_array_equal(labeled_rows(y), [True, True, True, False])
    m = multilabel_metrics(y, p, ["a", "b"], np.array([0.5, 0.5]))
    assert m["num_samples"] == 3 and m["subset_accuracy"] == 1.0
    assert m["per_class"]["b"]["support"] == 2
    assert labeled_rows(np.zeros((0, 2))).shape == (0,)


def test_average_precision_groups_tied_scores():
    from crossmodal.metrics import _average_precision

    # Three samples tie at 1.0 (a saturated sigmoid): one threshold, whatever their order.
    # Precision 2/3 at recall 1, as scikit-learn's average_precision_score gives.
    scores = np.array([1.0, 1.0, 1.0, 0.2])
    for y in ([1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0][::-1]):
        assert _average_precision(np.array(y), scores) == pytest.approx(2 / 3)
    # Without ties: (1 + 2/3 + 3/5) / 3 by hand.
    y = np.array([1, 0, 1, 0, 1])
    assert _average_precision(y, np.linspace(0.9, 0.5, 5)) == pytest.approx((1 + 2 / 3 + 0.6) / 3)


@pytest.mark.parametrize("multi_hot", [False, True])
def test_retrieval_class_recall_single_and_multi_label(multi_hot):
    from crossmodal.inference import retrieval_metrics

    # Three pairs on three directions; each sound's nearest image is the next pair's image.
    image = np.eye(3)
    audio = np.roll(np.eye(3), 1, axis=1)  # sound i points at image i + 1
    labels = np.array([0, 1, 1])
    if multi_hot:  # the same classes as multi-hot rows: pairs 1 and 2 share class 1 only
        labels = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0]])
    r = retrieval_metrics(image, audio, labels)["audio_to_image"]
    assert r["recall_at_1"] == 0.0
    # sound 0 -> image 1 (other class), sound 1 -> image 2 (shares class 1), sound 2 -> image 0
    assert r["class_recall_at_1"] == pytest.approx(1 / 3)


def test_worst_mistakes_leave_out_unlabeled_rows():
    from crossmodal.evaluate import _worst_mistakes

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05]])
    labels = np.array([1, 1, -1])  # the last row has no class the model knows
    by_index = {i: {"image": f"{i}.png", "audio": None} for i in range(3)}
    rows = _worst_mistakes(probs, labels, np.arange(3), by_index, ["a", "b"])
    assert rows == [
        {"image": "0.png", "audio": None, "true": "b", "predicted": "a", "confidence": 0.9}
    ]
