"""The one output helper of the CLI.

Human-readable results go to stdout through rich; with ``--json`` exactly one JSON document goes
to stdout and nothing else does. Progress bars, warnings and errors always go to stderr, so
``tfod X --json | jq`` works while a bar is drawn.

>>> out = Output(json_mode=True)
>>> out.result({"ok": True}, human=lambda console: console.print("fine"))
{
  "ok": true
}
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def to_json(data: Any) -> str:
    """Serialise ``data`` (numpy values and paths included) as indented JSON.

    >>> import numpy as np
    >>> to_json({"x": np.float64(0.5), "n": np.int64(3)})
    '{\\n  "x": 0.5,\\n  "n": 3\\n}'
    """
    return json.dumps(_jsonable(data), indent=2)


class Output:
    """Route a command's result to stdout (human or JSON) and its chatter to stderr."""

    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.stdout = Console(file=sys.stdout, soft_wrap=True)
        self.stderr = Console(file=sys.stderr, stderr=True, soft_wrap=True)
        self.diverted = False

    def result(self, data: Any, human: Callable[[Console], None] | None = None) -> None:
        """Print the command's result: ``data`` as JSON, or ``human(console)`` for people."""
        if self.json_mode:
            sys.stdout.write(to_json(data) + "\n")
            sys.stdout.flush()
        elif human is not None:
            human(self.stdout)
        else:
            self.stdout.print(to_json(data))

    def info(self, message: str) -> None:
        """A progress or status line on stderr (suppressed by ``quiet``)."""
        if not self.quiet:
            self.stderr.print(message, highlight=False)

    def warn(self, message: str) -> None:
        """A warning line on stderr."""
        self.stderr.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    @contextlib.contextmanager
    def library_output_to(self, log_path: str | Path | None, *, verbose: bool = False) -> Iterator[None]:
        """Within the block, what libraries print on stderr goes to ``log_path``; this Output's does not.

        TensorFlow's C++ logs, ``tf.logging`` notices and Python warnings land in the log
        (:func:`tfod_tools.odapi.quiet.divert_stderr`); progress, warnings and errors printed
        through this Output still reach the terminal. ``verbose`` (or no ``log_path``): nothing moves.
        """
        from tfod_tools.odapi.quiet import divert_stderr

        header = " ".join(["tfod", *sys.argv[1:]])
        with divert_stderr(log_path, enabled=not verbose, header=header) as terminal:
            previous, was = self.stderr.file, self.diverted
            self.stderr.file, self.diverted = terminal, log_path is not None and not verbose
            try:
                yield
            finally:
                self.stderr.file, self.diverted = previous, was

    @contextlib.contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
        """A progress bar on stderr; yields ``advance(n=1, **fields)``.

        The bar is hidden when stderr is not a terminal or ``quiet`` is set.
        """
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.stderr,
            # Off a terminal rich would print one frozen frame at the end (a "0/8 0%" line before an error).
            disable=self.quiet or not self.stderr.is_terminal,
            transient=False,
            redirect_stderr=not self.diverted,  # diverted: library writes go to the log, not the bar
        )
        with progress:
            task = progress.add_task(description, total=total)

            def advance(n: float = 1, **fields: Any) -> None:
                progress.update(task, advance=n, **fields)

            yield advance


def format_metric(value: float | None, digits: int = 3) -> str:
    """Format a metric for people; ``-1`` (undefined) and ``None`` stay visible.

    >>> format_metric(0.83712)
    '0.837'
    >>> format_metric(-1.0)
    '-1.000'
    >>> format_metric(None)
    'n/a'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"
