"""Turn a folder or manifest into sharded fixed-length records plus `dataset.json`.

Decoding runs in worker processes (spawned, so a parent that already imported TensorFlow is
safe), each writing its own shard; the parent only gathers small per-sample results, so memory
stays bounded whatever the dataset's size. A re-run on unchanged input (same files, sizes,
mtimes and settings) finds the fingerprint in `dataset.json` and returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import asdict, dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from crossmodal import __version__, fsio
from crossmodal.config import MAX_CLIP_SECONDS, MAX_IMAGE_SIDE, MAX_SAMPLE_RATE
from crossmodal.data.decode import DecodeError, probe_audio, probe_image, read_audio, read_image
from crossmodal.data.records import RecordLayout
from crossmodal.data.scan import Sample, ScanResult, label_set, scan
from crossmodal.errors import CrossmodalError, check_count, ensure_not_bootstrapping, one_line
from crossmodal.locking import output_lock, remove_stale

PREP_FORMAT_VERSION = 3  # 3: EXIF orientation applied to images
DATASET_JSON = "dataset.json"
SAMPLES_JSONL = "samples.jsonl"
# The scan a prepared folder was built from (folders only), keyed by the folders' mtimes: an
# unchanged re-run stats the files but does not list and pair them again. Not part of the
# dataset: a prepared folder without it is complete, and it is only trusted where it matches.
LISTING_JSON = "listing.json"
MAX_INFERRED_SIDE = 96  # larger photos are scaled down: a CPU-sized CNN does not need more
MAX_INFERRED_SECONDS = 10.0
DEFAULT_IMAGE = (32, 32, 1)
DEFAULT_SECONDS = 1.0
SERIAL_BELOW = 192  # fewer samples than this: spawning workers costs more than it saves
# Samples per shard: about n / TARGET_CHUNKS, within [16, 512], whatever the number of workers,
# so the records (and a training run reading them) do not depend on the machine's core count,
# and N sharded jobs write exactly the shards of one unsharded run.
TARGET_CHUNKS = 64
PART_NAME = re.compile(r"^part-(\d{5})-of-(\d{5})$")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class PrepSettings:
    """What the caller asks for; None means "infer from the data"."""

    sample_rate: int = 16_000
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    clip_seconds: float | None = None

    def __post_init__(self) -> None:  # the same bounds as the model's config (config.py)
        if not 1000 <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise CrossmodalError(f"sample rate must be 1000 to {MAX_SAMPLE_RATE} Hz")
        if any(v is not None and not 1 <= v <= MAX_IMAGE_SIDE for v in (self.height, self.width)):
            raise CrossmodalError(f"image height and width must be 1 to {MAX_IMAGE_SIDE}")
        if self.channels not in (None, 1, 3):
            raise CrossmodalError("image channels must be 1 or 3")
        if self.clip_seconds is not None and not 0 < self.clip_seconds <= MAX_CLIP_SECONDS:
            raise CrossmodalError(
                f"clip length must be above 0 and at most {MAX_CLIP_SECONDS:g} seconds"
            )


@dataclass
class PreparedDataset:
    """A preprocessed folder, opened: its summary and its per-sample index.

    `path` is a Path, or a URL (text) on a filesystem tf.io.gfile knows. A folder of parts
    written by sharded jobs (`part-IIIII-of-NNNNN/`) opens as their union.
    """

    path: Path | str
    info: dict
    samples: list[dict]
    reused: bool = False
    # What this run found and did that a user should hear about (a killed earlier run cleaned
    # up, an incomplete folder rebuilt, "warning: " manifest rows that contradict each other);
    # not stored in dataset.json.
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def layout(self) -> RecordLayout:
        img, aud = self.info["image"], self.info["audio"]
        return RecordLayout(img["height"], img["width"], img["channels"], aud["num_samples"])

    @property
    def shard_paths(self) -> list[Path | str]:
        return [fsio.join(self.path, name) for name in self.info["shards"]]


def _absolute(path: str | None) -> str | None:
    """A local file's absolute path (a remote one as it is)."""
    return path if path is None or fsio.is_remote(path) else os.path.abspath(path)


def part_name(index: int, count: int) -> str:
    """The folder sharded job `index` of `count` writes inside PREP."""
    return f"part-{index:05d}-of-{count:05d}"


