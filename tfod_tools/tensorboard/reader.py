"""Read scalars and PR curves from TensorBoard event files, without TensorFlow.

A *run* is a directory holding event files (any file whose name contains ``tfevents``, as
TensorBoard decides); its name is the directory's path relative to the directory given, ``"."``
for that directory itself. For a TF OD API model directory the runs are ``train`` and ``eval``.
Within a run, event files are read in file-name order (the name starts with the creation time).

Scalars are taken from both encodings TensorFlow writes:

- TF1 style: ``Summary.Value.simple_value`` (``tf.compat.v1.summary``, Keras 2 callbacks);
- TF2 style: a scalar ``tensor`` whose tag carries the ``scalars`` plugin metadata
  (``tf.summary.scalar``); float16/32/64, bfloat16, integer and bool, in ``tensor_content`` or
  in the typed ``*_val`` fields. The metadata is written only with a tag's first value, so it is
  remembered per run, as TensorBoard does.

A file that ends in a partial record (training still writing it, or a process killed mid-write)
or in a damaged one yields every record before it; :class:`ReadStats` says which files ended early.
A file whose very first record is not a framed ``Event`` (wrong length checksum, or bytes that set
no ``Event`` field) is not an event file at all, whatever its name says: it yields nothing and is
listed in :attr:`ReadStats.not_event_files`, so a caller can say so instead of reporting 0 points.

**Duplicates.** When a run holds several values for the same ``(tag, step)`` (a re-evaluation, a
restarted job), the reader keeps the one with the latest ``wall_time`` (on a tie, the one read
last), so the result has exactly one point per ``(run, tag, step)``. Results are sorted by
``(run, tag, step)``.

>>> import tempfile, pathlib
>>> from tfod_tools.tensorboard.writer import EventWriter
>>> model_dir = pathlib.Path(tempfile.mkdtemp())
>>> with EventWriter(model_dir / "eval") as writer:
...     writer.add_scalar("DetectionBoxes_Precision/mAP", 0.25, step=100, wall_time=1.0)
...     writer.add_scalar("DetectionBoxes_Precision/mAP", 0.5, step=200, wall_time=2.0)
...     writer.add_scalar("DetectionBoxes_Precision/mAP", 0.375, step=200, wall_time=3.0)
>>> [(p.run, p.step, p.value) for p in read_scalars(model_dir)]
[('eval', 100, 0.25), ('eval', 200, 0.375)]
>>> read_scalars(model_dir)[0].to_dict()["tag"]
'DetectionBoxes_Precision/mAP'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, tensor_pb2, types_pb2

from tfod_tools.data.tfrecord import begins_like_tfrecord, read_complete_records
from tfod_tools.errors import TfodError
from tfod_tools.tensorboard.pr_curves import PLUGIN_NAME as PR_CURVES_PLUGIN
from tfod_tools.tensorboard.pr_curves import PRCurveSummary

__all__ = [
    "PRCurvePoint",
    "ReadStats",
    "ScalarPoint",
    "find_event_files",
    "is_event_file",
    "iter_events",
    "not_an_event_file",
    "read_pr_curves",
    "read_scalars",
    "scalar_series",
    "tensor_to_array",
    "to_rows",
]

SCALARS_PLUGIN = "scalars"


class ScalarPoint(NamedTuple):
    """One scalar value: which run and tag, at which step, when it was written."""

    run: str
    tag: str
    step: int
    value: float
    wall_time: float

    def to_dict(self) -> dict[str, Any]:
        """The point as a JSON-ready dict (``run, tag, step, value, wall_time``)."""
        return self._asdict()


@dataclass(frozen=True)
class PRCurvePoint:
    """One PR-curve summary (plugin ``pr_curves``) of a run, tag and step (cf. :class:`ScalarPoint`)."""

    run: str
    tag: str
    step: int
    wall_time: float
    curve: PRCurveSummary


@dataclass
class ReadStats:
    """What a read saw: files and records read, files that ended in a partial or damaged record,
    and files named like event files whose first record is not an event."""

    files: int = 0
    records: int = 0
    ended_early: list[Path] = field(default_factory=list)
    not_event_files: list[Path] = field(default_factory=list)


def is_event_file(path: str | Path) -> bool:
    """Whether TensorBoard treats ``path`` as an event file (its name contains ``tfevents``).

    >>> is_event_file("eval/events.out.tfevents.1700000000.host.12.0.v2"), is_event_file("x.sqlite")
    (True, False)
    """
    return "tfevents" in Path(path).name


def _event_file_order(path: Path) -> tuple[int, str]:
    parts = path.name.split(".")
    try:
        created = int(parts[parts.index("tfevents") + 1])
    except (ValueError, IndexError):
        created = 0
    return created, path.name


def find_event_files(root: str | Path) -> dict[str, list[Path]]:
    """Map each run under ``root`` to its event files, in reading order.

    Raises :class:`TfodError` when ``root`` does not exist. Runs are sorted by name.
    """
    base = Path(root)
    if not base.is_dir():
        raise TfodError(
            "directory not found", path=base, fix="pass the model directory (holding train/ and eval/)"
        )
    runs: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        files = [Path(dirpath) / name for name in filenames if is_event_file(name)]
        files = [f for f in files if f.is_file()]
        if files:
            run = Path(dirpath).relative_to(base).as_posix()
            runs[run] = sorted(files, key=_event_file_order)
    return dict(sorted(runs.items()))


def iter_events(
    path: str | Path, *, verify: bool = True, stats: ReadStats | None = None
) -> Iterator[event_pb2.Event]:
    """Yield the events of one event file, stopping quietly before a partial or damaged record.

    ``verify`` checks each record's data CRC as well as its length CRC.
    """
    file = Path(path)
    seen = stats if stats is not None else ReadStats()
    seen.files += 1
    records, complete = read_complete_records(file, verify=verify)
    if not records and not complete and not begins_like_tfrecord(file):
        seen.not_event_files.append(file)
        return
    for index, data in enumerate(records):
        try:
            event = event_pb2.Event.FromString(data)
        except DecodeError:
            event = None
        if index == 0 and (event is None or not event.ListFields()):
            seen.not_event_files.append(file)  # e.g. a tf.train.Example record file: no Event field set
            return
        if event is None:
            seen.ended_early.append(file)
            return
        seen.records += 1
        yield event
    if not complete:
        seen.ended_early.append(file)


def not_an_event_file(path: str | Path) -> TfodError:
    """The error for a file named like an event file that is not one (see :class:`ReadStats`).

    >>> print(not_an_event_file("eval/events.out.tfevents.1.x"))  # doctest: +ELLIPSIS
    eval/events.out.tfevents.1.x: not a TensorBoard event file (its first record is not ...
    """
    return TfodError(
        "not a TensorBoard event file (its first record is not a framed Event), though its name "
        "says tfevents",
        path=path,
        fix="remove or rename it (event files are what summary writers such as model_main_tf2 write)",
    )


_DTYPES: dict[int, str] = {
    types_pb2.DT_FLOAT: "<f4",
    types_pb2.DT_DOUBLE: "<f8",
    types_pb2.DT_HALF: "<f2",
    types_pb2.DT_INT8: "i1",
    types_pb2.DT_INT16: "<i2",
    types_pb2.DT_INT32: "<i4",
    types_pb2.DT_INT64: "<i8",
    types_pb2.DT_UINT8: "u1",
    types_pb2.DT_UINT16: "<u2",
    types_pb2.DT_UINT32: "<u4",
    types_pb2.DT_UINT64: "<u8",
    types_pb2.DT_BOOL: "?",
    types_pb2.DT_BFLOAT16: "<u2",
}


def _typed_values(tensor: tensor_pb2.TensorProto) -> Iterable[Any]:
    dtype = tensor.dtype
    if dtype == types_pb2.DT_FLOAT:
        return tensor.float_val
    if dtype == types_pb2.DT_DOUBLE:
        return tensor.double_val
    if dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        return tensor.half_val
    if dtype == types_pb2.DT_INT64:
        return tensor.int64_val
    if dtype == types_pb2.DT_UINT32:
        return tensor.uint32_val
    if dtype == types_pb2.DT_UINT64:
        return tensor.uint64_val
    if dtype == types_pb2.DT_BOOL:
        return tensor.bool_val
    return tensor.int_val


def tensor_to_array(tensor: tensor_pb2.TensorProto) -> npt.NDArray[Any]:
    """Decode a numeric ``TensorProto`` into a numpy array (bfloat16 becomes float32).

    As TensorFlow does, a typed value list shorter than the shape is padded with its last value.

    >>> t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5])
    >>> t.tensor_shape.dim.add(size=3)
    size: 3
    <BLANKLINE>
    >>> tensor_to_array(t).tolist()
    [0.5, 0.5, 0.5]
    """
    code = _DTYPES.get(tensor.dtype)
    if code is None:
        name = types_pb2.DataType.Name(tensor.dtype)
        raise ValueError(f"not a numeric tensor: {name}")
    shape = tuple(dim.size for dim in tensor.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        array = np.frombuffer(tensor.tensor_content, dtype=code)
    else:
        values = np.asarray(list(_typed_values(tensor)))
        if tensor.dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
            values = values.astype(np.uint16).view(code)
        array = values.astype(code) if values.size else np.zeros(0, dtype=code)
        if 0 < array.size < count:
            array = np.concatenate([array, np.full(count - array.size, array[-1], dtype=array.dtype)])
        elif array.size == 0:
            array = np.zeros(count, dtype=code)
    if tensor.dtype == types_pb2.DT_BFLOAT16:
        array = (array.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return array.reshape(shape)


def _scalar_from_tensor(tensor: tensor_pb2.TensorProto) -> float | None:
    # Fast paths for what tf.summary.scalar writes, then the general decoder.
    if tensor.dtype == types_pb2.DT_FLOAT and len(tensor.float_val) == 1:
        return float(tensor.float_val[0])
    if tensor.dtype == types_pb2.DT_DOUBLE and len(tensor.double_val) == 1:
        return float(tensor.double_val[0])
    try:
        array = tensor_to_array(tensor)
    except ValueError:
        return None
    return float(array.reshape(-1)[0]) if array.size == 1 else None


def _iter_run_events(
    root: str | Path, verify: bool, stats: ReadStats
) -> Iterator[tuple[str, Iterator[event_pb2.Event]]]:
    """Yield ``(run, its events, file after file)`` for every run under ``root``."""
    for run, files in find_event_files(root).items():
        yield run, (event for file in files for event in iter_events(file, verify=verify, stats=stats))


def _sorted_latest(latest: dict[tuple[str, str, int], Any]) -> list[Any]:
    return [latest[key] for key in sorted(latest)]


def read_scalars(
    logdir: str | Path, *, verify: bool = True, stats: ReadStats | None = None
) -> list[ScalarPoint]:
    """Every scalar of every run under ``logdir``, one point per ``(run, tag, step)``.

    ``logdir`` is a model directory (runs ``train``, ``eval``, ...) or one run's directory (run
    ``"."``). See the module docstring for the encodings read and how duplicates are resolved.
    """
    seen = stats if stats is not None else ReadStats()
    latest: dict[tuple[str, str, int], ScalarPoint] = {}
    for run, events in _iter_run_events(logdir, verify, seen):
        plugins: dict[str, str] = {}
        for event in events:
            if not event.HasField("summary"):
                continue
            step, wall_time = event.step, event.wall_time
            for value in event.summary.value:
                tag = value.tag
                if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                    plugins[tag] = value.metadata.plugin_data.plugin_name
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    number: float | None = value.simple_value
                elif kind == "tensor" and plugins.get(tag) == SCALARS_PLUGIN:
                    number = _scalar_from_tensor(value.tensor)
                else:
                    continue
                if number is None:
                    continue
                key = (run, tag, step)
                old = latest.get(key)
                if old is None or wall_time >= old.wall_time:
                    latest[key] = ScalarPoint(run, tag, step, number, wall_time)
    return _sorted_latest(latest)


def read_pr_curves(
    logdir: str | Path, *, verify: bool = True, stats: ReadStats | None = None
) -> list[PRCurvePoint]:
    """Every PR-curve summary (plugin ``pr_curves``) under ``logdir``, one per ``(run, tag, step)``."""
    seen = stats if stats is not None else ReadStats()
    latest: dict[tuple[str, str, int], PRCurvePoint] = {}
    for run, events in _iter_run_events(logdir, verify, seen):
        plugins: dict[str, str] = {}
        for event in events:
            for value in event.summary.value:
                if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                    plugins[value.tag] = value.metadata.plugin_data.plugin_name
                if plugins.get(value.tag) != PR_CURVES_PLUGIN or value.WhichOneof("value") != "tensor":
                    continue
                try:
                    curve = PRCurveSummary.from_array(tensor_to_array(value.tensor))
                except ValueError:
                    continue
                key = (run, value.tag, event.step)
                old = latest.get(key)
                if old is None or event.wall_time >= old.wall_time:
                    latest[key] = PRCurvePoint(run, value.tag, event.step, event.wall_time, curve)
    return _sorted_latest(latest)


def to_rows(points: Iterable[ScalarPoint]) -> list[dict[str, Any]]:
    """The points as JSON-ready dicts (``run, tag, step, value, wall_time``).

    >>> to_rows([ScalarPoint("train", "Loss/total_loss", 100, 0.5, 1.0)])
    [{'run': 'train', 'tag': 'Loss/total_loss', 'step': 100, 'value': 0.5, 'wall_time': 1.0}]
    """
    return [p.to_dict() for p in points]


def scalar_series(
    points: Iterable[ScalarPoint], run: str, tag: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Steps and values of one ``(run, tag)``, sorted by step.

    >>> pts = [ScalarPoint("eval", "a", 2, 0.5, 0.0), ScalarPoint("eval", "a", 1, 0.25, 0.0)]
    >>> steps, values = scalar_series(pts, "eval", "a")
    >>> steps.tolist(), values.tolist()
    ([1, 2], [0.25, 0.5])
    """
    chosen = sorted((p.step, p.value) for p in points if p.run == run and p.tag == tag)
    steps = np.array([s for s, _ in chosen], dtype=np.int64)
    values = np.array([v for _, v in chosen], dtype=np.float64)
    return steps, values
