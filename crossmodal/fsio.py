"""Files on any filesystem TensorFlow knows: local paths through os, remote ones through gfile.

A path with a scheme (`gs://bucket/x`, `s3://...`, `hdfs://...`, `ram://x` in tests) is
*remote* and goes through `tf.io.gfile`; TensorFlow is imported only then, so local use (the
decoding workers, `crossmodal --help`, `info`) stays free of it. Everything else is a plain
local path. `pathlib` turns `gs://b/x` into `gs:/b/x`; `normalize` undoes that for the schemes
below, so a `Path` that went through a command-line parser still names the right object.

Remote folders are never written in place: crossmodal builds them in a local temporary folder
and copies them over with `copy_tree`, the folder's completeness marker (dataset.json for a
prepared dataset, config.json for a model folder) last. A remote folder whose marker exists is
complete; the local lock file (`crossmodal.locking`) does not apply to remote outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path

# Schemes whose "//" pathlib collapses and `normalize` restores; any other "x://" is remote too.
KNOWN_SCHEMES = ("gs", "s3", "ram", "hdfs", "viewfs", "az", "abfs", "abfss", "oss", "http", "https")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]+)://")
_COLLAPSED = re.compile(rf"^({'|'.join(KNOWN_SCHEMES)}):/(?!/)")

PathLike = str | os.PathLike


def json_text(obj, **kwargs) -> str:
    """JSON text that is valid UTF-8: file names that are not (undecodable bytes, kept by
    Python as lone surrogates) are written as \\u escapes, which read back to the same name."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, **kwargs)
    return text


def normalize(path: PathLike) -> str:
    """The path as text, with a scheme's "//" restored after pathlib collapsed it."""
    text = os.fspath(path)
    return _COLLAPSED.sub(r"\1://", text, count=1)


def from_file_url(text: str) -> str:
    """`file:///a/b%20c.png` (a local file written as a URL; `file:/a/...` as pathlib spells
    it, `file://localhost/a/...`) as the path `/a/b c.png`, read without TensorFlow; any other
    text as it is, another machine's `file://host/...` and an empty `file://` among them."""
    from urllib.request import url2pathname

    low = text.lower()
    if low.startswith("file://"):
        rest = text[len("file://") :]
        if rest.lower().startswith("localhost/"):
            rest = rest[len("localhost") :]
        elif not rest.startswith("/"):
            return text  # another machine's file, or nothing: left to fail as it is
    elif low.startswith("file:/"):
        rest = text[len("file:") :]
    else:
        return text
    path = url2pathname(rest)  # percent escapes decoded; a Windows drive letter kept
    return path if path.strip("/") else text


def is_remote(path: PathLike) -> bool:
    """True for a path with a scheme (`gs://`, `s3://`, `ram://`, ...), read through gfile."""
    text = os.fspath(path)
    return ":/" in text and _URL.match(normalize(text)) is not None


BUILT_IN = ("gs", "ram", "file")  # TensorFlow's own filesystems; others need tensorflow-io
_plugins_tried = False


def _gfile(path: PathLike):
    """tf.io.gfile, with tensorflow-io's filesystems (s3://, hdfs://, az://) registered when
    `path` needs one and the package is installed."""
    global _plugins_tried
    import tensorflow as tf

    scheme = normalize(path).split("://", 1)[0].lower()
    if scheme not in BUILT_IN and not _plugins_tried:
        _plugins_tried = True
        with contextlib.suppress(Exception):  # not installed, or built for another TF
            import tensorflow_io  # noqa: F401
    if scheme not in BUILT_IN and scheme not in tf.io.gfile.get_registered_schemes():
        # Unregistered, every gfile call fails ("not implemented"), which callers would
        # report as a missing file.
        from crossmodal.errors import CrossmodalError

        raise CrossmodalError(
            f"{scheme}:// paths need a TensorFlow filesystem for '{scheme}', which is not "
            "installed (s3://, hdfs://, az:// come with: pip install tensorflow-io)"
        )
    return tf.io.gfile


def local_or_url(path: PathLike) -> Path | str:
    """A `Path` for a local path, the normalized URL (text) for a remote one."""
    text = normalize(path)
    return text if is_remote(text) else Path(text)


def join(base: PathLike, *names: str) -> str | Path:
    """`base / name / ...`: a Path when local, text with "/" separators when remote."""
    if not is_remote(base):
        return Path(base).joinpath(*names)
    text = normalize(base).rstrip("/")
    for name in names:
        text = f"{text}/{name.strip('/')}"
    return text


def basename(path: PathLike) -> str:
    return normalize(path).rstrip("/").rsplit("/", 1)[-1]


def parent(path: PathLike) -> str | Path:
    if not is_remote(path):
        return Path(path).parent
    text = normalize(path).rstrip("/")
    head, _, _ = text.rpartition("/")
    return head if not head.endswith(":/") else head + "/"


def exists(path: PathLike) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    return _gfile(path).exists(normalize(path))


def isdir(path: PathLike) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    return _gfile(path).isdir(normalize(path))


def isfile(path: PathLike) -> bool:
    if not is_remote(path):
        return os.path.isfile(path)
    gfile, url = _gfile(path), normalize(path)
    return gfile.exists(url) and not gfile.isdir(url)


def listdir(path: PathLike) -> list[str]:
    """Sorted entry names (no trailing "/" even where the store lists folders with one)."""
    if not is_remote(path):
        return sorted(os.listdir(path))
    return sorted({name.rstrip("/") for name in _gfile(path).listdir(normalize(path))})


