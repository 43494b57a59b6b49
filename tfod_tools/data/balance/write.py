"""Deterministic, parallel, sharded reading and writing of a balanced record set.

Two passes over the input files:

1. :func:`scan` (in the calling process) reads every record once, checks both CRCs and the
   ``tf.train.Example`` layout, and returns where each record's frame lies in its file and the
   classes of its boxes; nothing is written yet. The plan needs every image's classes first.
2. :func:`write_balanced` hands each image's *location* (file, offset, length; no bytes) to a
   :class:`~tfod_tools.data.balance.pool.Runner`'s workers (:mod:`tfod_tools.data.balance.pool`),
   which make its augmented copies, each seeded from ``(seed, image index, copy index)`` only, and
   return only the copies. The main process writes the original frame, read from the input the same
   way, byte for byte, then the copies it got back. Results are consumed in input order and output
   record ``k`` goes to shard ``k % N``, so the shards are byte-identical whatever the worker count is.

Every shard is written under a temporary name and renamed when complete; on any error every shard
(and group file) is dropped.

>>> import tempfile, pathlib
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> from tfod_tools.data.balance.recipes import load_recipe
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ds = write_synthetic_dataset(d, "xray-like", train_images=3, eval_images=0, seed=0)
>>> items = scan([ds.train_record])
>>> with Runner(load_recipe("aerial"), seed=0, workers=1) as runner:
...     result = write_balanced(runner, items, [2, 1, 1], d / "out.record", shards=2)
>>> len(items), [s.records for s in result.shards], result.records
(3, [2, 2], 4)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.data.balance.augment import box_classes
from tfod_tools.data.balance.pool import ImageResult, ImageTask, RecordFiles, Runner, augment_image
from tfod_tools.data.classes import ClassKey
from tfod_tools.data.records import ImageRecord, decode_record
from tfod_tools.data.tfrecord import (
    TFRecordWriter,
    expand_record_paths,
    frame_length,
    iter_records,
    with_frame_offsets,
)
from tfod_tools.errors import TfodError

__all__ = [
    "ImageResult",
    "ImageTask",
    "RecordFiles",
    "Runner",
    "ScanItem",
    "ShardInfo",
    "WriteResult",
    "augment_image",
    "bad_image_error",
    "scan",
    "scan_file",
    "tally",
    "write_balanced",
]


@dataclass(frozen=True)
class ShardInfo:
    """One written shard: path, record count and SHA-256 of its bytes."""

    path: str
    records: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "records": self.records, "sha256": self.sha256}


@dataclass
class WriteResult:
    """What :func:`write_balanced` wrote and counted."""

    shards: list[ShardInfo]
    records: int = 0
    images_by_class: dict[ClassKey, int] = field(default_factory=dict)
    boxes_by_class: dict[ClassKey, int] = field(default_factory=dict)
    negative_images: int = 0
    boxes_dropped: dict[ClassKey, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    groups: dict[str, ShardInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanItem:
    """Pass 1 for one record: where its frame lies in its file, and its box classes.

    ``classes`` are label ids, or class texts for records without ids.
    """

    file: str
    record_index: int
    offset: int
    length: int
    classes: list[ClassKey]


class _FramedWriter(TFRecordWriter):
    """A :class:`TFRecordWriter` that appends frames made elsewhere and hashes what it writes."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.digest = hashlib.sha256()

    def write_framed(self, framed: bytes | memoryview) -> None:
        """Append one record already framed (by :func:`frame_record` or read from a record file)."""
        if self._handle is None:
            raise TfodError("write after close", path=self.path)
        self._handle.write(framed)
        self.digest.update(framed)
        self.count += 1

    def info(self) -> ShardInfo:
        """Path, record count and SHA-256 of the bytes written."""
        return ShardInfo(str(self.path), self.count, self.digest.hexdigest())


def scan(inputs: Sequence[str | Path], progress: Callable[[int], None] | None = None) -> list[ScanItem]:
    """Pass 1: verify every record (CRCs, Example layout); raises naming the file and record.

    >>> import tempfile, pathlib
    >>> from tfod_tools.data.synthetic import write_synthetic_dataset
    >>> ds = write_synthetic_dataset(pathlib.Path(tempfile.mkdtemp()), "shapes", train_images=2,
    ...                              eval_images=0, seed=0)
    >>> [(item.record_index, item.offset > 0 or item.record_index == 0) for item in scan([ds.train_record])]
    [(0, True), (1, True)]
    """
    items: list[ScanItem] = []
    for item in inputs:
        for file in expand_record_paths(item):
            for scanned in scan_file(file):
                items.append(scanned)
                if progress is not None:
                    progress(1)
    return items


def scan_file(file: str | Path, records: Iterable[tuple[int, bytes]] | None = None) -> Iterator[ScanItem]:
    """Pass 1 over one record file, record by record (see :func:`scan`); ``records``: its
    ``(index, bytes)`` read elsewhere (``tfod balance --beam``, through Beam's file systems)."""
    read = iter_records(file, verify=True) if records is None else records
    for record_index, data, offset in with_frame_offsets(read):
        record = decode_record(data, file, record_index)
        _check_finite_boxes(record, file, record_index)
        yield ScanItem(str(file), record_index, offset, frame_length(len(data)), box_classes(record))


