"""``tfod evaluate --model EXPORTED --beam``: the local
:func:`tfod_tools.evaluation.exported.evaluate_exported` with the inference spread over Beam workers.

Everything but the model calls is the local path's: the driver checks the inputs, reads the ground
truth, orders the images by the eval input's keys, and, once the detections are back, scores them
with the same metrics engine, compares with the source checkpoint and writes the same outputs
(``metrics.json``, ``detections/``). :func:`beam_detector` is the one piece it replaces (the
``detect`` hook of ``evaluate_exported``):

1. each eval record file is read in a worker (one element per file) and its records reshuffled;
2. a DoFn loads the export once per worker (``DoFn.setup``: :class:`tfod_tools.odapi.exported.ExportedModel`),
   decodes each image as the local path does (:func:`~tfod_tools.odapi.exported.decode_image`) and runs
   the local per-image step (:func:`~tfod_tools.odapi.exported.detect_images` of that one image),
   keyed by the image's rank in the eval input's key order, the local numbering;
3. the per-image detections come back to the driver and are put in rank order: the same rows the
   local loop builds, so the metrics equal the local ones.

A damaged record fails the job with its file and record index (a :class:`~tfod_tools.errors.TfodError`
carried back from the worker).

The workers read the records through Beam's ``FileSystems`` (any scheme), but the driver (the local
``evaluate_exported``) opens the export, reads the eval records and the label map and writes its
outputs with the local readers, so a ``scheme://`` path is refused up front (:func:`check_paths`):
copy the export and records to a local or mounted disk (gcsfuse, NFS) for now.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import apache_beam as beam
import numpy as np

from tfod_tools.beam import require_beam, worker_errors
from tfod_tools.beam.inspect import fetch_one
from tfod_tools.beam.io import check_filesystems, has_scheme, iter_records_at, url
from tfod_tools.beam.options import pipeline_options
from tfod_tools.data.records import decode_record
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.exported import Detector
from tfod_tools.odapi.exported import DetectionRows, ExportedModel, decode_image, detect_images

__all__ = ["beam_detector", "check_paths"]

COMMAND = "tfod evaluate --model --beam"

Detected = tuple[int, tuple[DetectionRows, float]]
"""``(rank, (that image's detection rows, seconds in the model call))``."""


def _read(item: tuple[int, str], offsets: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """Every record of one file, keyed by its index among all the eval records (the local numbering)."""
    position, path = item
    with worker_errors():
        for index, data in iter_records_at(path):
            yield offsets[position] + index, data


class _Detect(beam.DoFn):
    """One record -> its detections, the export loaded once per worker."""

    def __init__(
        self, model: str, files: Sequence[str], offsets: Sequence[int], ranks: dict[int, int]
    ) -> None:
        self.model_path = model
        self.files = list(files)
        self.offsets = list(offsets)
        self.ranks = ranks
        self.model: ExportedModel | None = None

    def setup(self) -> None:
        self.model = ExportedModel.open(self.model_path).start()

    def process(self, item: tuple[int, bytes]) -> Iterator[Detected]:
        index, data = item
        rank = self.ranks.get(index)
        if rank is None:  # not an image of this evaluation (cannot happen: every record is one)
            return
        position = int(np.searchsorted(self.offsets, index, side="right")) - 1
        assert self.model is not None
        with worker_errors():
            record = decode_record(data, self.files[position], index - self.offsets[position])
            pixels = decode_image(record.encoded)
        began = time.perf_counter()
        rows = detect_images(self.model, [(rank, pixels)], score_threshold=0.0)
        yield rank, (rows, time.perf_counter() - began)


def _in_rank_order(found: list[Detected]) -> tuple[DetectionRows, list[int], float]:
    """The per-image rows concatenated in rank order (the local loop's rows), the detections per
    image in that order, the seconds spent in the model calls."""
    found = sorted(found, key=lambda item: item[0])
    parts = [rows for _, (rows, _) in found]
    rows = DetectionRows(
        np.concatenate([np.zeros(0, np.int64), *(p.image_ids for p in parts)]),
        np.concatenate([np.zeros((0, 4), np.float64), *(p.boxes for p in parts)]),
        np.concatenate([np.zeros(0, np.int64), *(p.classes for p in parts)]),
        np.concatenate([np.zeros(0, np.float64), *(p.scores for p in parts)]),
    )
    return rows, [len(p) for p in parts], sum(seconds for _, (_, seconds) in found)


def check_paths(paths: Iterable[str | Path | None]) -> None:
    """The up-front refusal of a remote path (the export, records, label map, output): an unknown
    scheme names what to install (:func:`~tfod_tools.beam.io.check_filesystems`); a known one is
    refused because the driver reads and writes them with the local readers (not yet gs:// etc.).

    >>> check_paths(["export", None, "eval.record"])
    >>> check_paths(["s3://b/export"])
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: s3://b/export: tfod evaluate --model --beam reads the export and the \
records and writes its outputs in the driver with the local readers (not yet gs:// etc.) (fix: copy \
them to a local or mounted disk (gcsfuse, NFS) and run there)
    """
    items = list(paths)
    check_filesystems(COMMAND, items)
    for path in items:
        if path is not None and has_scheme(path):
            raise TfodError(
                f"{COMMAND} reads the export and the records and writes its outputs in the driver with "
                "the local readers (not yet gs:// etc.)",
                path=url(path),
                fix="copy them to a local or mounted disk (gcsfuse, NFS) and run there",
            )


def beam_detector(beam_args: Sequence[str] = (), *, paths: Iterable[str | Path | None] = ()) -> Detector:
    """The ``detect`` hook of :func:`~tfod_tools.evaluation.exported.evaluate_exported` that runs the
    model calls on Beam (``beam_args``: the pipeline options, checked here, before anything runs).

    The hook takes ``(model, eval record files, record index of each image in rank order)`` and
    returns ``(rows, detections per image in rank order, seconds in the model calls)``. ``paths``:
    the command's paths, checked by :func:`check_paths`.
    """
    require_beam()
    check_paths(paths)
    options = pipeline_options(beam_args)

    def detect(
        model: ExportedModel, files: Sequence[str], order: Sequence[int]
    ) -> tuple[DetectionRows, list[int], float]:
        sizes = [sum(1 for _ in iter_records_at(f, verify=False)) for f in files]
        offsets = [int(v) for v in np.cumsum([0, *sizes[:-1]])]
        ranks = {int(index): rank for rank, index in enumerate(order, start=1)}
        p = beam.Pipeline(options=options)
        found = (
            p
            | "Files" >> beam.Create(list(enumerate(str(f) for f in files)))
            | "Read" >> beam.FlatMap(_read, offsets)
            | "Spread" >> beam.Reshuffle()
            | "Detect" >> beam.ParDo(_Detect(str(model.path), [str(f) for f in files], offsets, ranks))
            | "All" >> beam.combiners.ToList()
        )
        collected: list[Detected] = fetch_one(p, found, options)
        if len(collected) != len(order):
            raise RuntimeError(f"{len(collected)} images came back of {len(order)}")
        return _in_rank_order(collected)

    return detect
