"""``tfod inspect``: what is in TF OD API records, and what in them will hurt training or evaluation.

Reads records without TensorFlow (:func:`tfod_tools.data.records.iter_image_records`); images are
looked at through their header (PIL opens lazily) and decoded once, JPEGs at reduced scale, for
the duplicate search (:mod:`tfod_tools.data.dedup`: exact and near duplicates within the records,
and with ``against`` between two splits). Classes are counted the way the API's ``TfExampleDecoder`` sees them
(:class:`tfod_tools.data.classes.ClassLookup`): the class *text* looked up in the label map (name
or display name) when a record has texts, else the label.

Statistics: images, boxes and images per class, negative images, boxes per image, COCO area
buckets (:func:`tfod_tools.data.areas.area_bucket_counts`: small <= 32², medium, large >= 96², a
boundary area in both, crowd boxes left out, as COCOeval counts) of the areas the API's evaluation
uses (:func:`tfod_tools.data.areas.evaluated_areas`: ``image/object/area`` when > 0, else the box
area in original pixels) and - with a pipeline - of box areas in model input pixels (its
``image_resizer``, :class:`tfod_tools.odapi.resizer.ImageResizer`), box aspect ratios
(width / height in pixels), image sizes.
Issues: see :data:`tfod_tools.data.validate.ISSUE_CATALOG`.
Annotation outliers (boxes far from their class in size, aspect, position or size in their image;
collected in the same pass): see :mod:`tfod_tools.data.outliers`.

>>> import tempfile
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> ds = write_synthetic_dataset(tempfile.mkdtemp(), "shapes", train_images=6, eval_images=1, seed=2)
>>> report = inspect_records(ds.train_record, ds.label_map)
>>> report.images, report.boxes == sum(ds.class_counts["train"].values()), report.issues
(6, True, [])
>>> sorted(report.to_dict())[:4]
['area_buckets', 'aspect_ratios', 'boxes', 'boxes_per_image']
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.areas import area_bucket_counts, evaluated_areas
from tfod_tools.data.classes import ClassLookup, category_names
from tfod_tools.data.dedup import (
    HashEntry,
    ImageHashes,
    calibrated_distance,
    duplicates_report,
    find_duplicates,
    find_leaks,
    hash_records,
    image_entry,
)
from tfod_tools.data.outliers import OutlierCollector, OutlierReport
from tfod_tools.data.records import ImageRecord, iter_image_records
from tfod_tools.data.tfrecord import expand_record_paths
from tfod_tools.data.validate import Issue, RecordIssues
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, as_label_map
from tfod_tools.odapi.resizer import ImageResizer

__all__ = [
    "DEFAULT_MAX_BOXES",
    "ImageFacts",
    "InspectionPlan",
    "InspectionReport",
    "finish_inspection",
    "inspect_records",
    "plan_inspection",
]

DEFAULT_MAX_BOXES = 100
"""The API's default ``max_number_of_boxes`` (train_config and input readers)."""
_EPS = 1e-6
_DUPLICATE_IOU = 0.9
_DECODABLE = {"JPEG", "MPO", "PNG", "BMP"}
_ASPECT_EDGES = (1 / 3, 1 / 2, 0.8, 1.25, 2.0, 3.0)
_ASPECT_NAMES = ("<1:3", "1:3-1:2", "1:2-0.8", "0.8-1.25", "1.25-2:1", "2:1-3:1", ">3:1")


def _max_boxes(config: Any, paths: Sequence[Path]) -> tuple[int, str]:
    """The box limit that applies to ``paths``: the eval reader's if they are its inputs, else train's."""
    train = int(config.train_config.max_number_of_boxes)
    limits: list[tuple[str, int, list[str]]] = [
        (
            "train_config.max_number_of_boxes",
            train,
            list(config.train_input_reader.tf_record_input_reader.input_path),
        )
    ]
    for k, reader in enumerate(config.eval_input_reader):
        patterns = list(reader.tf_record_input_reader.input_path)
        limits.append(
            (f"eval_input_reader[{k}].max_number_of_boxes", int(reader.max_number_of_boxes), patterns)
        )
    for name, limit, patterns in limits:
        for pattern in patterns:
            if any(fnmatch.fnmatch(p.name, Path(pattern).name) for p in paths):
                return limit, name
    name, limit = min(((n, lim) for n, lim, _ in limits), key=lambda item: item[1])
    return limit, f"{name} (smallest; records not named in the pipeline)"


