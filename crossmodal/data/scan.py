"""Find image+audio pairs in a folder or a manifest.

A sample is whatever shares a stem inside one class folder (or one manifest row). Either
modality may be absent: presence travels with the sample from here to the last output.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from operator import attrgetter
from pathlib import Path, PurePosixPath

from crossmodal import fsio
from crossmodal.errors import CrossmodalError, one_line

# Preference order decides which file wins when one stem has two images (or two sounds).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MANIFEST_EXTENSIONS = (".csv", ".jsonl")
EMPTY_CLASS_FOLDER = "empty class folder"


def modality_of(path: Path) -> str | None:
    """'image', 'audio' or None, by extension in any case."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def label_set(label: str | None) -> list[str]:
    """A label cell's classes: "cat; dog" -> ["cat", "dog"] (multi-label manifests)."""
    if not label:
        return []
    return [part.strip() for part in label.split(";") if part.strip()]


def canonical_label(label: str | None) -> str | None:
    """A label as a sample keeps it: its classes stripped and joined by ";" ("cat " -> "cat",
    " a ; b" -> "a;b"), None when it names none. Every later lookup uses this exact string."""
    return ";".join(label_set(label)) or None


@dataclass(frozen=True)
class Sample:
    """One example: either path may be None (that modality is missing)."""

    stem: str
    image: str | None
    audio: str | None
    label: str | None  # None: unlabeled
    group: str | None = None  # from a manifest's `group` column; else derived by a regex later


@dataclass
class ScanResult:
    samples: list[Sample]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    # not media at all, or not where media belongs: {"path", "reason"}
    ignored: list[dict[str, str]] = field(default_factory=list)
    source: str = ""
    kind: str = "folder"  # "folder" | "manifest" | "files"
    # A folder scan whose result depends on its folders' listings alone: every folder it
    # listed, with its mtime (ns) taken before listing it. None when that does not hold (see
    # `scan_folder`), or for manifests and remote data. Lets an unchanged re-run skip the scan.
    dirs: list[tuple[str, int]] | None = None
    # predict's inputs only: a second image (or sound) for one stem, {"path", "reason"}
    duplicates: list[dict[str, str]] = field(default_factory=list)
    # what the user should read beside the summary (manifest rows that contradict each other);
    # preprocess and train print them as notes
    warnings: list[str] = field(default_factory=list)

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append({"path": str(path), "reason": reason})

    def duplicate(self, path: str | Path, reason: str) -> None:
        """A readable file left out because its stem already has one of its kind. A dataset
        lists it among its skipped files (so --strict refuses it); predict's inputs keep it
        apart, as a warning: the file is fine, the user's pairing is not."""
        entry = {"path": str(path), "reason": reason}
        (self.duplicates if self.kind == "files" else self.skipped).append(entry)

    def ignore(self, path: str | Path, reason: str) -> None:
        self.ignored.append({"path": str(path), "reason": reason})


def scan(source: str | Path) -> ScanResult:
    """Scan a class folder tree or a manifest file (local, or any filesystem gfile knows)."""
    if fsio.is_remote(source):
        return _scan_remote(fsio.normalize(source))
    path = Path(source)
    if not path.exists():
        raise CrossmodalError(f"no such file or folder: {source}")
    if path.is_file():
        if path.suffix.lower() not in MANIFEST_EXTENSIONS:
            raise CrossmodalError(
                f"{source} is a file but not a manifest (.csv or .jsonl); give a folder of "
                "class folders or a manifest"
            )
        return scan_manifest(path)
    result = scan_folder(path)
    if not result.samples:  # every class folder empty, nested or unreadable
        found = result.skipped + result.ignored
        such = next((f for f in found if f["reason"] != EMPTY_CLASS_FOLDER), found[0])
        raise CrossmodalError(
            one_line(
                f"{source}: no image or sound file in any class folder (such as {such['path']}: "
                f"{such['reason']}); expected DATA/<label>/<stem>.<ext> or a manifest"
            )
        )
    return result


