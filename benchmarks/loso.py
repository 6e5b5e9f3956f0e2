"""Leave-one-speaker-out on ../shared/datasets/avdigits: the honest estimate for unseen voices.

    python benchmarks/loso.py [--data DIR] [--speakers nicolas,jackson] [--fusion concat,late]
                              [--transfer | --transfer-only] [--shifted] [--epochs N]
                              [--config FILE] [--train-speakers K] [--keep DIR]

For each speaker S and each fusion method F: train with defaults (and --fusion F) on a manifest
of the other speakers' pairs (so validation, early stopping and every choice made on it use the
default split of those speakers: S is never seen before the test), then evaluate the model on
S's pairs with both modalities, the image alone and the sound alone (one model, the other
modality removed from every sample), plus the wall time of training. With --transfer, also
train on a manifest of labeled images plus unlabeled image+sound pairs from the other speakers
(no audio label anywhere) and report audio-alone accuracy on S (--transfer-only: only that).
With --shifted, also evaluate each fused model on a corrupted copy of S
(`crossmodal.robustness.corrupt_folder`, the acceptance test's shift: pixel noise sigma 40, a
30% gray patch, babble of 3 other recordings at 5 dB SNR, seed 0): `shifted` is the accuracy
with both modalities there, and the same model says where it loses it: `shifted_image` and
`shifted_audio` are each corrupted modality alone, `shifted_image_only` the corrupted image with
the clean sound and `shifted_audio_only` the clean image with the corrupted sound.

--config FILE (TOML, as `crossmodal train --config`) replaces the defaults for every run: the
way to judge a candidate setting before it becomes a default.

--train-speakers K trains each fused model on K of the other speakers only (the K that follow
S in alphabetical rotation), for a learning curve over the number of training voices: users
train on every voice they have, and the curve says how the held-out figures move with one more.

--keep DIR keeps every trained model folder (and the shifted copies) under DIR instead of a
temporary folder, for analysis after the run.

Prints one JSON object: per-run rows and per-fusion means. Each training takes minutes on two
cores: the full grid (4 speakers x 5 fusions) took about an hour and a half with one network
per model; the default's two ensemble members train about 1.7 times as long.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "avdigits"


def speaker_of(path: Path) -> str:
    """avdigits names each file SPEAKER_INDEX: the speaker is the stem before the first '_'."""
    return path.stem.split("_")[0]


def speakers_of(data: Path) -> list[str]:
    return sorted({speaker_of(p) for p in data.glob("*/*.wav")})


def transfer_manifest(data: Path, held_out: str, path: Path) -> Path:
    rows = ["image,audio,label"]
    for label_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for k, wav in enumerate(sorted(label_dir.glob("*.wav"))):
            if speaker_of(wav) == held_out:
                continue
            png = wav.with_suffix(".png")
            rows.append(f"{png},,{label_dir.name}" if k % 2 == 0 else f"{png},{wav},")
    path.write_text("\n".join(rows) + "\n")
    return path


def training_speakers(everyone: list[str], held_out: str, count: int = 0) -> set[str]:
    """The `count` speakers after `held_out` in alphabetical rotation (0: every other one)."""
    i = everyone.index(held_out)
    rotation = everyone[i + 1 :] + everyone[:i]
    return set(rotation[:count] if count > 0 else rotation)


def speakers_manifest(data: Path, speakers: set[str], path: Path) -> Path:
    """Every labeled pair of `speakers`."""
    rows = ["image,audio,label"]
    for label_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for wav in sorted(label_dir.glob("*.wav")):
            if speaker_of(wav) in speakers:
                rows.append(f"{wav.with_suffix('.png')},{wav},{label_dir.name}")
    path.write_text("\n".join(rows) + "\n")
    return path


def held_out_manifest(data: Path, speaker: str, path: Path) -> Path:
    return speakers_manifest(data, {speaker}, path)


def mixed_manifest(images: Path, sounds: Path, path: Path) -> Path:
    """Pairs taking the image from one class-folder copy and the sound from another (same
    labels and file names): one modality corrupted, the other clean."""
    rows = ["image,audio,label"]
    for wav in sorted(sounds.glob("*/*.wav")):
        label = wav.parent.name
        image = images / label / wav.with_suffix(".png").name
        if not image.is_file():  # else the pair would quietly be scored on its sound alone
            raise FileNotFoundError(f"{image}: no image for {wav}")
        rows.append(f"{image},{wav},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def held_out_folder(data: Path, speaker: str, dst: Path) -> Path:
    """The speaker's pairs as a class-folder copy (what `corrupt_folder` reads)."""
    import shutil

    for label_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob(f"{speaker}_*")):
            (dst / label_dir.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / label_dir.name / f.name)
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--speakers", default="")
    parser.add_argument("--fusion", default=None, help="comma-separated (default: the config's)")
    parser.add_argument("--transfer", action="store_true")
    parser.add_argument("--transfer-only", action="store_true", help="no fused runs")
    parser.add_argument("--shifted", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--config", type=Path, default=None, help="TOML settings for every run")
    parser.add_argument(
        "--train-speakers", type=int, default=0, help="train on K other speakers (default: all)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep model folders under DIR")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 1

    from crossmodal.config import RunConfig
    from crossmodal.evaluate import evaluate
    from crossmodal.robustness import corrupt_folder
    from crossmodal.settings import read_config_file
    from crossmodal.train import train

    settings = read_config_file(args.config) if args.config else {}
    settings.pop("data", None)  # the data is chosen here
    defaults = RunConfig.from_dict(settings)
    fusions = args.fusion.split(",") if args.fusion else [defaults.model.fusion]
    everyone = speakers_of(args.data)
    speakers = args.speakers.split(",") if args.speakers else everyone
    rows = []
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        for fusion in [] if args.transfer_only else fusions:
            for speaker in speakers:
                model = replace(defaults.model, fusion=fusion)
                train_cfg = replace(defaults.train, epochs=args.epochs or defaults.train.epochs)
                cfg = defaults.replace(model=model, train=train_cfg)
                others = training_speakers(everyone, speaker, args.train_speakers)
                manifest = speakers_manifest(args.data, others, Path(tmp) / f"o-{speaker}.csv")
                test = held_out_manifest(args.data, speaker, Path(tmp) / f"h-{speaker}.csv")
                start = time.time()
                out = Path(tmp) / f"{fusion}-{speaker}"
                result = train(manifest, out, config=cfg)
                seconds = round(time.time() - start, 1)
                ablation = evaluate(out, test)["ablation"]
                row = {
                    "fusion": fusion,
                    "chosen": result.config.model.fusion,
                    "speaker": speaker,
                    "trained_on": ",".join(sorted(others)),
                    "seconds": seconds,
                    "epochs": len(result.history),
                    **{m: round(ablation[m]["accuracy"], 4) for m in ("both", "image", "audio")},
                }
                if args.shifted:
                    noisy = Path(tmp) / f"noisy-{speaker}"
                    clean = Path(tmp) / f"clean-{speaker}"
                    if not noisy.exists():  # once per speaker, whatever the number of fusions
                        held_out_folder(args.data, speaker, clean)
                        corrupt_folder(clean, noisy, seed=0)
                    shifted = evaluate(out, noisy)["ablation"]
                    row["shifted"] = round(shifted["both"]["accuracy"], 4)
                    row["shifted_image"] = round(shifted["image"]["accuracy"], 4)
                    row["shifted_audio"] = round(shifted["audio"]["accuracy"], 4)
                    for corrupted, images, sounds in (
                        ("image", noisy, clean),
                        ("audio", clean, noisy),
                    ):
                        mixed = mixed_manifest(
                            images, sounds, Path(tmp) / f"m-{speaker}-{corrupted}.csv"
                        )
                        accuracy = evaluate(out, mixed)["accuracy"]
                        row[f"shifted_{corrupted}_only"] = round(accuracy, 4)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        for speaker in speakers if args.transfer or args.transfer_only else ():
            manifest = transfer_manifest(args.data, speaker, Path(tmp) / f"t-{speaker}.csv")
            start = time.time()
            out = Path(tmp) / f"transfer-{speaker}"
            train(manifest, out, config=defaults)
            test = held_out_manifest(args.data, speaker, Path(tmp) / f"h-{speaker}.csv")
            report = evaluate(out, test, modality="audio")
            row = {
                "fusion": "transfer",
                "speaker": speaker,
                "seconds": round(time.time() - start, 1),
                "audio_from_image_labels": round(report["accuracy"], 4),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    summary: dict = {}
    for fusion in {r["fusion"] for r in rows}:
        mine = [r for r in rows if r["fusion"] == fusion]
        keys = [k for k in mine[0] if k not in ("fusion", "chosen", "speaker", "trained_on")]
        summary[fusion] = {k: round(sum(r[k] for r in mine) / len(mine), 4) for k in keys}
    print(json.dumps({"runs": rows, "mean": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