@dataclass
class InspectionReport:
    """What :func:`inspect_records` found; :meth:`to_dict` is the ``--json`` document."""

    files: list[Path]
    label_map: dict[int, str]
    images: int = 0
    boxes: int = 0
    negative_images: int = 0
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    boxes_per_image: dict[str, float] = field(default_factory=dict)
    area_buckets: dict[str, int] = field(default_factory=dict)
    model_area_buckets: dict[str, int] | None = None
    model_input: ImageResizer | None = None
    aspect_ratios: dict[str, Any] = field(default_factory=dict)
    image_sizes: dict[str, int] = field(default_factory=dict)
    max_boxes: int = DEFAULT_MAX_BOXES
    max_boxes_source: str = "API default"
    issues: list[Issue] = field(default_factory=list)
    duplicates: dict[str, Any] | None = None
    """Exact and near duplicate images (:func:`tfod_tools.data.dedup.duplicates_report`), None undecoded."""
    leaks: dict[str, Any] | None = None
    """Duplicates between these records and ``against`` (another split), or None."""
    hashes: ImageHashes | None = field(default=None, repr=False)
    outliers: OutlierReport | None = None
    """Boxes inconsistent with their class (:mod:`tfod_tools.data.outliers`)."""

    def issue(self, issue_id: str) -> Issue | None:
        """The finding with this id, or None."""
        return next((issue for issue in self.issues if issue.id == issue_id), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "files": [str(p) for p in self.files],
            "label_map": {str(k): v for k, v in self.label_map.items()},
            "images": self.images,
            "boxes": self.boxes,
            "negative_images": self.negative_images,
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "boxes_per_image": dict(self.boxes_per_image),
            "area_buckets": dict(self.area_buckets),
            "model_input": None if self.model_input is None else self.model_input.to_dict(),
            "model_area_buckets": None if self.model_area_buckets is None else dict(self.model_area_buckets),
            "aspect_ratios": dict(self.aspect_ratios),
            "image_sizes": dict(self.image_sizes),
            "max_number_of_boxes": {"value": self.max_boxes, "from": self.max_boxes_source},
            "issues": [issue.to_dict() for issue in self.issues],
            "duplicate_images": self.duplicates,
            "train_eval_leak": self.leaks,
            "outliers": None if self.outliers is None else self.outliers.to_dict(),
        }


def _header(record: ImageRecord) -> tuple[tuple[int, int] | None, str]:
    """``((width, height), "")`` from the image header, or ``(None, why it is undecodable)``."""
    import io

    from PIL import Image, UnidentifiedImageError

    data = record.encoded
    if not data:
        return None, "image/encoded is empty"
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = str(img.format), (int(img.size[0]), int(img.size[1]))
    except UnidentifiedImageError:
        return None, "not an image"
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"unreadable header ({exc})"
    if fmt not in _DECODABLE:
        return None, f"{fmt} image; the API decodes JPEG, PNG and BMP"
    if fmt in ("JPEG", "MPO") and b"\xff\xd9" not in data[-1024:]:
        return None, "truncated JPEG (no end-of-image marker)"
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        return None, "truncated PNG (no IEND chunk)"
    return size, ""


