"""Deterministic, parallel, sharded reading and writing of a balanced record set.

Two passes over the input files:

1. :func:`scan` (in the calling process) reads every record once, checks both CRCs and the
   ``tf.train.Example`` layout, and returns where each record's frame lies in its file and the
   classes of its boxes; nothing is written yet. The plan needs every image's classes first.
2. :func:`write_balanced` hands each image's *location* (file, offset, length; no bytes) to a
   :class:`Runner`'s workers. A worker reads the record itself (``pread`` at its offset), decodes
   the image and makes the augmented copies, each seeded from ``(seed, image index, copy index)``
   only, and frames them (CRC-32C) itself; it returns only the copies. The main process writes the
   original frame, read from the input the same way, byte for byte, then the copies it got
   back. Results are consumed in input order and output record ``k`` goes to shard ``k % N``, so the
   shards are byte-identical whatever the worker count is.

The :class:`Runner` starts its ``W`` worker processes (``forkserver`` where available, with the
heavy modules preloaded, else ``spawn``; with ``W == 1`` everything runs in-process) on a background
thread, so the start-up overlaps the scan. At most ``4 W`` chunks are in flight, so memory stays
bounded. Every shard is written under a temporary name and renamed when complete; on any error every
shard (and group file) is dropped.

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
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tfod_tools.data.balance.augment import Augmenter, BadImageError, box_classes, decode_pixels
from tfod_tools.data.balance.recipes import Recipe
from tfod_tools.data.records import ImageRecord, decode_record
from tfod_tools.data.tfrecord import TFRecordWriter, expand_record_paths, frame_record, iter_records
from tfod_tools.errors import TfodError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

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
    """Pass 1 for one record: where its frame lies in its file, and its box classes.

    ``classes`` are label ids, or class texts for records without ids.
    """

    file: str
    record_index: int
    offset: int
    length: int
    classes: list[ClassKey]


@dataclass(frozen=True)
class ImageTask:
    """Pass 2 for one image: its index in the input order, where its frame lies, its planned repeats."""

    index: int
    file: str
    record_index: int
    offset: int
    length: int
    repeats: int


@dataclass(frozen=True)
class _Chunk:
    tasks: list[ImageTask]
    spool: str | None  # where the worker writes the chunk's copies; None: return them inline


@dataclass
class ImageResult:
    """What :func:`augment_image` made of one image (``bad``: why it does not decode)."""

    index: int
    copies: list[bytes | memoryview]  # framed augmented copies (the original is written by the main process)
    classes: list[list[ClassKey]]  # the original's, then each copy's
    dropped: dict[ClassKey, int]
    source_id: str
    bad: str | None = None
    spooled: list[int] = field(default_factory=list)  # lengths of the copies left in the spool file


_STATE: dict[str, Any] = {}


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


class RecordFiles:
    """Record files opened for reading on first use (``pread`` by offset) and closed together.

    ``pread`` copies the bytes straight from the page cache: no page faults on a mapping, no seek.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def frame(self, file: str, offset: int, length: int) -> bytes:
        """The ``length`` bytes at ``offset`` of ``file``."""
        fd = self._fds.get(file)
        if fd is None:
            fd = self._fds[file] = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise TfodError("the file changed while tfod balance was reading it", path=file)
        return data

    def close(self) -> None:
        """Close every file."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _init_worker(recipe: Recipe, seed: int) -> None:
    """Per-process set-up: one Augmenter, single-threaded OpenCV (the workers are the parallelism)."""
    import cv2

    cv2.setNumThreads(1)
    _STATE["augmenter"] = Augmenter(recipe)
    _STATE["seed"] = seed
    _STATE["files"] = RecordFiles()


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


def scan_file(file: str | Path) -> Iterator[ScanItem]:
    """Pass 1 over one record file, record by record (see :func:`scan`)."""
    offset = 0
    for record_index, data in iter_records(file, verify=True):
        record = decode_record(data, file, record_index)
        _check_finite_boxes(record, file, record_index)
        length = len(data) + 16
        yield ScanItem(str(file), record_index, offset, length, box_classes(record))
        offset += length


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


def _process_one(task: ImageTask) -> ImageResult:
    return augment_image(task, _STATE["augmenter"], _STATE["seed"], _STATE["files"])


def augment_image(task: ImageTask, augmenter: Augmenter, seed: int, files: RecordFiles) -> ImageResult:
    """Read one image's frame, decode it and make its ``repeats - 1`` framed augmented copies.

    Each copy is seeded from ``(seed, task.index, copy)`` only; an image that does not decode comes
    back with :attr:`ImageResult.bad` set and no copies.
    """
    frame = files.frame(task.file, task.offset, task.length)
    record = ImageRecord.decode(frame[12:-4])  # verified by scan()
    source_id = record.source_id or record.filename or f"record-{task.record_index}"
    result = ImageResult(task.index, [], [], {}, source_id)
    try:
        pixels = decode_pixels(record)
        copies = [
            augmenter.copy(record, pixels, seed=seed, index=task.index, copy=k)
            for k in range(1, task.repeats)
        ]
    except BadImageError as exc:
        result.bad = str(exc)
        return result
    result.classes.append(box_classes(record))
    for aug in copies:
        result.copies.append(frame_record(aug.record.encode()))
        result.classes.append(box_classes(aug.record))
        for key, n in aug.dropped.items():
            result.dropped[key] = result.dropped.get(key, 0) + n
    return result


def _warm_up() -> None:
    """A no-op task: makes the executor start a worker (and run its initializer) now."""


def _process_chunk(chunk: _Chunk) -> tuple[list[ImageResult], str | None]:
    """Process a chunk; with a spool path, the copies go to that file instead of back by pipe.

    Large results sent back through the pool's single result pipe serialise the workers (one
    writer at a time, 64 KiB per wake-up); a file write into the page cache does not wait.
    """
    results = [_process_one(task) for task in chunk.tasks]
    if chunk.spool is not None:
        with open(chunk.spool, "wb") as handle:
            for res in results:
                for copy in res.copies:
                    handle.write(copy)
                res.spooled = [len(copy) for copy in res.copies]
                res.copies = []
    return results, chunk.spool


def _results(chunks: Iterable[tuple[list[ImageResult], str | None]]) -> Iterator[ImageResult]:
    """Each chunk's results in order, with spooled copies read back."""
    for results, spool in chunks:
        if spool is not None:
            _take_spool(spool, results)
        yield from results


