"""The format-independent half of ``tfod convert``: source images -> TF OD API records + label map.

Each reader (:mod:`.coco`, :mod:`.voc`, :mod:`.csv`) turns its annotations into a
:class:`SourceSet` - images with ``[x1, y1, x2, y2]`` pixel boxes and class *names* - and
:func:`write_source_set` does the rest, the same way for every format:

* class ids: from ``classes`` (an existing label map, e.g. the training split's) when given; else
  the COCO file's own category ids; else the class names sorted alphabetically get ids 1..N (so
  two splits with the same classes get the same ids);
* images: read with :func:`~tfod_tools.data.convert.images.load_image` (grayscale, PNG, 16-bit);
  a missing or undecodable image, or one whose real size differs from the annotated size, is a
  *bad image*: ``on_bad_image="fail"`` stops with an error naming it, ``"skip"`` leaves it out and
  lists it under ``skipped``;
* boxes: clipped to the image; a box that is NaN, inverted (xmax < xmin) or empty after clipping
  is dropped and listed under ``skipped``; pixel coordinates are divided by the image size as the
  API's own converters do (no 1-pixel shift for Pascal VOC);
* outputs: ``PREFIX`` or ``PREFIX-00000-of-0000N`` (round robin) and the label map, all written
  atomically, none of them allowed to be one of the inputs.

>>> import tempfile, pathlib, numpy as np
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(d / "a.jpg")
>>> src = SourceSet("csv", [SourceImage(d / "a.jpg", "a", (SourceObject((4, 2, 44, 10), "cat"),))])
>>> summary = write_source_set(src, d / "out.record")
>>> summary.images, summary.boxes, summary.boxes_clipped, summary.per_class
(1, 1, 1, {'cat': {'images': 1, 'boxes': 1}})
>>> [p.name for p in summary.outputs], summary.label_map.name
(['out.record'], 'label_map.pbtxt')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tfod_tools.data.convert.images import SIXTEEN_BIT_MODES, BadImage, load_image
from tfod_tools.data.example import int64_feature
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.data.tfrecord import shard_names
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, write_label_map

__all__ = [
    "ON_BAD_IMAGE",
    "ConversionSummary",
    "ImageResult",
    "SourceImage",
    "SourceObject",
    "SourceSet",
    "WritePlan",
    "assign_label_map",
    "convert_image",
    "plan_write",
    "write_planned",
    "write_source_set",
]

ON_BAD_IMAGE: tuple[str, ...] = ("fail", "skip")
_MAX_SKIPPED_LISTED = 200


@dataclass(frozen=True)
class SourceObject:
    """One annotated box: ``[x1, y1, x2, y2]`` in pixels, class name and flags."""

    box: tuple[float, float, float, float]
    class_name: str
    difficult: int = 0
    truncated: int = 0
    is_crowd: int = 0
    area: float | None = None


@dataclass(frozen=True)
class SourceImage:
    """One image to convert: file, source id, boxes, annotated size (if any) and where it came from."""

    path: Path
    source_id: str
    objects: tuple[SourceObject, ...] = ()
    width: int | None = None
    height: int | None = None
    where: str = ""


@dataclass(frozen=True)
class SourceSet:
    """What a reader found: format, images, the annotation files read and (COCO) the file's categories."""

    format: str
    images: list[SourceImage]
    inputs: list[Path] = field(default_factory=list)
    categories: Mapping[int, str] | None = None
    has_truncated: bool = False


