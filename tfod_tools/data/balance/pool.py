"""The worker side of :mod:`tfod_tools.data.balance.write`: one image's copies, and the process pool.

A worker gets each image's *location* (file, offset, length; no bytes): it reads the record itself
(``pread`` at its offset), decodes the image and makes the augmented copies, each seeded from
``(seed, image index, copy index)`` only, and frames them (CRC-32C) itself; it returns only the
copies, spooled to a file next to the output when there are several workers.

The :class:`Runner` starts its ``W`` worker processes (``forkserver`` where available, with the
heavy modules preloaded, else ``spawn``; with ``W == 1`` everything runs in-process) on a background
thread, so the start-up overlaps the scan. At most ``4 W`` chunks are in flight, so memory stays
bounded; :meth:`Runner.images` yields the results in input order.

>>> import tempfile, pathlib
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> from tfod_tools.data.balance.recipes import load_recipe
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ds = write_synthetic_dataset(d, "shapes", train_images=1, eval_images=0, seed=0)
>>> size = ds.train_record.stat().st_size
>>> task = ImageTask(0, str(ds.train_record), 0, 0, size, repeats=3)
>>> with Runner(load_recipe("natural"), seed=0, workers=1) as runner:
...     [(res.index, len(res.copies), res.bad) for res in runner.images([task], d)]
[(0, 2, None)]
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tfod_tools.data.balance.augment import Augmenter, BadImageError, box_classes, decode_pixels
from tfod_tools.data.balance.recipes import Recipe
from tfod_tools.data.classes import ClassKey
from tfod_tools.data.records import ImageRecord
from tfod_tools.data.tfrecord import frame_payload, frame_record
from tfod_tools.errors import TfodError

__all__ = ["ImageResult", "ImageTask", "RecordFiles", "Runner", "augment_image"]

_CHUNK = 4  # images per task: amortises inter-process overhead, keeps the load balanced


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


def _process_one(task: ImageTask) -> ImageResult:
    return augment_image(task, _STATE["augmenter"], _STATE["seed"], _STATE["files"])


def augment_image(task: ImageTask, augmenter: Augmenter, seed: int, files: RecordFiles) -> ImageResult:
    """Read one image's frame, decode it and make its ``repeats - 1`` framed augmented copies.

    Each copy is seeded from ``(seed, task.index, copy)`` only; an image that does not decode comes
    back with :attr:`ImageResult.bad` set and no copies.
    """
    frame = files.frame(task.file, task.offset, task.length)
    record = ImageRecord.decode(frame_payload(frame))  # verified by scan()
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


def _chunks(tasks: Iterable[ImageTask], spool: str | None) -> Iterator[_Chunk]:
    """``tasks`` in chunks of :data:`_CHUNK`, in order (chunk ``n`` spools to ``spool/n.bin`` when set)."""
    it = iter(tasks)
    for n in itertools.count():
        batch = list(itertools.islice(it, _CHUNK))
        if not batch:
            return
        yield _Chunk(batch, None if spool is None else os.path.join(spool, f"{n}.bin"))


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

    def images(self, tasks: Iterable[ImageTask], near: Path) -> Iterator[ImageResult]:
        """Each task's :class:`ImageResult`, in the tasks' order (workers spool copies next to ``near``)."""
        yield from _results(self.map(_process_chunk, _chunks(tasks, self.spool_dir(near))))

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