def _take_spool(path: str, results: list[ImageResult]) -> None:
    """Move the copies a worker spooled to ``path`` back into ``results`` and delete the file."""
    if not any(res.spooled for res in results):
        os.unlink(path)
        return
    with open(path, "rb") as handle:
        data = memoryview(handle.read())
    os.unlink(path)
    offset = 0
    for res in results:
        for length in res.spooled:
            res.copies.append(data[offset : offset + length])
            offset += length


def _chunks(items: Sequence[ScanItem], repeats: Sequence[int], spool: str | None) -> Iterator[_Chunk]:
    """Chunks of work, in input order (chunk ``n`` spools to ``spool/n.bin`` when ``spool`` is set)."""
    if len(items) != len(repeats):
        raise TfodError(
            f"input has {len(items)} records but the plan has {len(repeats)}", fix="re-run tfod balance"
        )
    for n, start in enumerate(range(0, len(items), _CHUNK)):
        tasks = [
            ImageTask(i, it.file, it.record_index, it.offset, it.length, int(repeats[i]))
            for i, it in enumerate(items[start : start + _CHUNK], start)
        ]
        yield _Chunk(tasks, None if spool is None else os.path.join(spool, f"{n}.bin"))


class Runner:
    """Runs chunks of work in order on ``workers`` processes (or in-process for one worker).

    The worker processes start on a background thread when the runner is entered; the first
    :meth:`map` waits for them.
    """

    def __init__(self, recipe: Recipe, *, seed: int = 0, workers: int = 1) -> None:
        if workers < 1:
            raise TfodError(f"workers must be >= 1, got {workers}")
        self.recipe, self.seed, self.workers = recipe, seed, workers
        self._pool: Any = None
        self._starter: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._saved: tuple[dict[str, Any], int] | None = None
        self._spool: str | None = None

    def spool_dir(self, near: Path) -> str | None:
        """A private directory next to ``near`` where workers leave results (None in-process).

        Removed, with anything left in it, when the runner exits (after the workers stopped).
        """
        if self.workers == 1:
            return None
        if self._spool is None:
            self._spool = tempfile.mkdtemp(prefix=".tfod-balance-spool-", dir=near)
        return self._spool

    def __enter__(self) -> Runner:
        if self.workers == 1:
            import cv2

            self._saved = (dict(_STATE), cv2.getNumThreads())
            _init_worker(self.recipe, self.seed)
            return self
        self._starter = threading.Thread(target=self._start_pool, name="tfod-balance-pool", daemon=True)
        self._starter.start()
        return self

    def _start_pool(self) -> None:
        try:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if "forkserver" in methods:
                # Import the heavy modules once in the fork server; workers fork from it ready to run.
                ctx.set_forkserver_preload([__name__, "albumentations", "cv2"])
            pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.recipe, self.seed)
            )
            # Start every worker now (the executor otherwise starts them on demand).
            for future in [pool.submit(_warm_up) for _ in range(self.workers)]:
                future.result()
            self._pool = pool
        except BaseException as exc:  # re-raised in the caller's thread by _ready()
            self._start_error = exc

    def _ready(self) -> Any:
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        if self._start_error is not None:
            raise self._start_error
        return self._pool

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc is not None)
            self._pool = None
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None
        if self._saved is not None:
            import cv2

            _STATE["files"].close()
            _STATE.clear()
            _STATE.update(self._saved[0])
            cv2.setNumThreads(self._saved[1])
            self._saved = None

    def map(self, fn: Callable[[Any], Any], chunks: Iterable[Any]) -> Iterator[Any]:
        """``fn`` over ``chunks``, results in order."""
        if self.workers == 1:
            yield from map(fn, chunks)
            return
        pool = self._ready()
        pending: deque[Any] = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(fn, chunk))
                if len(pending) >= 4 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise TfodError(
                "a worker process died (killed, or out of memory)",
                fix="run again with fewer --workers, or free memory",
            ) from None


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
    spool = runner.spool_dir(Path(out).parent)
    try:
        writers = [_FramedWriter(name) for name in names]
        for key, path in (group_names or {}).items():
            group_writers[key] = _FramedWriter(path)
        k = 0
        for res in _results(runner.map(_process_chunk, _chunks(items, repeats, spool))):
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