@dataclass
class ConversionSummary:
    """What :func:`write_source_set` wrote; :meth:`to_dict` is the ``--json`` document."""

    format: str
    images: int = 0
    boxes: int = 0
    negative_images: int = 0
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    label_map: Path | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_images: int = 0
    skipped_boxes: int = 0
    boxes_clipped: int = 0
    image_notes: dict[str, int] = field(default_factory=dict)
    stale_outputs: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "format": self.format,
            "images": self.images,
            "boxes": self.boxes,
            "negative_images": self.negative_images,
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "outputs": [str(p) for p in self.outputs],
            "label_map": None if self.label_map is None else str(self.label_map),
            "skipped_images": self.skipped_images,
            "skipped_boxes": self.skipped_boxes,
            "skipped": list(self.skipped),
            "boxes_clipped": self.boxes_clipped,
            "image_notes": dict(self.image_notes),
            "stale_outputs": [str(p) for p in self.stale_outputs],
        }

    def add(self, result: ImageResult) -> None:
        """Count one image's :class:`ImageResult` (images in input order give the local summary)."""
        for item in result.skipped:
            if len(self.skipped) < _MAX_SKIPPED_LISTED:
                self.skipped.append(item)
        self.skipped_boxes += result.skipped_boxes
        if result.skipped_image:
            self.skipped_images += 1
            return
        if result.note:
            self.image_notes[result.note] = self.image_notes.get(result.note, 0) + 1
        self.boxes_clipped += result.boxes_clipped
        self.images += 1
        self.boxes += len(result.class_names)
        self.negative_images += not result.class_names
        for name in dict.fromkeys(result.class_names):
            self.per_class[name]["images"] += 1
        for name in result.class_names:
            self.per_class[name]["boxes"] += 1


@dataclass
class ImageResult:
    """What one image contributes to a conversion: its record (None: skipped) and its summary counts.

    :func:`convert_image` makes one per image; :meth:`ConversionSummary.add` adds them up in image
    order, the same way for the local writer and a Beam run (:mod:`tfod_tools.beam.convert`).
    """

    record: ImageRecord | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_image: bool = False
    skipped_boxes: int = 0
    boxes_clipped: int = 0
    note: str = ""
    class_names: list[str] = field(default_factory=list)  # the kept boxes' classes, in box order

    def without_record(self) -> ImageResult:
        """The counts alone (what a Beam run gathers in one place for the summary)."""
        return replace(self, record=None)


def assign_label_map(source: SourceSet, classes: LabelMap | None = None) -> LabelMap:
    """The label map of the output: ``classes`` if given, else the COCO categories, else sorted names.

    >>> src = SourceSet("voc", [SourceImage(Path("x.jpg"), "x", (SourceObject((0, 0, 1, 1), "dog"),
    ...                                                         SourceObject((0, 0, 1, 1), "cat")))])
    >>> assign_label_map(src).categories()
    {1: 'cat', 2: 'dog'}
    """
    names = sorted({obj.class_name for image in source.images for obj in image.objects})
    if classes is not None:
        known = set(classes.names) | {item.display_name for item in classes if item.display_name}
        missing = [name for name in names if name not in known]
        if missing:
            raise TfodError(
                f"classes not in the label map: {', '.join(missing[:10])}",
                path=classes.path,
                fix="add them to that label map, or leave out --classes to assign new ids",
            )
        return classes
    if source.categories is not None:
        return LabelMap.from_mapping(source.categories)
    if not names:
        raise TfodError(
            "no boxes and no classes found, so there is no label map to write",
            path=source.inputs[0] if source.inputs else None,
            fix="pass --classes with an existing label map",
        )
    return LabelMap.from_names(names)


def _output_paths(out: Path, num_shards: int) -> list[Path]:
    return [out] if num_shards == 1 else [Path(p) for p in shard_names(out, num_shards)]


def _check_not_inputs(outputs: Sequence[Path], source: SourceSet, classes: LabelMap | None) -> None:
    inputs = {p.resolve() for p in source.inputs}
    inputs |= {image.path.resolve() for image in source.images}
    if classes is not None and classes.path:
        inputs.add(Path(classes.path).resolve())
    for path in outputs:
        if path.resolve() in inputs:
            raise TfodError(
                "this output would overwrite one of the inputs",
                path=path,
                fix="choose another --out / --label-map path",
            )
        if path.is_dir():
            raise TfodError("output path is a directory", path=path, fix="--out is a file prefix")


