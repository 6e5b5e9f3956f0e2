"""Test-time views, judged on the same trained models: serve kept loso.py folders with other views.

    python benchmarks/views.py KEPT_DIR [--kind fused|transfer] [--speakers george,nicolas]
                               [--views CROPS/WARPS ...]

KEPT_DIR is a `benchmarks/loso.py --keep DIR` folder. For each kept model (`concat-S` for
fused runs, `transfer-S` for --transfer runs) and each view setting, rebuild the served graph
from the folder's `model.keras` with `crossmodal.model.inference_network` (the trained weights,
other `audio.test_crops_db` / `audio.test_freq_warps`), export it as the SavedModel train would,
and run `crossmodal.evaluate` on the held-out speaker S (loso's `h-S.csv`): both, image and
sound alone for fused models (and the shifted copy when kept), the sound alone for transfer
models. Training does not depend on the views, so the settings are compared on identical
weights. Prints one JSON line per (speaker, setting), then the means per setting.

A setting is CROPS/WARPS, each a comma-separated list (empty for none): the default is
`20,30,35/0.95,1.05`; `/` is one view, `20,30,35/` the crops alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path


def parse_setting(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    crops, _, warps = text.partition("/")
    return tuple(float(v) for v in crops.split(",") if v), tuple(
        float(v) for v in warps.split(",") if v
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kept", type=Path)
    parser.add_argument("--kind", choices=("fused", "transfer"), default="fused")
    parser.add_argument("--speakers", default=None, help="comma-separated (default: all kept)")
    parser.add_argument("--views", nargs="+", default=["20,30,35/0.95,1.05"])
    args = parser.parse_args(argv)

    import keras

    from crossmodal.artifacts import export_saved_model
    from crossmodal.config import RunConfig
    from crossmodal.evaluate import evaluate
    from crossmodal.model import inference_network

    prefix = "concat-" if args.kind == "fused" else "transfer-"
    wanted = set(args.speakers.split(",")) if args.speakers else None
    rows = []
    for model_dir in sorted(args.kept.glob(prefix + "*")):
        speaker = model_dir.name.split("-", 1)[1]
        if not (model_dir / "model.keras").exists() or (wanted and speaker not in wanted):
            continue
        net = keras.saving.load_model(model_dir / "model.keras")
        cfg = RunConfig.load(model_dir / "config.json")
        for text in args.views:
            crops, warps = parse_setting(text)
            audio = dataclasses.replace(cfg.audio, test_crops_db=crops, test_freq_warps=warps)
            served_cfg = cfg.replace(audio=audio)
            row = {"speaker": speaker, "views": text, "count": len(audio.test_views) + 1}
            with tempfile.TemporaryDirectory() as tmp:
                served = Path(tmp) / "model"
                served.mkdir()
                served_cfg.save(served / "config.json")
                shutil.copy(model_dir / "labels.json", served / "labels.json")
                export_saved_model(
                    inference_network(net, served_cfg), served_cfg, served / "saved_model"
                )
                test = args.kept / f"h-{speaker}.csv"
                if args.kind == "fused":
                    ablation = evaluate(served, test)["ablation"]
                    row |= {m: ablation[m]["accuracy"] for m in ("both", "image", "audio")}
                    noisy = args.kept / f"noisy-{speaker}"
                    if noisy.exists():
                        shifted = evaluate(served, noisy)["ablation"]
                        row["shifted"] = shifted["both"]["accuracy"]
                        row["shifted_audio"] = shifted["audio"]["accuracy"]
                else:
                    row["audio"] = evaluate(served, test, modality="audio")["accuracy"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    for text in args.views:
        chosen = [r for r in rows if r["views"] == text]
        if chosen:
            keys = [k for k in chosen[0] if k not in ("speaker", "views", "count")]
            mean = {k: round(sum(r[k] for r in chosen) / len(chosen), 4) for k in keys}
            print(json.dumps({"views": text, "speakers": len(chosen), "mean": mean}), flush=True)
    return 0


if __name__ == "__main__":  # spawned decoding workers import this file again
    sys.exit(main())