# A folder modified this recently is not trusted to show its next change in its mtime (the
# clock ticks coarsely; FAT keeps 2 s), so no listing is recorded for it.
SETTLED_NS = 2_000_000_000


def _settled_mtime(path: str | Path) -> int | None:
    """The folder's mtime in ns, or None when it cannot be read or changed too recently."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return mtime if mtime < time.time_ns() - SETTLED_NS else None


_NEVER_DATA = frozenset({"__MACOSX", "__pycache__"})


def is_hidden(name: str) -> bool:
    """Dot files (a Mac zip's '._x.wav', '.DS_Store') and a Mac zip's '__MACOSX/': never
    data. Other names, '__background__' among them, are data."""
    return name.startswith(".") or name in _NEVER_DATA


def _listdir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=attrgetter("name"))
    except OSError as exc:
        raise CrossmodalError(f"cannot read folder {folder}: {exc.strerror or exc}") from None


def _entry_is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # follows symlinks; a dangling or looping link is not a file
    except OSError:
        return False


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _not_a_file(entry: os.DirEntry | str) -> str:
    """Why an entry that is neither a file nor a folder cannot be read."""
    try:
        os.stat(entry if isinstance(entry, str) else entry.path)  # follows links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "looping link"
        if exc.errno == errno.ENOENT:
            return "broken link (its target does not exist)"
        return f"cannot read: {exc.strerror or exc}"
    return "not a regular file (a FIFO, socket or device)"


def _why_not_a_file(path: Path) -> str:
    """Why a path named in a manifest cannot be used as a file."""
    try:
        st = os.stat(path)
    except ValueError:  # a NUL, or text that is no file name on this system
        return "is not a valid file name"
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "does not exist"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    return "is not a regular file (a FIFO, socket or device)"


def _is_file(path: Path) -> bool:
    """Path.is_file, but False for names the OS refuses (too long, NUL) instead of raising."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


_KIND_BY_EXTENSION = {
    **dict.fromkeys(IMAGE_EXTENSIONS, "image"),
    **dict.fromkeys(AUDIO_EXTENSIONS, "audio"),
}
_PREFERENCE = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS + AUDIO_EXTENSIONS)}


def pair_files(files: list, result: ScanResult) -> dict[str, dict[str, str]]:
    """Group media files of one folder by stem; the first extension in preference order wins.
    `files` holds paths (str, Path, RemoteFile) or (name, path) pairs.

    Works on plain strings (os.path), not pathlib: a folder of thousands of files is scanned
    on every re-run, and building a Path per file costs more than the rest of the scan.
    """
    by_stem: dict[str, dict[str, list[tuple[int, str, str]]]] = {}
    kinds, preference = _KIND_BY_EXTENSION, _PREFERENCE
    for f in files:
        if isinstance(f, tuple):  # (name, path) from a directory listing: no basename to take
            name, f = f
        else:
            f = f if isinstance(f, str) else str(f)  # a Path, or a RemoteFile (str is its URL)
            name = f.rsplit("/", 1)[-1] if "://" in f else os.path.basename(f)
        stem, dot, ext = name.rpartition(".")  # os.path.splitext, without its generality
        if not dot or not stem.strip("."):  # "name" or ".name": no extension
            stem, ext = name, ""
        else:
            ext = "." + ext.lower()
        kind = kinds.get(ext)
        if kind is None:
            result.ignore(f, "not an image or audio file")
            continue
        found = by_stem.get(stem)
        if found is None:
            by_stem[stem] = {kind: [(preference[ext], name, f)]}
        elif kind in found:
            found[kind].append((preference[ext], name, f))
        else:
            found[kind] = [(preference[ext], name, f)]
    paired: dict[str, dict[str, str]] = {}
    for stem in sorted(by_stem):
        chosen: dict[str, str] = {}
        for kind, found in by_stem[stem].items():
            if len(found) == 1:  # the usual case: one image and one sound per stem
                chosen[kind] = found[0][2]
                continue
            found.sort()
            chosen[kind] = found[0][2]
            for _, _, loser in found[1:]:
                result.duplicate(
                    loser, f"duplicate {kind} for stem '{stem}': {found[0][1]} is used"
                )
        paired[stem] = chosen
    return paired


