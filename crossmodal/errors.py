"""Exceptions a user can cause. The CLI turns each into one line and an exit code."""

from __future__ import annotations

# Control characters (a newline in a file name) escaped, so that a message stays one line.
_CONTROL = {i: f"\\x{i:02x}" for i in [*range(32), 127]}


def one_line(text: str) -> str:
    """`text` with its control characters escaped: one line, whatever a file name holds."""
    return text.translate(_CONTROL)


class CrossmodalError(Exception):
    """Something the user can fix: a bad path, a bad option, a broken model folder.

    Bugs are never wrapped in this type, so they stay loud (a traceback).
    """

    exit_code = 1


class ThresholdNotMet(CrossmodalError):
    """A metric fell below a `--fail-under` threshold (exit code 2, for CI scripts)."""

    exit_code = 2

    def __init__(self, message: str, metrics: dict | None = None):
        super().__init__(message)
        self.metrics = metrics or {}


def ensure_not_bootstrapping() -> None:
    """Refuse to start work inside a worker process that is still importing the caller's script.

    crossmodal decodes in worker processes started with "spawn" or "forkserver", which import
    the main script again. A script that calls crossmodal at the top level, outside
    `if __name__ == "__main__":`, would run again in every worker, which would then wait
    forever on the lock its parent holds. This turns that hang into one clear error.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise CrossmodalError(
            "crossmodal was called while a worker process was importing your script: put the "
            'calls under `if __name__ == "__main__":` (worker processes import the main module)'
        )


def check_count(flag: str, value: object) -> None:
    """A count a caller gives (--workers, --batch-size, --top-k): None (its default) or a whole
    number of at least 1. The CLI checks its flags the same way; this is for Python callers."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise CrossmodalError(f"{flag} must be a whole number, 1 or more (got {value!r})")


def check_fail_under(value: object) -> None:
    """--fail-under: None or an accuracy in [0, 1], refused before any work, not after it."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
    ):
        raise CrossmodalError(f"--fail-under must be an accuracy in [0, 1] (got {value!r})")
