"""The continuous evaluator's record channel: one JSON line per checkpoint outcome, on its own pipe.

``tfod train --eval continuous`` starts ``tfod evaluate --follow --events-fd N``; besides its human
output (unchanged, all in ``MODEL_DIR/logs/eval.log``) the evaluator writes each checkpoint's
outcome to file descriptor ``N`` as one JSON object per line (:class:`RecordWriter`):

- :class:`Evaluated`: step, checkpoint, every metric, seconds;
- :class:`EvaluationSkipped`: the ledger already holds it (not a failure);
- :class:`EvaluationFailed`: it could not be evaluated (missing or truncated files, a failed
  restore, deleted by ``CheckpointManager`` before it could be protected), with the reason.

The supervisor reads the other end of the pipe (:class:`RecordReader`) and decodes each line
(:func:`decode_record`). A line that is not a record (not JSON, not UTF-8, an unknown kind or
version, a missing, unexpected or mistyped field, or a last line cut off without its newline)
becomes a :class:`MalformedRecord` saying why: reported, never dropped. Metrics may be NaN
(Python's JSON writes and reads ``NaN`` and ``Infinity``). This module does not import TensorFlow.

>>> done = Evaluated(200, "ckpt-3", {"DetectionBoxes_Precision/mAP": 0.1234}, seconds=2.5)
>>> line = encode_record(done)
>>> line[:70]
'{"v": 1, "kind": "evaluated", "step": 200, "checkpoint": "ckpt-3", "me'
>>> decode_record(line) == done, done.map
(True, 0.1234)
>>> decode_record(line[:40]).problem  # a partial line
"not JSON: Expecting ',' delimiter: line 1 column 41 (char 40)"
>>> decode_record('{"v": 1, "kind": "failed", "checkpoint": "ckpt-2", "step": null}').problem
"missing field 'reason'"
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from tfod_tools.errors import TfodError
from tfod_tools.metrics.coco import COCO_TAGS

if TYPE_CHECKING:
    from tfod_tools.evaluation.runner import EvalEvents, Skipped
    from tfod_tools.ledger import Evaluation

__all__ = [
    "VERSION",
    "Evaluated",
    "EvaluationFailed",
    "EvaluationSkipped",
    "MalformedRecord",
    "Record",
    "RecordReader",
    "RecordWriter",
    "decode_record",
    "encode_record",
    "with_records",
]

VERSION = 1
"""The record format's version (the ``v`` field); a reader refuses any other."""

MAP_TAG = COCO_TAGS["AP"]


@dataclass(frozen=True)
class Evaluated:
    """A checkpoint was evaluated: its global step, every metric (tag -> value) and how long it took."""

    KIND: ClassVar[str] = "evaluated"
    step: int
    checkpoint: str
    metrics: dict[str, float]
    seconds: float | None

    @property
    def map(self) -> float | None:
        """COCO mAP (``DetectionBoxes_Precision/mAP``), None when not computed (VOC only)."""
        return self.metrics.get(MAP_TAG)


@dataclass(frozen=True)
class _NotEvaluated:
    """A checkpoint not evaluated in this run: its name, its step when known, and why."""

    KIND: ClassVar[str]
    checkpoint: str
    step: int | None
    reason: str


@dataclass(frozen=True)
class EvaluationSkipped(_NotEvaluated):
    """A checkpoint was not evaluated again: the ledger already holds its evaluation (not a failure).

    >>> EvaluationSkipped("ckpt-2", 100, "done") == EvaluationFailed("ckpt-2", 100, "done")
    False
    """

    KIND: ClassVar[str] = "skipped"


@dataclass(frozen=True)
class EvaluationFailed(_NotEvaluated):
    """A checkpoint could not be evaluated, and why."""

    KIND: ClassVar[str] = "failed"


@dataclass(frozen=True)
class MalformedRecord:
    """A line of the channel that is not a record: its text and what is wrong with it."""

    text: str
    problem: str

    def describe(self) -> str:
        """One line for a warning.

        >>> MalformedRecord('{"v": 1', "truncated").describe()
        'unreadable record from the evaluator (truncated): \\'{"v": 1\\''
        """
        text = self.text if len(self.text) <= 200 else self.text[:200] + "..."
        return f"unreadable record from the evaluator ({self.problem}): {text!r}"


