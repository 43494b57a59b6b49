"""``tfod evaluate --model EXPORTED --beam``: the local
:func:`tfod_tools.evaluation.exported.evaluate_exported` with the inference spread over Beam workers.

Everything but the model calls is the local path's: the driver checks the inputs, reads the ground
truth, orders the images by the eval input's keys, and, once the detections are back, scores them
with the same metrics engine, compares with the source checkpoint and writes the same outputs
(``metrics.json``, ``detections/``). :func:`beam_detector` is the one piece it replaces (the
``detect`` hook of ``evaluate_exported``):

1. each eval record file is read in a worker (one element per file: every frame verified) and where
   each record's bytes are (file, offset, length) is reshuffled; the images stay in the file;
2. a DoFn loads the export once per worker (``DoFn.setup``:
   :class:`tfod_tools.odapi.exported.ExportedModel`), reads each record's bytes
   (:class:`~tfod_tools.beam.shards.SliceReader`), decodes each image as the local path does
   (:func:`~tfod_tools.odapi.exported.decode_image`) and runs the local per-image step
   (:func:`~tfod_tools.odapi.exported.detect_images` of that one image), keyed by the image's rank
   in the eval input's key order, the local numbering;
3. the per-image detections come back to the driver and are put in rank order: the same rows the
   local loop builds, so the metrics equal the local ones.

A damaged record fails the job with its file and record index (a :class:`~tfod_tools.errors.TfodError`
carried back from the worker).

Remote paths (``gs://`` and any scheme Beam has a file system for; an unknown one exits 2 up front,
:func:`check_paths`): the export, the eval records, the label map, the pipeline and ``--out`` may each
be one. :func:`staged_inputs` gives the driver (the local ``evaluate_exported``) local stand-ins in a
private temporary folder, always removed: the export directory copied whole (every file under it but
a previous run's ``eval/``; the side files beside a ``saved_model`` folder or ``.tflite`` file too),
the label map and pipeline copied, and each remote record file replaced by a ground-truth stand-in
(its records streamed through ``FileSystems``, written locally without ``image/encoded`` when the
record stores its size; the driver reads only the annotations and source ids). Without
``--records``, the eval records and label map that the pipeline names (``--pipeline``, else the
export's ``pipeline.config``) are staged the same way when one of them is remote. The workers read
the ORIGINAL records through ``FileSystems`` (the hook maps each stand-in back to its url) and copy
a remote export into a temporary folder of their own in ``DoFn.setup`` (removed in ``teardown``).
A remote ``--out`` (or the default ``DIR/eval/FORMAT`` beside a remote export) is evaluated into
the temporary folder, then copied by :func:`~tfod_tools.beam.io.publish_tree` (a scratch sibling,
then renamed into place; see there what is atomic on an object store), with ``OUT.log`` beside it;
the paths in ``metrics.json`` and the ``--json`` document are the remote ones.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from tfod_tools.beam import require_beam, worker_errors
from tfod_tools.beam.inspect import fetch_one
from tfod_tools.beam.io import (
    check_filesystems,
    copy_tree_to_local,
    has_scheme,
    iter_records_at,
    publish_tree,
    read_bytes,
    record_files,
    tree_files,
    url,
    write_bytes_atomic,
)
from tfod_tools.beam.options import new_pipeline, pipeline_options
from tfod_tools.beam.shards import SliceReader, Spilled
from tfod_tools.data.example import decode_example, encode_example
from tfod_tools.data.records import decode_record
from tfod_tools.data.tfrecord import frame_length, payload_span, with_frame_offsets, write_records
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.exported import (
    METRICS_JSON,
    Detector,
    ExportedEvaluation,
    default_out,
    log_path,
    pipeline_config,
)
from tfod_tools.evaluation.parity import source_step
from tfod_tools.odapi.exported import DetectionRows, ExportedModel, decode_image, detect_images

__all__ = ["Staged", "beam_detector", "check_paths", "fetch_export", "staged_inputs"]

COMMAND = "tfod evaluate --model --beam"

Detected = tuple[int, tuple[DetectionRows, float]]
"""``(rank, (that image's detection rows, seconds in the model call))``."""


def _read(item: tuple[int, str], offsets: Sequence[int]) -> Iterator[tuple[int, Spilled]]:
    """Where each record of one file is (its bytes inside its frame; each frame verified here), keyed
    by its index among all the eval records (the local numbering). The images' bytes stay in the
    file: only where they are goes through the runner, and the worker that runs the model reads them."""
    position, path = item
    with worker_errors():
        for index, data, at in with_frame_offsets(iter_records_at(path)):
            yield offsets[position] + index, (path, *payload_span(at, frame_length(len(data))))


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
        self.copy: str | None = None

    def setup(self) -> None:
        self.reader = SliceReader()
        path: str | Path = self.model_path
        if has_scheme(path):  # a remote export: this worker's own local copy
            self.copy = tempfile.mkdtemp(prefix="tfod-beam-model-")
            with worker_errors():
                path = fetch_export(path, self.copy)
        self.model = ExportedModel.open(path).start()

    def teardown(self) -> None:
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()
        self.model = None
        if self.copy is not None:
            shutil.rmtree(self.copy, ignore_errors=True)
            self.copy = None

    def process(self, item: tuple[int, Spilled]) -> Iterator[Detected]:
        index, where = item
        rank = self.ranks.get(index)
        if rank is None:  # not an image of this evaluation (cannot happen: every record is one)
            return
        position = int(np.searchsorted(self.offsets, index, side="right")) - 1
        assert self.model is not None
        with worker_errors():
            data = self.reader.read(where)
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
    """The up-front check of the command's paths (the export, records, label map, pipeline, output):
    a ``scheme://`` path whose scheme no Beam file system here handles names what to install
    (:func:`~tfod_tools.beam.io.check_filesystems`); local paths and known schemes pass.

    >>> check_paths(["export", None, "eval.record", "/tmp/x"])
    >>> check_paths(["nosuch://b/export"])
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: nosuch://b/export: tfod evaluate --model --beam: Beam has no file \
system for nosuch:// here (fix: use a local path or a scheme Beam has (gs://, s3://, ...), with its \
extra installed on the driver and the workers)
    """
    check_filesystems(COMMAND, paths)


_SIDE_FILES = ("label_map.pbtxt", "pipeline.config", "export.json")
"""What :class:`~tfod_tools.odapi.exported.ExportedModel` reads beside a model."""


def fetch_export(model: str | Path, into: str | Path) -> Path:
    """Copy the remote export ``model`` (an export directory, a SavedModel directory or a ``.tflite``
    file) into the local folder ``into``; returns the local path to open in its place. The copy
    keeps the folder holding ``model`` as ``into/NAME`` (so the side files and the default output
    keep their places); a previous run's ``eval/`` under an export directory is left out.

    >>> import os
    >>> d = tempfile.mkdtemp(); os.makedirs(f"{d}/exp/saved_model/variables")
    >>> for name in ["exp/export.json", "exp/saved_model/saved_model.pb", "exp/eval/old/x"]:
    ...     os.makedirs(os.path.dirname(f"{d}/{name}"), exist_ok=True); _ = open(f"{d}/{name}", "w").write("")
    >>> local = fetch_export(f"{d}/exp", f"{d}/copy"); local.name, local.parent.parent == Path(d, "copy")
    ('exp', True)
    >>> tree_files(local)
    ['export.json', 'saved_model/saved_model.pb']
    >>> fetch_export(f"{d}/nothing", f"{d}/copy2")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: ...nothing: no exported model here (fix: pass an export directory \
(with saved_model/), a SavedModel directory or a .tflite file)
    """
    text = url(model).rstrip("/")
    parent, _, name = text.rpartition("/")
    root = Path(into) / (parent.rpartition("/")[2] or "model").replace(":", "_")
    if name == "" or parent == "":
        raise TfodError("no exported model here", path=text, fix=_FIX_EXPORT)
    files = [rel for rel in tree_files(text) if not rel.startswith("eval/")]
    if not files and not name.lower().endswith(".tflite"):
        raise TfodError("no exported model here", path=text, fix=_FIX_EXPORT)
    if files:
        copy_tree_to_local(text, root / name, files)
    if not files or name == "saved_model":  # the side files live beside a .tflite / saved_model/
        beside = [n for n in _SIDE_FILES if _has_file(f"{parent}/{n}")]
        if not files:
            if not _has_file(text):
                raise TfodError("no exported model here", path=text, fix=_FIX_EXPORT)
            beside.append(name)
        copy_tree_to_local(parent, root, beside)
    return root / name


_FIX_EXPORT = "pass an export directory (with saved_model/), a SavedModel directory or a .tflite file"


def _has_file(path: str) -> bool:
    """Whether ``path`` is a file on its file system (not a folder, not missing)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        return bool(FileSystems.exists(path)) and not tree_files(path)
    except Exception:  # BeamIOError
        return False


def _ground_truth_only(data: bytes, file: str, index: int) -> bytes:
    """A record without its image bytes when it stores its size (all the ground-truth reader and the
    source ids need); else as it is. A record that is no Example fails here, naming ``file``."""
    record = decode_record(data, file, index)
    if record.width <= 0 or record.height <= 0:
        return data  # the reader takes the size from the image header
    features = decode_example(data)
    features.pop("image/encoded", None)
    return encode_example(features)


@dataclass
class Staged:
    """The driver's local stand-ins of the command's paths (see :func:`staged_inputs`)."""

    model: Path
    pipeline: Path | None
    records: str | None
    """The eval record files, comma-separated (remote ones by their stand-ins)."""
    label_map: Path | None
    out: Path | None
    """Where the driver writes (a temporary folder for a remote ``--out``)."""
    model_url: str
    """What the workers open: the remote url, or the local path."""
    remote_out: str | None = None
    detect: Detector | None = None
    originals: dict[str, str] = field(default_factory=dict)
    """Stand-in record file -> its remote url."""
    roots: tuple[str, str] | None = None
    """``(local copy's folder, remote folder)`` of a remote export."""

    def remote_of(self, path: str | Path) -> str:
        """What the workers read for the file the driver read as ``path``."""
        return self.originals.get(str(path), str(path))

    def _pairs(self) -> list[tuple[str, str]]:
        """``(local, remote)`` of the folders that stand in for remote ones: the output folder
        first, then the export copy's."""
        pairs = [] if self.remote_out is None or self.out is None else [(str(self.out), self.remote_out)]
        return pairs + ([self.roots] if self.roots else [])

    def named(self, error: TfodError) -> TfodError:
        """``error`` with every stand-in's path in it put back as the user named it (the error of a
        local reader that read a stand-in)."""
        message, path = error.message, error.path
        pairs = [*self.originals.items(), *self._pairs()]
        for local, remote in sorted(pairs, key=lambda kv: -len(kv[0])):
            message = message.replace(local, remote)
            path = None if path is None else path.replace(local, remote)
        if (message, path) == (error.message, error.path):
            return error
        return TfodError(message, path=path, fix=error.fix)

    def shown(self, path: str | Path) -> str:
        """``path`` as the user knows it: under the export copy or the output folder -> remote."""
        text = str(path)
        for local, remote in self._pairs():
            if text == local or text.startswith(local + "/"):
                return remote + text[len(local) :]
        return text

    def publish(self, result: ExportedEvaluation) -> dict[str, Any]:
        """After the local evaluation: the remote paths into ``metrics.json`` and a remote output
        copied into place; returns the ``--json`` fields that change (``model``, ``out``,
        ``detections_path``, ``tf_log``)."""
        fixed = {
            "model": self.shown(result.model),
            "out": self.shown(result.out),
            "detections_path": self.shown(result.detections_path),
        }
        if self.roots is None and self.remote_out is None:
            return {}
        metrics = Path(result.out) / METRICS_JSON
        doc = json.loads(metrics.read_text(encoding="utf-8"))
        doc.update(fixed)
        text = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        if self.remote_out is None:
            write_bytes_atomic(str(metrics), text)  # a local --out: the model's remote path
            return fixed
        metrics.write_bytes(text)
        publish_tree(result.out, self.remote_out)
        log = log_path(Path(result.out))
        if log.is_file():
            write_bytes_atomic(f"{self.remote_out}.log", log.read_bytes())
        return {**fixed, "tf_log": f"{self.remote_out}.log" if log.is_file() else None}


def _check_remote_out(target: str, model: ExportedModel) -> None:
    """The local rule of ``evaluate_exported`` (never write into the source model directory) for a
    remote output."""
    found = source_step(model)
    if found is not None:
        source = url(found[0]).rstrip("/")
        if target == source or target.startswith(source + "/"):
            raise TfodError(
                "the output directory is inside the source model directory",
                path=target,
                fix="pass another --out (the model directory is never written)",
            )


def _copied(staged: Staged, scratch: str, name: str, text: str) -> Path:
    """A local copy of the remote file ``text`` in ``scratch/name/`` (its stand-in, in ``originals``)."""
    local = Path(scratch, name, text.rpartition("/")[2])
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(read_bytes(text))
    staged.originals[str(local)] = text
    return local


def _staged_records(staged: Staged, scratch: str, items: Sequence[str]) -> str:
    """``items`` (record files, globs, ``PREFIX@N``) comma-joined as the driver reads them: the files
    of a remote one by their ground-truth stand-ins (:func:`_ground_truth_only`), a local one as it is."""
    files = []
    for item in items:
        if not has_scheme(item):
            files.append(item)
            continue
        for remote in record_files(item):
            local = Path(scratch, "records", str(len(staged.originals)), remote.rpartition("/")[2])
            local.parent.mkdir(parents=True)
            write_records(local, (_ground_truth_only(d, remote, i) for i, d in iter_records_at(remote)))
            staged.originals[str(local)] = remote
            files.append(str(local))
    return ",".join(files)


def _pipeline_inputs(staged: Staged, scratch: str, model: ExportedModel) -> None:
    """No ``--records``: the eval records and label map of the pipeline the local path reads (the
    ``--pipeline`` stand-in, else ``pipeline.config`` beside the (copied) export). When its first
    eval reader's ``input_path`` or ``label_map_path`` has a scheme, they become ``staged.records``
    and (without ``--label-map``) ``staged.label_map``, as if passed as options: remote ones by their
    stand-ins, local ones as the local checks expand them (:func:`~tfod_tools.odapi.checks.check_records`;
    the label map checked as there). All local: nothing changes (the local checks read the pipeline)."""
    from tfod_tools.odapi import pipeline as pipeline_lib
    from tfod_tools.odapi.checks import check_label_map, check_num_classes, check_records

    path = pipeline_config(model, staged.pipeline)
    if not path.is_file():
        return  # the local path's error (no pipeline.config beside the model)
    config = pipeline_lib.load_pipeline(path)
    readers = [reader for role, reader in pipeline_lib.input_readers(config) if role == "eval"]
    if not readers or readers[0].WhichOneof("input_reader") != "tf_record_input_reader":
        return
    patterns = list(readers[0].tf_record_input_reader.input_path)
    label_map = str(readers[0].label_map_path)
    if not patterns or not any(has_scheme(p) for p in [*patterns, label_map]):
        return
    check_paths([*patterns, label_map])
    staged.records = _staged_records(staged, scratch, check_records(config, path, ("eval",))["eval"])
    if staged.label_map is None:
        remote = has_scheme(label_map)
        local = str(_copied(staged, scratch, "config-label_map", label_map)) if remote else label_map
        check_num_classes(config, check_label_map(local, path, "eval"), path, label_map)
        staged.label_map = Path(local)


@contextlib.contextmanager
def staged_inputs(
    beam_args: Sequence[str],
    model: str | Path,
    *,
    pipeline: str | Path | None = None,
    records: str | None = None,
    label_map: str | Path | None = None,
    out: str | Path | None = None,
) -> Iterator[Staged]:
    """The command's paths as the driver reads them, and the Beam ``detect`` hook (``.detect``),
    for ``tfod evaluate --model --beam`` (see the module docstring). The paths and the pipeline
    options are checked before anything is read; the temporary folder is removed on the way out.
    Call :meth:`Staged.publish` with the result before leaving. Without ``records``, remote eval
    records or label map named in the pipeline become ``.records`` / ``.label_map`` stand-ins
    (:func:`_pipeline_inputs`). An error about a stand-in names the remote path (:meth:`Staged.named`).

    >>> with staged_inputs([], "nosuch://b/export"):
    ...     pass
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: nosuch://b/export: tfod evaluate --model --beam: Beam has no file \
system for nosuch:// here (fix: use a local path or a scheme Beam has (gs://, s3://, ...), with its \
extra installed on the driver and the workers)
    """
    require_beam()
    items = [] if records is None else [r.strip() for r in records.split(",") if r.strip()]
    check_paths([model, pipeline, *items, label_map, out])
    pipeline_options(beam_args)
    scratch = tempfile.mkdtemp(prefix="tfod-beam-eval-")
    try:
        staged = Staged(
            model=Path(model),
            pipeline=None if pipeline is None else Path(pipeline),
            records=records,
            label_map=None if label_map is None else Path(label_map),
            out=None if out is None else Path(out),
            model_url=str(model),
        )
        if has_scheme(model):
            staged.model_url = url(model).rstrip("/")
            staged.model = fetch_export(staged.model_url, Path(scratch, "model"))
            local_parent = staged.model.parent
            staged.roots = (str(local_parent), staged.model_url.rpartition("/")[0])
        try:
            for name, value in (("pipeline", pipeline), ("label_map", label_map)):
                if value is not None and has_scheme(value):
                    setattr(staged, name, _copied(staged, scratch, name, url(value)))
            if any(has_scheme(item) for item in items):
                staged.records = _staged_records(staged, scratch, items)
            opened = ExportedModel.open(staged.model)
            if records is None:
                _pipeline_inputs(staged, scratch, opened)
            if out is None and staged.roots is not None:
                out = staged.shown(default_out(opened))
            if out is not None and has_scheme(out):
                staged.remote_out = url(out).rstrip("/")
                _check_remote_out(staged.remote_out, opened)
                staged.out = Path(scratch, "out", staged.remote_out.rpartition("/")[2])
            staged.detect = beam_detector(beam_args, staged=staged)
            yield staged
        except TfodError as error:  # a local reader's error about a stand-in: name the remote file
            named = staged.named(error)
            if named is error:
                raise
            raise named from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def beam_detector(
    beam_args: Sequence[str] = (),
    *,
    paths: Iterable[str | Path | None] = (),
    staged: Staged | None = None,
) -> Detector:
    """The ``detect`` hook of :func:`~tfod_tools.evaluation.exported.evaluate_exported` that runs the
    model calls on Beam (``beam_args``: the pipeline options, checked here, before anything runs).

    The hook takes ``(model, eval record files, record index of each image in rank order)`` and
    returns ``(rows, detections per image in rank order, seconds in the model calls)``. ``paths``:
    the command's paths, checked by :func:`check_paths`. ``staged``: the driver's stand-ins of
    remote paths (:func:`staged_inputs`): the workers read the original records and export.
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
        read = [str(f) if staged is None else staged.remote_of(f) for f in files]
        opened = str(model.path) if staged is None or not has_scheme(staged.model_url) else staged.model_url
        p = new_pipeline(options)
        found = (
            p
            | "Files" >> beam.Create(list(enumerate(read)))
            | "Read" >> beam.FlatMap(_read, offsets)
            | "Spread" >> beam.Reshuffle()
            | "Detect" >> beam.ParDo(_Detect(opened, read, offsets, ranks))
            | "All" >> beam.combiners.ToList()
        )
        collected: list[Detected] = fetch_one(p, found, options)
        if len(collected) != len(order):
            raise RuntimeError(f"{len(collected)} images came back of {len(order)}")
        return _in_rank_order(collected)

    return detect
