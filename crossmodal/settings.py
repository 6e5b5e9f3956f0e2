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
VAL_DIR_AND_FRACTION = (
    "train.val_fraction splits the data, which train.val_dir replaces: give one or the other"
)


def read_config_file(path: str | Path) -> dict[str, Any]:
    from crossmodal import fsio

    try:
        text = fsio.read_text(path)
        path = Path(fsio.basename(path))  # only its suffix is used below
    except (OSError, UnicodeDecodeError) as exc:
        raise CrossmodalError(f"cannot read config file {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CrossmodalError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise CrossmodalError(f"{path}: expected a table of settings")
    if "format_version" in data:  # a model folder's config.json: repeat that run as it was
        data = saved_settings(data)
    elif DERIVED_KEYS & set(data):  # a user's file: a setting that would be dropped
        raise CrossmodalError(
            f"{path}: 'labels' is not a setting: the classes are read from the data"
        )
    elif isinstance(data.get("train"), dict) and {"val_dir", "val_fraction"} <= set(data["train"]):
        raise CrossmodalError(f"{path}: {VAL_DIR_AND_FRACTION}")
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


def resolve(file_settings: dict[str, Any], flags: dict[str, Any]) -> tuple[RunConfig, dict]:
    """The RunConfig, plus which data-shape settings were given explicitly (not inferred)."""
    merged = merge(file_settings, flags)
    train = merged.get("train")
    if (
        isinstance(train, dict)
        and train.get("val_dir")
        and "val_fraction" in flags.get("train", {})
    ):
        raise CrossmodalError(f"--val-fraction: {VAL_DIR_AND_FRACTION}")
    cfg = RunConfig.from_dict(merged)  # first: it refuses a section that is not a table
    explicit = {
        "image": dict(merged.get("image", {})),
        "clip_seconds": merged.get("audio", {}).get("clip_seconds"),
    }
    return cfg, explicit
