"""``tfod inspect --beam``: the local report of :func:`tfod_tools.data.inspect.inspect_records`,
with the per-record work spread over Beam workers.

The driver makes the same checks as the local command before anything is submitted
(:func:`tfod_tools.data.inspect.plan_inspection`: label map, record files, pipeline, options). The
pipeline then:

1. reads each record file in a worker (one element per file: ``(file position, record index)`` and
   the record's bytes) and reshuffles the records, so the costly part spreads over every worker
   whatever the number of files;
2. runs the local per-record step in a DoFn (:meth:`_Inspector.examine`: the header decode, the
   box checks, the perceptual hashes for the duplicate search, the box features of the outlier
   search), one :class:`~tfod_tools.data.inspect.ImageFacts` per record, no image bytes kept;
3. combines the facts of all records (exact: nothing is approximated or summed in floating point
   out of order) and folds them in record order with the local fold (:meth:`_Inspector.take`), then
   the local :func:`~tfod_tools.data.inspect.finish_inspection`: counts, histograms, quantiles, the
   near-duplicate pairs from the per-image signatures and the outliers from the per-box features;
4. with ``against``, the other split's records are read and hashed the same way
   (:func:`tfod_tools.data.dedup.image_entry`) and kept in record order for the leak search.

So the report equals the local one field for field. A damaged record fails the job with the file
and record index (the local :class:`~tfod_tools.errors.TfodError`, carried back from the worker).
The record files, label map and pipeline are read through Beam's ``FileSystems`` (a local path, or
``gs://`` and any scheme Beam has: checked up front, :func:`~tfod_tools.beam.io.check_filesystems`;
the label map and pipeline are read once by the driver and travel in the plan); the report comes
back through ``--temp_location`` (any Beam file system) or, without it, a local temporary folder
(:func:`fetch_one`).
"""

from __future__ import annotations

import pickle
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from tfod_tools.beam import require_beam, run_pipeline, worker_errors
from tfod_tools.beam.io import (
    check_filesystems,
    has_scheme,
    iter_records_at,
    read_bytes,
    record_files,
    remove_tree,
    url,
    write_bytes_atomic,
)
from tfod_tools.beam.options import new_pipeline, pipeline_options
from tfod_tools.data.dedup import HashEntry, ImageHashes, image_entry
from tfod_tools.data.inspect import (
    ImageFacts,
    InspectionPlan,
    InspectionReport,
    finish_inspection,
    plan_inspection,
)
from tfod_tools.data.records import decode_record
from tfod_tools.odapi.label_map import LabelMap, parse_label_map

__all__ = ["fetch_one", "inspect_beam"]

Key = tuple[int, int]
"""``(position of the file in the expanded list, record index)``: the local reading order."""


def _read(item: tuple[int, str]) -> Iterator[tuple[Key, bytes]]:
    """Every record of one file, keyed by the local reading order."""
    position, path = item
    with worker_errors():
        for index, data in iter_records_at(path):
            yield (position, index), data


class _Examine(beam.DoFn):
    """One record -> its :class:`ImageFacts` (the local per-record step)."""

    def __init__(self, plan: InspectionPlan) -> None:
        self.plan = plan

    def process(self, item: tuple[Key, bytes]) -> Iterator[tuple[Key, ImageFacts]]:
        (position, index), data = item
        path = self.plan.paths[position]
        with worker_errors():
            record = decode_record(data, path, index)
            yield (position, index), self.plan.inspector.examine(path, index, record)


def _hash(
    item: tuple[Key, bytes], paths: Sequence[str]
) -> tuple[Key, tuple[str, int, str, HashEntry | None]]:
    """One record of ``against`` -> what :meth:`ImageHashes.put` keeps of it."""
    (position, index), data = item
    with worker_errors():
        record = decode_record(data, paths[position], index)
    return (position, index), (paths[position], index, record.source_id, image_entry(record.encoded))


def _report(
    facts: list[tuple[Key, ImageFacts]],
    plan: InspectionPlan,
    against: list[tuple[Key, tuple[str, int, str, HashEntry | None]]],
) -> InspectionReport:
    """The local fold over every record's facts in record order, then the local report."""
    files: list[Path] = []
    for (position, _), fact in sorted(facts, key=lambda item: item[0]):
        path = plan.paths[position]
        if not files or files[-1] != path:
            files.append(path)
        plan.inspector.take(fact)
    other: ImageHashes | None = None
    if plan.against:
        other = ImageHashes()
        for _, entry in sorted(against, key=lambda item: item[0]):
            other.put(*entry)
    return finish_inspection(plan, files, other)