def folder_entries(path: PathLike) -> set[str] | None:
    """The names in a folder, or None when `path` is not one we may treat as ours to replace:
    not a folder, a local symbolic link, or unreadable (a remote store that refuses)."""
    try:
        if not is_remote(path) and Path(path).is_symlink():
            return None
        return set(listdir(path)) if isdir(path) else None
    except Exception:  # OSError locally; a remote store raises its own kinds
        return None


def size_and_mtime(path: PathLike) -> tuple[int, int]:
    """Bytes and modification time in ns (0 where a store keeps no time)."""
    if not is_remote(path):
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    st = _gfile(path).stat(normalize(path))
    return int(st.length), int(st.mtime_nsec)


def read_bytes(path: PathLike) -> bytes:
    if not is_remote(path):
        return Path(path).read_bytes()
    try:
        with _gfile(path).GFile(normalize(path), "rb") as f:
            return f.read()
    except Exception as exc:  # tf.errors.OpError and friends
        raise OSError(f"cannot read {normalize(path)}: {reason(exc)}") from None


def read_text(path: PathLike, encoding: str = "utf-8") -> str:
    return read_bytes(path).decode(encoding)


def write_bytes(path: PathLike, data: bytes) -> None:
    if not is_remote(path):
        Path(path).write_bytes(data)
        return
    with _gfile(path).GFile(normalize(path), "wb") as f:
        f.write(data)


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    write_bytes(path, text.encode(encoding))


def makedirs(path: PathLike) -> None:
    if not is_remote(path):
        Path(path).mkdir(parents=True, exist_ok=True)
        return
    _gfile(path).makedirs(normalize(path))


def remove(path: PathLike) -> None:
    """Remove a file if it is there."""
    if not is_remote(path):
        Path(path).unlink(missing_ok=True)
        return
    gfile, url = _gfile(path), normalize(path)
    if gfile.exists(url):
        gfile.remove(url)


def rmtree(path: PathLike) -> None:
    """Remove a folder and everything in it, if it is there."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    gfile, url = _gfile(path), normalize(path)
    if gfile.exists(url):
        gfile.rmtree(url)


def rename(src: PathLike, dst: PathLike) -> None:
    """Move a file (atomic on a local disk; copy-and-delete on most object stores)."""
    if not is_remote(src) and not is_remote(dst):
        os.replace(src, dst)
        return
    _gfile(dst if is_remote(dst) else src).rename(normalize(src), normalize(dst), overwrite=True)


def copy_file(src: PathLike, dst: PathLike) -> None:
    if not is_remote(src) and not is_remote(dst):
        shutil.copyfile(src, dst)
        return
    _gfile(dst if is_remote(dst) else src).copy(normalize(src), normalize(dst), overwrite=True)


def copy_tree(src: Path, dst: PathLike, *, marker: str | None = None) -> None:
    """Copy the local folder `src` to `dst` (any filesystem), replacing what is there.

    With `marker` (a file name at the top of `src`), the old `dst/marker` is removed first and
    the new one copied last, so `dst` never looks complete while it is being replaced.
    """
    src = Path(src)
    if marker is not None:
        remove(join(dst, marker))
    rmtree(dst)
    makedirs(dst)
    last = None
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(folder, src)
        target = dst if rel == "." else join(dst, *Path(rel).parts)
        if rel != ".":
            makedirs(target)
        for name in sorted(files):
            if rel == "." and name == marker:
                last = (Path(folder) / name, join(target, name))
                continue
            copy_file(Path(folder) / name, join(target, name))
    if last is not None:
        copy_file(*last)


def replace_dir(tmp: Path, out: Path) -> None:
    """Swap a finished local folder `tmp` into place at `out`; the old `out` (a folder or a
    link) is removed only now. Killed half-way, what is left is the old complete folder, no
    folder, or the new complete one, plus a hidden `.NAME.old-PID` that the next swap clears."""
    if out.is_symlink() or out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(tmp, out)


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write a local file whole or not at all: to a temporary file next to `path`, then
    `os.replace` it into place (the same folder, so the rename stays on one filesystem and is
    atomic there)."""
    # Not mkstemp, whose 0600 hides reports from everyone else: created 0666, the umask
    # applies as for any file; the random part keeps concurrent writers apart.
    tmp_name = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def walk_files(root: PathLike) -> list[str]:
    """Every file under a remote folder, recursively, sorted (for `predict FOLDER`)."""
    out = []
    for folder, _dirs, files in _gfile(root).walk(normalize(root)):
        out.extend(f"{folder.rstrip('/')}/{name.rstrip('/')}" for name in files)
    return sorted(out)


def check_creatable(path: PathLike, flag: str = "--out") -> None:
    """Refuse a local `path` that cannot be created because an existing ancestor is a file or
    cannot be written in (one clear line before any work); a remote path is left to its
    store."""
    if is_remote(path):
        return
    from crossmodal.errors import CrossmodalError

    folder = Path(os.path.abspath(path)).parent
    while not os.path.lexists(folder) and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise CrossmodalError(f"{flag} {path}: {folder} is not a folder")
    # A read-only file system or a folder without write permission: said now, not after the
    # work (access(2) answers for the real user, and refuses writes to a read-only mount).
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CrossmodalError(f"{flag} {path}: cannot write in {folder}")


def reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0]
