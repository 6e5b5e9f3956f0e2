"""Predict on new files: pair by stem, decode in background threads, run the SavedModel in
batches, stream rows out. Memory is bounded by a few batches whatever the number of inputs."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from crossmodal import fsio
from crossmodal.artifacts import open_model_dir
from crossmodal.data.decode import DecodeError, read_audio, read_image
from crossmodal.data.scan import NO_MEDIA_IN_FOLDER, Sample, modality_of, scan_inputs
from crossmodal.errors import CrossmodalError, check_count, ensure_not_bootstrapping
from crossmodal.fsio import json_text
from crossmodal.inference import MODALITIES, ONE_OF, presence_for

OUTPUT_FORMATS = (".csv", ".jsonl")


def _decode(sample: Sample, cfg) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    errors, image, audio = [], None, None
    if sample.image is not None:
        try:
            image = read_image(
                sample.image,
                height=cfg.image.height,
                width=cfg.image.width,
                channels=cfg.image.channels,
            )
        except DecodeError as exc:
            errors.append(f"{sample.image}: {exc}")
    if sample.audio is not None:
        try:
            audio = read_audio(
                sample.audio, sample_rate=cfg.audio.sample_rate, num_samples=cfg.audio.num_samples
            )
        except DecodeError as exc:
            errors.append(f"{sample.audio}: {exc}")
    return image, audio, errors


def _batches(samples: list[Sample], cfg, batch_size: int, workers: int) -> Iterator[list]:
    """Decoded batches, decoding the next ones while the model runs on the current."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            pending.append((chunk, [pool.submit(_decode, s, cfg) for s in chunk]))
            if len(pending) > 2:  # keep at most three batches in flight
                chunk, futures = pending.pop(0)
                yield list(zip(chunk, (f.result() for f in futures), strict=True))
        for chunk, futures in pending:
            yield list(zip(chunk, (f.result() for f in futures), strict=True))


@dataclass
class _Scored:
    """One decoded batch and what the model said about its readable rows."""

    batch: list  # [(Sample, (image, audio, errors))]
    image_used: np.ndarray  # [R] bool, R = rows with any input
    audio_used: np.ndarray  # [R] bool
    keep: np.ndarray  # [R] bool: the row still has input under --modality
    probs: np.ndarray  # [R, K]


def _scored(batches: Iterator[list], serve, cfg, modality: str) -> Iterator[_Scored]:
    """Run the model on each batch in a thread of its own, one batch ahead of the caller.

    While the model works on batch i (TensorFlow releases the GIL), the calling thread stacks
    batch i + 1 and formats the rows of batch i - 1, and the decoding threads read the files
    after: the model does not wait for Python between batches.
    """
    h, w, c = cfg.image.height, cfg.image.width, cfg.image.channels
    blank_image = np.zeros((h, w, c), np.uint8)
    blank_audio = np.zeros(cfg.audio.num_samples, np.float32)

    def run(image, ip, audio, ap):
        return serve(image=image, image_present=ip, audio=audio, audio_present=ap)[
            "probabilities"
        ].numpy()

    with ThreadPoolExecutor(max_workers=1) as model_thread:
        pending: list[tuple[list, tuple, object]] = []
        for batch in batches:
            ok = [d for _, d in batch if d[0] is not None or d[1] is not None]
            ip, ap, keep = presence_for(
                modality,
                np.array([img is not None for img, _, _ in ok], bool),
                np.array([aud is not None for _, aud, _ in ok], bool),
            )
            future = None
            if ok:
                image = np.stack([img if img is not None else blank_image for img, _, _ in ok])
                audio = np.stack([aud if aud is not None else blank_audio for _, aud, _ in ok])
                future = model_thread.submit(run, image, ip, audio, ap)
            pending.append((batch, (ip, ap, keep), future))
            if len(pending) > 1:
                yield _finish(*pending.pop(0))
        for item in pending:
            yield _finish(*item)


def _finish(batch, flags, future) -> _Scored:
    ip, ap, keep = flags
    probs = future.result() if future is not None else np.zeros((0, 0), np.float32)
    return _Scored(batch, ip, ap, keep, probs)


