"""Evaluate a model folder on labeled data: metrics, per-modality ablation, report files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossmodal import fsio
from crossmodal.artifacts import open_model_dir
from crossmodal.data.preprocess import PrepSettings, Progress
from crossmodal.data.scan import label_set
from crossmodal.errors import (
    CrossmodalError,
    ThresholdNotMet,
    check_count,
    check_fail_under,
    ensure_not_bootstrapping,
)
from crossmodal.inference import MODALITIES, ONE_OF

WORST_MISTAKES = 10


def evaluate(
    model: str | Path,
    data: str | Path,
    *,
    out: str | Path | None = None,
    modality: str = "both",
    fail_under: float | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    progress: Progress | None = None,
) -> dict:
    """Metrics for `modality` (the others removed from every sample), plus an `ablation`
    section with both/image/audio when `modality` is "both" (each on the samples that hold
    that modality: `report.ABLATION_NOTE`), and cross-modal `retrieval` (from
    the data's complete pairs, whatever `modality`) when the model has a shared space. Writes
    REPORT files when `out` is given; raises ThresholdNotMet (exit 2) after writing when
    accuracy < fail_under.

    `model`, `data` and `out` may be on any filesystem tf.io.gfile knows (gs://, s3://, ...)."""
    ensure_not_bootstrapping()
    if modality not in MODALITIES:
        raise CrossmodalError(f"--modality must be one of {', '.join(MODALITIES)}")
    check_fail_under(fail_under)
    check_count("--batch-size", batch_size)
    check_count("--workers", workers)
    if out is not None:
        check_report_dir(out)  # before the evaluation, not after it
    data = fsio.normalize(data) if fsio.is_remote(data) else data
    md = open_model_dir(model)
    cfg = md.config
    settings = PrepSettings(
        sample_rate=cfg.audio.sample_rate,
        height=cfg.image.height,
        width=cfg.image.width,
        channels=cfg.image.channels,
        clip_seconds=cfg.audio.clip_seconds,
    )
    # TensorFlow only now: a mistake in the arguments or the model folder costs no import.
    from crossmodal.data.reader import make_dataset
    from crossmodal.inference import run_serving
    from crossmodal.metrics import classification_metrics, multilabel_metrics
    from crossmodal.train import label_map, load_dataset

    prep = load_dataset(data, settings, exact=True, workers=workers, progress=progress)
    mapping = label_map(prep.classes, cfg.labels, f"{data}")
    labeled = [s["index"] for s in prep.samples if s["label"] is not None]
    if not labeled:
        raise CrossmodalError(f"{data} has no labeled samples to evaluate on")
    by_index = {s["index"]: s for s in prep.samples}
    multi = cfg.model.multi_label
    several = [s["label"] for s in prep.samples if len(label_set(s["label"])) > 1]
    if several and not multi:  # they would be read as unlabeled and left out without a word
        raise CrossmodalError(
            f"{data}: {len(several)} sample(s) have several labels (such as '{several[0]}'), "
            f"but {md.path} is a single-label model"
        )
    if multi:
        from crossmodal.data.reader import multi_hot_targets

        targets, thresholds = multi_hot_targets(prep, cfg.labels), md.thresholds()
        ds = make_dataset(prep, labeled, batch_size=batch_size, targets=targets, with_index=True)
    else:
        ds = make_dataset(prep, labeled, batch_size=batch_size, label_map=mapping, with_index=True)
    serve = md.load_serving()

    results: dict[str, dict] = {}
    pairs: list = []
    for m in MODALITIES if modality == "both" else (modality,):
        probs, labels, indices = run_serving(
            serve, ds, m, embeddings=pairs if m == "both" else None
        )
        if len(labels) == 0:
            continue
        if multi:
            results[m] = multilabel_metrics(labels, probs, list(cfg.labels), thresholds)
            continue
        metrics = classification_metrics(labels, probs, list(cfg.labels))
        metrics["mistakes"] = _worst_mistakes(probs, labels, indices, by_index, list(cfg.labels))
        results[m] = metrics
    if modality not in results:
        raise CrossmodalError(f"{data} has no samples with the {modality} modality")
    report = dict(results[modality])
    report.update(
        {
            "modality": modality,
            "model": str(md.path),
            "data": str(data),
            # samples with no label (an empty label cell): nothing to score them against
            "num_unlabeled": len(prep.samples) - len(labeled),
            "num_skipped_files": len(prep.info.get("skipped", [])),
            # {"path", "reason"}: files left out, and the one unreadable file of a pair
            # scored from the other
            "skipped_files": list(prep.info.get("skipped", [])),
        }
    )
    report["warnings"] = [
        f"{md.path} trained on no sample with {ONE_OF[m]}: its {m} head never learned, and "
        f"the {m}-alone figures mean nothing"
        for m in md.untrained_modalities()
        if m in results
    ] + [  # the data's own, such as two manifest rows giving one pair two labels
        note.removeprefix("warning: ") for note in prep.notes if note.startswith("warning: ")
    ]
    if modality == "both":
        report["ablation"] = {
            m: {k: v for k, v in r.items() if k not in ("mistakes", "reliability")}
            for m, r in results.items()
        }
    if _has_shared_space(md.path):
        from crossmodal.inference import retrieval_metrics

        if modality != "both":  # retrieval needs each pair's two embeddings: one more pass
            run_serving(serve, ds, "both", embeddings=pairs)
        if pairs:
            image, audio, pair_labels = (np.concatenate(p) for p in zip(*pairs, strict=True))
            if len(pair_labels) >= 2:
                report["retrieval"] = retrieval_metrics(image, audio, pair_labels)
    if out is not None:
        from crossmodal.report import write_report

        write_report(report, fsio.local_or_url(out))
    if fail_under is not None and report["accuracy"] < fail_under:
        raise ThresholdNotMet(
            f"accuracy {report['accuracy']:.4f} is below --fail-under {fail_under}", report
        )
    return report


def check_report_dir(out: str | Path) -> None:
    """Refuse a report folder that cannot be one (an existing file, or a model folder whose
    own metrics.json the report would replace) before any work."""
    from crossmodal.artifacts import REQUIRED_FILES

    if fsio.exists(out) and all(fsio.exists(fsio.join(out, name)) for name in REQUIRED_FILES):
        raise CrossmodalError(
            f"--out {out} is a model folder: the report would replace its metrics.json; "
            "give a folder of its own"
        )
    if not fsio.is_remote(out) and Path(out).exists() and not Path(out).is_dir():
        raise CrossmodalError(f"--out {out} exists and is not a folder")
    fsio.check_creatable(out)


def _worst_mistakes(probs, labels, indices, by_index, names) -> list[dict]:
    """The most confidently wrong predictions, with the files that caused them (labeled rows
    only: a -1 row has no true class to be wrong about)."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero((labels >= 0) & (predicted != labels))
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:WORST_MISTAKES]
    rows = []
    for i in order:
        s = by_index[int(indices[i])]
        rows.append(
            {
                "image": s["image"],
                "audio": s["audio"],
                "true": names[int(labels[i])],
                "predicted": names[int(predicted[i])],
                "confidence": float(probs[i, predicted[i]]),
            }
        )
    return rows


def _has_shared_space(model_dir: Path | str) -> bool:
    """True when training aligned the modalities (contrastive loss on pairs)."""
    import json

    try:
        info = json.loads(fsio.read_text(fsio.join(model_dir, "dataset.json")))
    except (OSError, ValueError):
        return False
    return bool(info.get("alignment", {}).get("active"))
