"""One ``tfod predict`` run: an exported model over images or records, its detections written whole.

:func:`predict` checks everything it can before TensorFlow loads (the inputs exist, ``--out`` is
new or empty, the label map agrees with the model: :func:`check_classes`), loads the model
(:class:`tfod_tools.odapi.exported.ExportedModel`), then streams the images: a reader thread
decodes the next images while the model runs, a drawing thread writes the annotated copies. An
image that does not decode is listed and skipped (``on_bad_image="fail"``: a :class:`TfodError`,
and nothing is written). Everything goes to a temporary directory beside ``out`` that is renamed
onto it at the end:

- ``detections.json``: COCO results (``annotations``) with the ``images`` (id, file name, width,
  height) and ``categories``; ``tfod metrics --dt`` reads it;
- ``detections.csv``: ``file, class, score, xmin, ymin, xmax, ymax`` (pixels of the original image);
- ``images/``: the annotated copies (boxes and ``class score`` labels), unless ``draw=False``;
- ``groundtruth.json`` (records only): the records' ground truth as COCO, same image ids, so
  ``tfod metrics --gt OUT/groundtruth.json --dt OUT/detections.json`` scores the run;
- ``predict.json``: what ran (model, inputs, threshold), counts, the skipped images, timings.

>>> PredictOptions(model=Path("m"), out=Path("o"), images="imgs/*.jpg").source
'imgs/*.jpg'
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.coco import coco_ground_truth
from tfod_tools.errors import TfodError
from tfod_tools.odapi.exported import ExportedModel, ImageDetections, decode_image
from tfod_tools.odapi.label_map import LabelMap, read_label_map
from tfod_tools.predict.draw import draw_detections, save_image
from tfod_tools.predict.inputs import (
    InputImage,
    display_names,
    image_files,
    read_file_images,
    read_record_images,
)

__all__ = ["ON_BAD_IMAGE", "PredictOptions", "PredictResult", "check_classes", "predict"]

ON_BAD_IMAGE = ("skip", "fail")
"""``--on-bad-image`` choices (``tfod convert``'s, with ``skip`` the default here)."""
_PREFETCH = 8
_SWITCH_INTERVAL = 0.0005
"""Seconds between GIL hand-overs while the reader and drawing threads run (Python's default: 0.005).

The model's thread gives up the GIL on every TensorFlow call; with the default, getting it back from
a reader or drawer running Python costs up to 5 ms a time (measured: ~3 ms per image at 128 px,
against under 1 ms in the bare loop; docs/benchmarks.md "Predict")."""


@dataclass(frozen=True)
class PredictOptions:
    """What to run on what, and where the outputs go (see the module docstring)."""

    model: Path
    out: Path
    images: str | None = None
    records: str | None = None
    score_threshold: float = 0.5
    label_map: Path | None = None
    draw: bool = True
    on_bad_image: str = "skip"

    @property
    def source(self) -> str:
        """The images or records given."""
        return str(self.images if self.images is not None else self.records)


@dataclass
class PredictResult:
    """What a run did."""

    out: Path
    model: str
    images: int = 0
    detections: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        """Images per second over the inference loop (decoding and drawing overlap it)."""
        loop = self.seconds.get("loop", 0.0)
        return self.images / loop if loop > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (and ``predict.json``)."""
        return {
            "out": str(self.out),
            "model": self.model,
            "images": self.images,
            "detections": self.detections,
            "skipped": list(self.skipped),
            "files": list(self.files),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "images_per_second": round(self.images_per_second, 2),
        }


def check_classes(model: ExportedModel, label_map: LabelMap | None, label_map_path: Path | None) -> None:
    """The label map (``--label-map`` or the export's own) must name exactly the model's classes.

    Its ids are 1..N with N the model's ``num_classes`` (when known); a ``--label-map`` beside an
    export that has its own must give every id the same name. :class:`TfodError` otherwise.
    """
    chosen = label_map if label_map is not None else model.label_map
    where = label_map_path if label_map is not None else model.label_map_path
    if chosen is None:
        return
    fix = "pass the label map the model was trained with (--label-map)"
    ids = sorted(chosen.ids)
    if model.num_classes is not None and len(ids) != model.num_classes:
        raise TfodError(
            f"the model {model.path} has {model.num_classes} classes but the label map has {len(ids)}",
            path=where,
            fix=fix,
        )
    if ids != list(range(1, len(ids) + 1)):
        raise TfodError(f"label map ids {ids} are not 1..{len(ids)}", path=where, fix=fix)
    if label_map is not None and model.label_map is not None:
        mine, theirs = label_map.categories(), model.label_map.categories()
        for class_id in sorted(set(mine) | set(theirs)):
            if mine.get(class_id) != theirs.get(class_id):
                raise TfodError(
                    f"class {class_id} is {mine.get(class_id)!r} here but {theirs.get(class_id)!r} in the "
                    f"export's {model.label_map_path}",
                    path=where,
                    fix=fix,
                )


def _check_out(out: Path) -> None:
    if out.is_file():
        raise TfodError("--out is a file", path=out, fix="name a new directory")
    if out.is_dir() and any(out.iterdir()):
        raise TfodError("--out is not empty", path=out, fix="name a new (or empty) directory")


def _records(spec: str) -> list[str]:
    from tfod_tools.data.tfrecord import expand_record_paths

    files = [str(p) for p in expand_record_paths(spec)]
    if not files:
        raise TfodError("no record files match", path=spec, fix="pass a TFRecord file, glob or PREFIX@N")
    return files


def _count_records(files: list[str]) -> int:
    from tfod_tools.data.tfrecord import iter_records

    return sum(1 for file in files for _ in iter_records(file))


def _prefetched(items: Iterator[Any], depth: int = _PREFETCH) -> Generator[Any, None, None]:
    """``items``, read ahead by a thread (decoding overlaps inference); its errors re-raised here.

    Closing the generator (the run ends, fails or is interrupted) stops the thread and waits for it:
    it finishes at most the image it is reading.

    >>> reader = _prefetched(iter(range(100)), depth=2)
    >>> next(reader), next(reader)
    (0, 1)
    >>> reader.close()
    >>> [t.name for t in threading.enumerate() if t.name == "tfod-predict-reader"]
    []
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def fill() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # handed over to the consumer
            buffer.put(exc)

    thread = threading.Thread(target=fill, name="tfod-predict-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                buffer.get_nowait()  # room for its last put (done, or an error)
        thread.join()


def _annotated_name(image: InputImage, used: set[str]) -> str:
    stem = image.name.replace("\\", "/").lstrip("/").replace("..", "_")
    base, dot, ext = stem.rpartition(".")
    stem = (
        base if dot and ext.lower() in ("jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp") else stem
    )
    name = f"{stem}{image.suffix}"
    if name in used:
        name = f"{stem}-{image.image_id}{image.suffix}"
    used.add(name)
    return name


def _categories(model: ExportedModel, label_map: LabelMap | None) -> dict[int, str]:
    chosen = label_map if label_map is not None else model.label_map
    if chosen is not None:
        return chosen.categories()
    return {i: str(i) for i in range(1, (model.num_classes or 0) + 1)}


def _xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def predict(
    options: PredictOptions,
    *,
    on_start: Callable[[int], None] | None = None,
    on_image: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    model: ExportedModel | None = None,
    threads: bool = True,
) -> PredictResult:
    """Run the model over the inputs and write the outputs (see the module docstring).

    ``on_start(total_images)`` once the model is loaded, ``on_image(1)`` after each image (a
    progress bar), ``on_note(text)`` for status lines. ``model``: one already loaded (then
    ``options.model`` is only recorded). ``threads=False``: read, run and draw each image in turn in
    this thread (the same outputs, byte for byte; slower).
    """
    if (options.images is None) == (options.records is None):
        raise TfodError("pass --images or --records (one of them)", fix="name the images to run the model on")
    if not 0.0 <= options.score_threshold <= 1.0:
        raise TfodError(f"--score-threshold must be in [0, 1], got {options.score_threshold}")
    if options.on_bad_image not in ON_BAD_IMAGE:
        raise TfodError(f"unknown --on-bad-image {options.on_bad_image!r}", fix="use skip or fail")
    out = Path(options.out)
    _check_out(out)
    started = time.perf_counter()
    if options.images is not None:
        files = image_files(options.images)
        names = display_names(files, options.images)
        total = len(files)
        record_files: list[str] = []
    else:
        record_files = _records(options.records or "")
        total = _count_records(record_files)
    label_map = None if options.label_map is None else read_label_map(options.label_map)
    if model is None:
        model = ExportedModel.open(options.model)
    check_classes(model, label_map, options.label_map)  # before TensorFlow loads, when the config tells
    if on_note is not None and not model.started:
        on_note(f"loading {model.kind} {model.path}")
    model.start()
    check_classes(model, label_map, options.label_map)  # the SavedModel's outputs tell num_classes too
    categories = _categories(model, label_map)
    loaded = time.perf_counter()
    if on_start is not None:
        on_start(total)
    if options.images is not None:
        inputs = read_file_images(files, names, decode_image)
    else:
        inputs = read_record_images(record_files, decode_image)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    result = PredictResult(out=out, model=str(model.path))
    try:
        with _pipelined(threads):
            reader = _prefetched(inputs) if threads else None
            try:
                streamed = inputs if reader is None else reader
                rows, images_json = _run(
                    model, streamed, options, categories, staging, result, on_image, threads
                )
            finally:
                if reader is not None:
                    reader.close()  # the reader thread ends here, also on an error or Ctrl-C
        finished = time.perf_counter()
        result.seconds = {"load": loaded - started, "loop": finished - loaded}
        _write_outputs(staging, rows, images_json, categories, options, record_files, label_map, result)
        result.seconds["total"] = time.perf_counter() - started
        (staging / "predict.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _run(
    model: ExportedModel,
    inputs: Iterator[InputImage],
    options: PredictOptions,
    categories: dict[int, str],
    staging: Path,
    result: PredictResult,
    on_image: Callable[[int], None] | None,
    threads: bool = True,
) -> tuple[list[tuple[InputImage, ImageDetections]], list[dict[str, Any]]]:
    rows: list[tuple[InputImage, ImageDetections]] = []
    images_json: list[dict[str, Any]] = []
    used: set[str] = set()
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfod-predict-draw") as drawer:
        for image in inputs:
            if image.pixels is None:
                if options.on_bad_image == "fail":
                    raise TfodError(
                        f"image does not decode: {image.problem}",
                        path=image.name,
                        fix="fix or remove the image, or pass --on-bad-image skip",
                    )
                result.skipped.append({"image": image.name, "reason": str(image.problem)})
            else:
                found = model.detect_one(image.pixels).above(options.score_threshold)
                # The pixels are no longer needed once drawn: keep the row small.
                rows.append((InputImage(image.image_id, image.name, suffix=image.suffix), found))
                images_json.append(
                    {
                        "id": image.image_id,
                        "file_name": image.name,
                        "width": image.width,
                        "height": image.height,
                    }
                )
                if options.draw:
                    target = staging / "images" / _annotated_name(image, used)
                    if not threads:
                        _draw(image, found, categories, target)
                    else:
                        pending.append(drawer.submit(_draw, image, found, categories, target))
                        if len(pending) > _PREFETCH:
                            pending.pop(0).result()
            if on_image is not None:
                on_image(1)
        for job in pending:
            job.result()
    result.images = len(rows)
    result.detections = sum(len(found) for _, found in rows)
    return rows, images_json


@contextlib.contextmanager
def _pipelined(threads: bool) -> Iterator[None]:
    """While the threads run: the GIL handed over every :data:`_SWITCH_INTERVAL` (restored after)."""
    before = sys.getswitchinterval()
    if threads and before > _SWITCH_INTERVAL:
        sys.setswitchinterval(_SWITCH_INTERVAL)
    try:
        yield
    finally:
        if threads and before > _SWITCH_INTERVAL:
            sys.setswitchinterval(before)


def _draw(image: InputImage, found: ImageDetections, categories: dict[int, str], target: Path) -> None:
    assert image.pixels is not None
    drawn = draw_detections(image.pixels, found.boxes, found.classes, found.scores, categories)
    save_image(drawn, target)


def _write_outputs(
    staging: Path,
    rows: list[tuple[InputImage, ImageDetections]],
    images_json: list[dict[str, Any]],
    categories: dict[int, str],
    options: PredictOptions,
    record_files: list[str],
    label_map: LabelMap | None,
    result: PredictResult,
) -> None:
    annotations: list[dict[str, Any]] = []
    with open(staging / "detections.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "class", "score", "xmin", "ymin", "xmax", "ymax"])
        for image, found in rows:
            for box, cls, score in zip(found.boxes, found.classes, found.scores, strict=True):
                annotations.append(
                    {
                        "image_id": image.image_id,
                        "category_id": int(cls),
                        "bbox": _xywh(box),
                        "score": float(score),
                    }
                )
                name = categories.get(int(cls), str(int(cls)))
                writer.writerow([image.name, name, f"{float(score):.6f}", *(f"{float(v):.2f}" for v in box)])
    document = {
        "images": images_json,
        "categories": [{"id": i, "name": n} for i, n in sorted(categories.items())],
        "annotations": annotations,
    }
    (staging / "detections.json").write_text(json.dumps(document), encoding="utf-8")
    result.files = ["detections.json", "detections.csv"]
    if record_files:
        from tfod_tools.data.records import read_annotated_set

        truth = read_annotated_set(record_files, label_map if label_map is not None else categories or None)
        (staging / "groundtruth.json").write_text(json.dumps(coco_ground_truth(truth)), encoding="utf-8")
        result.files.append("groundtruth.json")
    if options.draw:
        result.files.append("images/")
    result.files.append("predict.json")