def _duplicates(boxes: npt.NDArray[np.float64], classes: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of same-class boxes with IoU > 0.9."""
    n = boxes.shape[0]
    if n < 2:
        return []
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    same = classes[:, None] == classes[None, :]
    i, j = np.nonzero(np.triu((iou > _DUPLICATE_IOU) & same, k=1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def _duplicates_of(hashes: ImageHashes, other: ImageHashes | None) -> dict[str, Any]:
    """Duplicates within ``hashes``, or between them and ``other``, at the calibrated threshold."""
    if other is None:
        limit, p1, confirm = calibrated_distance(hashes)
        pairs = find_duplicates(hashes, limit, confirm)
        return duplicates_report(pairs, len(hashes), limit, p1, confirm)
    limit, p1, confirm = calibrated_distance(hashes, other)
    return duplicates_report(find_leaks(hashes, other, limit, confirm), len(other), limit, p1, confirm)


@dataclass
class ImageFacts:
    """What one record gives on its own (:meth:`_Inspector.examine`, a pure function of the record):
    everything the report needs of it. The fold (:meth:`_Inspector.take`) adds the facts in record
    order; the local pass and ``tfod inspect --beam`` (facts computed in workers) share both."""

    file: str
    index: int
    source_id: str
    findings: list[tuple[str, str]] = field(default_factory=list)
    """``(issue id, detail)`` of this record alone (a duplicate source id is the fold's)."""
    size: tuple[int, int] | None = None
    num_boxes: int = 0
    known_classes: list[int] = field(default_factory=list)
    """The class id of every box of a label map class."""
    hashes: HashEntry | None = None
    hashed: bool = False
    """Whether the image went to the duplicate search (``hashes`` None then: undecodable)."""
    outlier_boxes: tuple[str, npt.NDArray[np.float64], npt.NDArray[np.int64], tuple[int, int]] | None = None
    """``(filename, pixel boxes, classes, size)`` for :meth:`OutlierCollector.add`."""
    areas: npt.NDArray[np.float64] | None = None
    aspects: npt.NDArray[np.float64] | None = None
    model_areas: npt.NDArray[np.float64] | None = None


class _Inspector:
    def __init__(
        self, lm: LabelMap, decode_images: bool, resize: ImageResizer | None, max_boxes: int
    ) -> None:
        self.label_map = lm
        self.names = category_names(lm)  # as the API names classes (display names)
        self.lookup = ClassLookup(lm)
        self.decode_images = decode_images
        self.resize = resize
        self.max_boxes = max_boxes
        self.findings = RecordIssues()
        self.class_boxes: Counter[int] = Counter()
        self.class_images: Counter[int] = Counter()
        self.counts: list[int] = []
        self.areas: list[npt.NDArray[np.float64]] = []
        self.model_areas: list[npt.NDArray[np.float64]] = []
        self.aspects: list[npt.NDArray[np.float64]] = []
        self.sizes: Counter[str] = Counter()
        self.source_ids: dict[str, tuple[str, int]] = {}
        self.hashes = ImageHashes() if decode_images else None  # perceptual hashes (data/dedup.py)
        self.outliers = OutlierCollector(self.names)  # boxes odd for their class (data/outliers.py)

    def _classes(self, rec: ImageRecord, found: list[tuple[str, str]]) -> npt.NDArray[np.int64]:
        labels = list(rec.class_label) if rec.class_label else []
        ids = self.lookup.ids(rec.class_text, labels, rec.num_boxes)  # the API's rule: text first
        if rec.class_text:
            for k, (text, cid) in enumerate(zip(rec.class_text, ids, strict=True)):
                if cid == -1:
                    found.append(("unknown_label", f"box {k}: class text {text!r}"))
                elif labels and labels[k] != cid:
                    found.append(
                        ("class_text_mismatch", f"box {k}: text {text!r} is id {cid}, label is {labels[k]}")
                    )
            return np.asarray(ids, dtype=np.int64)
        for k, label in enumerate(labels):
            if label == 0:
                found.append(("label_zero", f"box {k} has label 0"))
            elif label not in self.names:
                found.append(("unknown_label", f"box {k}: label {label}"))
        return np.asarray(ids, dtype=np.int64)

    def add(self, file: Path, index: int, rec: ImageRecord) -> None:
        """One record: :meth:`examine` then :meth:`take`."""
        self.take(self.examine(file, index, rec))

    def examine(self, file: str | Path, index: int, rec: ImageRecord) -> ImageFacts:
        """What ``rec`` gives on its own (reads nothing of this inspector but its settings)."""
        facts = ImageFacts(str(file), int(index), rec.source_id)
        found = facts.findings
        size: tuple[int, int] | None = (rec.width, rec.height) if rec.width > 0 and rec.height > 0 else None
        if self.decode_images:
            decoded, why = _header(rec)
            if decoded is None:
                found.append(("undecodable_image", why))
            else:
                if size is not None and decoded != size:
                    found.append(
                        ("size_mismatch", f"stored {size[0]}x{size[1]}, image is {decoded[0]}x{decoded[1]}")
                    )
                size = decoded
                facts.hashed, facts.hashes = True, image_entry(rec.encoded)
        facts.size = size
        if not rec.source_id:
            found.append(("missing_source_id", ""))
        n = facts.num_boxes = rec.num_boxes
        if n > self.max_boxes:
            found.append(("too_many_boxes", f"{n} boxes > {self.max_boxes}"))
        if n == 0:
            return facts
        classes = self._classes(rec, found)
        boxes = np.asarray([rec.xmin, rec.ymin, rec.xmax, rec.ymax], dtype=np.float64).T
        finite = np.all(np.isfinite(boxes), axis=1)
        with np.errstate(invalid="ignore"):
            inverted = finite & ((boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3]))
            flat = finite & ~inverted & ((boxes[:, 0] == boxes[:, 2]) | (boxes[:, 1] == boxes[:, 3]))
            outside = finite & np.any((boxes < -_EPS) | (boxes > 1 + _EPS), axis=1)
        for k in np.flatnonzero(~finite | flat).tolist():
            found.append(("degenerate_box", f"box {k}: {[round(v, 4) for v in boxes[k]]}"))
        for k in np.flatnonzero(inverted).tolist():
            found.append(("inverted_box", f"box {k}: {[round(v, 4) for v in boxes[k]]}"))
        for k in np.flatnonzero(outside).tolist():
            found.append(("box_outside_image", f"box {k}: {[round(v, 4) for v in boxes[k]]}"))
        good = finite & ~inverted
        for i, j in _duplicates(np.where(good[:, None], boxes, 0.0), np.where(good, classes, -2)):
            found.append(("duplicate_box", f"boxes {i} and {j}"))
        known = np.asarray([c in self.names for c in classes.tolist()], dtype=bool)
        facts.known_classes = classes[known].tolist()
        if size is None:
            return facts
        pixels = np.where(good[:, None], boxes, np.nan) * [size[0], size[1], size[0], size[1]]
        facts.outlier_boxes = (rec.filename, pixels, classes, size)
        valid = boxes[good]
        w = (valid[:, 2] - valid[:, 0]) * size[0]
        h = (valid[:, 3] - valid[:, 1]) * size[1]
        stored = np.asarray(rec.area, dtype=np.float64)[good] if rec.area else None
        counted = ~np.asarray(rec.is_crowd, dtype=bool)[good] if rec.is_crowd else np.ones(len(valid), bool)
        facts.areas = evaluated_areas(valid, size[0], size[1], stored)[counted]
        with np.errstate(divide="ignore", invalid="ignore"):
            facts.aspects = (w / h)[h > 0]
        if self.resize is not None:
            shape = self.resize.resize(height=size[1], width=size[0])
            sx, sy = shape.scale_x, shape.scale_y
            facts.model_areas = (w * h * sx * sy)[counted]
        return facts

    def take(self, facts: ImageFacts) -> None:
        """Fold one record's facts in (records in order: examples, first source ids, ties in order)."""
        where = (facts.file, facts.index, facts.source_id)
        for issue_id, detail in facts.findings:
            self.findings.add(issue_id, *where, detail)
        if facts.hashed and self.hashes is not None:
            self.hashes.put(*where, facts.hashes)
        if facts.size is not None:
            self.sizes[f"{facts.size[0]}x{facts.size[1]}"] += 1
        if facts.source_id and facts.source_id in self.source_ids:
            first = self.source_ids[facts.source_id]
            self.findings.add("duplicate_source_id", *where, f"also record {first[1]} of {first[0]}")
        elif facts.source_id:
            self.source_ids[facts.source_id] = (facts.file, facts.index)
        self.counts.append(facts.num_boxes)
        self.class_boxes.update(facts.known_classes)
        self.class_images.update(set(facts.known_classes))
        if facts.outlier_boxes is not None:
            self.outliers.add(facts.file, facts.index, facts.source_id, *facts.outlier_boxes)
        if facts.areas is not None:
            self.areas.append(facts.areas)
        if facts.aspects is not None:
            self.aspects.append(facts.aspects)
        if facts.model_areas is not None:
            self.model_areas.append(facts.model_areas)

    def report(self, files: list[Path], max_boxes_source: str) -> InspectionReport:
        counts = np.asarray(self.counts, dtype=np.float64)
        areas = np.concatenate(self.areas) if self.areas else np.zeros(0)
        aspects = np.concatenate(self.aspects) if self.aspects else np.zeros(0)
        bins = np.digitize(aspects, _ASPECT_EDGES)
        aspect: dict[str, Any] = {
            name: int(np.count_nonzero(bins == k)) for k, name in enumerate(_ASPECT_NAMES)
        }
        if aspects.size:
            aspect["quantiles"] = {
                f"p{q}": float(v)
                for q, v in zip((5, 50, 95), np.percentile(aspects, [5, 50, 95]), strict=True)
            }
        return InspectionReport(
            files=files,
            label_map=dict(self.names),
            images=len(self.counts),
            boxes=int(counts.sum()),
            negative_images=int(np.count_nonzero(counts == 0)),
            per_class={
                name: {"images": self.class_images[cid], "boxes": self.class_boxes[cid]}
                for cid, name in self.names.items()
            },
            boxes_per_image={
                "min": float(counts.min()) if counts.size else 0.0,
                "mean": float(counts.mean()) if counts.size else 0.0,
                "p95": float(np.percentile(counts, 95)) if counts.size else 0.0,
                "max": float(counts.max()) if counts.size else 0.0,
            },
            area_buckets=area_bucket_counts(areas),
            model_area_buckets=None
            if self.resize is None
            else area_bucket_counts(np.concatenate(self.model_areas) if self.model_areas else np.zeros(0)),
            model_input=self.resize,
            aspect_ratios=aspect,
            image_sizes=dict(self.sizes.most_common(10)),
            max_boxes=self.max_boxes,
            max_boxes_source=max_boxes_source,
            issues=self.findings.issues(),
            duplicates=None if self.hashes is None else _duplicates_of(self.hashes, None),
            hashes=self.hashes,
            outliers=self.outliers.report(),
        )


def inspect_records(
    paths: str | Path | Sequence[str | Path],
    label_map: LabelMap | Mapping[int, str] | Sequence[str] | str | Path,
    pipeline: str | Path | Any | None = None,
    decode_images: bool = True,
    against: Sequence[str | Path] = (),
) -> InspectionReport:
    """Count and check TF OD API records (files, globs or ``prefix@N``; see the module doc).

    ``pipeline`` (a path or a parsed ``TrainEvalPipelineConfig``) adds model-input area buckets,
    the ``max_number_of_boxes`` that applies, and a ``num_classes`` check. ``decode_images=False``
    skips the image headers (stored sizes are trusted; no ``undecodable_image``/``size_mismatch``)
    and the duplicate search. ``against`` (records of another split) adds the exact and near
    duplicates between the two (:attr:`InspectionReport.leaks`).
    A damaged record file is a :class:`TfodError` naming the file and record index.
    """
    plan = plan_inspection(paths, label_map, pipeline, decode_images, against)
    files: list[Path] = []
    for file, index, record in iter_image_records(plan.paths):
        if not files or files[-1] != file:
            files.append(file)
        plan.inspector.add(file, index, record)
    return finish_inspection(plan, files, hash_records(list(against)) if against else None)


@dataclass
class InspectionPlan:
    """What :func:`inspect_records` settles before reading a record (:func:`plan_inspection`): the
    record files, the per-record inspector, the pipeline's limits; ``tfod inspect --beam`` shares it."""

    paths: list[Path]
    """The record files, expanded, in order."""
    inspector: _Inspector
    """:meth:`_Inspector.examine` gives one record's :class:`ImageFacts`, :meth:`_Inspector.take`
    folds them in record order."""
    config: Any = None
    pipeline: str | Path | Any | None = None
    max_boxes_source: str = "API default"
    against: list[str] = field(default_factory=list)


def plan_inspection(
    paths: str | Path | Sequence[str | Path],
    label_map: LabelMap | Mapping[int, str] | Sequence[str] | str | Path,
    pipeline: str | Path | Any | None = None,
    decode_images: bool = True,
    against: Sequence[str | Path] = (),
) -> InspectionPlan:
    """The checks :func:`inspect_records` makes before reading (label map, files, pipeline, options);
    a :class:`TfodError` for bad input."""
    lm = as_label_map(label_map)
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise TfodError("no record files given", fix="pass one or more TFRecord files, globs or PREFIX@N")
    expanded = [file for item in items for file in expand_record_paths(item)]
    if against and not decode_images:
        raise TfodError("comparing with other records needs the images decoded", fix="drop --no-decode")
    resize: ImageResizer | None = None
    max_boxes, source = DEFAULT_MAX_BOXES, "API default"
    config = None
    if pipeline is not None:
        from tfod_tools.odapi.pipeline import check_configured, load_pipeline

        config = load_pipeline(pipeline) if isinstance(pipeline, (str, Path)) else pipeline
        check_configured(config, pipeline if isinstance(pipeline, (str, Path)) else None)
        resize = ImageResizer.from_pipeline(config)
        max_boxes, source = _max_boxes(config, expanded)
    inspector = _Inspector(lm, decode_images, resize, max_boxes)
    return InspectionPlan(expanded, inspector, config, pipeline, source, [str(p) for p in against])


def finish_inspection(
    plan: InspectionPlan, files: list[Path], against: ImageHashes | None = None
) -> InspectionReport:
    """The report once every record was folded into ``plan.inspector``: ``files`` those that held
    records (in order), ``against`` the hashes of ``plan.against``'s records."""
    inspector = plan.inspector
    if plan.config is not None:
        from tfod_tools.odapi.pipeline import num_classes

        expected = num_classes(plan.config)
        ids = inspector.label_map.ids
        if expected is not None and ids and max(ids) != expected:
            detail = f"label map max id {max(ids)}, num_classes {expected}"
            inspector.findings.add("num_classes_mismatch", str(plan.pipeline), -1, "", detail)
    report = inspector.report(files, plan.max_boxes_source)
    if plan.against and report.hashes is not None and against is not None:
        report.leaks = _duplicates_of(report.hashes, against)
        report.leaks["against"] = list(plan.against)
    return report