def _clip(obj: SourceObject, width: int, height: int) -> tuple[tuple[float, float, float, float] | None, str]:
    x1, y1, x2, y2 = obj.box
    if not all(math.isfinite(v) for v in obj.box):
        return None, "NaN/inf box coordinate"
    if x2 < x1 or y2 < y1:
        return None, f"inverted box (xmin {x1:g} > xmax {x2:g} or ymin {y1:g} > ymax {y2:g})"
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, "empty box (zero width or height inside the image)"
    return (cx1, cy1, cx2, cy2), "clipped" if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2) else ""


def convert_image(
    image: SourceImage,
    lm: LabelMap,
    *,
    on_bad_image: str = "fail",
    sixteen_bit: str = "scale",
    with_truncated: bool = False,
    data: bytes | None = None,
) -> ImageResult:
    """Load, check and encode one image: its record and what it adds to the summary (``data``: the
    file's bytes when read elsewhere, e.g. through Beam's file systems; else the file is read).

    A bad image is a :class:`TfodError` naming it with ``on_bad_image="fail"``, else a skipped
    result. Boxes are clipped to the image; NaN, inverted or empty ones are dropped and listed.

    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(d / "a.jpg")
    >>> lm = LabelMap.from_names(["cat"])
    >>> result = convert_image(SourceImage(d / "a.jpg", "a", (SourceObject((4, 2, 44, 10), "cat"),)), lm)
    >>> result.record.num_boxes, result.boxes_clipped, result.class_names
    (1, 1, ['cat'])
    >>> convert_image(SourceImage(d / "gone.jpg", "g"), lm, on_bad_image="skip").skipped_image
    True
    """
    where = image.where or str(image.path)
    try:
        loaded = load_image(image.path, sixteen_bit=sixteen_bit, data=data)
        annotated = (image.width, image.height)
        if None not in annotated and annotated != (loaded.width, loaded.height):
            raise BadImage(
                f"annotated size {image.width}x{image.height} differs from the image's "
                f"{loaded.width}x{loaded.height}"
            )
    except BadImage as exc:
        if on_bad_image == "fail":
            raise TfodError(
                f"{where}: {exc.reason}",
                path=image.path,
                fix="fix or remove the image, or pass --on-bad-image skip",
            ) from None
        return ImageResult(
            skipped=[{"item": f"image {image.path}", "reason": exc.reason}], skipped_image=True
        )
    result = ImageResult(note=loaded.note or "")
    kept: list[tuple[SourceObject, tuple[float, float, float, float]]] = []
    for k, obj in enumerate(image.objects):
        box, status = _clip(obj, loaded.width, loaded.height)
        if box is None:
            result.skipped_boxes += 1
            result.skipped.append({"item": f"{where} box {k}", "reason": status})
            continue
        result.boxes_clipped += status == "clipped"
        kept.append((obj, box))
    classes = [lm.id_of(obj.class_name) for obj, _ in kept]
    record = ImageRecord.from_pixels(
        loaded.encoded,
        width=loaded.width,
        height=loaded.height,
        boxes=[box for _, box in kept],
        classes=classes,
        label_map=lm,
        format=loaded.format,
        filename=image.path.name,
        source_id=image.source_id,
        difficult=[obj.difficult for obj, _ in kept],
        is_crowd=[obj.is_crowd for obj, _ in kept],
        area=[obj.area if obj.area is not None else (b[2] - b[0]) * (b[3] - b[1]) for obj, b in kept],
    )
    if with_truncated:
        truncated = int64_feature([obj.truncated for obj, _ in kept])
        record = replace(record, extra={"image/object/truncated": truncated})
    result.record = record
    result.class_names = [lm.name_of(cls) for cls in classes]
    return result


