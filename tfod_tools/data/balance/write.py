"""Deterministic, parallel, sharded reading and writing of a balanced record set.

A :class:`Runner` runs work on ``W`` worker processes (``forkserver`` where available, with the
heavy modules preloaded, else ``spawn``; with ``W == 1`` everything runs in-process). The main
process only slices raw TFRecord frames out of the input files and writes the frames it gets back;
workers do the rest, in two passes:

1. :func:`scan` checks every record (both CRCs, by re-framing its data; the ``tf.train.Example``
   layout) and returns each image's box classes; nothing is written yet.
2. :func:`write_balanced`: a worker decodes the image, passes the original frame through unchanged
   and makes the augmented copies, each seeded from ``(seed, image index, copy index)`` only, and
   frames them (CRC-32C) itself. Results are consumed in input order and output record ``k`` goes to
   shard ``k % N``, so the shards are byte-identical whatever ``W`` is.

At most ``4 W`` chunks are in flight, so memory stays bounded. Every shard is written under a
temporary name and renamed when complete; on any error every shard (and group file) is dropped.

>>> import tempfile, pathlib
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> from tfod_tools.data.balance.recipes import load_recipe
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ds = write_synthetic_dataset(d, "xray-like", train_images=3, eval_images=0, seed=0)
>>> with Runner(load_recipe("aerial"), seed=0, workers=1) as runner:
...     items = scan(runner, [ds.train_record])
...     result = write_balanced(runner, [ds.train_record], [2, 1, 1], d / "out.record", shards=2)
>>> len(items), [s.records for s in result.shards], result.records
(3, [2, 2], 4)
"""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tfod_tools.data.balance.augment import Augmenter, BadImageError, box_classes, decode_pixels
from tfod_tools.data.balance.recipes import Recipe
from tfod_tools.data.example import ExampleDecodeError
from tfod_tools.data.records import ImageRecord
from tfod_tools.data.tfrecord import TFRecordWriter, expand_record_paths, frame_record, iter_records
from tfod_tools.errors import TfodError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = ["Runner", "ScanItem", "ShardInfo", "WriteResult", "scan", "write_balanced"]

ClassKey = int | str
_CHUNK = 4  # images per task: amortises inter-process overhead, keeps the load balanced


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
    """Pass 1 for one record: its box classes (label ids, or class texts without ids)."""

    file: str
    record_index: int
    classes: list[ClassKey]


@dataclass(frozen=True)
class _Frame:
    index: int
    file: str
    record_index: int
    frame: bytes
    repeats: int = 1


@dataclass
class _Result:
    index: int
    file: str
    record_index: int
    framed: list[bytes]
    classes: list[list[ClassKey]]
    dropped: dict[ClassKey, int]
    source_id: str
    bad: str | None = None


_STATE: dict[str, Any] = {}
_BAD_FRAME = "the file is damaged or not a TFRecord file; re-create it"
_BAD_EXAMPLE = "re-create the record file with the TF OD API layout"


class _FramedWriter(TFRecordWriter):
    """A :class:`TFRecordWriter` that appends frames made elsewhere and hashes what it writes."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.digest = hashlib.sha256()

    def write_framed(self, framed: bytes) -> None:
        """Append one record already framed by :func:`frame_record` (CRCs computed by a worker)."""
        if self._handle is None:
            raise TfodError("write after close", path=self.path)
        self._handle.write(framed)
        self.digest.update(framed)
        self.count += 1

    def info(self) -> ShardInfo:
        """Path, record count and SHA-256 of the bytes written."""
        return ShardInfo(str(self.path), self.count, self.digest.hexdigest())


def _init_worker(recipe: Recipe, seed: int) -> None:
    """Per-process set-up: one Augmenter, single-threaded OpenCV (the workers are the parallelism)."""
    import cv2

    cv2.setNumThreads(1)
    _STATE["augmenter"] = Augmenter(recipe)
    _STATE["seed"] = seed


def _check_frame(item: _Frame) -> tuple[ImageRecord | None, str | None]:
    """Verify a raw frame's CRCs and parse its Example: ``(record, None)`` or ``(None, error)``."""
    data = item.frame[12:-4]
    framed = frame_record(data)
    if framed[8:12] != item.frame[8:12]:
        return None, f"record {item.record_index}: length CRC mismatch"
    if framed[-4:] != item.frame[-4:]:
        return None, f"record {item.record_index}: data CRC mismatch"
    try:
        return ImageRecord.decode(data), None
    except (ExampleDecodeError, ValueError) as exc:
        return None, f"record {item.record_index}: not a TF OD API tf.train.Example ({exc})"


