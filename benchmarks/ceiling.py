"""How far averaging models can take the sound alone, and which errors every model shares.

    python benchmarks/ceiling.py TAG=KEPT_DIR [TAG=KEPT_DIR ...] [--max-size 3]
                                 [--shared TAG,TAG,...]

Each KEPT_DIR is a `benchmarks/loso.py --keep DIR` folder of fused models (`concat-S`). Every
model is served with the current code and today's default test views (its `model.keras` rebuilt
with `crossmodal.model.inference_network`) on the held-out speaker S's sounds alone, image
absent; the audio head's view-averaged log-probabilities are kept. Then, per combination of up
to `--max-size` models: the accuracy of the sum of their log-probabilities, per speaker and
mean. `--shared` names the models whose errors are counted sound by sound: how many of them are
wrong on each sound, and, for the sounds all of them miss, the (speaker, digit) pairs and what
they answer. Prints JSON lines, one per model and per combination, then the shared errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "avdigits"


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def combined_accuracy(logits: list[np.ndarray], labels: np.ndarray) -> float:
    """Accuracy of the sum of several models' log-probabilities ([N, K] each)."""
    return float(np.mean(sum(log_softmax(x) for x in logits).argmax(axis=1) == labels))


def shared_errors(preds: list[np.ndarray], labels: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(histogram of how many of the models are wrong on a sample, 0..M; the mask of samples
    every model gets wrong)."""
    wrong = (np.stack(preds) != labels).sum(axis=0)  # [N]
    return np.bincount(wrong, minlength=len(preds) + 1).tolist(), wrong == len(preds)


def serve_sound_alone(model_dir: Path, clips) -> tuple[np.ndarray, np.ndarray]:
    """The held-out speaker's sounds alone through the model: (audio logits [N, K], labels)."""
    import keras

    from crossmodal.config import DEFAULT_TEST_CROPS_DB, DEFAULT_TEST_FREQ_WARPS, RunConfig
    from crossmodal.model import inference_network

    cfg = RunConfig.load(model_dir / "config.json")
    audio = dataclasses.replace(  # folders from before the warps read none (saved_settings)
        cfg.audio, test_crops_db=DEFAULT_TEST_CROPS_DB, test_freq_warps=DEFAULT_TEST_FREQ_WARPS
    )
    cfg = cfg.replace(audio=audio)
    waves, labels, speakers = clips(cfg)
    sel = speakers == model_dir.name.split("-", 1)[1]
    n = int(sel.sum())
    net = inference_network(keras.saving.load_model(model_dir / "model.keras"), cfg)
    image = cfg.image
    out = net.predict(
        {
            "image": np.zeros((n, image.height, image.width, image.channels), np.uint8),
            "image_present": np.zeros((n,), np.float32),
            "audio": waves[sel].astype(np.float32),
            "audio_present": np.ones((n,), np.float32),
        },
        batch_size=128,
        verbose=0,
    )
    return out["audio_logits"], labels[sel]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kept", nargs="+", help="TAG=KEPT_DIR")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-size", type=int, default=2)
    parser.add_argument("--shared", default=None, help="comma-separated tags")
    args = parser.parse_args(argv)
    kept = dict(item.split("=", 1) for item in args.kept)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from audio_screen import load_clips

    cache: dict = {}

    def clips(cfg):
        key = cfg.audio.num_samples
        if key not in cache:
            cache[key] = load_clips(args.data, cfg)[:3]
        return cache[key]

    logits: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for tag, folder in kept.items():
        logits[tag] = {}
        for model_dir in sorted(Path(folder).glob("concat-*")):
            speaker = model_dir.name.split("-", 1)[1]
            logits[tag][speaker], labels[speaker] = serve_sound_alone(model_dir, clips)
    speakers = sorted(set.intersection(*(set(v) for v in logits.values())))

    for size in range(1, args.max_size + 1):
        for tags in itertools.combinations(kept, size):
            per = {s: combined_accuracy([logits[t][s] for t in tags], labels[s]) for s in speakers}
            row = {
                "models": "+".join(tags),
                "sound_alone": round(float(np.mean(list(per.values()))), 4),
            }
            print(json.dumps({**row, "per_speaker": per}), flush=True)

    if args.shared:
        tags = args.shared.split(",")
        histogram = np.zeros(len(tags) + 1, dtype=int)
        missed: Counter = Counter()
        answers: dict[str, Counter] = {}
        for s in speakers:
            preds = [logits[t][s].argmax(axis=1) for t in tags]
            counts, all_wrong = shared_errors(preds, labels[s])
            histogram += counts
            for i in np.flatnonzero(all_wrong):
                key = f"{s} {labels[s][i]}"
                missed[key] += 1
                answers.setdefault(key, Counter()).update(int(p[i]) for p in preds)
        total = int(histogram.sum())
        print(json.dumps({
            "shared": tags,
            "samples": total,
            "wrong_in_k_models": histogram.tolist(),
            "all_wrong": round(histogram[-1] / total, 4),
            "mean_error": round(sum(k * c for k, c in enumerate(histogram)) / len(tags) / total, 4),
            "all_wrong_by_speaker_label": {
                k: {"count": c, "answers": dict(answers[k].most_common(3))}
                for k, c in missed.most_common(10)
            },
        }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
