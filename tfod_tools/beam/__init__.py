"""Apache Beam runs of tfod_tools commands (``--beam``): options, shard writing, errors from workers.

``apache_beam`` is imported only under this package, and this module imports it only inside
functions, so ``import tfod_tools.beam`` works without the ``beam`` extra and :func:`require_beam`
can say what to install. The pieces:

- :func:`require_beam`: a :class:`~tfod_tools.errors.TfodError` when apache-beam is missing;
- :func:`tfod_tools.beam.options.pipeline_options`: the Beam options given after ``--``, checked
  before anything is submitted;
- :class:`tfod_tools.beam.shards.WriteShards`: records -> TFRecord shards, byte-identical to the local
  writer, under their final names only once every shard is written;
- :func:`worker_errors` / :func:`run_pipeline`: a ``TfodError`` raised inside a worker reaches the
  driver as the same one-line ``TfodError`` (exit 2), on every runner (the error travels as text).

>>> error = TfodError("record 3: data CRC mismatch", path="x.record", fix="re-create it")
>>> carried = carry_error(error)
>>> type(carried).__name__, str(carried).split(" [")[0]
('RuntimeError', 'x.record: record 3: data CRC mismatch (fix: re-create it)')
>>> str(error_from_text(f"Pipeline failed: {carried} [while running 'Read']"))
'x.record: record 3: data CRC mismatch (fix: re-create it)'
>>> error_from_text("some other failure") is None
True
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tfod_tools.errors import TfodError

if TYPE_CHECKING:
    import apache_beam as beam

__all__ = [
    "BEAM_FIX",
    "carry_error",
    "error_from_text",
    "require_beam",
    "run_pipeline",
    "worker_errors",
]

BEAM_FIX = "pip install 'tfod_tools[beam]'"

_IMPORT_NOISE = ("Failed to import GCSFileSystem", "apitools not found")
"""Warnings importing apache-beam logs when its optional GCP libraries are missing (``apache-beam[gcp]``):
noise in a terminal for a run without ``gs://``; a ``gs://`` path without them is refused up front with
what to install (:func:`tfod_tools.beam.io.check_filesystems`)."""


class _ImportNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_IMPORT_NOISE)


for _name in ("", "apache_beam.io.filesystems"):  # bigquery's warns on the root logger
    logging.getLogger(_name).addFilter(_ImportNoise())
_MARK = "tfod-error"
_CARRIED = re.compile(rf"\[{_MARK}\]([A-Za-z0-9_=-]*)\[/{_MARK}\]")


def require_beam() -> None:
    """Raise a :class:`TfodError` (exit 2) when apache-beam cannot be imported.

    >>> require_beam()  # installed here (the beam extra)
    """
    if importlib.util.find_spec("apache_beam") is None:
        raise TfodError("apache-beam is not installed", fix=BEAM_FIX)


def carry_error(error: TfodError) -> RuntimeError:
    """``error`` as a plain exception for a worker to raise: its one line, then the error itself (JSON,
    base64, between markers, so it survives the runner's quoting).

    Runners re-raise worker failures in the driver as their own exception types with the worker's
    text inside; :func:`error_from_text` finds the ``TfodError`` in that text again.
    """
    payload = base64.urlsafe_b64encode(json.dumps(error.to_dict()).encode()).decode("ascii")
    return RuntimeError(f"{error.one_line()} [{_MARK}]{payload}[/{_MARK}]")


def error_from_text(text: str) -> TfodError | None:
    """The first ``TfodError`` carried in ``text`` (see :func:`carry_error`), or None."""
    match = _CARRIED.search(text)
    if match is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(match.group(1)))
    except (ValueError, TypeError):
        return None
    return TfodError(str(data.get("error", "")), path=data.get("path"), fix=data.get("fix"))


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Inside a DoFn: re-raise a ``TfodError`` of the block as :func:`carry_error` does.

    >>> with contextlib.suppress(RuntimeError) as _, worker_errors():
    ...     raise TfodError("bad", path="f")
    """
    try:
        yield
    except TfodError as exc:
        raise carry_error(exc) from None


def run_pipeline(pipeline: beam.Pipeline) -> None:
    """Run ``pipeline`` to the end; a ``TfodError`` raised in a worker is raised here as itself.

    Any other failure is raised as the runner raised it (a bug, or the runner's own trouble).
    """
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except TfodError:
        raise
    except Exception as exc:
        carried = error_from_text(str(exc))
        if carried is not None:
            raise carried from None
        raise
    state = str(result.state)
    if state.rsplit(".", 1)[-1] not in ("DONE", "UNKNOWN"):
        raise TfodError(f"the Beam pipeline ended in state {state}", fix="see the runner's log for why")
