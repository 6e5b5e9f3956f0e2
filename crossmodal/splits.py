"""Train/validation splits: stratified by class, or by group (a speaker, a session).

A random split of recordings leaks the speaker's voice into validation; a group split keeps
each group wholly on one side, which is the honest estimate for unseen speakers.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from crossmodal.errors import CrossmodalError


def group_of(sample: dict, pattern: re.Pattern | None) -> str | None:
    """The sample's group: a manifest `group` cell, else the regex's first group on the stem."""
    if sample.get("group"):
        return sample["group"]
    if pattern is None:
        return None
    match = pattern.search(sample["stem"])
    if match is None:
        return None
    return match.group(1) if match.groups() else match.group(0)


def compile_group_regex(regex: str | None) -> re.Pattern | None:
    if not regex:
        return None
    try:
        return re.compile(regex)
    except re.error as exc:
        raise CrossmodalError(
            f"--group-regex {regex!r} is not a valid regular expression: {exc}"
        ) from None


def stratified_split(
    samples: list[dict], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Per class, `fraction` of the labeled samples (at least one where a class has two or
    more) go to validation. Unlabeled samples always train."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    train: list[int] = []
    for s in samples:
        if s["label"] is None:
            train.append(s["index"])
        else:
            by_label[s["label"]].append(s["index"])
    val: list[int] = []
    for label in sorted(by_label):
        idx = np.array(by_label[label])
        rng.shuffle(idx)
        n_val = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            n_val = max(1, n_val)
        n_val = min(n_val, len(idx) - 1)
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return sorted(train), sorted(val)


def group_split(
    samples: list[dict],
    pattern: re.Pattern | None,
    *,
    val_groups: tuple[str, ...],
    fraction: float,
    seed: int,
) -> tuple[list[int], list[int], list[str]]:
    """Whole groups to validation: the named ones, or random ones until `fraction` is reached."""
    groups: dict[str, list[int]] = defaultdict(list)
    ungrouped = []
    for s in samples:
        g = group_of(s, pattern)
        if g is None:
            ungrouped.append(s["stem"])
        else:
            groups[g].append(s["index"])
    if ungrouped:
        fix = (
            f"--group-regex '{pattern.pattern}' does not match their file stems"
            if pattern is not None
            else "give --group-regex to read groups from the file stems (or a manifest "
            "'group' column)"
        )
        raise CrossmodalError(
            f"{len(ungrouped)} sample(s) have no group (first: {ungrouped[0]!r}): {fix}"
        )
    if len(groups) < 2:
        raise CrossmodalError(
            f"a group split needs at least two groups, found {len(groups)}: {sorted(groups)}"
        )
    if val_groups:
        unknown = sorted(set(val_groups) - set(groups))
        if unknown:
            raise CrossmodalError(
                f"validation group(s) {', '.join(unknown)} not found; groups are: "
                f"{', '.join(sorted(groups))}"
            )
        if set(groups) <= set(val_groups):
            raise CrossmodalError(
                f"--val-group names every group ({', '.join(sorted(groups))}); "
                "at least one must train"
            )
        chosen = list(val_groups)
    else:
        rng = np.random.default_rng(seed)
        order = sorted(groups)
        rng.shuffle(order)
        total = sum(len(v) for v in groups.values())
        chosen, taken = [], 0
        for g in order[:-1]:  # never all groups
            if taken >= fraction * total:
                break
            chosen.append(g)
            taken += len(groups[g])
    val = sorted(i for g in chosen for i in groups[g])
    labeled_val = {s["index"] for s in samples if s["label"] is not None} & set(val)
    val = sorted(labeled_val)
    train = sorted(i for g, idx in groups.items() if g not in chosen for i in idx)
    return train, val, sorted(chosen)