def predict(
    model: str | Path,
    inputs: list[str | Path] | str | Path,
    *,
    top_k: int = 3,
    batch_size: int = 64,
    workers: int | None = None,
    modality: str = "both",
    notice: Callable[[str], None] | None = None,
) -> Iterator[dict]:
    """Rows, one per input sample: files, label, probability, top_k; or `error` when none of
    its files could be read. Inputs that could not be used at all come first, then each
    manifest's rows in file order, then files by folder and stem.

    A second image (or sound) for one stem (a.png and a.jpg beside a.wav) is no row: it is
    readable, and the first in preference order is used. `notice` is told of each
    ("PATH: duplicate image for stem 'a': a.png is used") before this returns.

    The model folder, `modality` and the inputs are checked before this returns (a
    CrossmodalError, without TensorFlow); the model loads and runs as the rows are consumed."""
    ensure_not_bootstrapping()
    if modality not in MODALITIES:
        raise CrossmodalError(f"--modality must be one of {', '.join(MODALITIES)}")
    for flag, value in (("--top-k", top_k), ("--batch-size", batch_size), ("--workers", workers)):
        check_count(flag, value)
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]  # one path, not its characters
    if not inputs:
        raise CrossmodalError("no inputs: name files, folders or manifests to predict on")
    md = open_model_dir(model)
    scanned = scan_inputs([str(p) for p in inputs])
    if not scanned.samples and all(k["reason"] == NO_MEDIA_IN_FOLDER for k in scanned.skipped):
        named = ", ".join(str(p) for p in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
        raise CrossmodalError(f"no image or sound files to predict on in {named}")
    for duplicate in scanned.duplicates:
        if notice is not None:
            notice(f"{duplicate['path']}: {duplicate['reason']}")
    return _rows(
        md, scanned, top_k=top_k, batch_size=batch_size, workers=workers, modality=modality
    )


def _rows(md, scanned, *, top_k: int, batch_size: int, workers: int | None, modality: str):
    cfg = md.config
    for skipped in scanned.skipped:
        # the path in its column too (by extension), so that a script can join rows to inputs
        path, kind = skipped["path"], modality_of(PurePosixPath(skipped["path"]))
        yield {
            "image": path if kind == "image" else None,
            "audio": path if kind == "audio" else None,
            "error": f"{path}: {skipped['reason']}",
        }
    if not scanned.samples:
        return
    serve = md.load_serving()
    labels = md.labels
    thresholds = md.thresholds() if cfg.model.multi_label else None
    k = min(top_k, len(labels))
    # Decoding threads beside TensorFlow's own: one per core but one, at least 1 and at most 4
    # (more only contend with inference for the same cores; on two cores one thread measured
    # 5% faster than two).
    workers = workers or max(1, min(4, (os.cpu_count() or 1) - 1))
    batches = _batches(scanned.samples, cfg, batch_size, workers)
    for scored in _scored(batches, serve, cfg, modality):
        probs = scored.probs
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # [R, k], best first
        top = np.take_along_axis(probs, order, axis=1).tolist()  # [R, k] floats
        order = order.tolist()
        image_used, audio_used = scored.image_used.tolist(), scored.audio_used.tolist()
        i = -1
        for s, (img, aud, errors) in scored.batch:
            row: dict = {"image": s.image, "audio": s.audio}
            if img is None and aud is None:
                row["error"] = "; ".join(errors) or "no input"
                yield row
                continue
            i += 1
            if not scored.keep[i]:  # the file it asked for is absent, or could not be read
                row["error"] = "; ".join([f"no {modality} input", *errors])
                yield row
                continue
            row.update(
                {
                    "label": labels[order[i][0]],
                    "probability": top[i][0],
                    "top_k": [
                        {"label": labels[j], "probability": p}
                        for j, p in zip(order[i], top[i], strict=True)
                    ],
                    "image_used": image_used[i],
                    "audio_used": audio_used[i],
                }
            )
            if thresholds is not None:  # multi-label: every label above its own threshold
                chosen = np.flatnonzero(probs[i] >= thresholds)
                row["labels"] = [labels[j] for j in chosen]
                row["label"] = ";".join(row["labels"])
                # the least probable of the labels given (each is at least that), or none
                row["probability"] = float(probs[i][chosen].min()) if len(chosen) else None
            if errors:
                row["warning"] = "; ".join(errors)
            yield row


class UntrainedAlone:
    """Passes `predict`'s rows through, counting those answered from a modality alone that
    the model trained on no sample of (its head never learned: the answer means nothing).

        rows = UntrainedAlone(predict(model, inputs), model)
        for row in rows: ...
        for message in rows.warnings(): print("warning:", message)
    """

    def __init__(self, rows, model: str | Path):
        self.rows, self.model = rows, model
        self.counts = dict.fromkeys(open_model_dir(model).untrained_modalities(), 0)

    def __iter__(self) -> Iterator[dict]:
        other = {"image": "audio", "audio": "image"}
        for row in self.rows:
            for m in self.counts:
                if row.get(f"{m}_used") and not row.get(f"{other[m]}_used"):
                    self.counts[m] += 1
            yield row

    def warnings(self) -> list[str]:
        """One message per untrained modality that answered rows (after the rows are read)."""
        return [
            f"{count} row(s) were predicted from {ONE_OF[m]} alone, but {self.model} trained "
            f"on no sample with {ONE_OF[m]}: those predictions mean nothing"
            for m, count in self.counts.items()
            if count
        ]


def check_output_file(out: Path | str, inputs: Sequence[str | Path] = ()) -> None:
    """Refuse an --out that cannot take the rows, or is one of the `inputs` (a manifest the
    rows would replace), before any work."""
    name = fsio.basename(out)
    if Path(name).suffix.lower() not in OUTPUT_FORMATS:
        raise CrossmodalError(f"--out must end in .csv or .jsonl, got {name}")
    if not fsio.is_remote(out) and Path(out).is_dir():
        raise CrossmodalError(f"--out {out} is a folder; give a file name ending in .csv or .jsonl")
    fsio.check_creatable(out)
    if not fsio.is_remote(out) and Path(out).exists():
        for given in (fsio.from_file_url(str(p)) for p in inputs):  # as scan_inputs reads them
            if not fsio.is_remote(given) and os.path.exists(given) and os.path.samefile(out, given):
                raise CrossmodalError(f"--out {out} is one of the inputs; it would be overwritten")


def unread(row: dict) -> bool:
    """Whether a row names an input that could not be read: an `error` row (no prediction:
    unreadable, or without the modality `--modality` asks for), or a pair predicted from one
    modality because the other file was unreadable (`warning`)."""
    return "error" in row or "warning" in row


def write_rows(rows, out: Path | str) -> int:
    """Stream rows to CSV or JSONL by extension (atomically); returns how many rows name an
    input that could not be read (`unread`).

    A remote `out` (gs://..., any filesystem tf.io.gfile knows) is written to a local
    temporary file and copied there at the end."""
    check_output_file(out)
    name = fsio.basename(out)
    suffix = Path(name).suffix.lower()
    if fsio.is_remote(out):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="crossmodal-predict-") as local:
            failed = write_rows(rows, Path(local) / name)
            fsio.makedirs(fsio.parent(out))
            fsio.copy_file(Path(local) / name, out)
        return failed
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")  # concurrent runs never mix
    try:
        failed = _write_rows(rows, tmp, suffix)
        tmp.replace(out)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename == str(tmp):  # the user's file, not ours
            raise OSError(exc.errno, exc.strerror, str(out)) from None
        raise
    return failed


# The CSV form of a row: JSONL's fields (a multi-label model's `labels` are its `label`,
# joined by ";"), top_k as "label:probability" items, flags as true/false (empty in an
# error row).
CSV_COLUMNS = (
    "image", "audio", "label", "probability", "top_k",
    "image_used", "audio_used", "error", "warning",
)  # fmt: skip


def _flag(value) -> str:
    return "" if value is None else str(bool(value)).lower()


def _write_rows(rows, path: Path, suffix: str) -> int:
    failed = 0
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = None
        if suffix == ".csv":  # the header even when there are no rows
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
        for row in rows:
            failed += unread(row)
            if writer is None:
                f.write(json_text(row) + "\n")
                continue
            writer.writerow(
                [
                    row.get("image") or "",
                    row.get("audio") or "",
                    row.get("label", ""),
                    f"{row['probability']:.6f}" if row.get("probability") is not None else "",
                    " ".join(f"{t['label']}:{t['probability']:.4f}" for t in row.get("top_k", [])),
                    _flag(row.get("image_used")),
                    _flag(row.get("audio_used")),
                    row.get("error", ""),
                    row.get("warning", ""),
                ]
            )
    return failed