def add_pairs(result: ScanResult, pairs: dict[str, dict[str, str]], label: str | None) -> None:
    """One Sample per stem of `pair_files`; a missing modality stays None."""
    append = result.samples.append
    for stem, chosen in pairs.items():
        image, audio = chosen.get("image"), chosen.get("audio")
        if image is not None and type(image) is not str:  # a RemoteFile
            image = str(image)
        if audio is not None and type(audio) is not str:
            audio = str(audio)
        append(Sample(stem, image, audio, canonical_label(label)))


def scan_folder(root: Path) -> ScanResult:
    """DATA/<label>/<stem>.<ext>; files directly under DATA and hidden entries are ignored.

    Also records `dirs` (each listed folder's mtime, taken before listing it) when the result
    is a function of those listings alone: nothing skipped, and no ignored entry is a symbolic
    link (a link's target can turn from a file into a folder without its folder noticing).
    Every file kept as a sample is stat'ed on each re-run anyway, so links to files are fine.
    """
    result = ScanResult(samples=[], source=str(root), kind="folder")
    mtime = _settled_mtime(root)
    dirs: list[tuple[str, int]] | None = None if mtime is None else [(str(root), mtime)]
    class_dirs = []
    for entry in _listdir(root):
        if is_hidden(entry.name):
            continue
        if _entry_is_dir(entry):
            class_dirs.append(Path(entry.path))
        elif _entry_is_file(entry):
            result.ignore(entry.path, "file outside a class folder")
            if entry.is_symlink():
                dirs = None
    if not class_dirs:
        raise CrossmodalError(
            f"{root} has no class folders: expected DATA/<label>/<stem>.<ext> or a manifest"
        )
    for class_dir in class_dirs:
        if dirs is not None:
            mtime = _settled_mtime(class_dir)
            if mtime is None:
                dirs = None
            else:
                dirs.append((str(class_dir), mtime))
        files = []
        try:
            entries = _listdir(class_dir)
        except CrossmodalError as exc:  # one unreadable class folder does not stop the rest
            result.skip(class_dir, str(exc))
            continue
        for entry in entries:
            if is_hidden(entry.name):
                continue
            if _entry_is_file(entry):
                files.append((entry.name, entry.path))
            elif _entry_is_dir(entry):
                result.ignore(entry.path, "nested folder (only DATA/<label>/<file> is read)")
                if entry.is_symlink():
                    dirs = None
            else:
                result.skip(entry.path, _not_a_file(entry))
        pairs = pair_files(files, result)
        if not pairs:
            result.ignore(class_dir, EMPTY_CLASS_FOLDER)
            continue
        add_pairs(result, pairs, class_dir.name)
    result.dirs = None if result.skipped else dirs
    return result


