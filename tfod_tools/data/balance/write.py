"""Deterministic, parallel, sharded writing of a balanced record set.

The main process streams the input records (already verified by the planning pass) in order and
hands small chunks of images to ``W`` worker processes (``forkserver`` where available, else
``spawn``; with ``W == 1`` everything runs in-process). A worker decodes the image, writes the
original record unchanged and makes its augmented copies, each seeded from ``(seed, image index,
copy index)`` only, and returns the framed TFRecord bytes. Results are consumed in input order, and
output record ``k`` goes to shard ``k % N``, so the shards are byte-identical whatever ``W`` is.
At most ``4 W`` chunks are in flight, so memory stays bounded. Every shard is written under a
temporary name and renamed when complete; on any error every shard (and group file) is dropped.

>>> import tempfile, pathlib
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> from tfod_tools.data.balance.recipes import load_recipe
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ds = write_synthetic_dataset(d, "xray-like", train_images=3, eval_images=0, seed=0)
>>> result = write_balanced([ds.train_record], [2, 1, 1], load_recipe("aerial"), d / "out.record",
...                         seed=0, shards=2)
>>> [s.records for s in result.shards], result.records
([2, 2], 4)
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.data.balance.augment import Augmenter, BadImageError, box_classes, decode_pixels
from tfod_tools.data.balance.recipes import Recipe
from tfod_tools.data.records import ImageRecord
from tfod_tools.data.tfrecord import TFRecordWriter, expand_record_paths, frame_record, iter_records
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import sha256_file

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = ["ShardInfo", "WriteResult", "write_balanced"]

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
class _Task:
    index: int
    file: str
    record_index: int
    data: bytes
    repeats: int


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


class _FramedWriter(TFRecordWriter):
    """A :class:`TFRecordWriter` that also appends records framed elsewhere (in a worker)."""

    def write_framed(self, framed: bytes) -> None:
        """Append one record already framed by :func:`frame_record` (CRCs computed by the worker)."""
        if self._handle is None:
            raise TfodError("write after close", path=self.path)
        self._handle.write(framed)
        self.count += 1


def _init_worker(recipe: Recipe, seed: int) -> None:
    """Per-process set-up: one Augmenter, single-threaded OpenCV (the workers are the parallelism)."""
    import cv2

    cv2.setNumThreads(1)
    _STATE["augmenter"] = Augmenter(recipe)
    _STATE["seed"] = seed


def _process_one(task: _Task) -> _Result:
    augmenter: Augmenter = _STATE["augmenter"]
    seed: int = _STATE["seed"]
    record = ImageRecord.decode(task.data)
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
    result.framed.append(frame_record(task.data))
    result.classes.append(box_classes(record))
    for aug in copies:
        result.framed.append(frame_record(aug.record.encode()))
        result.classes.append(box_classes(aug.record))
        for key, n in aug.dropped.items():
            result.dropped[key] = result.dropped.get(key, 0) + n
    return result


def _process_chunk(tasks: list[_Task]) -> list[_Result]:
    return [_process_one(task) for task in tasks]


def _chunks(inputs: Sequence[str | Path], repeats: Sequence[int]) -> Iterator[list[_Task]]:
    index = 0
    chunk: list[_Task] = []
    for item in inputs:
        for file in expand_record_paths(item):
            for record_index, data in iter_records(file, verify=False):
                if index >= len(repeats):
                    raise TfodError(
                        "input has more records than the plan", path=file, fix="re-run tfod balance"
                    )
                chunk.append(_Task(index, str(file), record_index, data, int(repeats[index])))
                index += 1
                if len(chunk) == _CHUNK:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk
    if index != len(repeats):
        raise TfodError(
            f"input has {index} records but the plan has {len(repeats)}", fix="re-run tfod balance"
        )


def _results(
    inputs: Sequence[str | Path], repeats: Sequence[int], recipe: Recipe, seed: int, workers: int
) -> Iterator[_Result]:
    if workers <= 1:
        import cv2

        threads = cv2.getNumThreads()
        saved = dict(_STATE)
        _init_worker(recipe, seed)
        try:
            for chunk in _chunks(inputs, repeats):
                yield from _process_chunk(chunk)
        finally:
            _STATE.clear()
            _STATE.update(saved)
            cv2.setNumThreads(threads)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        # Import the heavy modules once in the fork server; workers fork from it ready to run.
        ctx.set_forkserver_preload([__name__, "albumentations", "cv2"])
    with ctx.Pool(workers, initializer=_init_worker, initargs=(recipe, seed)) as pool:
        pending: deque[Any] = deque()
        for chunk in _chunks(inputs, repeats):
            pending.append(pool.apply_async(_process_chunk, (chunk,)))
            if len(pending) >= 4 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def write_balanced(
    inputs: Sequence[str | Path],
    repeats: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    seed: int = 0,
    shards: int = 1,
    workers: int = 1,
    on_bad_image: str = "fail",
    groups: Mapping[int, str] | None = None,
    group_names: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Write each input image ``repeats[i]`` times (original + augmented copies) to ``out``.

    ``out`` is one file when ``shards == 1``, else ``out-0000k-of-0000N``. With ``groups`` (image
    index -> group key) and ``group_names`` (group key -> file path), the originals are also written
    one file per group (for ``sample_from_datasets_weights``). ``progress(n)`` is called as input
    images complete. ``on_bad_image``: ``fail`` raises naming the file, record and source id;
    ``skip`` leaves the image out and lists it in :attr:`WriteResult.skipped`.
    """
    if on_bad_image not in ("skip", "fail"):
        raise TfodError(f"unknown --on-bad-image {on_bad_image!r}", fix="use skip or fail")
    if shards < 1 or workers < 1:
        raise TfodError(f"shards and workers must be >= 1 (got {shards}, {workers})")
    names = [str(out)] if shards == 1 else [f"{out}-{i:05d}-of-{shards:05d}" for i in range(shards)]
    writers: list[_FramedWriter] = []
    group_writers: dict[str, _FramedWriter] = {}
    result = WriteResult(shards=[])
    try:
        writers = [_FramedWriter(name) for name in names]
        for key, path in (group_names or {}).items():
            group_writers[key] = _FramedWriter(path)
        k = 0
        for res in _results(inputs, repeats, recipe, seed, workers):
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
    result.shards = [ShardInfo(str(w.path), w.count, sha256_file(w.path)) for w in writers]
    result.groups = {
        key: ShardInfo(str(w.path), w.count, sha256_file(w.path)) for key, w in group_writers.items()
    }
    return result


def _count(result: WriteResult, classes: list[ClassKey]) -> None:
    if not classes:
        result.negative_images += 1
        return
    for key in set(classes):
        result.images_by_class[key] = result.images_by_class.get(key, 0) + 1
    for key in classes:
        result.boxes_by_class[key] = result.boxes_by_class.get(key, 0) + 1
