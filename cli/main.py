"""The Typer app. Importing this module must not import TensorFlow: `--help` stays instant."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.evaluate import evaluate
from cli.info import info
from cli.predict import predict
from cli.preprocess import preprocess
from cli.train import train

app = typer.Typer(
    name="crossmodal",
    help="Train, evaluate and predict with models that fuse paired images and sounds.\n\n"
    "Exit codes: 0 ok, 1 user error, 2 threshold not met (--fail-under), "
    "3 some inputs failed (predict), 130 interrupted, 141 output closed early (| head).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from crossmodal import __version__

        typer.echo(f"crossmodal {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """crossmodal: paired image+audio classification."""


app.command()(preprocess)
app.command()(train)
app.command()(evaluate)
app.command()(predict)
app.command()(info)


def main() -> None:
    """Run the app with our exit codes: usage errors are user errors (1), not click's 2,
    which is reserved for --fail-under."""
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Typer may vendor click; take the exception classes from wherever its own come from.
    errors = sys.modules[typer.BadParameter.__module__]
    no_args = getattr(errors, "NoArgsIsHelpError", ())
    try:
        code = app(standalone_mode=False)
    except no_args as exc:
        # No command is a usage error: the help, on stderr, and exit 1, so that a script's
        # `crossmodal $CMD` with an empty CMD fails instead of passing.
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        code = 1
    except errors.ClickException as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        code = 1
    except typer.Abort:
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