def _cell(value: object) -> str:
    """A JSONL value as a cell: null is empty, a list of labels is "a;b"."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _columns(names: list, path: Path | RemoteFile) -> list:
    """Column names as the manifest means them: ' Image ' is `image`."""
    names = [n.strip().lower() if isinstance(n, str) else n for n in names]
    twice = sorted({n for n in names if n is not None and names.count(n) > 1})
    if twice:
        raise CrossmodalError(f"{path}: column(s) {', '.join(twice)} appear more than once")
    return names


def _read_manifest_rows(
    path: Path | RemoteFile, *, labeled: bool = True
) -> list[tuple[int, dict[str, str], str | None]]:
    """(line number, row, what is wrong with the row or None) for each row."""
    try:
        # bytes, then text: read_text would turn a quoted "\r" inside a CSV cell into "\n"
        text = fsio.read_bytes(str(path)).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CrossmodalError(f"{path}: manifest is not UTF-8 text") from None
    except OSError as exc:
        raise CrossmodalError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    rows: list[tuple[int, dict[str, str], str | None]] = []
    if path.suffix.lower() == ".csv":
        # newline="": quoted cells may hold line breaks; str.splitlines would also split on
        # characters such as U+2028 that are plain text inside a cell.
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            found = reader.fieldnames or []
            reader.fieldnames = _columns(list(found), path)
            for row in reader:
                extra = row.pop(None, None)  # an unquoted comma in a cell, or a stray one
                problem = None
                if extra:
                    problem = (
                        f"{len(reader.fieldnames) + len(extra)} cells where the header names "
                        f"{len(reader.fieldnames)} (quote a cell that holds a comma)"
                    )
                rows.append((reader.line_num, row, problem))
        except csv.Error as exc:
            raise CrossmodalError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
        columns = set(reader.fieldnames or []) - {None}
    else:
        found, columns, bad = [], set(), []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                row = None
            if not isinstance(row, dict):  # each line stands alone: skipped, the rest read
                bad.append(number)
                rows.append((number, {}, "not a JSON object"))
                continue
            keys = list(row)
            names = _columns(keys, path)
            found += [k for k in keys if k not in found]
            columns |= set(names)
            rows.append(
                (number, {n: _cell(row[k]) for n, k in zip(names, keys, strict=True)}, None)
            )
        if bad and len(bad) == len(rows):  # not JSON Lines at all
            raise CrossmodalError(f"{path}:{bad[0]}: not a JSON object")
    missing = {"image", "audio"} - columns
    if labeled and not columns & {"label", "labels"}:
        missing.add("label")
    if missing:
        need = sorted(missing)
        # the header's own names: a quoted one may hold a line break
        has = f" (it has: {one_line(', '.join(map(str, found)))})" if found else ""
        raise CrossmodalError(f"{path}: manifest lacks column(s) {', '.join(need)}{has}")
    return rows


def scan_manifest(path: Path | RemoteFile, *, for_predict: bool = False) -> ScanResult:
    """Rows with `image`, `audio`, `label` (and optional `group`); paths relative to the file.

    Column names are read in any case, around spaces. A cell may also name a remote file
    (`gs://...`); a remote manifest's relative paths are relative to its remote folder, a
    local one's to its folder (`~` is the home folder). Skipped rows are named by line.

    A row naming the same (image, audio) files as an earlier row is skipped ("rows 2 and 5
    are the same pair"); with other labels, it is also one of `warnings` (the first row's
    label is used).

    `for_predict`: the label column is optional, a cell naming a missing file stays on its
    sample (prediction reports it on that row, as for a pair in a folder), every row is kept
    (a row's prediction answers that row), and a manifest without a usable row is not an error
    here (its rows are reported as skipped)."""
    result = ScanResult(samples=[], source=str(path), kind="manifest")
    remote_base = isinstance(path, RemoteFile)
    base = fsio.parent(str(path)) if remote_base else path.parent
    # (image, audio) as named -> (line, label) of the row whose label the pair has (the
    # first that named it, or the first with a label), and the index of its sample (absent
    # when that row was not usable)
    seen: dict[tuple[str | None, str | None], tuple[int, str | None]] = {}
    kept: dict[tuple[str | None, str | None], int] = {}
    for line, row, problem in _read_manifest_rows(path, labeled=not for_predict):
        if problem is not None:
            result.skip(f"{path}:{line}", problem)
            continue
        named = {kind: _named_file(row.get(kind), base, remote_base) for kind in ("image", "audio")}
        label = canonical_label(row.get("label") or row.get("labels"))
        group = (row.get("group") or "").strip() or None
        pair = (named["image"], named["audio"])
        # predict answers every row; a dataset keeps a pair once (twice, it would weigh double
        # and could land in both the training and the validation split)
        if not for_predict and pair != (None, None):
            if pair in seen:
                earlier, earlier_label = seen[pair]
                filled = earlier_label is None and label is not None and pair in kept
                if filled:  # the first label for an unlabeled pair: no conflict, it is used
                    index = kept[pair]
                    sample = result.samples[index]
                    result.samples[index] = replace(
                        sample, label=label, group=sample.group or group
                    )
                    seen[pair] = (line, label)
                _same_pair(result, path, (earlier, earlier_label), line, label, filled=filled)
                continue
            seen[pair] = (line, label)
        found: dict[str, str | None] = {}
        for kind, name in named.items():
            why = None if name is None or for_predict else _why_unusable(name)
            if why is not None:
                result.skip(name, f"line {line}: {kind} file {why}")
            found[kind] = None if why is not None else name
        if found["image"] is None and found["audio"] is None:
            result.skip(f"{path}:{line}", "row has neither a usable image nor audio")
            continue
        first = found["image"] or found["audio"]
        kept[pair] = len(result.samples)
        result.samples.append(
            Sample(
                stem=PurePosixPath(fsio.basename(first)).stem,
                image=found["image"],
                audio=found["audio"],
                label=label,
                group=group,
            )
        )
    if not result.samples and not for_predict:
        such = result.skipped[0] if result.skipped else None
        why = f" (such as {such['path']}: {such['reason']})" if such else ""
        raise CrossmodalError(one_line(f"{path}: no usable rows{why}"))
    return result


def _named_file(cell: str | None, base: Path | str, remote_base: bool) -> str | None:
    """The file a manifest cell names, relative to the manifest's folder; None when empty."""
    cell = (cell or "").strip()
    if not cell:
        return None
    local = fsio.from_file_url(cell)
    if local != cell:  # a local file named by its URL: absolute, even in a remote manifest
        return local
    if fsio.is_remote(cell) or remote_base:
        return fsio.normalize(cell) if fsio.is_remote(cell) else str(fsio.join(base, cell))
    cell = os.path.expanduser(cell)
    return str(Path(cell) if os.path.isabs(cell) else Path(base) / cell)


def _why_unusable(name: str) -> str | None:
    """Why a file a manifest names cannot be read ("does not exist"), None when it can."""
    if fsio.is_remote(name):
        return None if _remote_is_file(name) else _why_not_remote(name)
    return None if _is_file(Path(name)) else _why_not_a_file(Path(name))


def _same_pair(
    result: ScanResult,
    path: Path | RemoteFile,
    earlier: tuple[int, str | None],
    line: int,
    label: str | None,
    *,
    filled: bool = False,
) -> None:
    """A row naming the pair of an earlier row is left out, as a skipped row (`filled`: its
    label went to the earlier, unlabeled one). Two different labels for it are also a
    warning: one of the two rows is wrong, and only the user knows which. A row without a
    label beside one with a label is no conflict."""
    first, first_label = earlier
    same = sorted(label_set(first_label)) == sorted(label_set(label))
    if first_label is None or label is None or same:
        which = f"; row {line}'s label is used" if filled else ""
        result.skip(f"{path}:{line}", f"rows {first} and {line} are the same pair{which}")
        return
    reason = (
        f"rows {first} and {line} name the same pair with labels {_shown(first_label)} and "
        f"{_shown(label)}; row {first}'s label is used"
    )
    result.skip(f"{path}:{line}", reason)
    result.warnings.append(one_line(f"{path}: {reason}"))


def _shown(label: str | None) -> str:
    return f"'{label}'" if label else "(none)"


def _predict_manifest(path: Path | RemoteFile, result: ScanResult) -> None:
    """A manifest among predict's inputs: its rows join the samples; a manifest that cannot
    be read at all becomes one skipped input, and the other inputs are still predicted."""
    try:
        sub = scan_manifest(path, for_predict=True)
    except CrossmodalError as exc:
        # "PATH: reason" or "PATH:LINE: reason" -> the reason ("line LINE: reason")
        message, prefix = str(exc), f"{path}:"
        if message.startswith(prefix):
            message = message[len(prefix) :]
            line, sep, rest = message.partition(": ")
            message = f"line {line}: {rest}" if sep and line.isdigit() else message.lstrip()
        result.skip(path, message)
        return
    result.samples.extend(sub.samples)
    result.skipped.extend(sub.skipped)


NO_MEDIA_IN_FOLDER = "a folder with no image or sound file in it"
_NOT_MEDIA = (
    f"not an image, sound or manifest file ({', '.join(IMAGE_EXTENSIONS + AUDIO_EXTENSIONS)}, "
    f"{', '.join(MANIFEST_EXTENSIONS)})"
)


def scan_inputs(paths: list[str | Path]) -> ScanResult:
    """For predict: files, folders (searched recursively) or manifests, paired by folder+stem."""
    paths = [fsio.from_file_url(str(p)) for p in paths]
    paths = [fsio.normalize(p) if fsio.is_remote(p) else p for p in paths]
    result = ScanResult(samples=[], source=", ".join(str(p) for p in paths), kind="files")
    # folder -> [(name, path)] (or RemoteFile); local paths are text spelled as pathlib would
    # spell them (no "./", one "/"), so a file named twice is one key
    loose: dict[str, list] = defaultdict(list)
    for raw in paths:
        if fsio.is_remote(raw):
            _remote_inputs(str(raw), result, loose)
            continue
        p = Path(raw)
        if _is_file(p) and p.suffix.lower() in MANIFEST_EXTENSIONS:
            _predict_manifest(p, result)
        elif _is_file(p):
            if modality_of(p) is None:  # named, so reported; in a folder it is passed over
                result.skip(p, _NOT_MEDIA)
            else:
                loose[str(p.parent)].append((p.name, str(p)))
        elif p.is_dir():
            if not _walk_inputs(str(p), result, loose):
                result.skip(p, NO_MEDIA_IN_FOLDER)  # a typo'd folder: said, not passed over
        else:
            result.skip(p, "does not exist")
    for folder in sorted(loose):
        # dict.fromkeys: a file named twice (or named and inside a named folder) is one input
        add_pairs(result, pair_files(list(dict.fromkeys(loose[folder])), result), None)
    return result


def _walk_inputs(root: str, result: ScanResult, loose: dict[str, list]) -> bool:
    """Every file under `root` into `loose`, links followed, each folder once, hidden entries
    skipped; whether any image or sound file was among them. Text paths and directory
    entries, not pathlib: a folder of thousands of files is scanned on every `crossmodal
    predict`, and a Path per file cost more than the rest."""
    media = False
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:  # a symlink loop: walk each folder once
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=attrgetter("name"))
        except OSError:  # an unreadable sub-folder is passed over, as os.walk does
            continue
        subfolders = []
        for entry in entries:
            if is_hidden(entry.name):
                continue
            # pathlib's spelling: Path(".") / "x" is "x", not "./x"
            path = entry.name if folder == "." else entry.path
            if _entry_is_file(entry):
                loose[folder].append((entry.name, path))
                if not media:
                    media = os.path.splitext(entry.name)[1].lower() in _KIND_BY_EXTENSION
            elif _entry_is_dir(entry):
                subfolders.append(path)
            elif modality_of(Path(entry.name)) is not None:  # a broken link, a FIFO
                result.skip(path, _not_a_file(path))
                media = True
        stack.extend(reversed(subfolders))
    return media


