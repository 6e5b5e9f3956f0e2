"""crossmodal train DATA --out MODEL"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.options import Channels, ClipSeconds, ImageSize, Json, Quiet, Workers
from cli.output import Output, handled, parse_size, quiet_tensorflow
from crossmodal.config import MAX_MEMBERS, MAX_SAMPLE_RATE

# flag name -> (config section, field); a flag left at None keeps the config file's value,
# or else the dataclass default shown in --help.
FLAG_FIELDS = {
    "val_fraction": ("train", "val_fraction"),
    "val_dir": ("train", "val_dir"),
    "group_regex": ("train", "group_regex"),
    "val_group": ("train", "val_groups"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "weight_decay": ("train", "weight_decay"),
    "label_smoothing": ("train", "label_smoothing"),
    "optimizer": ("train", "optimizer"),
    "schedule": ("train", "schedule"),
    "clipnorm": ("train", "clipnorm"),
    "class_weight": ("train", "class_weight"),
    "patience": ("train", "patience"),
    "seed": ("train", "seed"),
    "align": ("train", "align"),
    "mixed_precision": ("train", "mixed_precision"),
    "fusion": ("model", "fusion"),
    "dropout": ("model", "dropout"),
    "modality_dropout": ("model", "modality_dropout"),
    "members": ("model", "members"),
    "lone_modality": ("model", "lone_modality"),
    "augment": ("augment", "enabled"),
    "noise_dir": ("augment", "noise_dir"),
    "flip": ("augment", "image_flip"),
    "multi_label": ("model", "multi_label"),
    "calibrate": ("train", "calibrate"),
    "strategy": ("train", "strategy"),
    "sample_rate": ("audio", "sample_rate"),
}


def train(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Folder, manifest, or preprocessed folder (optional with --config/--resume)."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Model folder to write.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of options, or MODEL/config.json to repeat a run; flags override."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the killed run that was writing this model folder."),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.9,
            help="Validation fraction: stratified by class, or of the groups with --group-regex "
            "[0.15].",
        ),
    ] = None,
    val_dir: Annotated[
        Path | None, typer.Option(help="Validate on this folder/manifest instead of a split.")
    ] = None,
    group_regex: Annotated[
        str | None,
        typer.Option(
            help="Group split: regex on the stem, first group = group name, e.g. '^([a-z]+)_'."
        ),
    ] = None,
    val_group: Annotated[
        list[str] | None, typer.Option(help="Hold out this group for validation (repeatable).")
    ] = None,
    fusion: Annotated[
        str | None, typer.Option(help="concat, late, gated, conv or auto [concat].")
    ] = None,
    align: Annotated[
        str | None,
        typer.Option(help="Cross-modal alignment: auto (on with unlabeled pairs), on, off [auto]."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs [40].")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Global batch [auto: 32, less on small data].")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate, above 0 [0.002].")
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="adamw, adam or sgd (momentum, nesterov) [adamw].")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="cosine (with warmup), constant or plateau [cosine].")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(min=0.0, help="Decoupled weight decay (adamw, sgd) [0.0001].")
    ] = None,
    clipnorm: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Clip each weight's gradient to this norm, one by one; 0: off [1.0]."
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(min=0.0, max=0.5, help="Share of each target spread over the classes [0.05]."),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(help="'balanced', a JSON file {label: weight}, or that object inline."),
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=0.95, help="Dropout before the classifier heads and in the fusion [0.3]."
        ),
    ] = None,
    modality_dropout: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Chance to hide one modality of a pair while training [0.25]."
        ),
    ] = None,
    members: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_MEMBERS,
            help="Ensemble: train this many networks side by side, average them [2].",
        ),
    ] = None,
    lone_modality: Annotated[
        str | None,
        typer.Option(
            help="What scores a sample with one modality: head (its own) or fusion [head]."
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Early-stopping patience, epochs [6]; watched from half the epochs on "
            "([train] early_stop_from).",
        ),
    ] = None,
    augment: Annotated[
        bool | None, typer.Option("--augment/--no-augment", help="Training-time augmentation [on].")
    ] = None,
    noise_dir: Annotated[
        Path | None,
        typer.Option(help="Mix background sounds from this folder into training audio."),
    ] = None,
    flip: Annotated[
        str | None,
        typer.Option(help="Random image flips: none, horizontal, vertical or both [none]."),
    ] = None,
    mixed_precision: Annotated[
        bool | None,
        typer.Option(
            "--mixed-precision/--no-mixed-precision",
            help="float16 compute on GPUs (no-op on CPU) [off].",
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="auto, one-device, mirrored or multi-worker (reads TF_CONFIG) [auto]."),
    ] = None,
    calibrate: Annotated[
        bool | None,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Fit temperature scaling on validation; store it in the model [off].",
        ),
    ] = None,
    multi_label: Annotated[
        bool | None,
        typer.Option("--multi-label", help="Sigmoid outputs; label cells may hold 'a;b' (auto)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for splits, initialization and shuffling [0].")
    ] = None,
    image_size: ImageSize = None,
    channels: Channels = None,
    clip_seconds: ClipSeconds = None,
    sample_rate: Annotated[
        int | None,
        typer.Option(
            min=1000, max=MAX_SAMPLE_RATE, help="Resample all audio to this rate, Hz [16000]."
        ),
    ] = None,
    workers: Workers = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
    json_output: Json = False,
    quiet: Quiet = False,
) -> None:
    """Train a fused image+audio classifier and write a self-contained model folder."""
    size = parse_size(image_size)
    o = Output(quiet=quiet, json_mode=json_output)
    given = {
        "val_fraction": val_fraction, "val_dir": str(val_dir) if val_dir else None,
        "group_regex": group_regex, "val_group": list(val_group) if val_group else None,
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
        "weight_decay": weight_decay, "label_smoothing": label_smoothing, "optimizer": optimizer,
        "schedule": schedule, "clipnorm": clipnorm, "class_weight": class_weight,
        "patience": patience, "seed": seed, "align": align, "mixed_precision": mixed_precision,
        "fusion": fusion, "dropout": dropout, "modality_dropout": modality_dropout,
        "members": members, "lone_modality": lone_modality, "augment": augment,
        "noise_dir": str(noise_dir) if noise_dir else None, "flip": flip,
        "sample_rate": sample_rate, "multi_label": multi_label,
        "calibrate": calibrate,
        "strategy": strategy,
    }  # fmt: skip
    with handled(o):
        from crossmodal.errors import CrossmodalError
        from crossmodal.settings import read_config_file, resolve

        if resume is not None:
            if out is not None and Path(out) != resume:
                raise CrossmodalError(
                    "--resume names the model folder; drop --out or make them equal"
                )
            # --strategy stays allowed: where the run goes on is not a setting of the model.
            changed = [
                f"--no-{k.replace('_', '-')}" if v is False else f"--{k.replace('_', '-')}"
                for k, v in given.items()
                if v is not None and k != "strategy"
            ]
            changed += ["DATA"] * (data is not None) + ["--config"] * (config is not None)
            changed += ["--overwrite"] * overwrite
            changed += [
                flag
                for flag, v in (
                    ("--image-size", image_size),
                    ("--channels", channels),
                    ("--clip-seconds", clip_seconds),
                )
                if v is not None
            ]
            if changed:  # they would be ignored: the run goes on as it was started
                raise CrossmodalError(
                    f"--resume continues the run with its own settings; drop {', '.join(changed)}"
                )
            out = resume
        if out is None:
            raise CrossmodalError("missing option --out MODEL")
        flags: dict = {}
        for name, value in given.items():
            if value is not None:
                section, field = FLAG_FIELDS[name]
                flags.setdefault(section, {})[field] = value
        if size:
            flags.setdefault("image", {}).update(height=size[0], width=size[1])
        if channels:
            flags.setdefault("image", {})["channels"] = channels
        if clip_seconds:
            flags.setdefault("audio", {})["clip_seconds"] = clip_seconds
        file_settings = read_config_file(config) if config else {}
        cfg, explicit = resolve(file_settings, flags)
        data = data or (Path(cfg.data) if cfg.data else None)
        if data is None and resume is None:
            raise CrossmodalError("missing argument DATA (or a --config that names its data)")
        if resume is None:  # typos refused before TensorFlow is imported or data is read
            from crossmodal.train import check_before_work

            cfg = check_before_work(cfg, data, out)  # with a --class-weight file's table
        image = explicit["image"]
        shape = (
            (image["height"], image["width"]) if "height" in image and "width" in image else None
        )

        quiet_tensorflow()
        from crossmodal.train import train as run

        start = time.time()

        with o.progress() as progress:

            def on_epoch(epoch: int, total: int, logs: dict) -> None:
                # A line per epoch (what CI logs keep), plus the bar on a terminal.
                parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "learning_rate")
                o.info(f"epoch {epoch}/{total} {parts} ({time.time() - start:.0f}s)")
                progress("training (epochs)", epoch, total)

            result = run(
                data,
                out,
                # resuming: the run's own settings, but for where it goes on
                config=cfg if resume is None else _strategy_only(cfg),
                image_size=shape,
                channels=image.get("channels"),
                clip_seconds=explicit["clip_seconds"],
                overwrite=overwrite,
                resume=resume is not None,
                workers=workers,
                progress=progress,
                on_epoch=on_epoch,
                notice=o.info,
            )
        if result.model_dir is None:
            o.info(f"worker done in {result.seconds:.0f}s; the chief writes the model folder")
        else:
            epochs = len(result.history)
            o.info(f"wrote {result.model_dir} in {result.seconds:.0f}s ({epochs} epochs)")
        for modality, m in result.metrics.items():
            if modality in ("both", "image", "audio"):
                scores = f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}"
                o.info(f"  validation {modality:>5}: {scores}")
        o.result(
            {
                "model_dir": str(result.model_dir) if result.model_dir else None,
                "seconds": round(result.seconds, 2),
                "epochs": len(result.history),
                "split": result.split,
                "notes": result.notes,
                "validation": {
                    k: {key: v[key] for key in ("accuracy", "macro_f1", "num_samples")}
                    for k, v in result.metrics.items()
                    if k in ("both", "image", "audio")
                },
                "config": result.config.to_dict(),
            }
        )


def _strategy_only(cfg):
    """What a resumed run takes from the command line: where it goes on, nothing else."""
    from crossmodal.config import RunConfig, TrainConfig

    return RunConfig(train=TrainConfig(strategy=cfg.train.strategy))