def _scan_chunk(items: list[_Frame]) -> list[tuple[list[ClassKey], str | None]]:
    out: list[tuple[list[ClassKey], str | None]] = []
    for item in items:
        record, error = _check_frame(item)
        out.append(([], error) if record is None else (box_classes(record), None))
    return out


def _process_one(task: _Frame) -> _Result:
    augmenter: Augmenter = _STATE["augmenter"]
    seed: int = _STATE["seed"]
    record = ImageRecord.decode(task.frame[12:-4])  # verified by scan()
    source_id = record.source_id or record.filename or f"record-{task.record_index}"
    result = _Result(task.index, task.file, task.record_index, [], [], {}, source_id)
    try:
        pixels = decode_pixels(record)
        copies = [
            augmenter.copy(record, pixels, seed=seed, index=task.index, copy=k)
            for k in range(1, task.repeats)
        ]
    except BadImageError as exc:
        result.bad = str(exc)
        return result
    result.framed.append(task.frame)  # the original, byte for byte
    result.classes.append(box_classes(record))
    for aug in copies:
        result.framed.append(frame_record(aug.record.encode()))
        result.classes.append(box_classes(aug.record))
        for key, n in aug.dropped.items():
            result.dropped[key] = result.dropped.get(key, 0) + n
    return result


def _process_chunk(tasks: list[_Frame]) -> list[_Result]:
    return [_process_one(task) for task in tasks]