def _check_finite_boxes(record: ImageRecord, file: str | Path, index: int) -> None:
    """A box with a NaN or infinite coordinate is refused: the originals are copied byte for byte,
    and such a box turns the API's loss into NaN.

    >>> rec = ImageRecord.from_pixels(b"", width=10, height=10, boxes=[[1, 1, 5, float("nan")]],
    ...                               classes=[1], label_map={1: "a"}, source_id="img-3")
    >>> _check_finite_boxes(rec, "train.record", 7)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: train.record: record 7 (source id img-3): box 0 has a NaN/inf coordinate ...
    """
    columns = (record.xmin, record.ymin, record.xmax, record.ymax)
    for k, box in enumerate(zip(*columns, strict=False)):
        if not all(math.isfinite(v) for v in box):
            names = ("xmin", "ymin", "xmax", "ymax")
            detail = ", ".join(f"{n} {v}" for n, v in zip(names, box, strict=True))
            raise TfodError(
                f"record {index} (source id {record.source_id or record.filename or '?'}): box {k} has a "
                f"NaN/inf coordinate ({detail})",
                path=file,
                fix="fix or drop that box before balancing (tfod inspect lists such boxes as degenerate_box)",
            )


def write_balanced(
    runner: Runner,
    items: Sequence[ScanItem],
    repeats: Sequence[int],
    out: str | Path,
    *,
    shards: int = 1,
    on_bad_image: str = "fail",
    groups: Mapping[int, str] | None = None,
    group_names: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Pass 2: write each scanned image ``repeats[i]`` times (original + augmented copies) to ``out``.

    ``out`` is one file when ``shards == 1``, else ``out-0000k-of-0000N``. With ``groups`` (image
    index -> group key) and ``group_names`` (group key -> file path), the originals are also written
    one file per group (for ``sample_from_datasets_weights``). ``progress(n)`` is called as input
    images complete. ``on_bad_image``: ``fail`` raises naming the file, record and source id;
    ``skip`` leaves the image out and lists it in :attr:`WriteResult.skipped`.
    """
    if on_bad_image not in ("skip", "fail"):
        raise TfodError(f"unknown --on-bad-image {on_bad_image!r}", fix="use skip or fail")
    if shards < 1:
        raise TfodError(f"shards must be >= 1, got {shards}")
    names = [str(out)] if shards == 1 else [f"{out}-{i:05d}-of-{shards:05d}" for i in range(shards)]
    writers: list[_FramedWriter] = []
    group_writers: dict[str, _FramedWriter] = {}
    result = WriteResult(shards=[])
    files = RecordFiles()
    try:
        writers = [_FramedWriter(name) for name in names]
        for key, path in (group_names or {}).items():
            group_writers[key] = _FramedWriter(path)
        k = 0
        for res in runner.images(_tasks(items, repeats), Path(out).parent):
            item = items[res.index]
            if res.bad is not None and on_bad_image == "fail":
                raise bad_image_error(item, res)
            if res.bad is None:
                original = files.frame(item.file, item.offset, item.length)
                writers[k % shards].write_framed(original)  # the original, byte for byte
                if groups is not None:
                    group_writers[groups[res.index]].write_framed(original)
                k += 1
                for copy in res.copies:
                    writers[k % shards].write_framed(copy)
                    k += 1
            tally(result, res)
            if progress is not None:
                progress(1)
        result.records = k
    except BaseException as exc:
        for writer in [*writers, *group_writers.values()]:
            writer.abort(exc)
        raise
    finally:
        files.close()
    for writer in writers:
        writer.close()
    for writer in group_writers.values():
        writer.close()
    result.shards = [w.info() for w in writers]
    result.groups = {key: w.info() for key, w in group_writers.items()}
    return result


def _tasks(items: Sequence[ScanItem], repeats: Sequence[int]) -> Iterator[ImageTask]:
    """Each scanned image's task, in input order."""
    if len(items) != len(repeats):
        raise TfodError(
            f"input has {len(items)} records but the plan has {len(repeats)}", fix="re-run tfod balance"
        )
    for i, it in enumerate(items):
        yield ImageTask(i, it.file, it.record_index, it.offset, it.length, int(repeats[i]))


def bad_image_error(item: ScanItem, res: ImageResult) -> TfodError:
    """The error of an image that does not decode under ``--on-bad-image fail``."""
    return TfodError(
        f"record {item.record_index} (source id {res.source_id}): {res.bad}",
        path=item.file,
        fix="--on-bad-image skip leaves such images out",
    )


def tally(result: WriteResult, res: ImageResult) -> None:
    """Count one image's written records (or its skip) and dropped boxes into ``result``.

    Called in input order, so the counts' key order (and the manifest) does not depend on the runner.
    """
    if res.bad is not None:
        result.skipped.append(res.source_id)
    else:
        for classes in res.classes:
            _count(result, classes)
    for cls, n in res.dropped.items():
        result.boxes_dropped[cls] = result.boxes_dropped.get(cls, 0) + n


def _count(result: WriteResult, classes: list[ClassKey]) -> None:
    if not classes:
        result.negative_images += 1
        return
    for key in set(classes):
        result.images_by_class[key] = result.images_by_class.get(key, 0) + 1
    for key in classes:
        result.boxes_by_class[key] = result.boxes_by_class.get(key, 0) + 1
