"""``tfod balance --beam``: the local balance (:mod:`tfod_tools.data.balance`) as one Beam pipeline.

The same checks, plan, augmentation, framing and manifest as the local run, called from Beam stages,
so with the same seed and ``--shards`` every shard, group file, sampling config and the manifest are
byte-identical to ``tfod balance`` (the manifest names the same paths, so compare runs written to the
same prefix):

1. *scan* (one element per input file): :func:`~tfod_tools.data.balance.write.scan_file` verifies
   every record (CRCs, layout, finite boxes) and yields where its frame lies and its box classes; the
   input files' SHA-256 are computed beside it;
2. *plan* (one element): every image's classes gathered (a combine), sorted into the input order,
   checked against the label map and turned into :func:`~tfod_tools.data.balance.plan.make_plan`'s
   repeat counts: a side input of the next stages;
3. *augment* (:data:`TASKS` images per element reshuffled over the workers, then one element per
   image in the worker):
   :func:`~tfod_tools.data.balance.write.augment_image` makes image ``i``'s copies, each seeded from
   ``(seed, i, copy)`` only (:func:`~tfod_tools.data.balance.augment.copy_seed`);
4. *write*: output record ``k`` (over the images kept, originals then copies, in input order: the
   start of each image comes from the plan and the skipped images: step 3's small per-image results,
   added up per bundle before they leave a worker, gathered into one list) goes to shard
   ``k % N`` with order key ``k`` through :class:`tfod_tools.beam.shards.WriteShards`, which renames the
   shards into place only when all are written (only where the records' bytes are goes through the
   runner: an original's in its input file, the copies' in step 3's :class:`~tfod_tools.beam.shards.Spill`
   files);
5. *manifest* (one element): the per-image counts replayed in input order
   (:func:`~tfod_tools.data.balance.write.tally`), the shards hashed, and
   :func:`~tfod_tools.data.balance.build_manifest` written last.

A corrupt record or (with ``--on-bad-image fail``) an image that does not decode fails the job with
the local one-line error naming the file and record index, and nothing appears under the final names.
Inputs, label map and outputs may be on any Beam file system (``gs://``, ...; the scheme is checked
up front, :func:`~tfod_tools.beam.io.check_filesystems`): remote record files are scanned and their
frames read through ``FileSystems`` (local ones with ``pread``, as the local run), the label map is
read once by the driver, the shards and manifest are written through ``FileSystems``. The local
checks run on stand-ins of the remote inputs (empty files of the same names). With
``--emit-sampling-config`` the group files are written as the shards are (:class:`WriteShards`) and
the sampling config through ``FileSystems`` too, naming the paths as given (``gs://...``).

Called by ``tfod balance --beam`` and by ``scripts/bench_beam.py``::

    balance_beam(inputs, label_map, out, pipeline_args=["--direct_num_workers=2",
                 "--direct_running_mode=multi_processing"], recipe="aerial", seed=1, shards=2)

>>> import tempfile, pathlib
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ds = write_synthetic_dataset(d, "xray-like", train_images=6, eval_images=0, seed=0, image_size=64)
>>> m = balance_beam([ds.train_record], ds.label_map, d / "bal.record", recipe="aerial",
...                  strategy="oversample", seed=1)
>>> m["plan"]["records"] == m["records"] == m["shards"][0]["records"]
True
>>> (d / "bal.record.manifest.json").is_file()
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfod_tools.beam import require_beam, run_pipeline, worker_errors
from tfod_tools.beam.io import (
    _matched,
    check_filesystems,
    has_scheme,
    iter_records_at,
    read_bytes,
    record_files,
    remove_tree,
    scratch_dir,
    url,
    write_bytes_atomic,
)
from tfod_tools.beam.options import new_pipeline, pipeline_options
from tfod_tools.beam.shards import SliceReader, Spill, Spilled, WriteShards, Written
from tfod_tools.data.balance import (
    NEGATIVE,
    build_manifest,
    group_file,
    image_classes,
    manifest_path,
    manifest_text,
    prepare,
    sampling_config,
    write_sampling,
)
from tfod_tools.data.balance.augment import Augmenter
from tfod_tools.data.balance.plan import Plan, make_plan
from tfod_tools.data.balance.recipes import Recipe
from tfod_tools.data.balance.write import (
    ImageResult,
    ImageTask,
    RecordFiles,
    ScanItem,
    ShardInfo,
    WriteResult,
    augment_image,
    bad_image_error,
    scan_file,
    tally,
)
from tfod_tools.data.classes import ClassLookup
from tfod_tools.data.tfrecord import frame_payload, payload_span
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import output_parents, sha256_file
from tfod_tools.odapi.label_map import LabelMap, parse_label_map

__all__ = ["balance_beam"]

_Planned = tuple[list[ScanItem], list[list[int]], Plan]
"""The plan stage's one element: the scanned images in input order, their class ids, the plan."""


