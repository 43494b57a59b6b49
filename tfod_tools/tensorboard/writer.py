"""Write TensorBoard event files without TensorFlow.

Two ways to write:

- :class:`EventWriter` streams events into a new file in a run directory, as ``tf.summary`` does
  (scalars as TF2 float32 scalar tensors with ``scalars`` plugin metadata, PR curves for the PR
  Curves plugin, the custom-scalars layout). Steps must increase per tag: TensorBoard treats a
  step that goes back as a restart and drops the later points of that tag.
- :func:`write_event_file` / :func:`write_scalars_file` write a run's *complete* set of events
  as one file, atomically, and then delete the files they wrote before. This is how an evaluator
  keeps TensorBoard at exactly one point per step and tag after a ``--force`` re-evaluation or
  after a process was killed mid-run: it rewrites the run from its ledger.

Files are named ``events.out.tfevents.<seconds>.<host>.<pid>.<n>.<marker>.v2``; the ``.tfod.``
marker names the files tfod_tools owns. Files without it (those of ``model_main_tf2``) are never
modified or deleted. Each file starts with a ``file_version: "brain.Event:2"`` event.

**How a rewrite stays exact in TensorBoard.** A rewritten file gets a new name that sorts after
every file it replaces, and its events are sorted by step. TensorBoard's default (Rust) data
server drops, per tag, the points at steps ``>= s`` when a point at step ``s`` arrives after them,
so the new file replaces the old points. The legacy Python loader (``--load_fast=false``) does this
only for a ``SessionLog.START`` event, so a rewritten file carries one at its first step; that
loader then also hides points of *other* files of the same run at steps ``>=`` that step.

>>> import tempfile, pathlib
>>> from tfod_tools.tensorboard.reader import read_scalars, ScalarPoint
>>> run = pathlib.Path(tempfile.mkdtemp()) / "eval"
>>> first = write_scalars_file(run, [ScalarPoint("eval", "mAP", 100, 0.25, 10.0)])
>>> second = write_scalars_file(run, [ScalarPoint("eval", "mAP", 100, 0.5, 20.0)])
>>> first.exists(), ".tfod." in second.name
(False, True)
>>> [(p.step, p.value) for p in read_scalars(run)]
[(100, 0.5)]
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as _custom_scalar_metadata
from tensorboard.plugins.scalar import metadata as _scalar_metadata

from tfod_tools.data.tfrecord import frame_record
from tfod_tools.errors import TfodError
from tfod_tools.tensorboard.pr_curves import PRCurveSummary, compute_pr_curve, pr_curve_metadata
from tfod_tools.tensorboard.reader import is_event_file

__all__ = [
    "FILE_VERSION",
    "EventWriter",
    "layout_event",
    "owned_event_files",
    "pr_curve_event",
    "scalar_event",
    "write_event_file",
    "write_scalars_file",
]

FILE_VERSION = "brain.Event:2"
DEFAULT_MARKER = "tfod"


class ScalarLike(Protocol):
    """Anything with ``tag``, ``step``, ``value`` and ``wall_time`` (e.g. a ``ScalarPoint``)."""

    @property
    def tag(self) -> str: ...
    @property
    def step(self) -> int: ...
    @property
    def value(self) -> float: ...
    @property
    def wall_time(self) -> float: ...


class PRCurvePointLike(Protocol):
    """Anything with ``tag``, ``step``, ``curve`` and ``wall_time`` (e.g. a ``PRCurvePoint``)."""

    @property
    def tag(self) -> str: ...
    @property
    def step(self) -> int: ...
    @property
    def curve(self) -> PRCurveSummary: ...
    @property
    def wall_time(self) -> float: ...


def _now(wall_time: float | None) -> float:
    return time.time() if wall_time is None else float(wall_time)


def _scalar_metadata_proto() -> summary_pb2.SummaryMetadata:
    meta = _scalar_metadata.create_summary_metadata(display_name="", description="")
    meta.data_class = summary_pb2.DATA_CLASS_SCALAR
    return meta


def scalar_event(tag: str, value: float, step: int, wall_time: float | None = None) -> event_pb2.Event:
    """An event holding one scalar as ``tf.summary.scalar`` writes it (a float32 rank-0 tensor).

    >>> scalar_event("Loss/total_loss", 0.5, step=100, wall_time=1.0).summary.value[0].tensor.float_val
    [0.5]
    """
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)])
    tensor.tensor_shape.SetInParent()
    summary = summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=_scalar_metadata_proto())]
    )
    return event_pb2.Event(wall_time=_now(wall_time), step=int(step), summary=summary)


def pr_curve_event(
    tag: str,
    curve: PRCurveSummary,
    step: int,
    wall_time: float | None = None,
    display_name: str = "",
    description: str = "",
) -> event_pb2.Event:
    """An event holding one PR curve for TensorBoard's PR Curves plugin.

    >>> from tfod_tools.tensorboard.pr_curves import compute_pr_curve
    >>> event = pr_curve_event("pr/person", compute_pr_curve([True], [0.5], 11), step=1, wall_time=0)
    >>> [d.size for d in event.summary.value[0].tensor.tensor_shape.dim]
    [6, 11]
    """
    array = curve.to_array()
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=array.astype("<f4").tobytes())
    for size in array.shape:
        tensor.tensor_shape.dim.add(size=int(size))
    meta = pr_curve_metadata(curve.num_thresholds, display_name=display_name, description=description)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)])
    return event_pb2.Event(wall_time=_now(wall_time), step=int(step), summary=summary)


def layout_event(layout: layout_pb2.Layout, step: int = 0, wall_time: float | None = None) -> event_pb2.Event:
    """An event holding a custom-scalars layout (plugin ``custom_scalars``)."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[layout.SerializeToString()])
    tensor.tensor_shape.SetInParent()
    meta = _custom_scalar_metadata.create_summary_metadata()
    meta.data_class = summary_pb2.DATA_CLASS_TENSOR
    value = summary_pb2.Summary.Value(
        tag=_custom_scalar_metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=meta
    )
    return event_pb2.Event(
        wall_time=_now(wall_time), step=int(step), summary=summary_pb2.Summary(value=[value])
    )