def _part_names(path: Path | str) -> list[str]:
    """The `part-IIIII-of-NNNNN` folders in `path` (sharded jobs' output); [] when none."""
    try:
        return [name for name in fsio.listdir(path) if PART_NAME.match(name)]
    except Exception:  # not a folder, unreadable, or a store that refuses: no parts
        return []


def is_prepared(path: Path | str) -> bool:
    """A prepared folder (dataset.json), or a folder of parts from sharded jobs."""
    path = fsio.local_or_url(path)
    try:
        if not fsio.isdir(path):
            return False
        return fsio.isfile(fsio.join(path, DATASET_JSON)) or bool(_part_names(path))
    except Exception:  # a remote store that refuses: not something to read
        return False


def open_prepared(path: str | Path) -> PreparedDataset:
    """Open and check a prepared folder; refuse one that is partial or of another format.

    A folder of parts (sharded preprocessing) opens as the union of its parts, and is refused,
    naming them, while any part is missing or unfinished.
    """
    path = fsio.local_or_url(path)
    if _part_names(path) and not fsio.isfile(fsio.join(path, DATASET_JSON)):
        return _open_parts(path)
    return _open_one(path)


def _open_one(path: Path | str) -> PreparedDataset:
    try:
        info = json.loads(fsio.read_text(fsio.join(path, DATASET_JSON)))
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise CrossmodalError(f"{path} is not a prepared dataset ({DATASET_JSON}: {exc})") from None
    if info.get("format_version") != PREP_FORMAT_VERSION:
        raise CrossmodalError(
            f"{path} was prepared by an incompatible crossmodal (format "
            f"{info.get('format_version')}, need {PREP_FORMAT_VERSION}); preprocess it again"
        )
    sizes, missing = _shard_sizes(path, info.get("shards", []))
    if missing:
        raise CrossmodalError(f"{path} is incomplete: missing {', '.join(missing[:3])}")
    try:
        # split("\n"), not splitlines(): U+2028 and friends are text inside a JSON string
        lines = fsio.read_text(fsio.join(path, SAMPLES_JSONL)).split("\n")
        # one parse of a JSON array, not one per line: this runs on every cached re-run
        samples = json.loads("[" + ",".join(line for line in lines if line) + "]")
    except (OSError, ValueError) as exc:
        raise CrossmodalError(f"{path} is incomplete ({SAMPLES_JSONL}: {exc})") from None
    prepared = PreparedDataset(path=path, info=info, samples=samples)
    try:
        expected = len(samples) * prepared.layout.record_bytes
    except (KeyError, TypeError, ValueError) as exc:
        raise CrossmodalError(f"{path} is not a prepared dataset ({DATASET_JSON}: {exc})") from None
    # A shard cut short (a power loss before its data reached the disk) is found here, and a
    # cache is then rebuilt: records are derived data, so they are not synced to disk as
    # they are written (syncing made a first preprocessing run about 13% slower).
    if sum(sizes) != expected:
        raise CrossmodalError(
            f"{path} is incomplete: its shards hold {sum(sizes)} bytes, its {len(samples)} "
            f"records need {expected}; preprocess it again"
        )
    return prepared


def _shard_sizes(path: Path | str, names: list[str]) -> tuple[list[int], list[str]]:
    """Each shard's size in bytes, and the names of those that are not there."""
    sizes, missing = [], []
    for name in names:
        shard = fsio.join(path, name)
        try:
            sizes.append(fsio.size_and_mtime(shard)[0] if fsio.isfile(shard) else -1)
        except OSError:
            sizes.append(-1)
        if sizes[-1] < 0:
            missing.append(name)
    return sizes, missing