def _scan(indexed: tuple[int, str]) -> Iterator[tuple[tuple[int, int], ScanItem]]:
    """Pass 1 over one input file; each record keyed by (file index, record index)."""
    file_index, path = indexed
    with worker_errors():
        records = iter_records_at(path) if has_scheme(path) else None
        for item in scan_file(path, records):
            yield (file_index, item.record_index), item


def _hash(indexed: tuple[int, str]) -> tuple[int, str]:
    index, path = indexed
    if not has_scheme(path):
        return index, sha256_file(path)
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return index, digest.hexdigest()


class _Frames(RecordFiles):
    """:class:`RecordFiles` that reads the frames of a remote file through ``FileSystems`` (seek, read)."""

    def __init__(self) -> None:
        super().__init__()
        self._remote = SliceReader()

    def frame(self, file: str, offset: int, length: int) -> bytes:
        if not has_scheme(file):
            return super().frame(file, offset, length)
        return self._remote.read((file, offset, length))

    def close(self) -> None:
        self._remote.close()
        super().close()


def _plan(
    keyed: list[tuple[tuple[int, int], ScanItem]],
    label_map: LabelMap,
    strategy: str,
    threshold: float,
    seed: int,
) -> _Planned:
    """The one plan, from every image's classes in input order (as the local run makes it)."""
    items = [item for _, item in sorted(keyed, key=lambda kv: kv[0])]
    with worker_errors():
        box_lists = image_classes(ClassLookup(label_map), items)
        plan = make_plan([set(b) for b in box_lists], strategy=strategy, threshold=threshold, seed=seed)
    return items, box_lists, plan


TASKS = 100
"""Pass 2's images per element the runner spreads over the workers (each is one element in the worker)."""


def _tasks(planned: _Planned) -> Iterator[list[ImageTask]]:
    """Pass 2's tasks, :data:`TASKS` at a time (the runner copies one element per chunk, not per image)."""
    items, _, plan = planned
    tasks = [
        ImageTask(i, it.file, it.record_index, it.offset, it.length, int(plan.repeats[i]))
        for i, it in enumerate(items)
    ]
    for start in range(0, len(tasks), TASKS):
        yield tasks[start : start + TASKS]


Augmented = tuple[ImageResult, list[Spilled] | None]
"""Pass 2's output for one image: its counts, and where its records' bytes are (None: it does not
decode): the original's in its input file (the bytes inside the frame scanned in pass 1, which the
writer frames again, so the same frame), then the copies' in the bundle's
:class:`~tfod_tools.beam.shards.Spill`."""