def _frames(inputs: Sequence[str | Path], repeats: Sequence[int] | None = None) -> Iterator[list[_Frame]]:
    """Chunks of raw frames, in input order (framing and lengths checked by ``iter_records``)."""
    index = 0
    chunk: list[_Frame] = []
    for item in inputs:
        for file in expand_record_paths(item):
            with open(file, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None
                try:
                    offset = 0
                    for record_index, data in iter_records(file, verify=False):
                        end = offset + 16 + len(data)
                        frame = view[offset:end] if view is not None else b""
                        offset = end
                        if repeats is not None and index >= len(repeats):
                            raise TfodError("input has more records than the plan", path=file)
                        r = 1 if repeats is None else int(repeats[index])
                        chunk.append(_Frame(index, str(file), record_index, frame, r))
                        index += 1
                        if len(chunk) == _CHUNK:
                            yield chunk
                            chunk = []
                finally:
                    if view is not None:
                        view.close()
    if chunk:
        yield chunk
    if repeats is not None and index != len(repeats):
        raise TfodError(
            f"input has {index} records but the plan has {len(repeats)}", fix="re-run tfod balance"
        )


class Runner:
    """Runs chunks of work in order on ``workers`` processes (or in-process for one worker)."""

    def __init__(self, recipe: Recipe, *, seed: int = 0, workers: int = 1) -> None:
        if workers < 1:
            raise TfodError(f"workers must be >= 1, got {workers}")
        self.recipe, self.seed, self.workers = recipe, seed, workers
        self._pool: Any = None
        self._saved: tuple[dict[str, Any], int] | None = None

    def __enter__(self) -> Runner:
        if self.workers == 1:
            import cv2

            self._saved = (dict(_STATE), cv2.getNumThreads())
            _init_worker(self.recipe, self.seed)
            return self
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            # Import the heavy modules once in the fork server; workers fork from it ready to run.
            ctx.set_forkserver_preload([__name__, "albumentations", "cv2"])
        self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.recipe, self.seed))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.terminate() if exc is not None else self._pool.close()
            self._pool.join()
            self._pool = None
        if self._saved is not None:
            import cv2

            _STATE.clear()
            _STATE.update(self._saved[0])
            cv2.setNumThreads(self._saved[1])
            self._saved = None

    def map(self, fn: Callable[[Any], list[Any]], chunks: Iterable[Any]) -> Iterator[Any]:
        """``fn`` over ``chunks``, results flattened and in order."""
        if self._pool is None:
            for chunk in chunks:
                yield from fn(chunk)
            return
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(self._pool.apply_async(fn, (chunk,)))
            if len(pending) >= 4 * self.workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def scan(
    runner: Runner, inputs: Sequence[str | Path], progress: Callable[[int], None] | None = None
) -> list[ScanItem]:
    """Pass 1: verify every record and return its box classes; raises naming file and record."""
    items: list[ScanItem] = []
    where: deque[tuple[str, int]] = deque()  # (file, record index) of the frames handed out

    def remember(chunks: Iterator[list[_Frame]]) -> Iterator[list[_Frame]]:
        for chunk in chunks:
            where.extend((f.file, f.record_index) for f in chunk)
            yield chunk

    for classes, error in runner.map(_scan_chunk, remember(_frames(inputs))):
        file, record_index = where.popleft()
        if error is not None:
            fix = _BAD_EXAMPLE if "Example" in error else _BAD_FRAME
            raise TfodError(error, path=file, fix=fix)
        items.append(ScanItem(file, record_index, classes))
        if progress is not None:
            progress(1)
    return items


def write_balanced(
    runner: Runner,
    inputs: Sequence[str | Path],
    repeats: Sequence[int],
    out: str | Path,
    *,
    shards: int = 1,
    on_bad_image: str = "fail",
    groups: Mapping[int, str] | None = None,
    group_names: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Pass 2: write each input image ``repeats[i]`` times (original + augmented copies) to ``out``.

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
    try:
        writers = [_FramedWriter(name) for name in names]
        for key, path in (group_names or {}).items():
            group_writers[key] = _FramedWriter(path)
        k = 0
        for res in runner.map(_process_chunk, _frames(inputs, repeats)):
            if res.bad is not None:
                if on_bad_image == "fail":
                    raise TfodError(
                        f"record {res.record_index} (source id {res.source_id}): {res.bad}",
                        path=res.file,
                        fix="--on-bad-image skip leaves such images out",
                    )
                result.skipped.append(res.source_id)
            for framed, classes in zip(res.framed, res.classes, strict=True):
                writers[k % shards].write_framed(framed)
                k += 1
                _count(result, classes)
            if groups is not None and res.framed:
                group_writers[groups[res.index]].write_framed(res.framed[0])
            for cls, n in res.dropped.items():
                result.boxes_dropped[cls] = result.boxes_dropped.get(cls, 0) + n
            if progress is not None:
                progress(1)
        result.records = k
    except BaseException as exc:
        for writer in [*writers, *group_writers.values()]:
            writer.abort(exc)
        raise
    for writer in writers:
        writer.close()
    for writer in group_writers.values():
        writer.close()
    result.shards = [w.info() for w in writers]
    result.groups = {key: w.info() for key, w in group_writers.items()}
    return result


def _count(result: WriteResult, classes: list[ClassKey]) -> None:
    if not classes:
        result.negative_images += 1
        return
    for key in set(classes):
        result.images_by_class[key] = result.images_by_class.get(key, 0) + 1
    for key in classes:
        result.boxes_by_class[key] = result.boxes_by_class.get(key, 0) + 1