# --- remote sources (gs://, s3://, ram://, ... through tf.io.gfile) ---------------------------


@dataclass(frozen=True)
class RemoteFile:
    """A remote file where the pairing code expects a Path: name, stem, suffix, and its URL as
    text (pathlib would collapse the scheme's "//")."""

    url: str

    @property
    def name(self) -> str:
        return fsio.basename(self.url)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def __str__(self) -> str:
        return self.url


def _remote_is_file(url: str) -> bool:
    try:
        return fsio.isfile(url)
    except Exception:  # a malformed URL, a store that refuses: not a usable file
        return False


def _why_not_remote(url: str) -> str:
    try:
        return "is a folder, not a file" if fsio.isdir(url) else "does not exist"
    except Exception as exc:
        return f"cannot be read ({fsio.reason(exc)})"


def _remote_listdir(url: str) -> list[str]:
    try:
        return fsio.listdir(url)
    except Exception as exc:
        raise CrossmodalError(f"cannot read folder {url}: {fsio.reason(exc)}") from None


def _scan_remote(source: str) -> ScanResult:
    if not _remote_is_file(source) and not fsio.isdir(source):
        raise CrossmodalError(f"no such file or folder: {source}")
    if _remote_is_file(source):
        if PurePosixPath(fsio.basename(source)).suffix.lower() not in MANIFEST_EXTENSIONS:
            raise CrossmodalError(
                f"{source} is a file but not a manifest (.csv or .jsonl); give a folder of "
                "class folders or a manifest"
            )
        return scan_manifest(RemoteFile(source))
    return _scan_remote_folder(source)