class _Augment(beam.DoFn):
    """Pass 2 for one image (:data:`Augmented`)."""

    def __init__(self, recipe: Recipe, seed: int, on_bad_image: str, spill: str) -> None:
        super().__init__()
        self.recipe, self.seed, self.on_bad_image, self.spill_dir = recipe, seed, on_bad_image, spill

    def setup(self) -> None:
        import cv2

        cv2.setNumThreads(1)  # the workers are the parallelism, as in the local Runner
        self.augmenter = Augmenter(self.recipe)
        self.files = _Frames()

    def start_bundle(self) -> None:
        self.spill = Spill(self.spill_dir)

    def process(self, task: ImageTask) -> Iterator[Augmented]:
        with worker_errors():
            res = augment_image(task, self.augmenter, self.seed, self.files)
            if res.bad is not None:
                if self.on_bad_image == "fail":
                    item = ScanItem(task.file, task.record_index, task.offset, task.length, [])
                    raise bad_image_error(item, res)
                yield res, None
                return
            original: Spilled = (task.file, *payload_span(task.offset, task.length))
            copies = [self.spill.put(frame_payload(f)) for f in res.copies]
            yield replace(res, copies=[]), [original, *copies]

    def finish_bundle(self) -> None:
        self.spill.close()

    def teardown(self) -> None:
        files = getattr(self, "files", None)
        if files is not None:
            files.close()


def _starts(planned: _Planned, gathered: list[Augmented]) -> list[int]:
    """Output record index of each image's original: kept images in input order, ``repeats`` each."""
    skipped = {res.index for res, _ in gathered if res.bad is not None}
    starts, k = [], 0
    for i, r in enumerate(planned[2].repeats):
        starts.append(k)
        if i not in skipped:
            k += int(r)
    starts.append(k)  # the total
    return starts


def _records(
    gathered: list[Augmented], planned: _Planned, shards: int
) -> Iterator[tuple[int, tuple[int, Spilled]]]:
    """Each record of each kept image as ``(shard, (k, where its bytes are))``."""
    starts = _starts(planned, gathered)
    for res, spilled in gathered:
        k = starts[res.index]
        for j, ref in enumerate(spilled or []):
            yield (k + j) % shards, (k + j, ref)


def _group_records(
    gathered: list[Augmented], planned: _Planned, key: str
) -> Iterator[tuple[int, tuple[int, Spilled]]]:
    """The original of each kept image whose group is ``key``, for that group's file."""
    for res, spilled in gathered:
        if spilled is not None and planned[2].keys[res.index] == key:
            yield 0, (res.index, spilled[0])


def _info(written: Written) -> ShardInfo:
    return ShardInfo(written.path, written.records, written.sha256)


class _Finish:
    """The manifest stage (one element): counts in input order, hashes, sampling config, manifest."""

    def __init__(
        self,
        out: str,
        label_map: LabelMap,
        label_map_path: Path | None,
        recipe: Recipe,
        seed: int,
        shards: int,
        group_paths: dict[str, str],
        emit_sampling_config: bool,
    ) -> None:
        self.out, self.label_map, self.label_map_path = out, label_map, label_map_path
        self.recipe, self.seed, self.shards, self.group_paths = recipe, seed, shards, group_paths
        self.emit_sampling_config = emit_sampling_config
        self.remote_label_map: dict[str, str] | None = None

    def __call__(
        self,
        planned: _Planned,
        gathered: list[Augmented],
        hashes: list[tuple[int, str]],
        files: list[str],
        *written: list[Written],
    ) -> dict[str, Any]:
        starts = _starts(planned, gathered)
        with worker_errors():
            return self._finish(planned, [res for res, _ in gathered], starts, hashes, files, written)

    def _finish(
        self,
        planned: _Planned,
        summaries: list[ImageResult],
        starts: list[int],
        hashes: list[tuple[int, str]],
        files: list[str],
        written: Sequence[list[Written]],
    ) -> dict[str, Any]:
        """``written``: what the shards' writer wrote, then (``--emit-sampling-config``) each group's
        writer, in :attr:`group_paths` order."""
        _, box_lists, plan = planned
        result = WriteResult(shards=[])
        for res in sorted(summaries, key=lambda r: r.index):
            tally(result, res)
        result.records = starts[-1]
        result.shards = [_info(w) for w in written[0]]
        kept = dict.fromkeys(plan.group_totals(), 0)  # originals written per group
        for res in summaries:
            if res.bad is None:
                kept[plan.keys[res.index]] += 1
        if self.emit_sampling_config:
            for key, path in self.group_paths.items():
                if key not in kept:  # a class no image has as its rarest: the local run writes no file
                    remove_tree(path)
            groups = {key: _info(w[0]) for key, w in zip(self.group_paths, written[1:], strict=True)}
            result.groups = {key: groups[key] for key in kept}
        hashed = [{"path": files[i], "sha256": h} for i, h in sorted(hashes)]
        lookup = ClassLookup(self.label_map)
        manifest = build_manifest(
            hashed, lookup, self.label_map_path, self.recipe, plan, result, box_lists, self.seed, self.shards
        )
        if self.remote_label_map is not None:  # read by the driver: its path and hash as given
            manifest["label_map"] = self.remote_label_map
        if self.emit_sampling_config:
            manifest["sampling_config"] = self._sampling(plan, result)
        write_bytes_atomic(_manifest_at(self.out), manifest_text(manifest).encode("utf-8"))
        return manifest

    def _sampling(self, plan: Plan, result: WriteResult) -> dict[str, Any]:
        """:func:`write_sampling`, through ``FileSystems`` where the output or the label map is remote
        (the config then names the label map by its path as given), so a local output with a local
        label map is the local run exactly."""
        if not has_scheme(self.out) and self.remote_label_map is None:
            return write_sampling(self.out, self.label_map_path, plan, result)
        lm_text = self.remote_label_map["path"] if self.remote_label_map is not None else self.label_map_path
        groups, text = sampling_config(lm_text, plan, result)
        config = url(Path(f"{self.out}.sampling.config"))
        write_bytes_atomic(config, text.encode("utf-8"))
        return {"path": config, "groups": groups}


