"""``tfod convert --beam``: the local conversion as a Beam pipeline, with byte-identical outputs.

The driver reads the annotation file and checks every option and output exactly as the local run
does (:func:`tfod_tools.data.convert.prepare`), before anything is submitted. The images travel to
the workers as pickled chunk files in a scratch folder beside ``--out`` (not inside the job graph,
which would not hold 377k images), one chunk file per element, spread over the workers; in the
worker, each image of a chunk is one element: loaded, verified and encoded by
the same :func:`~tfod_tools.data.convert.convert_image` the local run calls; its record's bytes
go to the bundle's :class:`~tfod_tools.beam.shards.Spill` file in the scratch folder and only where
they are travels on through the runner (the writer reads them back). The local writer
assigns the kept images round robin in input order, so the pipeline gathers the kept images'
``(index, where its record is)`` pairs (small, and added up per bundle before they leave the
worker), ranks them by index and writes shard ``rank % N`` ordered by index with
:class:`~tfod_tools.beam.shards.WriteShards`; the per-image counts are added up in input order into
the same :class:`~tfod_tools.data.convert.ConversionSummary`. The label map is written by the
driver once the shards are in place, as the local run writes it after its records.

Inputs and outputs may be on any Beam file system (``gs://``, ...; the scheme is checked up front,
:func:`~tfod_tools.beam.io.check_filesystems`). The annotation readers are the local ones, so the
driver gives them a local stand-in of a remote input (:class:`_Inputs`): the annotation files
copied, the image folder listed with ``FileSystems.match`` and stood in by empty files of the same
names. The workers read each image's bytes through ``FileSystems`` from its real path; the shards,
the label map and the summary are written through ``FileSystems`` too.

>>> import tempfile, pathlib, numpy as np
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("x.png", "y.png"):
...     Image.fromarray(np.zeros((10, 10), np.uint8)).save(d / name)
>>> _ = (d / "labels.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\\n"
...                                   "x.png,10,10,dot,1,1,4,4\\ny.png,10,10,dot,2,2,9,9\\n")
>>> summary = convert_beam("csv", d / "labels.csv", d / "out" / "t.record", num_shards=2)
>>> summary.images, [p.name for p in summary.outputs], summary.label_map.name
(2, ['t.record-00000-of-00002', 't.record-00001-of-00002'], 'label_map.pbtxt')
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfod_tools.beam import run_pipeline, worker_errors
from tfod_tools.beam.io import (
    _matched,
    check_filesystems,
    has_scheme,
    read_bytes,
    remove_tree,
    scratch_dir,
    url,
    write_bytes_atomic,
)
from tfod_tools.beam.options import new_pipeline, pipeline_options
from tfod_tools.beam.shards import Spill, Spilled, WriteShards
from tfod_tools.data.convert import ConversionSummary, ImageResult, SourceImage, WritePlan, prepare
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import output_parents
from tfod_tools.odapi.label_map import LabelMap, parse_label_map

__all__ = ["CHUNK", "convert_beam"]

CHUNK = 100
"""Images per chunk file: the unit the runner spreads over the workers (one element each)."""

Converted = tuple[int, Spilled | None, ImageResult]  # (image index, where its record is or None, counts)


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm"}
"""Files of a remote folder the driver stands in by empty files (the readers only look them up)."""

Located = tuple[SourceImage, str | None]
"""An image, and its real path on a remote file system (None: a local file, read as the local run does)."""


def _listing(folder: str) -> list[tuple[str, int]]:
    """``(path, size)`` of every file under a remote ``folder``."""
    return sorted((url(m.path), m.size_in_bytes) for m in _matched(f"{folder.rstrip('/')}/**"))


class _Inputs:
    """Local stand-ins of remote inputs for the driver's annotation readers (a temporary folder).

    :meth:`file` copies one remote file; :meth:`folder` lists a remote folder and copies its files,
    except images, which it stands in by empty files of the same names. :meth:`remote_of` maps a
    stand-in back to the real path the workers read."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tfod-beam-inputs-")
        self.roots: list[tuple[str, str]] = []  # (local folder, remote folder)

    def _new_root(self, remote: str) -> str:
        local = os.path.join(self.dir, str(len(self.roots)))
        os.makedirs(local)
        self.roots.append((local, remote.rstrip("/")))
        return local

    def folder(self, remote: str) -> Path:
        remote = url(remote).rstrip("/")
        local = self._new_root(remote)
        files = _listing(remote)
        if not files:
            raise TfodError("folder not found (nothing under it)", path=remote, fix="check the path")
        for path, _ in files:
            rel = path[len(remote) + 1 :]
            target = os.path.join(local, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                if Path(rel).suffix.lower() not in _IMAGE_SUFFIXES:
                    handle.write(read_bytes(path))
        return Path(local)

    def file(self, remote: str) -> Path:
        remote = url(remote)
        for local, root in self.roots:
            if remote.startswith(f"{root}/"):
                return Path(local, *remote[len(root) + 1 :].split("/"))
        parent, name = remote.rsplit("/", 1)
        target = Path(self._new_root(parent), name)
        target.write_bytes(read_bytes(remote))
        return target

    def remote_of(self, path: Path) -> str | None:
        text = str(path)
        for local, root in self.roots:
            if text.startswith(local + os.sep):
                return f"{root}/{Path(text).relative_to(local).as_posix()}"
        return None

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _is_file(path: str) -> bool:
    return any(url(m.path) == path for m in _matched(path))


def _images(path: str) -> Iterator[tuple[int, Located]]:
    """The ``(index, (image, real path))`` pairs of one chunk file."""
    start, images = pickle.loads(read_bytes(path))
    for k, image in enumerate(images):
        yield start + k, image


def _read_image(path: str) -> bytes | None:
    """A remote image's bytes; None when it is not there (the local reader's "image file not found")."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            data: bytes = handle.read()
    except Exception:  # BeamIOError / OSError: not there
        return None
    return data


class _Convert(beam.DoFn):
    """:func:`_convert` with each record's bytes put in a :class:`~tfod_tools.beam.shards.Spill`."""

    def __init__(self, plan: WritePlan, spill: str) -> None:
        super().__init__()
        self.plan, self.spill_dir = plan, spill

    def start_bundle(self) -> None:
        self.spill = Spill(self.spill_dir)

    def process(self, item: tuple[int, Located]) -> Iterator[Converted]:
        index, record, result = _convert(item, self.plan)
        yield index, None if record is None else self.spill.put(record), result

    def finish_bundle(self) -> None:
        self.spill.close()


def _convert(item: tuple[int, Located], plan: WritePlan) -> tuple[int, bytes | None, ImageResult]:
    index, (image, remote) = item
    with worker_errors():
        if remote is None:
            result = plan.convert(image)
        else:  # the real path in the messages; Path() would have made gs://b of it gs:/b
            data = _read_image(remote)
            if data is None:  # a path that is not there: the local "image file not found"
                gone = Path(tempfile.gettempdir(), f"tfod-beam-gone-{uuid.uuid4().hex}", image.path.name)
                image = replace(image, path=gone)
            seen = str(image.path)
            try:
                result = plan.convert(image, data)
            except TfodError as exc:
                raise TfodError(exc.message.replace(seen, remote), path=remote, fix=exc.fix) from None
            for entry in result.skipped:
                entry["item"] = entry["item"].replace(seen, remote)
    record = None if result.record is None else result.record.encode()
    return index, record, result.without_record()


def _place(kept: list[tuple[int, Spilled]], num_shards: int) -> Iterator[tuple[int, tuple[int, Spilled]]]:
    """Shard ``rank % N`` for each kept image, its rank among the kept indices: the local round robin."""
    for rank, (index, where) in enumerate(sorted(kept, key=lambda k: k[0])):
        yield rank % num_shards, (index, where)


def _summarize(results: list[tuple[int, ImageResult]], plan: WritePlan, path: str) -> None:
    summary = plan.new_summary()
    for _, result in sorted(results, key=lambda r: r[0]):
        summary.add(result)
    write_bytes_atomic(path, pickle.dumps(summary))


def _write_chunks(images: Sequence[Located], scratch: str) -> list[str]:
    paths = []
    for start in range(0, len(images), CHUNK):
        path = f"{scratch}/images-{start // CHUNK:06d}.pkl"
        write_bytes_atomic(path, pickle.dumps((start, list(images[start : start + CHUNK]))))
        paths.append(path)
    return paths


def convert_beam(
    fmt: str,
    annotations: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    num_shards: int = 1,
    label_map_out: str | Path | None = None,
    classes: str | Path | LabelMap | None = None,
    on_bad_image: str = "fail",
    sixteen_bit: str = "scale",
    image_list: str | Path | None = None,
    class_name: str = "opacity",
    beam_args: Sequence[str] = (),
) -> ConversionSummary:
    """:func:`tfod_tools.data.convert.convert` on Beam (options ``beam_args``; DirectRunner by default).

    The same checks, errors, shards (byte for byte) and summary as the local run. A bad image with
    ``on_bad_image="fail"`` fails the job with the error naming it, and nothing is written.
    """
    options = pipeline_options(beam_args)
    command = "tfod convert --beam"
    check_filesystems(command, (annotations, images, out, label_map_out, image_list, _path_of(classes)))
    inputs = _Inputs()
    try:
        local_annotations, local_images, local_list = _stand_ins(inputs, annotations, images, image_list)
        if isinstance(classes, (str, Path)) and has_scheme(classes):
            classes = parse_label_map(read_bytes(url(classes)).decode("utf-8"), url(classes))
        source, plan = prepare(
            fmt,
            local_annotations,
            out,
            images=local_images,
            num_shards=num_shards,
            label_map_out=label_map_out,
            classes=classes,
            on_bad_image=on_bad_image,
            sixteen_bit=sixteen_bit,
            image_list=local_list,
            class_name=class_name,
        )
        located = [(image, inputs.remote_of(image.path)) for image in source.images]
    finally:
        inputs.close()
    remote_out = has_scheme(out) or (label_map_out is not None and has_scheme(label_map_out))
    out_text = url(out) if remote_out else str(plan.out)
    with contextlib.nullcontext() if remote_out else output_parents(plan.out):
        scratch = scratch_dir(out_text)
        try:
            chunks = _write_chunks(located, scratch)
            summary_path = f"{scratch}/summary.pkl"
            pipeline = new_pipeline(options)
            converted = (
                pipeline
                | "Chunks" >> beam.Create(chunks)
                | "Spread" >> beam.Reshuffle()
                | "Images" >> beam.FlatMap(_images)
                | "Convert" >> beam.ParDo(_Convert(plan, f"{scratch}/spill"))
            )
            _ = (
                converted
                | "Kept" >> beam.Filter(lambda c: c[1] is not None)
                | "Where" >> beam.Map(lambda c: (c[0], c[1]))
                | "AllKept" >> beam.combiners.ToList()
                | "Place" >> beam.FlatMap(_place, plan.num_shards)
                | "Shards" >> WriteShards(out_text, plan.num_shards, scratch=f"{scratch}/shards")
            )
            _ = (
                converted
                | "Counts" >> beam.Map(lambda c: (c[0], c[2]))
                | "AllCounts" >> beam.combiners.ToList()
                | "Summary" >> beam.Map(_summarize, plan, summary_path)
            )
            run_pipeline(pipeline)
            summary: ConversionSummary = pickle.loads(read_bytes(summary_path))
        finally:
            remove_tree(scratch)
        return _finish_remote(plan, summary, out_text, label_map_out) if remote_out else plan.finish(summary)


def _path_of(classes: str | Path | LabelMap | None) -> str | Path | None:
    return classes if isinstance(classes, (str, Path)) else None


def _stand_ins(
    inputs: _Inputs, annotations: str | Path, images: str | Path | None, image_list: str | Path | None
) -> tuple[Path, Path | None, Path | None]:
    """Local paths for the readers: the given ones, or stand-ins of the remote ones."""
    local_images = (
        None if images is None else (inputs.folder(str(images)) if has_scheme(images) else Path(images))
    )
    if has_scheme(annotations):
        text = url(annotations)
        if not _is_file(text):
            local_annotations = inputs.folder(text)  # VOC: a folder of XML files
        else:
            if images is None:  # the images are beside the annotation file
                inputs.folder(text.rsplit("/", 1)[0])
            local_annotations = inputs.file(text)
    else:
        local_annotations = Path(annotations)
    local_list = None
    if image_list is not None:
        local_list = inputs.file(str(image_list)) if has_scheme(image_list) else Path(image_list)
    return local_annotations, local_images, local_list


def _finish_remote(
    plan: WritePlan, summary: ConversionSummary, out: str, label_map_out: str | Path | None
) -> ConversionSummary:
    """:meth:`WritePlan.finish` for an output on a remote file system: the label map written through
    ``FileSystems``, the paths as given (``Path`` would drop the ``//`` of ``gs://``)."""
    outputs = [url(p) for p in plan.outputs]
    summary.outputs = outputs  # type: ignore[assignment]
    if plan.label_map_path is not None:
        where = (
            url(label_map_out) if label_map_out is not None else f"{out.rsplit('/', 1)[0]}/label_map.pbtxt"
        )
        write_bytes_atomic(where, plan.label_map.to_pbtxt().encode("utf-8"))
        summary.label_map = where  # type: ignore[assignment]
    found = _matched(f"{out}-?????-of-?????")
    stale = sorted(url(m.path) for m in found if url(m.path) not in set(outputs))
    summary.stale_outputs = stale  # type: ignore[assignment]
    return summary
