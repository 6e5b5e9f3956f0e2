"""How commands talk: one-line errors with exit codes, JSON on stdout, progress on stderr.

Kept free of TensorFlow so that `--help` and argument errors stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import typer

from crossmodal.config import MAX_IMAGE_SIDE

EXIT_OK, EXIT_USER_ERROR, EXIT_THRESHOLD, EXIT_INPUTS_FAILED = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for a tool killed by one


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ chatter (CUDA probing, CPU features) kept off the screen.

    TensorFlow's C++ runtime writes straight to file descriptor 2, before and after any log
    setting applies. So descriptor 2 is pointed at /dev/null for the rest of the command while
    Python's `sys.stderr` (our messages, warnings, tracebacks) keeps the real stderr.
    CROSSMODAL_TF_LOGS=1 shows everything.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules or os.environ.get("CROSSMODAL_TF_LOGS"):
        return
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding, errors="replace")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401


def quiet_tensorflow_if_remote(*paths) -> None:
    """Remote stores (gs://, s3://) are read through TensorFlow's file system: import it
    quietly before a check that touches one; local paths are checked without it."""
    from crossmodal import fsio

    if any(p is not None and fsio.is_remote(p) for p in paths):
        quiet_tensorflow()


class Output:
    """Where a command's words go: JSON mode keeps stdout for the one JSON document."""

    def __init__(self, *, quiet: bool = False, json_mode: bool = False):
        from rich.console import Console

        self.quiet = quiet
        self.json_mode = json_mode
        no_color = bool(os.environ.get("NO_COLOR"))
        # soft_wrap: a long line (an epoch's metrics) stays one line in a CI log
        self.err = Console(stderr=True, no_color=no_color, highlight=False, soft_wrap=True)
        self.out = Console(no_color=no_color, highlight=False, soft_wrap=True)
        self.interactive = self.err.is_terminal and not quiet

    def info(self, message: str) -> None:
        """Human progress and summaries: stderr in JSON mode, stdout otherwise."""
        if self.quiet:
            return
        # File names may hold anything: never read them as rich markup or emoji codes.
        (self.err if self.json_mode else self.out).print(message, markup=False, emoji=False)

    def result(self, payload: Any) -> None:
        if self.json_mode:
            sys.stdout.write(json_document(payload) + "\n")

    @contextmanager
    def progress(self) -> Callable[[str, int, int], None]:
        """A callback (stage, done, total): a bar on a terminal, nothing in logs or -q."""
        if not self.interactive:
            yield lambda stage, done, total: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        bars: dict[str, int] = {}
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
        ) as bar:

            def update(stage: str, done: int, total: int) -> None:
                if stage not in bars:
                    bars[stage] = bar.add_task(stage, total=total)
                bar.update(bars[stage], completed=done, total=total)

            yield update


@contextmanager
def _interrupts_noted():
    """Ctrl-C raises KeyboardInterrupt as always, and is also noted: TensorFlow, stopped in the
    middle of tracing a step, can turn it into another error (a `TypeError` from the loss once in
    about twenty tries), which is the interrupt's doing, not a bug to show as a traceback."""
    import signal
    import threading

    noted = {"interrupted": False}
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if not callable(previous):  # ignored, the system's default, or not Python's: left as is
        yield noted
        return

    def note(signum, frame):
        noted["interrupted"] = True
        previous(signum, frame)  # Python's own raises KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def handled(out: Output | None = None):
    """Turn library errors into one line on stderr and their exit code; bugs stay loud."""
    from crossmodal.errors import CrossmodalError

    with _interrupts_noted() as noted:
        try:
            yield
        except CrossmodalError as exc:
            typer.echo(f"error: {error_line(exc)}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # stdout was closed early (`crossmodal predict ... | head`): stop quietly, as a tool
            # killed by SIGPIPE would; stdout goes to /dev/null so that the exit flush cannot
            # fail
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except MemoryError:
            typer.echo(
                "error: out of memory; a smaller --batch-size, --image-size or --clip-seconds "
                "needs less",
                err=True,
            )
            raise typer.Exit(EXIT_USER_ERROR) from None
        except OSError as exc:  # a path the user gave: a folder where a file goes, no permission
            typer.echo(f"error: {os_error_line(exc)}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except (typer.Exit, typer.Abort):
            raise  # an inner handled() has said what it had to
        except Exception:
            if not noted["interrupted"]:
                raise  # a bug: its traceback
            typer.echo("interrupted", err=True)  # what stopped it, whatever it became
            raise typer.Exit(130) from None


def error_line(exc: Exception) -> str:
    """An error's text on one line: a library's message of several lines (TensorFlow's) is
    joined, and control characters left in a file name are escaped."""
    from crossmodal.errors import one_line

    return one_line(" ".join(part.strip() for part in str(exc).splitlines() if part.strip()))


def os_error_line(exc: OSError) -> str:
    """'PATH: reason' for a file-system error (no errno prefix), else the error's text."""
    if exc.strerror and exc.filename is not None:
        target = f" -> {exc.filename2}" if exc.filename2 is not None else ""
        return f"{exc.filename}{target}: {exc.strerror.lower()}"
    return str(exc) or type(exc).__name__


def json_document(payload: Any) -> str:
    """Pretty JSON; names that are not valid UTF-8 (lone surrogates) become \\u escapes."""
    from crossmodal.fsio import json_text

    return json_text(payload, indent=2, default=str)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'28x28' or '28' -> (height, width)."""
    if not text:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH like 32x32, got {text!r}") from None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH like 32x32, got {text!r}")
    if max(dims) > MAX_IMAGE_SIDE:
        raise typer.BadParameter(f"height and width must be 1 to {MAX_IMAGE_SIDE}, got {text!r}")
    return dims[0], dims[1]