Record = Evaluated | EvaluationSkipped | EvaluationFailed
"""What the evaluator reports per checkpoint."""

_KINDS: dict[str, type[Evaluated] | type[EvaluationSkipped] | type[EvaluationFailed]] = {
    cls.KIND: cls for cls in (Evaluated, EvaluationSkipped, EvaluationFailed)
}


def encode_record(record: Record) -> str:
    """``record`` as one JSON line (no newline): ``v``, ``kind``, then its fields."""
    data: dict[str, Any] = {"v": VERSION, "kind": record.KIND}
    data.update({f.name: getattr(record, f.name) for f in fields(record)})
    return json.dumps(data)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_field(name: str, value: Any) -> Any:
    """The decoded value of field ``name``; ``ValueError`` naming the field when mistyped."""
    if name == "checkpoint" or name == "reason":
        if isinstance(value, str):
            return value
        raise ValueError(f"field {name!r} is not a string")
    if name == "step":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError("field 'step' is not an integer")
    if name == "seconds":
        if value is None or _is_number(value):
            return None if value is None else float(value)
        raise ValueError("field 'seconds' is not a number")
    if name == "metrics":
        if isinstance(value, dict) and all(_is_number(v) for v in value.values()):
            return {str(k): float(v) for k, v in value.items()}
        raise ValueError("field 'metrics' is not an object of numbers")
    raise ValueError(f"unexpected field {name!r}")  # pragma: no cover - every field is listed