def _describe_once(event: event_pb2.Event, described: set[str]) -> event_pb2.Event:
    """``event`` (a copy, if changed) without the metadata of values whose tag already had it in
    this file: TensorBoard keeps the first metadata of each tag, as ``tf.summary`` writes it."""
    if not event.HasField("summary"):
        return event
    repeated = [v.tag in described and v.HasField("metadata") for v in event.summary.value]
    described.update(v.tag for v in event.summary.value if v.HasField("metadata"))
    if not any(repeated):
        return event
    copy = event_pb2.Event()
    copy.CopyFrom(event)
    for value, drop in zip(copy.summary.value, repeated, strict=True):
        if drop:
            value.ClearField("metadata")
    return copy


def _file_version_event(wall_time: float) -> event_pb2.Event:
    return event_pb2.Event(wall_time=wall_time, file_version=FILE_VERSION)


def _created_second(path: Path) -> int:
    parts = path.name.split(".")
    try:
        return int(parts[parts.index("tfevents") + 1])
    except (ValueError, IndexError):
        return 0


def owned_event_files(run_dir: str | Path, marker: str = DEFAULT_MARKER) -> list[Path]:
    """The event files in ``run_dir`` (not below it) whose name carries ``.<marker>.``."""
    directory = Path(run_dir)
    if not directory.is_dir():
        return []
    tag = f".{marker}."
    return sorted(p for p in directory.iterdir() if is_event_file(p) and tag in p.name and p.is_file())


_counter = 0


def _new_file_name(run_dir: Path, marker: str | None) -> str:
    """A fresh event-file name that sorts after every file of ours already in ``run_dir``."""
    global _counter
    second = int(time.time())
    if marker is not None:
        second = max([second, *(_created_second(p) + 1 for p in owned_event_files(run_dir, marker))])
    _counter += 1
    suffix = f".{marker}.v2" if marker else ".v2"
    return f"events.out.tfevents.{second}.{socket.gethostname()}.{os.getpid()}.{_counter}{suffix}"


