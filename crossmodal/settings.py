"""Config files and flag overrides for `train`: a file holds every option, flags override it.

A TOML file (`--config train.toml`) or a model's own `config.json` (`--config MODEL/config.json`
repeats that run) has the same sections as RunConfig:

    data = "sample_data"
    [train]
    epochs = 20
    group_regex = "^([a-z]+)_"
    [model]
    fusion = "gated"

Files are parsed (tomllib, json), never evaluated.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from crossmodal.config import RunConfig, saved_settings
from crossmodal.errors import CrossmodalError

METADATA_KEYS = {
    "format_version",
    "crossmodal_version",
    "tensorflow_version",
    "keras_version",
    "created",
}
DERIVED_KEYS = {"labels"}  # always re-read from the data
SPLIT_FLAGS = {
    "val_fraction": "--val-fraction",
    "group_regex": "--group-regex",
    "val_groups": "--val-group",
}
SPLIT_SETTINGS = tuple(SPLIT_FLAGS)  # what --val-dir replaces


def read_config_file(path: str | Path) -> dict[str, Any]:
    from crossmodal import fsio

    try:
        text = fsio.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise CrossmodalError(f"cannot read config file {path}: {exc}") from None
    path = fsio.normalize(path)  # as given (a remote one with its "//"), for the messages
    is_json = Path(fsio.basename(path)).suffix.lower() == ".json"
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CrossmodalError(f"{path}: not valid {'JSON' if is_json else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise CrossmodalError(f"{path}: expected a table of settings")
    if "format_version" in data:  # a model folder's config.json: repeat that run as it was
        data = saved_settings(data)
    elif DERIVED_KEYS & set(data):  # a user's file: a setting that would be dropped
        raise CrossmodalError(
            f"{path}: 'labels' is not a setting: the classes are read from the data"
        )
    elif isinstance(data.get("train"), dict):  # a file of yours naming both: which is meant?
        train = data["train"]
        split = [k for k in SPLIT_SETTINGS if train.get(k) not in (None, "", [])]
        if train.get("val_dir") and split:
            raise CrossmodalError(
                f"{path}: train.{' and train.'.join(split)} {_verb(split)} the data, which "
                "train.val_dir replaces: give one or the other"
            )
    return {k: v for k, v in data.items() if k not in METADATA_KEYS | DERIVED_KEYS}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested dict update: `overrides` wins, section by section."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _verb(names: list[str]) -> str:
    return "splits" if len(names) == 1 else "split"


def _split_from_flags(file_settings: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """How validation is chosen is one decision: `--val-dir` on the command line sets aside
    the file's split settings (a repeated config.json's `group_regex`, say), and a split flag
    (`--val-fraction`, `--group-regex`, `--val-group`) the file's `val_dir`; `--val-fraction`
    sets aside the file's `val_groups` too, which would leave it unused. Both kinds of flag at
    once is refused."""
    given = flags.get("train") or {}
    split = [k for k in SPLIT_SETTINGS if k in given]
    if given.get("val_dir") and split:
        names = " and ".join(SPLIT_FLAGS[k] for k in split)
        raise CrossmodalError(
            f"{names} {_verb(split)} the data, which --val-dir replaces: give one or the other"
        )
    train = file_settings.get("train")
    if not isinstance(train, dict):
        return file_settings
    drop: tuple[str, ...] = (
        SPLIT_SETTINGS if given.get("val_dir") else ("val_dir",) if split else ()
    )
    if "val_fraction" in given and "val_groups" not in given:
        drop += ("val_groups",)  # named groups would leave the fraction unused
    return {**file_settings, "train": {k: v for k, v in train.items() if k not in drop}}


def resolve(file_settings: dict[str, Any], flags: dict[str, Any]) -> tuple[RunConfig, dict]:
    """The RunConfig, plus which data-shape settings were given explicitly (not inferred)."""
    merged = merge(_split_from_flags(file_settings, flags), flags)
    cfg = RunConfig.from_dict(merged)  # first: it refuses a section that is not a table
    explicit = {
        "image": dict(merged.get("image", {})),
        "clip_seconds": merged.get("audio", {}).get("clip_seconds"),
    }
    return cfg, explicit