def _records(pipeline: beam.Pipeline, label: str, paths: Sequence[str | Path]) -> beam.PCollection:
    """``(key, record bytes)`` of every record of ``paths``, read per file, then reshuffled."""
    return (
        pipeline
        | f"{label}Files" >> beam.Create(list(enumerate(str(p) for p in paths)))
        | f"{label}Read" >> beam.FlatMap(_read)
        | f"{label}Spread" >> beam.Reshuffle()
    )


def inspect_beam(
    paths: str | Path | Sequence[str | Path],
    label_map: LabelMap | Mapping[int, str] | Sequence[str] | str | Path,
    pipeline: str | Path | Any | None = None,
    decode_images: bool = True,
    against: Sequence[str | Path] = (),
    beam_args: Sequence[str] = (),
) -> InspectionReport:
    """:func:`tfod_tools.data.inspect.inspect_records` on Apache Beam (see the module doc);
    ``beam_args`` are the pipeline options (``--runner=...``; DirectRunner by default).

    >>> import tempfile
    >>> from tfod_tools.data.inspect import inspect_records
    >>> from tfod_tools.data.synthetic import write_synthetic_dataset
    >>> ds = write_synthetic_dataset(tempfile.mkdtemp(), "shapes", train_images=6, eval_images=1, seed=2)
    >>> beam_report = inspect_beam(ds.train_record, ds.label_map)
    >>> beam_report.to_dict() == inspect_records(ds.train_record, ds.label_map).to_dict()
    True
    """
    require_beam()
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    label_path = label_map if isinstance(label_map, (str, Path)) else None
    pipeline_path = pipeline if isinstance(pipeline, (str, Path)) else None
    check_filesystems("tfod inspect --beam", [*items, *against, label_path, pipeline_path])
    if label_path is not None and has_scheme(label_path):
        label_map = parse_label_map(read_bytes(url(label_path)).decode("utf-8"), url(label_path))
    if pipeline_path is not None and has_scheme(pipeline_path):
        from tfod_tools.odapi.pipeline import parse_pipeline_text

        pipeline = parse_pipeline_text(read_bytes(url(pipeline_path)).decode("utf-8"), url(pipeline_path))
    if any(has_scheme(item) for item in items):  # the plan's names as given, not as Path spells them
        files = [file for item in items for file in record_files(item)]
        plan = plan_inspection(files, label_map, pipeline, decode_images, [url(a) for a in against])
        plan.paths = [file if has_scheme(file) else Path(file) for file in files]  # type: ignore[misc]
    else:
        plan = plan_inspection(paths, label_map, pipeline, decode_images, [url(a) for a in against])
    if pipeline_path is not None:
        plan.pipeline = url(pipeline_path) if has_scheme(pipeline_path) else pipeline_path
    options = pipeline_options(beam_args)
    against_paths = [file for item in against for file in record_files(item)]
    p = new_pipeline(options)
    facts = (
        _records(p, "", plan.paths)
        | "Examine" >> beam.ParDo(_Examine(plan))
        | "AllFacts" >> beam.combiners.ToList()
    )
    names = [str(path) for path in against_paths]
    hashed = (
        _records(p, "Against", against_paths)
        | "AgainstHash" >> beam.Map(_hash, names)
        | "AgainstAll" >> beam.combiners.ToList()
    )
    report = facts | "Report" >> beam.Map(_report, plan, beam.pvalue.AsSingleton(hashed))
    found: InspectionReport = fetch_one(p, report, options)
    return found


def fetch_one(pipeline: beam.Pipeline, single: beam.PCollection, options: PipelineOptions) -> Any:
    """Run ``pipeline`` and return the one element of ``single`` (picklable), brought back through a
    file: under ``--temp_location`` when given (a remote runner's workers write there), else a local
    temporary folder; removed afterwards. A ``TfodError`` of a worker is raised as itself.
    """
    temp = options.view_as(GoogleCloudOptions).temp_location
    made = None if temp else tempfile.mkdtemp(prefix="tfod-beam-")
    out = f"{str(temp or made).rstrip('/')}/.tfod-result-{uuid.uuid4().hex[:12]}.pickle"
    _ = single | "WriteResult" >> beam.Map(lambda value: write_bytes_atomic(out, pickle.dumps(value)))
    try:
        run_pipeline(pipeline)
        return pickle.loads(read_bytes(out))
    finally:
        remove_tree(made or out)