def _scan_remote_folder(root: str) -> ScanResult:
    """scan_folder for a remote DATA/<label>/<stem>.<ext> (no links, FIFOs or devices there)."""
    result = ScanResult(samples=[], source=root, kind="folder")
    class_dirs = []
    for name in _remote_listdir(root):
        url = str(fsio.join(root, name))
        if is_hidden(name):
            continue
        if fsio.isdir(url):
            class_dirs.append((name, url))
        else:
            result.ignore(url, "file outside a class folder")
    if not class_dirs:
        raise CrossmodalError(
            f"{root} has no class folders: expected DATA/<label>/<stem>.<ext> or a manifest"
        )
    for label, class_url in class_dirs:
        try:
            names = _remote_listdir(class_url)
        except CrossmodalError as exc:
            result.skip(class_url, str(exc))
            continue
        files = []
        for name in names:
            if is_hidden(name):
                continue
            url = str(fsio.join(class_url, name))
            if fsio.isdir(url):
                result.ignore(url, "nested folder (only DATA/<label>/<file> is read)")
            else:
                files.append(RemoteFile(url))
        pairs = pair_files(files, result)  # type: ignore[arg-type]  (RemoteFile quacks)
        if not pairs:
            result.ignore(class_url, EMPTY_CLASS_FOLDER)
            continue
        add_pairs(result, pairs, label)
    return result


def _remote_inputs(url: str, result: ScanResult, loose: dict) -> None:
    """predict's inputs: a remote file, manifest or folder (searched recursively)."""
    if _remote_is_file(url):
        file = RemoteFile(url)
        if file.suffix.lower() in MANIFEST_EXTENSIONS:
            _predict_manifest(file, result)
        elif modality_of(file) is None:
            result.skip(url, _NOT_MEDIA)
        else:
            loose[str(fsio.parent(url))].append(file)
    elif fsio.isdir(url):
        media = False
        for found in fsio.walk_files(url):
            rel = found[len(url.rstrip("/")) + 1 :]
            if any(is_hidden(part) for part in rel.split("/")):
                continue
            file = RemoteFile(found)
            loose[str(fsio.parent(found))].append(file)
            media = media or modality_of(file) is not None
        if not media:
            result.skip(url, NO_MEDIA_IN_FOLDER)
    else:
        result.skip(url, "does not exist")
