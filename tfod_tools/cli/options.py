"""Option types shared by every command: ``--json``, ``--quiet`` and choices from a registry.

``json_mode: JsonOption = False`` and ``quiet: QuietOption = False`` give a command the one
definition of ``--json`` and ``--quiet/-q``. :func:`one_of` makes a choice type of a function's
names; a command writes it inside its annotation, so the names are read when the CLI is built
(``tfod --help`` lists them, Typer refuses any other with exit 2) and a name registered later is
offered too.

>>> one_of(lambda: ("coco", "voc"))
typing.Literal['coco', 'voc']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from tfod_tools.errors import TfodError

if TYPE_CHECKING:
    from tfod_tools.cli.output import Output

__all__ = [
    "BEAM_CONTEXT",
    "BeamOption",
    "JsonOption",
    "QuietOption",
    "beam_args",
    "beam_run",
    "choices_text",
    "one_of",
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
"""``--json``: the result as one JSON document on stdout."""

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
"""``--quiet`` / ``-q``: no progress bars or status lines (warnings and errors still print)."""


BeamOption = Annotated[
    bool, typer.Option("--beam", help="Run on Apache Beam; Beam pipeline options after --.")
]
"""``--beam``: run the command as an Apache Beam pipeline (DirectRunner unless ``-- --runner=...``)."""

BEAM_CONTEXT: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}
"""``context_settings`` of a command with ``--beam``: the arguments after ``--`` reach :func:`beam_args`."""


def beam_args(ctx: typer.Context, beam: bool) -> list[str]:
    """The Beam pipeline options after ``--``; a :class:`TfodError` when given without ``--beam``.

    >>> from types import SimpleNamespace
    >>> ctx = SimpleNamespace(args=["--runner=DirectRunner"])  # what Typer leaves after --
    >>> beam_args(ctx, True)
    ['--runner=DirectRunner']
    >>> beam_args(ctx, False)
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: unexpected arguments --runner=DirectRunner (fix: ...)
    """
    args = [str(arg) for arg in ctx.args]
    if args and not beam:
        raise TfodError(
            f"unexpected arguments {' '.join(args)}",
            fix="Beam pipeline options go after --beam --; otherwise check the option names (--help)",
        )
    return args


def beam_log_path(command: str) -> Path:
    """Where a ``--beam`` run's library output goes: ``TMP/tfod-COMMAND-beam-PID.log``.

    >>> beam_log_path("convert").name == f"tfod-convert-beam-{os.getpid()}.log"
    True
    """
    return Path(tempfile.gettempdir()) / f"tfod-{command}-beam-{os.getpid()}.log"


@contextlib.contextmanager
def beam_run(output: Output, command: str) -> Iterator[None]:
    """The block of a ``--beam`` run: apache-beam must be installed (else a ``TfodError``), and what
    Beam and its worker processes print (import warnings, INFO logs) goes to :func:`beam_log_path`,
    named on stderr after a run that went through; tfod's own progress, warnings and errors (one line)
    still reach the terminal."""
    from tfod_tools.beam import require_beam

    require_beam()
    log = beam_log_path(command)
    with output.library_output_to(log):
        yield
    output.info(f"Apache Beam's own output: {log}")


def one_of(names: Callable[[], Iterable[str]]) -> Any:
    """A ``Literal`` of ``names()``: Typer lists the names in ``--help`` and refuses others (exit 2)."""
    values = tuple(names())
    if not values:
        raise ValueError("a choice needs at least one name")
    return Literal[values]


def choices_text(names: Iterable[str]) -> str:
    """``"a | b | c"``, for help texts.

    >>> choices_text(["coco", "voc"])
    'coco | voc'
    """
    return " | ".join(names)