def _open_parts(path: Path | str) -> PreparedDataset:
    """The union of `path/part-IIIII-of-NNNNN/`: every shard, every sample, summed counts."""
    names = _part_names(path)
    counts = sorted({int(PART_NAME.match(name).group(2)) for name in names})
    if len(counts) > 1:
        raise CrossmodalError(
            f"{path} holds parts of runs with different --num-shards ({', '.join(map(str, counts))}"
            "); keep one set of parts"
        )
    total = counts[0]
    expected = [part_name(i, total) for i in range(total)]
    missing = [n for n in expected if not fsio.isfile(fsio.join(path, n, DATASET_JSON))]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise CrossmodalError(
            f"{path} is incomplete: {len(missing)} of {total} parts missing or unfinished "
            f"({shown}); run `crossmodal preprocess` with --num-shards {total} and the missing "
            "--shard-index values"
        )
    parts = [_open_one(fsio.join(path, name)) for name in expected]
    if len({p.info.get("fingerprint") for p in parts}) > 1 or len({p.layout for p in parts}) > 1:
        raise CrossmodalError(
            f"{path}: its parts were prepared from different data or settings; prepare them again"
        )
    return PreparedDataset(
        path=path,
        info=_union_info([p.info for p in parts], expected),
        samples=sorted((s for p in parts for s in p.samples), key=lambda s: s["index"]),
    )


def _union_info(infos: list[dict], names: list[str]) -> dict:
    """dataset.json of the union of parts: what one unsharded run would have written (the
    skipped files may be listed in another order)."""
    info = json.loads(json.dumps(infos[0]))  # a deep copy
    shards = [
        (int(s[6:11]), f"{name}/{s}")  # shard-KKKKK.bin: K is the chunk of the unsharded run
        for i, name in zip(infos, names, strict=True)
        for s in i["shards"]
    ]
    info["shards"] = [rel for _, rel in sorted(shards)]  # global chunk order, as unsharded
    scan_level = infos[0]["part"]["scan_skipped"]
    info["skipped"] = infos[0]["skipped"][:scan_level] + [
        k for i in infos for k in i["skipped"][i["part"]["scan_skipped"] :]
    ]
    for key in ("num_samples", "num_unlabeled"):
        info[key] = sum(i[key] for i in infos)
    for key in ("image", "audio", "both"):
        info["counts"][key] = sum(i["counts"][key] for i in infos)
    for name, entry in info["counts"]["per_class"].items():
        for key in entry:
            entry[key] = sum(i["counts"]["per_class"][name][key] for i in infos)
    info["multi_label"] = any(i["multi_label"] for i in infos)
    info["seconds_taken"] = max(i.get("seconds_taken", 0) for i in infos)
    info["parts"] = len(infos)
    del info["part"]
    return info


