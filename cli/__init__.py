"""The `crossmodal` command line: thin Typer commands over the `crossmodal` library."""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):  # pragma: no cover - timing-dependent
    sys.stderr.write("interrupted\n")
    os._exit(130)


# Ctrl-C during the imports at start-up: one line, no traceback. cli.main.main() puts Python's
# own handler back once the program is running, where KeyboardInterrupt is handled.
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
