"""``python -m tfod_tools`` and the ``tfod`` script: the CLI, or one line when its packages are missing.

A ``pip install -e . --no-deps`` (or a venv the user assembled by hand) can lack what the CLI
imports (typer, rich, PyYAML, ...). That is an environment problem, not a bug: instead of a
traceback, :func:`main` names the missing module and the two commands that fix or diagnose it.

>>> print(missing_message("typer")[:59])
tfod: the Python package 'typer' that tfod needs is not ins
"""

from __future__ import annotations

import sys


def missing_message(module: str) -> str:
    """The one line :func:`main` prints when ``module`` cannot be imported."""
    return (
        f"tfod: the Python package {module!r} that tfod needs is not installed: pip install -e . "
        "(in the repository) or pip install tfod_tools; python -m tfod_tools.odapi.doctor lists "
        "every missing piece"
    )


def main() -> None:
    """Run the ``tfod`` CLI; exit 2 with :func:`missing_message` when one of its packages is missing."""
    try:
        from tfod_tools.cli.app import run
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "tfod_tools":
            raise
        print(missing_message(exc.name.split(".")[0]), file=sys.stderr)
        sys.exit(2)
    run()


if __name__ == "__main__":
    main()