def decode_record(text: str) -> Record | MalformedRecord:
    """The record one line holds, or a :class:`MalformedRecord` saying what is wrong with it.

    >>> decode_record('{"v": 1, "kind": "skipped", "checkpoint": "ckpt-1", "step": 0, "reason": "done"}')
    EvaluationSkipped(checkpoint='ckpt-1', step=0, reason='done')
    >>> decode_record('{"v": 2, "kind": "skipped"}').problem
    'version 2, expected 1'
    >>> decode_record('[1, 2]').problem
    'not a JSON object'
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return MalformedRecord(text, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return MalformedRecord(text, "not a JSON object")
    if data.get("v") != VERSION:
        return MalformedRecord(text, f"version {data.get('v')!r}, expected {VERSION}")
    cls = _KINDS.get(str(data.get("kind")))
    if cls is None:
        return MalformedRecord(text, f"unknown kind {data.get('kind')!r}")
    names = [f.name for f in fields(cls)]
    unexpected = sorted(set(data) - {"v", "kind", *names})
    if unexpected:
        return MalformedRecord(text, f"unexpected field {unexpected[0]!r}")
    values: dict[str, Any] = {}
    for name in names:
        if name not in data:
            return MalformedRecord(text, f"missing field {name!r}")
        try:
            values[name] = _check_field(name, data[name])
        except ValueError as exc:
            return MalformedRecord(text, str(exc))
    return cls(**values)


class RecordWriter:
    """The evaluator's end: writes records to a file descriptor, one whole line per ``write``.

    >>> read_fd, write_fd = os.pipe()
    >>> writer = RecordWriter.open_fd(write_fd)
    >>> writer.write(EvaluationFailed("ckpt-2", None, "missing ckpt-2.index"))
    >>> writer.close()
    >>> with os.fdopen(read_fd, "rb") as stream:
    ...     [decode_record(line.decode()) for line in stream]
    [EvaluationFailed(checkpoint='ckpt-2', step=None, reason='missing ckpt-2.index')]
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open_fd(cls, fd: int) -> RecordWriter:
        """A writer on ``fd``; :class:`TfodError` when it is not an open, writable descriptor.

        >>> RecordWriter.open_fd(-1)
        Traceback (most recent call last):
        ...
        tfod_tools.errors.TfodError: --events-fd -1 is not an open file descriptor ...
        """
        try:
            writable = fd >= 0 and _writable(fd)
        except OSError:
            writable = False
        if not writable:
            raise TfodError(
                f"--events-fd {fd} is not an open file descriptor opened for writing",
                fix="leave --events-fd to tfod train (it passes the write end of a pipe)",
            )
        return cls(fd)

    def write(self, record: Record) -> None:
        """Write ``record`` and its newline (all of it: a short write is continued)."""
        data = (encode_record(record) + "\n").encode("utf-8")
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]

    def evaluated(self, evaluation: Evaluation) -> None:
        """Write the :class:`Evaluated` record of a ledger row."""
        self.write(
            Evaluated(
                step=evaluation.step,
                checkpoint=evaluation.checkpoint,
                metrics={k: float(v) for k, v in evaluation.metrics.items()},
                seconds=evaluation.duration_s,
            )
        )

    def skipped(self, skipped: Skipped) -> None:
        """Write the record of a checkpoint not evaluated: skipped when up to date, else failed."""
        cls = EvaluationSkipped if skipped.up_to_date else EvaluationFailed
        self.write(cls(checkpoint=skipped.checkpoint, step=skipped.step, reason=skipped.reason))

    def close(self) -> None:
        """Close the descriptor (the reader then sees the end of the stream)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)


def _writable(fd: int) -> bool:
    import fcntl

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    return (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)


def with_records(events: EvalEvents, writer: RecordWriter) -> EvalEvents:
    """``events`` that also write each evaluated and each skipped checkpoint to ``writer``.

    The human callbacks run first, unchanged.
    """
    done, skip = events.on_done, events.on_skip

    def on_done(evaluation: Evaluation) -> None:
        if done is not None:
            done(evaluation)
        writer.evaluated(evaluation)

    def on_skip(skipped: Skipped) -> None:
        if skip is not None:
            skip(skipped)
        writer.skipped(skipped)

    return replace(events, on_done=on_done, on_skip=on_skip)


RecordCallback = Callable[[Record | MalformedRecord], None]


class RecordReader:
    """The supervisor's end: a pipe whose write end goes to the evaluator, read in a thread.

    Pass :attr:`write_fd` to the child (``pass_fds``), then :meth:`start` (it closes this
    process's copy of the write end, so the stream ends when the child exits); :meth:`join`
    once the child has exited. Each line reaches ``on_record`` decoded (a bad one as a
    :class:`MalformedRecord`); an exception from ``on_record`` is kept in :attr:`error` and the
    reading goes on.

    >>> seen = []
    >>> reader = RecordReader(seen.append)
    >>> writer = RecordWriter(os.dup(reader.write_fd))
    >>> reader.start()
    >>> writer.write(EvaluationSkipped("ckpt-1", 0, "already evaluated"))
    >>> _ = os.write(writer.fd, b'{"v": 1, "kind": "evalu')  # the child killed mid-line
    >>> writer.close()
    >>> reader.join()
    True
    >>> seen[0]
    EvaluationSkipped(checkpoint='ckpt-1', step=0, reason='already evaluated')
    >>> seen[1].problem
    'cut off (no newline at the end of the stream)'
    """

    def __init__(self, on_record: RecordCallback) -> None:
        self.on_record = on_record
        self.error: BaseException | None = None
        self._read_fd, self.write_fd = os.pipe()
        self._thread: threading.Thread | None = None
        self._write_open = True

    def start(self) -> None:
        """Close this process's write end and start reading."""
        self._close_write_end()
        self._thread = threading.Thread(target=self._run, name="evaluator-records", daemon=True)
        self._thread.start()

    def _close_write_end(self) -> None:
        if self._write_open:
            self._write_open = False
            os.close(self.write_fd)

    def _deliver(self, item: Record | MalformedRecord) -> None:
        try:
            self.on_record(item)
        except BaseException as exc:  # reported by join's caller; the reading goes on
            self.error = self.error or exc

    def _run(self) -> None:
        with os.fdopen(self._read_fd, "rb") as stream:
            for raw in stream:
                complete = raw.endswith(b"\n")
                try:
                    text = raw.rstrip(b"\n").decode("utf-8")
                except UnicodeDecodeError as exc:
                    self._deliver(MalformedRecord(raw.decode("utf-8", "replace"), f"not UTF-8: {exc}"))
                    continue
                if not complete:
                    self._deliver(MalformedRecord(text, "cut off (no newline at the end of the stream)"))
                else:
                    self._deliver(decode_record(text))

    def join(self, timeout: float | None = 10.0) -> bool:
        """Wait until the stream has ended and every line was delivered; False after ``timeout``.

        Call it once the child has exited (a descendant still holding the write end keeps the
        stream open: then it returns False and the reading goes on in its daemon thread).
        """
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Close both ends when the child never started (nothing was read)."""
        self._close_write_end()
        if self._thread is None:
            with contextlib.suppress(OSError):
                os.close(self._read_fd)