@dataclass(frozen=True)
class WritePlan:
    """Everything checked before the first image is read: ids, output paths, options (:func:`plan_write`)."""

    format: str
    out: Path
    num_shards: int
    label_map: LabelMap
    outputs: list[Path]
    label_map_path: Path | None
    on_bad_image: str
    sixteen_bit: str
    with_truncated: bool

    def new_summary(self) -> ConversionSummary:
        """An empty summary with a row for every class."""
        return ConversionSummary(
            format=self.format, per_class={n: {"images": 0, "boxes": 0} for n in self.label_map.names}
        )

    def convert(self, image: SourceImage, data: bytes | None = None) -> ImageResult:
        """:func:`convert_image` with this plan's label map and options."""
        return convert_image(
            image,
            self.label_map,
            on_bad_image=self.on_bad_image,
            sixteen_bit=self.sixteen_bit,
            with_truncated=self.with_truncated,
            data=data,
        )

    def finish(self, summary: ConversionSummary) -> ConversionSummary:
        """After the records are written: the label map, and shards of an earlier run with other --shards."""
        summary.outputs = list(self.outputs)
        if self.label_map_path is not None:
            summary.label_map = write_label_map(self.label_map_path, self.label_map)
        pattern = f"{self.out.name}-?????-of-?????"
        summary.stale_outputs = sorted(p for p in self.out.parent.glob(pattern) if p not in set(self.outputs))
        return summary


def plan_write(
    source: SourceSet,
    out: str | Path,
    *,
    num_shards: int = 1,
    label_map_out: str | Path | None = None,
    classes: LabelMap | None = None,
    on_bad_image: str = "fail",
    sixteen_bit: str = "scale",
    write_label_map_file: bool = True,
) -> WritePlan:
    """Check the options and outputs of writing ``source`` at ``out`` (see :func:`write_source_set`)."""
    if on_bad_image not in ON_BAD_IMAGE:
        raise TfodError(f"unknown on_bad_image {on_bad_image!r}", fix=f"use one of {', '.join(ON_BAD_IMAGE)}")
    if sixteen_bit not in SIXTEEN_BIT_MODES:
        raise TfodError(
            f"unknown 16-bit mode {sixteen_bit!r}", fix=f"use one of {', '.join(SIXTEEN_BIT_MODES)}"
        )
    if num_shards < 1:
        raise TfodError(f"--shards must be >= 1, got {num_shards}")
    out_path = Path(out)
    lm = assign_label_map(source, classes)
    outputs = _output_paths(out_path, num_shards)
    lm_path = None
    if write_label_map_file:
        lm_path = Path(label_map_out) if label_map_out is not None else out_path.parent / "label_map.pbtxt"
    _check_not_inputs([*outputs, *([lm_path] if lm_path else [])], source, classes)
    if len(set(outputs) | ({lm_path} if lm_path else set())) != len(outputs) + (lm_path is not None):
        raise TfodError(
            "the label map path is one of the record paths", path=lm_path, fix="choose another --label-map"
        )
    return WritePlan(
        source.format,
        out_path,
        num_shards,
        lm,
        outputs,
        lm_path,
        on_bad_image,
        sixteen_bit,
        source.has_truncated,
    )


def write_source_set(
    source: SourceSet,
    out: str | Path,
    *,
    num_shards: int = 1,
    label_map_out: str | Path | None = None,
    classes: LabelMap | None = None,
    on_bad_image: str = "fail",
    sixteen_bit: str = "scale",
    write_label_map_file: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ConversionSummary:
    """Write ``source`` as TF OD API records at ``out`` (sharded when ``num_shards > 1``) and a label map.

    ``label_map_out`` defaults to ``label_map.pbtxt`` beside ``out``; with ``write_label_map_file``
    False no label map is written (useful with ``classes``, whose file already holds the ids).
    """
    plan = plan_write(
        source,
        out,
        num_shards=num_shards,
        label_map_out=label_map_out,
        classes=classes,
        on_bad_image=on_bad_image,
        sixteen_bit=sixteen_bit,
        write_label_map_file=write_label_map_file,
    )
    return write_planned(source, plan, progress=progress)


def write_planned(
    source: SourceSet, plan: WritePlan, *, progress: Callable[[int], None] | None = None
) -> ConversionSummary:
    """Convert every image of ``source`` in order and write the records and label map ``plan`` names."""
    summary = plan.new_summary()

    def records() -> Iterator[ImageRecord]:
        for image in source.images:
            result = plan.convert(image)
            summary.add(result)
            if progress is not None:
                progress(1)
            if result.record is not None:
                yield result.record

    write_image_records(plan.out, records(), num_shards=plan.num_shards)
    return plan.finish(summary)
