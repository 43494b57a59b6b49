"""TensorFlow's start-up and deprecation chatter off the terminal, into the run's log file.

A process that loads TensorFlow and the Object Detection API prints about 40 lines nobody asked
for: C++ logs (CUDA probing, CPU features, tf.data rendezvous), ``tf.logging`` deprecation notices
(twice: ``lvis`` adds a root handler), Keras' Python warnings. C++ writes them straight to file
descriptor 2, and Python handlers keep the ``sys.stderr`` they saw when they were created, so no
Python-level setting catches them all. :func:`divert_stderr` points file descriptor 2 itself (and
``sys.stderr``) at the log file for the length of a block and yields a stream on the original
stderr for the program's own progress, warnings and errors. ``enabled=False`` (``--verbose``) or no
log path changes nothing.

In-process TensorFlow commands use it through
:meth:`tfod_tools.cli.output.Output.library_output_to`; supervised children (``tfod train``'s
trainer and evaluator) need nothing more: their whole output already goes to their log
(:class:`tfod_tools.odapi.runner.SupervisedProcess`). It needs no TensorFlow.

>>> import os, tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "logs" / "run.log"
>>> with divert_stderr(log, header="demo") as terminal:
...     _ = os.write(2, b"C++ noise\\n")
...     print("python noise", file=sys.stderr)
>>> log.read_text().splitlines()[1:]
['C++ noise', 'python noise']
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["divert_stderr"]


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def divert_stderr(log_path: str | Path | None, *, enabled: bool = True, header: str = "") -> Iterator[TextIO]:
    """Within the block, file descriptor 2 and ``sys.stderr`` append to ``log_path``; yields the old stderr.

    The yielded stream is where the caller's own messages go: a new stream on the original file
    descriptor 2 when ``sys.stderr`` was that descriptor, else ``sys.stderr`` as it was (a test's
    capture). ``header`` starts the block's part of the log (with the time and pid). The log's
    directory is created. ``enabled=False`` or ``log_path=None``: yields ``sys.stderr``, diverts nothing.
    """
    if not enabled or log_path is None or sys.__stderr__ is None:
        yield sys.stderr
        return
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = sys.stderr
    for stream in (sys.stdout, previous, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved_fd = os.dup(2)
    own_terminal = _fileno(previous) == 2
    terminal: TextIO = (
        open(  # noqa: SIM115 - closed in the finally below
            saved_fd,
            "w",
            encoding=getattr(previous, "encoding", None) or "utf-8",
            errors="backslashreplace",
            buffering=1,
            closefd=False,
        )
        if own_terminal
        else previous
    )
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(log_fd, f"--- {stamp} pid {os.getpid()} {header}\n".encode())
        os.dup2(log_fd, 2)
    finally:
        os.close(log_fd)
    sys.stderr = sys.__stderr__  # writes to descriptor 2, which is the log now
    try:
        yield terminal
    finally:
        with contextlib.suppress(Exception):
            sys.__stderr__.flush()
        with contextlib.suppress(Exception):
            terminal.flush()
        os.dup2(saved_fd, 2)
        if own_terminal:
            terminal.close()
        os.close(saved_fd)
        sys.stderr = previous
