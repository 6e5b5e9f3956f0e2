"""One writer per output folder, and clean-up after runs that were killed.

`output_lock(out)` takes an exclusive, non-blocking `flock` on `.<name>.lock` beside `out`. The
kernel drops the lock when the holding process dies, however it dies (SIGKILL included), so a
killed run never leaves a lock that blocks the next one; the file itself stays (deleting a lock
file races with its next holder) and only says who held it last.

Forked children (a fork-context worker pool) would share the lock's open file description and
keep the lock alive after their parent is killed; every forked child therefore closes its copy
at once (`os.register_at_fork`). Spawned children never see it (the descriptor is close-on-exec).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from crossmodal.errors import CrossmodalError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, as before
    fcntl = None  # type: ignore[assignment]

_held: set[int] = set()  # lock descriptors held by this process


def _close_in_child() -> None:
    for fd in list(_held):
        with suppress(OSError):
            os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def lock_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def _holder_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        first = text.split("\n", 1)[0].strip()
        return first if first.isdigit() else "unknown"
    except OSError:
        return "unknown"


@contextmanager
def output_lock(
    out: str | Path,
    *,
    advice: str = "wait for it or choose another --out",
    wait: bool = False,
    name: str | None = None,
) -> Iterator[Path]:
    """Hold the exclusive lock for writing `out` (a folder or a file); refuse if held.

    Raises CrossmodalError("<out> is being written by another crossmodal run (pid N); <advice>").
    With `wait`, block until the holder is done instead (for shared caches, where the second
    run should simply read what the first one wrote). `name` is what the refusal calls `out`
    (a remote MODEL, whose local staging folder is what is locked).
    """
    out = Path(out)
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CrossmodalError(f"cannot create lock file {path}: {exc.strerror or exc}") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise CrossmodalError(f"cannot lock {path}: {exc.strerror or exc}") from None
                raise CrossmodalError(
                    f"{name or out} is being written by another crossmodal run "
                    f"(pid {_holder_pid(fd)}); {advice}"
                ) from None
        _held.add(fd)
        command = " ".join(sys.argv) or "python"
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{command}\n".encode("utf-8", "backslashreplace"), 0)
        try:
            yield path
        finally:
            _held.discard(fd)
            with suppress(OSError):
                os.ftruncate(fd, 0)  # released: nobody holds it now
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def stale_siblings(
    out: str | Path, kinds: tuple[str, ...] = ("tmp", "old", "partial")
) -> list[Path]:
    """Leftovers of earlier runs beside `out`: `.<name>.<kind>-<pid>` from any other process.

    Call it while holding `output_lock(out)`: then no other run is writing them, so every one
    that is not this process's own is from a run that died (or was killed) before finishing.
    """
    out = Path(out)
    prefixes = tuple(f".{out.name}.{kind}-" for kind in kinds)
    own = str(os.getpid())
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    return sorted(
        p for p in entries if p.name.startswith(prefixes) and p.name.rsplit("-", 1)[-1] != own
    )


def remove_stale(out: str | Path, kinds: tuple[str, ...] = ("tmp", "old", "partial")) -> list[str]:
    """Remove `stale_siblings(out)`; return their names (for a note to the user)."""
    removed = []
    for p in stale_siblings(out, kinds):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError:
                continue
        if not p.exists():
            removed.append(p.name)
    return removed
