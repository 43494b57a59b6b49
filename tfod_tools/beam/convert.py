"""``tfod convert --beam``: the local conversion as a Beam pipeline, with byte-identical outputs.

The driver reads the annotation file and checks every option and output exactly as the local run
does (:func:`tfod_tools.data.convert.prepare`), before anything is submitted. The images travel to
the workers as pickled chunk files in a scratch folder beside ``--out`` (not inside the job graph,
which would not hold 377k images). Each image is one element: loaded, verified and encoded by
the same :func:`~tfod_tools.data.convert.convert_image` the local run calls. The local writer
assigns the kept images round robin in input order, so the pipeline ranks each kept image among
the kept indices (a side input) and writes shard ``rank % N`` ordered by index with
:class:`~tfod_tools.beam.io.WriteShards`; the per-image counts are added up in input order into
the same :class:`~tfod_tools.data.convert.ConversionSummary`. The label map is written by the
driver once the shards are in place, as the local run writes it after its records.

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

import bisect
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path

import apache_beam as beam

from tfod_tools.beam import run_pipeline, worker_errors
from tfod_tools.beam.io import (
    WriteShards,
    mounted_only,
    read_bytes,
    remove_tree,
    scratch_dir,
    write_bytes_atomic,
)
from tfod_tools.beam.options import pipeline_options
from tfod_tools.data.convert import ConversionSummary, ImageResult, SourceImage, WritePlan, prepare
from tfod_tools.fsutil import output_parents
from tfod_tools.odapi.label_map import LabelMap

__all__ = ["CHUNK", "convert_beam"]

CHUNK = 500
"""Images per chunk file handed to the workers."""

Converted = tuple[int, bytes | None, ImageResult]  # (image index, encoded record or None, the counts)


def _images(path: str) -> Iterator[tuple[int, SourceImage]]:
    """The ``(index, image)`` pairs of one chunk file."""
    start, images = pickle.loads(read_bytes(path))
    for k, image in enumerate(images):
        yield start + k, image


def _convert(item: tuple[int, SourceImage], plan: WritePlan) -> Converted:
    index, image = item
    with worker_errors():
        result = plan.convert(image)
    record = None if result.record is None else result.record.encode()
    return index, record, result.without_record()


def _place(item: Converted, kept: Sequence[int], num_shards: int) -> tuple[int, tuple[int, bytes]]:
    """Shard ``rank % N`` among the kept images (the local round robin), ordered by index."""
    index, record, _ = item
    assert record is not None
    rank = bisect.bisect_left(kept, index)
    return rank % num_shards, (index, record)


def _summarize(results: list[tuple[int, ImageResult]], plan: WritePlan, path: str) -> None:
    summary = plan.new_summary()
    for _, result in sorted(results, key=lambda r: r[0]):
        summary.add(result)
    write_bytes_atomic(path, pickle.dumps(summary))


def _write_chunks(images: Sequence[SourceImage], scratch: str) -> list[str]:
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
    mounted_only(
        "tfod convert --beam", (annotations, images, out, label_map_out), "reads images and writes records"
    )
    source, plan = prepare(
        fmt,
        annotations,
        out,
        images=images,
        num_shards=num_shards,
        label_map_out=label_map_out,
        classes=classes,
        on_bad_image=on_bad_image,
        sixteen_bit=sixteen_bit,
        image_list=image_list,
        class_name=class_name,
    )
    with output_parents(plan.out):
        scratch = scratch_dir(str(plan.out))
        try:
            chunks = _write_chunks(source.images, scratch)
            summary_path = f"{scratch}/summary.pkl"
            pipeline = beam.Pipeline(options=options)
            converted = (
                pipeline
                | "Chunks" >> beam.Create(chunks)
                | "Images" >> beam.FlatMap(_images)
                | "Spread" >> beam.Reshuffle()
                | "Convert" >> beam.Map(_convert, plan)
            )
            written = converted | "Kept" >> beam.Filter(lambda c: c[1] is not None)
            kept = (
                written
                | "KeptIndex" >> beam.Map(lambda c: c[0])
                | "KeptList" >> beam.combiners.ToList()
                | "Sorted" >> beam.Map(sorted)
            )
            _ = (
                written
                | "Place" >> beam.Map(_place, beam.pvalue.AsSingleton(kept), plan.num_shards)
                | "Shards" >> WriteShards(str(plan.out), plan.num_shards, scratch=f"{scratch}/shards")
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
        return plan.finish(summary)
