"""Tests for crossmodal.splits: stratified and group splits."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from crossmodal.errors import CrossmodalError
from crossmodal.splits import compile_group_regex, group_of, group_split, stratified_split


def make_samples(counts: dict[str | None, int], start: int = 100) -> list[dict]:
    """Samples whose `index` is not their list position (start offset), to catch mix-ups."""
    samples, k = [], start
    for label, n in counts.items():
        for i in range(n):
            samples.append({"index": k, "stem": f"{label}_{i}", "label": label, "group": None})
            k += 3
    return samples


def labels_of(samples: list[dict], indices: list[int]) -> Counter:
    by_index = {s["index"]: s["label"] for s in samples}
    return Counter(by_index[i] for i in indices)


# --- stratified -----------------------------------------------------------------------------


def test_stratified_proportions_per_class():
    samples = make_samples({"a": 20, "b": 10, "c": 40})
    train, val = stratified_split(samples, 0.25, seed=0)
    # round(0.25 * n) of each class go to validation
    assert labels_of(samples, val) == {"a": 5, "b": 2, "c": 10}
    assert labels_of(samples, train) == {"a": 15, "b": 8, "c": 30}
    assert sorted(train + val) == sorted(s["index"] for s in samples)
    assert not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)


def test_stratified_is_seeded():
    samples = make_samples({"a": 30, "b": 30})
    assert stratified_split(samples, 0.3, seed=5) == stratified_split(samples, 0.3, seed=5)
    assert stratified_split(samples, 0.3, seed=5) != stratified_split(samples, 0.3, seed=6)


def test_stratified_small_classes():
    samples = make_samples({"one": 1, "two": 2, "three": 3})
    train, val = stratified_split(samples, 0.1, seed=0)
    val_counts = labels_of(samples, val)
    assert val_counts["one"] == 0  # a lone sample must train
    assert val_counts["two"] == 1  # at least one where a class has two or more
    assert val_counts["three"] == 1
    # a huge fraction still leaves one of each class in training
    train, val = stratified_split(samples, 0.99, seed=0)
    assert labels_of(samples, train) == {"one": 1, "two": 1, "three": 1}


def test_stratified_zero_fraction():
    samples = make_samples({"a": 5, "b": 5})
    train, val = stratified_split(samples, 0.0, seed=0)
    assert val == []
    assert len(train) == 10


def test_unlabeled_always_train():
    samples = make_samples({"a": 10, None: 7, "b": 10})
    unlabeled = {s["index"] for s in samples if s["label"] is None}
    for seed in range(5):
        train, val = stratified_split(samples, 0.5, seed=seed)
        assert unlabeled <= set(train)
        assert not unlabeled & set(val)


# --- groups ---------------------------------------------------------------------------------


def speaker_samples(speakers: dict[str, int], labels=("yes", "no")) -> list[dict]:
    samples, k = [], 0
    for spk, n in speakers.items():
        for i in range(n):
            label = labels[i % len(labels)]
            samples.append({"index": k, "stem": f"{spk}_{label}_{i}", "label": label})
            k += 1
    return samples


def test_group_of_regex_and_column():
    pattern = compile_group_regex(r"^(spk\d+)_")
    assert group_of({"stem": "spk12_yes_3"}, pattern) == "spk12"
    assert group_of({"stem": "nobody"}, pattern) is None
    assert group_of({"stem": "spk1_x", "group": "from-manifest"}, pattern) == "from-manifest"
    assert group_of({"stem": "spk1_x"}, None) is None
    # without a capture group the whole match names the group
    assert group_of({"stem": "a-spk7-b"}, compile_group_regex(r"spk\d")) == "spk7"


def test_compile_group_regex_empty_and_bad():
    assert compile_group_regex(None) is None
    assert compile_group_regex("") is None
    with pytest.raises(CrossmodalError, match="not a valid regular expression"):
        compile_group_regex("(spk")


@pytest.mark.parametrize("seed", range(6))
def test_group_split_keeps_groups_disjoint(seed):
    samples = speaker_samples({f"spk{i}": 4 + i for i in range(6)})
    pattern = compile_group_regex(r"^(spk\d+)_")
    train, val, chosen = group_split(samples, pattern, val_groups=(), fraction=0.3, seed=seed)
    group = {s["index"]: s["stem"].split("_")[0] for s in samples}
    train_groups = {group[i] for i in train}
    val_groups = {group[i] for i in val}
    assert val_groups == set(chosen)
    assert not train_groups & val_groups
    assert train_groups  # never every group in validation
    assert sorted(train + val) == sorted(group)  # everything labeled lands somewhere
    # groups are added until the fraction is reached
    assert len(val) >= 0.3 * len(samples)


def test_named_val_groups():
    samples = speaker_samples({"spk1": 3, "spk2": 4, "spk3": 5})
    pattern = compile_group_regex(r"^(spk\d+)_")
    train, val, chosen = group_split(samples, pattern, val_groups=("spk2",), fraction=0.9, seed=0)
    assert chosen == ["spk2"]
    assert val == [s["index"] for s in samples if s["stem"].startswith("spk2_")]
    assert len(train) == 8


def test_unknown_val_group():
    samples = speaker_samples({"spk1": 3, "spk2": 3})
    with pytest.raises(CrossmodalError, match="spk9"):
        group_split(
            samples, compile_group_regex(r"^(spk\d+)_"), val_groups=("spk9",), fraction=0.2, seed=0
        )


def test_val_groups_naming_every_group_rejected():
    samples = speaker_samples({"spk1": 3, "spk2": 3})
    with pytest.raises(CrossmodalError, match="names every group"):
        group_split(
            samples,
            compile_group_regex(r"^(spk\d+)_"),
            val_groups=("spk1", "spk2"),
            fraction=0.2,
            seed=0,
        )


def test_samples_without_group_rejected():
    samples = speaker_samples({"spk1": 3, "spk2": 3})
    samples.append({"index": 99, "stem": "mystery", "label": "yes"})
    words = re.escape("(first: 'mystery'): --group-regex '^(spk\\d+)_' does not match")
    with pytest.raises(CrossmodalError, match=words):
        group_split(
            samples, compile_group_regex(r"^(spk\d+)_"), val_groups=(), fraction=0.2, seed=0
        )
    # --val-group alone: no regex was given, so the message asks for one
    with pytest.raises(CrossmodalError, match="no group .*: give --group-regex"):
        group_split(samples, None, val_groups=("spk1",), fraction=0.2, seed=0)


def test_single_group_rejected():
    samples = speaker_samples({"spk1": 5})
    with pytest.raises(CrossmodalError, match="at least two groups"):
        group_split(
            samples, compile_group_regex(r"^(spk\d+)_"), val_groups=(), fraction=0.2, seed=0
        )


def test_manifest_group_column_without_regex():
    samples = [
        {"index": i, "stem": f"{i}:x", "label": "a", "group": "g1" if i < 4 else "g2"}
        for i in range(8)
    ]
    train, val, chosen = group_split(samples, None, val_groups=("g2",), fraction=0.2, seed=0)
    assert (train, val, chosen) == ([0, 1, 2, 3], [4, 5, 6, 7], ["g2"])


def test_group_split_never_validates_unlabeled():
    samples = speaker_samples({"spk1": 4, "spk2": 4})
    samples[5]["label"] = None  # spk2's second sample
    train, val, chosen = group_split(
        samples, compile_group_regex(r"^(spk\d+)_"), val_groups=("spk2",), fraction=0.2, seed=0
    )
    assert 5 not in val
    assert val == [4, 6, 7]
    assert train == [0, 1, 2, 3]