class EventWriter:
    """Stream events into a new event file in ``logdir`` (created if missing).

    >>> import tempfile, pathlib
    >>> from tfod_tools.tensorboard.reader import read_pr_curves
    >>> logdir = pathlib.Path(tempfile.mkdtemp())
    >>> with EventWriter(logdir) as writer:
    ...     writer.add_pr_curve("pr/all", labels=[True, False], predictions=[0.9, 0.1], step=5)
    >>> [(c.tag, c.step, c.curve.num_thresholds) for c in read_pr_curves(logdir)]
    [('pr/all', 5, 201)]
    """

    def __init__(self, logdir: str | Path, *, marker: str | None = DEFAULT_MARKER, auto_flush: bool = True):
        self.logdir = Path(logdir)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TfodError(f"cannot create the log directory: {exc}", path=self.logdir) from None
        self.path = self.logdir / _new_file_name(self.logdir, marker)
        self.auto_flush = auto_flush
        self._described: set[str] = set()
        self._handle: BinaryIO | None = open(self.path, "xb")  # noqa: SIM115 - closed in close()
        self.add_event(_file_version_event(time.time()))

    def add_event(self, event: event_pb2.Event) -> None:
        """Append one event (any ``Event`` proto).

        As ``tf.summary`` does, a tag's summary metadata is written with its first value only.
        """
        if self._handle is None:
            raise TfodError("event writer is closed", path=self.path)
        event = _describe_once(event, self._described)
        self._handle.write(frame_record(event.SerializeToString()))
        if self.auto_flush:
            self._handle.flush()

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        """Append one scalar (a float32 tensor with ``scalars`` plugin metadata)."""
        self.add_event(scalar_event(tag, value, step, wall_time))

    def add_pr_curve(
        self,
        tag: str,
        labels: object,
        predictions: object,
        step: int,
        num_thresholds: int = 201,
        weights: object = None,
        wall_time: float | None = None,
    ) -> None:
        """Append the PR curve of boolean ``labels`` against ``predictions`` in ``[0, 1]``."""
        curve = compute_pr_curve(labels, predictions, num_thresholds=num_thresholds, weights=weights)
        self.add_event(pr_curve_event(tag, curve, step, wall_time))

    def add_pr_curve_data(
        self, tag: str, curve: PRCurveSummary, step: int, wall_time: float | None = None
    ) -> None:
        """Append a precomputed PR curve (see :meth:`PRCurveSummary.from_counts`)."""
        self.add_event(pr_curve_event(tag, curve, step, wall_time))

    def add_custom_scalars_layout(self, layout: layout_pb2.Layout) -> None:
        """Append a custom-scalars layout (see :mod:`tfod_tools.tensorboard.layout`)."""
        self.add_event(layout_event(layout))

    def flush(self) -> None:
        """Push buffered events to the file."""
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        """Flush and close the file; further writes raise."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_event_file(
    run_dir: str | Path,
    events: Iterable[event_pb2.Event],
    *,
    marker: str = DEFAULT_MARKER,
    session_start: bool = True,
) -> Path:
    """Write ``events`` as the complete content of one run, atomically; return the new file.

    The events are sorted by step (stable), preceded by the ``file_version`` event and (with
    ``session_start``) a ``SessionLog.START`` at the first step. The file is written under a
    temporary name (without ``tfevents``, so TensorBoard ignores it), renamed into place, and only
    then are the run's earlier files with the same ``marker`` deleted. Files of other writers are
    left alone. A crash leaves either the old files or the new one (plus, at worst, an old one
    that the reader's duplicate rule and TensorBoard's step rule both resolve to the new values).
    """
    if not marker or "." in marker:
        raise ValueError("marker must be a non-empty name without dots")
    directory = Path(run_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TfodError(f"cannot create the run directory: {exc}", path=directory) from None
    ordered = sorted(events, key=lambda e: e.step)
    now = time.time()
    header = [_file_version_event(now)]
    if session_start:
        first_step = ordered[0].step if ordered else 0
        header.append(
            event_pb2.Event(
                wall_time=now,
                step=first_step,
                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
            )
        )
    previous = owned_event_files(directory, marker)
    target = directory / _new_file_name(directory, marker)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{marker}-rewrite-", suffix=".tmp", dir=directory)
    described: set[str] = set()
    try:
        with os.fdopen(fd, "wb") as handle:
            for event in (*header, *ordered):
                handle.write(frame_record(_describe_once(event, described).SerializeToString()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    for old in previous:
        if old != target:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return target


def write_scalars_file(
    run_dir: str | Path,
    points: Iterable[ScalarLike],
    *,
    pr_curves: Iterable[PRCurvePointLike] = (),
    layout: layout_pb2.Layout | None = None,
    marker: str = DEFAULT_MARKER,
) -> Path:
    """Rewrite a run's scalars (and PR curves, and a layout) as one file; see :func:`write_event_file`.

    Give each ``(tag, step)`` once: the file is the run's complete state.
    """
    events = [scalar_event(p.tag, p.value, p.step, p.wall_time) for p in points]
    events += [pr_curve_event(c.tag, c.curve, c.step, c.wall_time) for c in pr_curves]
    if layout is not None:
        first = min((e.step for e in events), default=0)
        events.insert(0, layout_event(layout, step=first))
    return write_event_file(run_dir, events, marker=marker)