def balance_beam(
    inputs: str | Path | Sequence[str | Path],
    label_map: str | Path | LabelMap,
    out: str | Path,
    *,
    pipeline_args: Sequence[str] = (),
    recipe: str | Path | Recipe = "natural",
    strategy: str = "repeat-factor",
    threshold: float = 0.3,
    seed: int = 0,
    shards: int = 1,
    enable: Sequence[str] = (),
    emit_sampling_config: bool = False,
    allow_eval: bool = False,
    on_bad_image: str = "fail",
) -> dict[str, Any]:
    """:func:`tfod_tools.data.balance.balance` on Beam (``pipeline_args``: the options after ``--``).

    Every check that needs no record (inputs, label map, output paths, eval split, recipe, strategy,
    options) runs before the pipeline is built, with the local messages. Returns the manifest.
    """
    require_beam()
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    label_path = label_map if isinstance(label_map, (str, Path)) else None
    check_filesystems("tfod balance --beam", [*items, label_path, out])
    remote_out = has_scheme(out)
    remote_lm = None
    if label_path is not None and has_scheme(label_path):
        data = read_bytes(url(label_path))
        label_map = parse_label_map(data.decode("utf-8"), url(label_path))
        remote_lm = {"path": url(label_path), "sha256": hashlib.sha256(data).hexdigest()}
    real_files: list[str] | None = None
    stand_ins = tempfile.mkdtemp(prefix="tfod-beam-inputs-")
    try:
        if any(has_scheme(item) for item in items) or remote_out:
            real_files = _remote_inputs(items, out)
            inputs = [_stand_in(stand_ins, k, f) if has_scheme(f) else f for k, f in enumerate(real_files)]
        prep = prepare(
            inputs,
            label_map,
            out if not remote_out else os.path.join(stand_ins, "out", url(out).rsplit("/", 1)[-1]),
            recipe=recipe,
            shards=shards,
            enable=enable,
            emit_sampling_config=emit_sampling_config,
            allow_eval=allow_eval,
            on_bad_image=on_bad_image,
        )
    finally:
        shutil.rmtree(stand_ins, ignore_errors=True)
    make_plan([], strategy=strategy, threshold=threshold, seed=seed)  # the option checks, up front
    if shards < 1:
        raise TfodError(f"shards must be >= 1, got {shards}")
    options = pipeline_options(pipeline_args)
    out_text = url(out) if remote_out else str(out)
    lm = prep.label_map
    files = real_files if real_files is not None else [str(f) for f in prep.files]
    group_paths = {str(i): group_file(out_text, str(i), lm) for i in lm.ids}
    group_paths[NEGATIVE] = group_file(out_text, NEGATIVE, lm)
    finish = _Finish(
        out_text,
        lm,
        prep.label_map_path,
        prep.recipe,
        seed,
        shards,
        group_paths,
        emit_sampling_config,
    )
    finish.remote_label_map = remote_lm
    writers = [WriteShards(out_text, shards)]
    spill = scratch_dir(out_text)  # the records' bytes between augment and write (removed after)
    pipeline = new_pipeline(options)
    indexed = pipeline | "InputFiles" >> beam.Create(list(enumerate(files)))
    hashes = indexed | "HashInputs" >> beam.Map(_hash)
    planned = (
        indexed
        | "ScanFiles" >> beam.Reshuffle()
        | "Scan" >> beam.FlatMap(_scan)
        | "GatherClasses" >> beam.combiners.ToList()
        | "Plan" >> beam.Map(_plan, lm, strategy, threshold, seed)
    )
    planned_side = beam.pvalue.AsSingleton(planned)
    gathered = (  # one small (counts, where the records are) pair per image, added up per bundle
        planned
        | "Images" >> beam.FlatMap(_tasks)
        | "Spread" >> beam.Reshuffle()
        | "Tasks" >> beam.FlatMap(lambda tasks: tasks)
        | "Augment" >> beam.ParDo(_Augment(prep.recipe, seed, on_bad_image, spill))
        | "AllImages" >> beam.combiners.ToList()
    )
    gathered_side = beam.pvalue.AsSingleton(gathered)
    # each image's first output record (_starts) is worked out where it is needed, from the plan and
    # this list: a "Starts" stage between them (a side input of the writer made from the writer's own
    # input) let the FnApiRunner fuse them into a cycle and read the list before it was made
    written = [
        gathered | "Records" >> beam.FlatMap(_records, planned_side, shards) | "WriteShards" >> writers[0]
    ]
    if emit_sampling_config:
        for key, path in group_paths.items():
            writer = WriteShards(path, 1)
            writers.append(writer)
            written.append(
                gathered
                | f"Group[{key}]" >> beam.FlatMap(_group_records, planned_side, key)
                | f"WriteGroup[{key}]" >> writer
            )
    _ = planned | "Manifest" >> beam.Map(
        finish,
        gathered_side,
        beam.pvalue.AsList(hashes),
        files,
        *[beam.pvalue.AsSingleton(w) for w in written],
    )
    # folders made for a local output go again if the job fails
    with contextlib.nullcontext() if remote_out else output_parents(out_text):
        try:
            run_pipeline(pipeline)
        finally:
            for writer in writers:
                writer.cleanup()
            remove_tree(spill)
    manifest: dict[str, Any] = json.loads(read_bytes(_manifest_at(out_text)))
    return manifest


def _manifest_at(out: str) -> str:
    """:func:`manifest_path` as text, for any file system (``Path`` drops the ``//`` of ``gs://``)."""
    return url(manifest_path(out))


def _remote_inputs(items: Sequence[str | Path], out: str | Path) -> list[str]:
    """The input record files (any file system), checked as :func:`input_record_files` checks them,
    and never the output."""
    files = [f for item in items for f in record_files(item)]
    for f in files:
        if has_scheme(f) and not _exists(f):
            raise TfodError("TFRecord file not found", path=f, fix="check the --input path")
    prefix = url(out)
    for f in files:
        if f == prefix or f.startswith((f"{prefix}-", f"{prefix}.")):  # a shard, the manifest, a group
            raise TfodError(
                "the output would overwrite an input", path=prefix, fix="choose another --out prefix"
            )
    return files


def _exists(path: str) -> bool:
    return any(url(m.path) == path for m in _matched(path))


def _stand_in(folder: str, k: int, remote: str) -> str:
    """An empty local file named as ``remote`` (for the local checks, which look at names)."""
    path = os.path.join(folder, str(k), remote.rsplit("/", 1)[-1])
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    return path