def default_cache_root() -> Path:
    root = os.environ.get("CROSSMODAL_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crossmodal"


def _fingerprint(result: ScanResult, settings: PrepSettings) -> str:
    """Content key: every file's path, size and mtime, every label, and the settings."""
    rows = ((s.stem, s.label, s.group, s.image, s.audio) for s in result.samples)
    return _fingerprint_rows(rows, settings)


def _fingerprint_rows(rows: Iterable[Sequence], settings: PrepSettings) -> str:
    """`_fingerprint` of (stem, label, group, image, audio) rows, in scan order."""
    h = hashlib.sha256()
    h.update(json.dumps([PREP_FORMAT_VERSION, asdict(settings)]).encode())
    cwd = os.getcwd()  # relative paths are keyed as absolute ones (joined, not normalized)
    for stem, label, group, image, audio in rows:
        parts = [stem, label or "", group or ""]
        for p in (image, audio):
            if p is None:
                parts.append("-")
                continue
            try:
                if "://" in p:  # remote: the store's size and time
                    size, mtime = fsio.size_and_mtime(p)
                    name = p
                else:  # local: one stat, no pathlib (this runs for every file on a re-run)
                    st = os.stat(p)
                    size, mtime = st.st_size, st.st_mtime_ns
                    name = p if p[:1] == "/" or os.path.isabs(p) else os.path.join(cwd, p)
                parts.append(f"{name}|{size}|{mtime}")
            except Exception:  # OSError locally, tf.errors.OpError remotely
                parts.append(f"{p}|gone")
        h.update("\x1f".join(parts).encode("utf-8", "surrogatepass"))  # any name hashes
        h.update(b"\x1e")
    return h.hexdigest()


def _listing(scanned: ScanResult, fingerprint: str) -> dict | None:
    """What `_listed_reuse` needs to skip the scan next time; None where it cannot."""
    if scanned.dirs is None:
        return None
    return {
        "version": __version__,  # another release may scan differently
        "fingerprint": fingerprint,
        "source": scanned.source,
        "cwd": os.getcwd(),  # relative sources name other files from elsewhere
        "dirs": scanned.dirs,
        "rows": [(s.stem, s.label, s.group, s.image, s.audio) for s in scanned.samples],
    }


def _read_listing(out: Path) -> dict | None:
    try:
        with open(out / LISTING_JSON, encoding="utf-8") as f:
            listing = json.load(f)
    except (OSError, ValueError):
        return None
    return listing if isinstance(listing, dict) else None


def _save_listing(folder: Path, listing: dict) -> None:
    """Best effort (a read-only cache still works, only slower), and atomic."""
    tmp = folder / f"{LISTING_JSON}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(fsio.json_text(listing))
        os.replace(tmp, folder / LISTING_JSON)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _listed_reuse(source: Path, out: Path, settings: PrepSettings) -> PreparedDataset | None:
    """The prepared `out`, without scanning, when the listing saved in it still holds: same
    source spelling and working folder, every listed folder's mtime unchanged (no entry added,
    removed or renamed), and the files it named unchanged (the content key, stat'ing each)."""
    listing = _read_listing(out)
    if listing is None:
        return None
    try:
        if (
            listing["version"] != __version__
            or listing["source"] != str(source)
            or listing["cwd"] != os.getcwd()
        ):
            return None
        for path, mtime in listing["dirs"]:
            if os.stat(path).st_mtime_ns != mtime:
                return None
        fingerprint = listing["fingerprint"]
        if _fingerprint_rows(listing["rows"], settings) != fingerprint:
            return None
    except (OSError, KeyError, TypeError, ValueError):  # gone, or not a listing we wrote
        return None
    existing, _ = _reusable(out, fingerprint)
    return existing


def cache_dir_for(source: str | Path, settings: PrepSettings) -> Path:
    """A local cache folder (also for remote data: the records are read many times)."""
    if fsio.is_remote(source):
        where, stem = fsio.normalize(source), Path(fsio.basename(source)).stem
    else:
        where, stem = str(Path(source).resolve()), Path(source).stem
    key = hashlib.sha256(json.dumps([where, asdict(settings)]).encode()).hexdigest()[:16]
    return default_cache_root() / f"prep-{stem or 'data'}-{key}"


# --- workers (top-level functions: they are pickled into spawned processes) -----------------


def _probe_chunk(samples: list[Sample]) -> list[tuple[object, object]]:
    out = []
    for s in samples:
        img = aud = None
        if s.image is not None:
            try:
                img = probe_image(s.image)
            except DecodeError as exc:
                img = str(exc)
        if s.audio is not None:
            try:
                aud = probe_audio(s.audio)
            except DecodeError as exc:
                aud = str(exc)
        out.append((img, aud))
    return out


def _write_chunk(
    shard_path: str,
    items: list[tuple[int, int, str | None, str | None]],
    layout: RecordLayout,
    sample_rate: int,
) -> list[tuple[int, bool, bool, list[tuple[str, str]]]]:
    """Decode a chunk of samples and write them as one shard; report per-sample outcome."""
    results = []
    with open(shard_path, "wb") as f:
        for index, label, image_path, audio_path in items:
            errors: list[tuple[str, str]] = []
            image = audio = None
            if image_path is not None:
                try:
                    image = read_image(
                        image_path,
                        height=layout.height,
                        width=layout.width,
                        channels=layout.channels,
                    )
                except DecodeError as exc:
                    errors.append((image_path, str(exc)))
            if audio_path is not None:
                try:
                    audio = read_audio(
                        audio_path, sample_rate=sample_rate, num_samples=layout.num_samples
                    )
                except DecodeError as exc:
                    errors.append((audio_path, str(exc)))
            if image is not None or audio is not None:
                f.write(layout.encode(index, label, image, audio))
            results.append((index, image is not None, audio is not None, errors))
    return results


# --- the driver --------------------------------------------------------------------------------


def _pool_context():
    """fork is cheap and needs no `if __name__ == "__main__"` guard, but is unsafe once
    TensorFlow's threads exist; then spawn (which does need the guard in a user's script)."""
    if "tensorflow" not in sys.modules and "fork" in get_all_start_methods():
        return get_context("fork")
    return get_context("spawn")


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # the parent died (say, SIGKILL): do not linger as an orphan
            os._exit(1)


def _worker_init(parent: int) -> None:
    """In each worker: Ctrl-C is the parent's to handle (it cancels the pool and cleans up; a
    worker would only print a traceback), and a worker whose parent was killed exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _make_pool(workers: int) -> ProcessPoolExecutor | None:
    """One pool for both stages (probe, decode): starting workers twice costs a second."""
    if workers <= 1:
        return None
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_pool_context(),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )


def _run_chunks(
    fn, chunks: list[tuple], workers: int, progress: Progress | None, stage: str, pool=None
):
    """Apply fn to each argument tuple, in order, in a worker pool when it pays off.

    When the consumer stops early (an error, Ctrl-C), queued chunks are cancelled and the
    running ones are waited for, so no worker still writes once the caller cleans up. A
    `pool` passed in is shared: its owner shuts it down (which cancels what is queued).
    """
    total = sum(len(c[-1]) if stage == "probe" else len(c[1]) for c in chunks)
    done = 0
    if progress:
        progress(stage, 0, total)
    if workers <= 1:
        for args in chunks:
            res = fn(*args)
            done += len(res)
            if progress:
                progress(stage, done, total)
            yield res
        return
    own = pool is None
    pool = pool or _make_pool(workers)
    try:
        try:
            for res in pool.map(fn, *zip(*chunks, strict=True)):
                done += len(res)
                if progress:
                    progress(stage, done, total)
                yield res
        except BrokenProcessPool:
            raise CrossmodalError(
                "a decoding worker process died. From a script, put the calls to crossmodal "
                'under `if __name__ == "__main__":` (spawned workers import the main module); '
                "otherwise it ran out of memory or was killed (--workers 1 decodes in this "
                "process)"
            ) from None
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def _infer(
    result: ScanResult, probes: list[tuple[object, object]], settings: PrepSettings
) -> tuple[tuple[int, int, int], float, dict]:
    images = [p[0] for p in probes if not isinstance(p[0], (str, type(None)))]
    audios = [p[1] for p in probes if not isinstance(p[1], (str, type(None)))]
    notes: dict = {"image": {}, "audio": {}}  # what the inference saw, per modality
    if images:
        sizes = Counter((i.height, i.width) for i in images)
        (h, w), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1]))
        scale = min(1.0, MAX_INFERRED_SIDE / max(h, w))
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
        c = 1 if all(i.grayscale for i in images) else 3
        notes["image"]["image_sizes_seen"] = len(sizes)
    else:
        h, w, c = DEFAULT_IMAGE
    h = settings.height or h
    w = settings.width or w
    c = settings.channels or c
    if audios:
        durations = np.array([a.seconds for a in audios])
        p99 = float(np.percentile(durations, 99))
        seconds = min(MAX_INFERRED_SECONDS, max(0.1, math.ceil(p99 * 20 - 1e-9) / 20))
        notes["audio"]["source_sample_rate_min"] = int(min(a.sample_rate for a in audios))
        notes["audio"]["durations"] = {
            "p50": round(float(np.median(durations)), 4),
            "p99": round(p99, 4),
            "max": round(float(durations.max()), 4),
        }
    else:
        seconds = DEFAULT_SECONDS
    seconds = settings.clip_seconds or seconds
    return (h, w, c), seconds, notes


def _reusable(out: Path | str, fingerprint: str) -> tuple[PreparedDataset | None, str | None]:
    """An up-to-date prepared `out`, or None and (when `out` is there but unusable) why."""
    if not is_prepared(out):
        return None, None
    try:
        existing = open_prepared(out)
    except CrossmodalError as exc:
        return None, f"{out} was incomplete or unreadable ({exc}); rebuilding it"
    if existing.info.get("fingerprint") != fingerprint:
        return None, None
    existing.reused = True
    return existing, None


def _replaceable(out: Path | str) -> bool:
    """A folder holding nothing but what preprocess writes (perhaps incomplete): never a
    user's folder, nor a model folder (which has a dataset.json of its own)."""
    names = fsio.folder_entries(out)
    return names is not None and all(
        name in (DATASET_JSON, SAMPLES_JSONL, LISTING_JSON)
        or name.startswith(f"{LISTING_JSON}.tmp-")
        or (name.startswith("shard-") and name.endswith(".bin"))
        for name in names
    )


def preprocess(
    source: str | Path,
    out: str | Path | None = None,
    *,
    settings: PrepSettings = PrepSettings(),
    workers: int | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
) -> PreparedDataset:
    """Scan `source`, decode every pair and write records to `out` (default: a cache folder).

    `source` and `out` may be on any filesystem tf.io.gfile knows (`gs://`, `s3://`, ...):
    remote files are read in this process (no worker pool: `ram://` is per process), and a
    remote `out` is built in a local temporary folder and copied over, dataset.json last (the
    local lock does not apply to it; its dataset.json alone marks it complete).

    With `num_shards` N > 1 this is job `shard_index` of N (a cluster's job array, say): it
    writes `out/part-IIIII-of-NNNNN/`, a prepared folder holding the shards k with
    k % N == shard_index of the shards one unsharded run writes (same record indices, same
    shapes, inferred from all files), and `open_prepared(out)` is their union once every part
    is there. Returns the part.

    Returns the opened dataset; `reused` is True when an up-to-date `out` was found, and
    `notes` says what was cleaned up or rebuilt on the way. Writing holds `output_lock(out)`:
    a second run on the same `out` refuses while this one writes (on the shared cache, when
    `out` is None, it waits for the first and reuses its records instead). The records are built in
    `.<name>.tmp-<pid>` beside `out` and renamed into place at the end (dataset.json last), so
    a run killed at any moment leaves no `out` that looks complete; the next run removes what
    it left behind and says so.
    """
    ensure_not_bootstrapping()
    check_count("--workers", workers)
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise CrossmodalError(
            f"--shard-index must be in 0..{num_shards - 1} and --num-shards at least 1"
        )
    if fsio.is_remote(source):
        source = fsio.normalize(source)
    advice = "wait for it or choose another --out"
    shared_cache = out is None  # another train/evaluate on the same data may be filling it
    out = fsio.local_or_url(out) if out is not None else cache_dir_for(source, settings)
    fsio.check_creatable(out)
    shard = (shard_index, num_shards) if num_shards > 1 else None
    remote = fsio.is_remote(out)
    if shard is None and not remote and not fsio.is_remote(source):
        existing = _listed_reuse(Path(source), out, settings)
        if existing is not None:  # fastest path: no scan, no lock
            return _checked(existing, strict)
    scanned = scan(source)
    if shard is not None:
        fsio.makedirs(out)
        out = fsio.join(out, part_name(shard_index, num_shards))
    fingerprint = _fingerprint(scanned, settings)
    existing, _ = _reusable(out, fingerprint)
    if existing is not None:  # fast path, no lock: reading a complete folder is safe
        # The listing was missing or stale (folders settled since, another spelling of the
        # source): save this scan's, so the next re-run can skip scanning.
        fresh = _listing(scanned, fingerprint) if shard is None and not remote else None
        if fresh is not None:
            _save_listing(out, fresh)
        existing.notes = _warnings(scanned)  # on every run, not only the one that wrote it
        return _checked(existing, strict)
    if shard is None and _part_names(out):
        open_prepared(out)  # an incomplete set of parts: say which are missing
        raise CrossmodalError(
            f"{out} holds the parts of another preparation (other data or settings); "
            "choose another --out"
        )
    lock = (
        contextlib.nullcontext() if remote else output_lock(out, advice=advice, wait=shared_cache)
    )
    with lock:
        # Another run may have finished `out` since the first look: look again.
        existing, why = _reusable(out, fingerprint)
        if existing is not None:
            existing.notes = _warnings(scanned)
            return _checked(existing, strict)
        there = fsio.exists(out) if remote else (out.is_symlink() or out.exists())
        if there and not _replaceable(out):
            raise CrossmodalError(
                f"{out} exists and is not a prepared dataset; choose another --out"
            )
        notes = [why] if why else []
        removed = [] if remote else remove_stale(out, kinds=("tmp", "old"))
        if removed:
            notes.append(
                f"removed an incomplete earlier run ({', '.join(removed)}); starting clean"
            )
        prep = _write(scanned, source, out, fingerprint, settings, workers, progress, strict, shard)
        prep.notes = notes + _warnings(scanned)
        return prep


def _warnings(scanned: ScanResult) -> list[str]:
    return [f"warning: {text}" for text in scanned.warnings]


def _checked(prep: PreparedDataset, strict: bool) -> PreparedDataset:
    """--strict holds for an up-to-date folder too: its files are no better than last time."""
    if strict and prep.info.get("skipped"):
        raise CrossmodalError(strict_message(prep.info["skipped"]))
    return prep


def _write(
    scanned: ScanResult,
    source: str | Path,
    out: Path | str,
    fingerprint: str,
    settings: PrepSettings,
    workers: int | None,
    progress: Progress | None,
    strict: bool,
    shard: tuple[int, int] | None = None,
) -> PreparedDataset:
    workers = workers or os.cpu_count() or 1
    n = len(scanned.samples)
    if n < SERIAL_BELOW or _any_remote(source, scanned):
        workers = 1  # remote files are read in this process (`ram://` is per process)
    per_chunk = max(16, min(512, math.ceil(n / TARGET_CHUNKS)))
    bounds = range(0, n, per_chunk)
    mine = [k % shard[1] == shard[0] if shard else True for k in range(len(bounds))]
    scan_skipped = len(scanned.skipped)  # the same in every part of a sharded run
    start = time.time()
    pool = _make_pool(workers)  # one pool for both stages; shut down before tmp goes

    asked = (settings.height, settings.width, settings.channels, settings.clip_seconds)
    needs_probe = None in asked
    probes: list[tuple[object, object]] = []
    try:
        if needs_probe:
            chunks = [(scanned.samples[i : i + per_chunk],) for i in bounds]
            probing = _run_chunks(_probe_chunk, chunks, workers, progress, "probe", pool)
            with closing(probing) as results:
                for res in results:
                    probes.extend(res)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    (h, w, c), seconds, notes = _infer(scanned, probes, settings)
    layout = RecordLayout(h, w, c, int(round(settings.sample_rate * seconds)))

    classes = sorted({name for s in scanned.samples for name in label_set(s.label)})
    label_index = {name: i for i, name in enumerate(classes)}  # multi-label rows record -1
    if fsio.is_remote(out):  # built here, copied over at the end
        tmp = Path(tempfile.mkdtemp(prefix="crossmodal-prep-"))
    else:
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    try:
        chunks, shard_names = [], []
        for k, i in enumerate(bounds):
            if not mine[k]:
                continue  # another job's shard
            name = f"shard-{k:05d}.bin"
            items = [
                (j, label_index.get(s.label, -1) if s.label else -1, s.image, s.audio)
                for j, s in enumerate(scanned.samples[i : i + per_chunk], start=i)
            ]
            # Where probing already failed, do not decode again: the reason is known.
            if probes:
                items = [
                    (
                        j,
                        lab,
                        None if isinstance(probes[j][0], str) else ip,
                        None if isinstance(probes[j][1], str) else ap,
                    )
                    for j, lab, ip, ap in items
                ]
            chunks.append((str(tmp / name), items, layout, settings.sample_rate))
            shard_names.append(name)
        for j, (sample, (img_err, aud_err)) in enumerate(
            zip(scanned.samples, probes or [(None, None)] * n, strict=True)
        ):
            if not mine[j // per_chunk]:
                continue  # another job reports it
            for path, err in ((sample.image, img_err), (sample.audio, aud_err)):
                if isinstance(err, str):
                    scanned.skip(path, err)
        kept: list[dict] = []
        decoded = _run_chunks(_write_chunk, chunks, workers, progress, "decode", pool)
        with closing(decoded) as results:
            for res in results:
                for index, has_image, has_audio, errors in res:
                    for path, reason in errors:
                        scanned.skip(path, reason)
                    s = scanned.samples[index]
                    if not (has_image or has_audio):
                        continue  # both parts unusable: the reasons are listed under `skipped`
                    kept.append(
                        {
                            "index": index,
                            "stem": s.stem,
                            "label": s.label,
                            "group": s.group,
                            # absolute: a cache is reused from any working folder
                            "image": _absolute(s.image) if has_image else None,
                            "audio": _absolute(s.audio) if has_audio else None,
                        }
                    )
        if not kept and shard is None:  # a part may be empty; the union is checked on reading
            raise CrossmodalError(f"{source}: no usable samples (every file failed to decode)")
        if strict and scanned.skipped:
            raise CrossmodalError(strict_message(scanned.skipped))
        info = _summary(scanned, kept, classes, layout, settings, seconds, notes, fingerprint)
        info["shards"] = shard_names
        info["seconds_taken"] = round(time.time() - start, 3)
        if shard is not None:
            info["part"] = {"index": shard[0], "count": shard[1], "scan_skipped": scan_skipped}
        with open(tmp / SAMPLES_JSONL, "w", encoding="utf-8") as f:
            for row in kept:
                f.write(fsio.json_text(row) + "\n")
        listing = _listing(scanned, fingerprint) if shard is None else None
        if listing is not None and not fsio.is_remote(out):
            _save_listing(tmp, listing)
        # dataset.json is written last: its presence marks the folder complete.
        (tmp / DATASET_JSON).write_text(fsio.json_text(info, indent=2) + "\n", encoding="utf-8")
        if fsio.is_remote(out):
            fsio.copy_tree(tmp, out, marker=DATASET_JSON)
        else:
            fsio.replace_dir(tmp, out)
    finally:
        if pool is not None:  # no worker may still write into tmp once it is removed
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return open_prepared(out)


def _any_remote(source: str | Path, scanned: ScanResult) -> bool:
    """Remote data (or a local manifest naming remote files): read in this process."""
    if fsio.is_remote(source):
        return True
    return any(fsio.is_remote(p) for s in scanned.samples for p in (s.image, s.audio) if p)


def empty_classes(info: dict) -> list[str]:
    """Classes named by the data (a class folder, a label cell) none of whose samples could
    be used: every file of theirs failed to decode."""
    per_class = info["counts"]["per_class"]
    return [name for name in info["classes"] if not per_class.get(name, {}).get("samples")]


def strict_message(skipped: list[dict[str, str]], show: int = 3) -> str:
    """One line naming the first few problems (for --strict)."""
    shown = "; ".join(f"{k['path']}: {k['reason']}" for k in skipped[:show])
    more = f"; and {len(skipped) - show} more" if len(skipped) > show else ""
    return one_line(f"{len(skipped)} file(s) could not be used (--strict): {shown}{more}")


def _summary(
    scanned: ScanResult,
    kept: list[dict],
    classes: list[str],
    layout: RecordLayout,
    settings: PrepSettings,
    seconds: float,
    notes: dict,
    fingerprint: str,
) -> dict:
    per_class = {c: {"samples": 0, "image": 0, "audio": 0} for c in classes}
    for row in kept:
        for name in label_set(row["label"]):
            entry = per_class[name]
            entry["samples"] += 1
            entry["image"] += row["image"] is not None
            entry["audio"] += row["audio"] is not None
    return {
        "format_version": PREP_FORMAT_VERSION,
        "kind": "crossmodal-prepared-dataset",
        "crossmodal_version": __version__,
        "fingerprint": fingerprint,
        "source": str(scanned.source),
        "source_kind": scanned.kind,
        "classes": classes,
        "multi_label": any(";" in (r["label"] or "") for r in kept),
        "num_samples": len(kept),
        "num_unlabeled": sum(1 for r in kept if r["label"] is None),
        "counts": {
            "per_class": per_class,
            "image": sum(1 for r in kept if r["image"] is not None),
            "audio": sum(1 for r in kept if r["audio"] is not None),
            "both": sum(1 for r in kept if r["image"] is not None and r["audio"] is not None),
        },
        "image": {
            "height": layout.height,
            "width": layout.width,
            "channels": layout.channels,
            "inferred": settings.height is None,  # the size
            "channels_inferred": settings.channels is None,
            **notes["image"],
        },
        "audio": {
            "sample_rate": settings.sample_rate,
            "clip_seconds": seconds,
            "num_samples": layout.num_samples,
            "inferred": settings.clip_seconds is None,
            **notes["audio"],
        },
        "record_bytes": layout.record_bytes,
        "skipped": scanned.skipped,
        "ignored": scanned.ignored,
    }
