"""The ``tfod`` Typer application.

Each command group lives in its own module under ``tfod_tools.cli`` and registers itself on
:data:`app` through :func:`register`. Commands parse arguments, call one library function and
print through :class:`tfod_tools.cli.output.Output`. Importing this module (and running
``tfod --help``) never imports TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

import typer

from tfod_tools import __version__
from tfod_tools.errors import TfodError

app = typer.Typer(
    name="tfod",
    help="Companion toolkit for the TensorFlow Object Detection API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Command modules, imported for their side effect of registering commands on ``app``.
COMMAND_MODULES: tuple[str, ...] = (
    "doctor",
    "synth",
    "pipeline",
    "train",
    "evaluate",
    "metrics",
    "curves",
    "diagnose",
    "convert",
    "inspect",
    "balance",
    "split",
    "export",
    "predict",
    "demo",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tfod {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Companion toolkit for the TensorFlow Object Detection API."""


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"tfod_tools.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tfod`` console script; returns the exit code.

    Usage errors are Typer's own (exit 2); a :class:`TfodError` becomes one line on stderr and
    exit code 2; Ctrl-C exits 130 (SIGTERM 143, SIGHUP 129 where a command handles them).
    """
    _load_commands()
    try:
        app(args=argv, prog_name="tfod", standalone_mode=True)
    except TfodError as exc:
        typer.echo(f"error: {exc.one_line()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        from tfod_tools.odapi.runner import interrupt_exit_code

        typer.echo("interrupted", err=True)
        return interrupt_exit_code(exc)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        typer.echo(str(code), err=True)
        return 1
    return 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
