"""The TF OD API's TFRecord layout <-> :mod:`tfod_tools.data.model`, without TensorFlow.

One :class:`ImageRecord` is one ``tf.train.Example`` with the keys the API's ``TfExampleDecoder``
reads: ``image/encoded``, ``image/format``, ``image/height``, ``image/width``, ``image/filename``,
``image/source_id``, ``image/key/sha256``, image-level ``image/class/{text,label,confidence}``,
``image/neg_category_ids``, ``image/not_exhaustive_category_ids`` and per object
``image/object/bbox/{xmin,ymin,xmax,ymax}`` (normalised to [0, 1]),
``image/object/class/{text,label}``, ``image/object/{area,is_crowd,difficult,group_of,weight}``.
Other keys (masks, keypoints, ...) are kept untouched in :attr:`ImageRecord.extra`.

>>> import tempfile, pathlib
>>> rec = ImageRecord.from_pixels(b"<jpeg bytes>", width=256, height=128, boxes=[[64, 32, 192, 96]],
...                               classes=[1], label_map={1: "square"}, source_id="img-7")
>>> rec.xmin, rec.ymin, rec.xmax, rec.ymax, rec.class_text
((0.25,), (0.25,), (0.75,), (0.75,), ('square',))
>>> ImageRecord.decode(rec.encode()) == rec
True
>>> path = pathlib.Path(tempfile.mkdtemp()) / "train.record"
>>> write_image_records(path, [rec])
[PosixPath('...train.record')]
>>> data = read_annotated_set(path, {1: "square"})
>>> data.ground_truth.boxes.tolist(), data.images.file_names
([[64.0, 32.0, 192.0, 96.0]], ('img-7',))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.areas import evaluated_areas
from tfod_tools.data.classes import ClassLookup, category_names
from tfod_tools.data.example import (
    ExampleDecodeError,
    Feature,
    bytes_feature,
    decode_example,
    encode_example,
    float_feature,
    int64_feature,
)
from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
from tfod_tools.data.tfrecord import TFRecordWriter, expand_record_paths, iter_records, shard_names
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import output_parents
from tfod_tools.odapi.label_map import LabelMap, as_label_map

__all__ = [
    "KNOWN_KEYS",
    "ImageRecord",
    "iter_image_records",
    "read_annotated_set",
    "read_image_records",
    "write_image_records",
]

# (attribute, key, kind, converter) for every key the API's TfExampleDecoder reads by default.
_SCALARS: tuple[tuple[str, str, str], ...] = (
    ("encoded", "image/encoded", "bytes"),
    ("format", "image/format", "bytes"),
    ("filename", "image/filename", "bytes"),
    ("key_sha256", "image/key/sha256", "bytes"),
    ("source_id", "image/source_id", "bytes"),
    ("height", "image/height", "int64"),
    ("width", "image/width", "int64"),
)
_LISTS: tuple[tuple[str, str, str], ...] = (
    ("image_class_text", "image/class/text", "bytes"),
    ("image_class_label", "image/class/label", "int64"),
    ("image_class_confidence", "image/class/confidence", "float"),
    ("neg_category_ids", "image/neg_category_ids", "int64"),
    ("not_exhaustive_category_ids", "image/not_exhaustive_category_ids", "int64"),
    ("xmin", "image/object/bbox/xmin", "float"),
    ("xmax", "image/object/bbox/xmax", "float"),
    ("ymin", "image/object/bbox/ymin", "float"),
    ("ymax", "image/object/bbox/ymax", "float"),
    ("class_label", "image/object/class/label", "int64"),
    ("class_text", "image/object/class/text", "bytes"),
    ("area", "image/object/area", "float"),
    ("is_crowd", "image/object/is_crowd", "int64"),
    ("difficult", "image/object/difficult", "int64"),
    ("group_of", "image/object/group_of", "int64"),
    ("weight", "image/object/weight", "float"),
)
# Per-object columns that are always written (empty lists for an image without boxes).
_ALWAYS = frozenset({"xmin", "xmax", "ymin", "ymax", "class_label", "class_text"})
_PER_OBJECT_OPTIONAL = ("class_label", "class_text", "area", "is_crowd", "difficult", "group_of", "weight")
KNOWN_KEYS: frozenset[str] = frozenset(key for _, key, _ in (*_SCALARS, *_LISTS))
"""The keys :class:`ImageRecord` models; any other key goes to :attr:`ImageRecord.extra`."""


def _f32(values: Iterable[float]) -> tuple[float, ...]:
    """Round to float32 (what the file stores) so that encode -> decode is the identity."""
    return tuple(np.asarray(list(values), dtype=np.float32).astype(np.float64).tolist())


@dataclass(frozen=True)
class ImageRecord:
    """One image of a TF OD API TFRecord, with its boxes normalised as the API stores them.

    Per-object tuples have one value per box, or none (``area`` ... ``weight``: not stored).
    Floats are float32 values, as stored.
    """

    encoded: bytes
    format: str = "jpeg"
    height: int = 0
    width: int = 0
    filename: str = ""
    source_id: str = ""
    key_sha256: str = ""
    xmin: tuple[float, ...] = ()
    ymin: tuple[float, ...] = ()
    xmax: tuple[float, ...] = ()
    ymax: tuple[float, ...] = ()
    class_text: tuple[str, ...] = ()
    class_label: tuple[int, ...] = ()
    area: tuple[float, ...] = ()
    is_crowd: tuple[int, ...] = ()
    difficult: tuple[int, ...] = ()
    group_of: tuple[int, ...] = ()
    weight: tuple[float, ...] = ()
    image_class_text: tuple[str, ...] = ()
    image_class_label: tuple[int, ...] = ()
    image_class_confidence: tuple[float, ...] = ()
    neg_category_ids: tuple[int, ...] = ()
    not_exhaustive_category_ids: tuple[int, ...] = ()
    extra: Mapping[str, Feature] = field(default_factory=dict, compare=False)

    @property
    def num_boxes(self) -> int:
        """Number of objects."""
        return len(self.xmin)

    def check(self) -> None:
        """Raise ``ValueError`` if the per-object columns disagree in length.

        The four box columns have one value per box; every other per-object column has one value
        per box or none; a record with boxes has class labels or class texts.
        """
        n = len(self.xmin)
        for name in ("ymin", "xmax", "ymax"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{len(getattr(self, name))} values in {name} for {n} boxes")
        for name in _PER_OBJECT_OPTIONAL:
            if len(getattr(self, name)) not in (0, n):
                raise ValueError(f"{len(getattr(self, name))} values in {name} for {n} boxes")
        if n and not self.class_label and not self.class_text:
            raise ValueError(f"{n} boxes without class labels or class texts")

    @classmethod
    def from_pixels(
        cls,
        encoded: bytes,
        *,
        width: int,
        height: int,
        boxes: Sequence[Sequence[float]] | np.ndarray,
        classes: Sequence[int] | np.ndarray,
        label_map: LabelMap | Mapping[int, str] | Sequence[str],
        format: str = "jpeg",
        filename: str = "",
        source_id: str = "",
        difficult: Sequence[int] | None = None,
        is_crowd: Sequence[int] | None = None,
        area: Sequence[float] | None = None,
    ) -> ImageRecord:
        """Build a record from ``[x1, y1, x2, y2]`` pixel boxes and label map ids.

        ``area`` defaults to the box areas in pixels; ``key_sha256`` is the SHA-256 of ``encoded``.
        """
        lm = as_label_map(label_map)
        box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        cls_list = [int(c) for c in np.asarray(classes).reshape(-1)]
        if len(cls_list) != box_arr.shape[0]:
            raise ValueError(f"{len(cls_list)} classes for {box_arr.shape[0]} boxes")
        n = len(cls_list)
        areas = (box_arr[:, 2] - box_arr[:, 0]) * (box_arr[:, 3] - box_arr[:, 1]) if area is None else area
        return cls(
            encoded=encoded,
            format=format,
            height=int(height),
            width=int(width),
            filename=filename,
            source_id=source_id,
            key_sha256=hashlib.sha256(encoded).hexdigest(),
            xmin=_f32(box_arr[:, 0] / width),
            ymin=_f32(box_arr[:, 1] / height),
            xmax=_f32(box_arr[:, 2] / width),
            ymax=_f32(box_arr[:, 3] / height),
            class_text=tuple(lm.name_of(c) for c in cls_list),
            class_label=tuple(cls_list),
            area=_f32(areas),
            is_crowd=tuple(int(v) for v in (is_crowd if is_crowd is not None else [0] * n)),
            difficult=tuple(int(v) for v in (difficult if difficult is not None else [0] * n)),
        )

    def boxes_pixels(self) -> np.ndarray:
        """Boxes as ``(N, 4)`` float64 ``[x1, y1, x2, y2]`` in absolute pixels."""
        arr = np.asarray([self.xmin, self.ymin, self.xmax, self.ymax], dtype=np.float64).reshape(4, -1).T
        return arr * np.asarray([self.width, self.height, self.width, self.height], dtype=np.float64)

    def to_features(self) -> dict[str, Feature]:
        """The record as ``{key: Feature}``."""
        self.check()
        features: dict[str, Feature] = dict(self.extra)
        for attr, key, kind in _SCALARS:
            value = getattr(self, attr)
            features[key] = int64_feature([value]) if kind == "int64" else bytes_feature([value])
        for attr, key, kind in _LISTS:
            values = getattr(self, attr)
            if not values and attr not in _ALWAYS:
                continue
            if kind == "bytes":
                features[key] = bytes_feature(values)
            elif kind == "float":
                features[key] = float_feature(values)
            else:
                features[key] = int64_feature(values)
        return features

    def encode(self) -> bytes:
        """The serialised ``tf.train.Example`` (deterministic bytes)."""
        return encode_example(self.to_features())

    @classmethod
    def from_features(cls, features: Mapping[str, Feature]) -> ImageRecord:
        """Build from decoded features; raises ``ValueError`` for a key of the wrong kind."""
        kwargs: dict[str, Any] = {}
        for attr, key, kind in (*_SCALARS, *_LISTS):
            feature = features.get(key)
            if feature is None or len(feature) == 0:
                continue
            if feature.kind != kind:
                raise ValueError(f"{key} is a {feature.kind} list, expected {kind}")
            if kind == "bytes":
                values: tuple[Any, ...] = tuple(_text(v) if attr != "encoded" else v for v in feature.values)
            elif kind == "float":
                values = tuple(np.asarray(feature.values, dtype=np.float64).tolist())
            else:
                values = tuple(int(v) for v in np.asarray(feature.values).tolist())
            if any(attr == s[0] for s in _SCALARS):
                kwargs[attr] = values[0]
            else:
                kwargs[attr] = values
        kwargs.setdefault("encoded", b"")
        extra = {k: v for k, v in features.items() if k not in KNOWN_KEYS}
        record = cls(**kwargs, extra=extra)
        record.check()
        return record

    @classmethod
    def decode(cls, data: bytes) -> ImageRecord:
        """Parse a serialised ``tf.train.Example``."""
        return cls.from_features(decode_example(data))

    def image_size(self) -> tuple[int, int]:
        """``(width, height)``: the stored size, or read from the image header when not stored."""
        if self.width > 0 and self.height > 0:
            return self.width, self.height
        import io

        from PIL import Image

        with Image.open(io.BytesIO(self.encoded)) as img:
            return int(img.width), int(img.height)


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def write_image_records(
    path: str | Path, records: Iterable[ImageRecord], *, num_shards: int = 1
) -> list[Path]:
    """Write records to ``path`` (or ``num_shards`` files ``path-0000i-of-0000n``, round robin).

    Every file is written atomically; when ``records`` raises, no file is left, nor a parent
    directory created for them.
    """
    names = [str(path)] if num_shards == 1 else shard_names(path, num_shards)
    with output_parents(path):
        writers: list[TFRecordWriter] = []
        try:
            for name in names:
                writers.append(TFRecordWriter(name))
            for k, record in enumerate(records):
                writers[k % len(writers)].write(record.encode())
        except BaseException as exc:
            for writer in writers:
                writer.abort(exc)
            raise
        for writer in writers:
            writer.close()
    return [Path(name) for name in names]


def input_record_files(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """The record files of ``inputs`` (files, globs, ``PREFIX@N``); refuses none, or a missing one.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_image_records(d / "t.record", [], num_shards=2)
    >>> [p.name for p in input_record_files(f"{d}/t.record@2")]
    ['t.record-00000-of-00002', 't.record-00001-of-00002']
    >>> input_record_files([])
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: no input record files (fix: pass --input PATH (a file, glob or prefix@N))
    >>> input_record_files(d / "missing.record")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: ...missing.record: TFRecord file not found (fix: check the --input path)
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files = [f for item in items for f in expand_record_paths(item)]
    if not files:
        raise TfodError("no input record files", fix="pass --input PATH (a file, glob or prefix@N)")
    for f in files:
        if not f.is_file():
            raise TfodError("TFRecord file not found", path=f, fix="check the --input path")
    return files


def iter_image_records(paths: str | Path | Sequence[str | Path]) -> Iterator[tuple[Path, int, ImageRecord]]:
    """Stream ``(file, record_index, ImageRecord)`` from files, globs or ``prefix@N`` shard specs."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for item in items:
        for file in expand_record_paths(item):
            for index, data in iter_records(file):
                yield file, index, decode_record(data, file, index)


def decode_record(data: bytes, file: str | Path, index: int) -> ImageRecord:
    """:meth:`ImageRecord.decode`, with a :class:`TfodError` naming ``file`` and record ``index``.

    A record that decodes to an Example without a single feature is refused too: it is no
    image record (an event file's records, for one, parse as such an empty Example).

    >>> event = b"\\x09" + bytes(8)  # an Event's wall_time: field 1 as a double, unknown to an Example
    >>> decode_record(event, "x.record", 0)
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: x.record: record 0: not a TF OD API tf.train.Example (it has no \
features: is this a TensorBoard event file?) (fix: re-create the record file with the TF OD API layout)
    """
    try:
        features = decode_example(data)
        if not features:
            raise ValueError("it has no features: is this a TensorBoard event file?")
        return ImageRecord.from_features(features)
    except (ExampleDecodeError, ValueError) as exc:
        raise TfodError(
            f"record {index}: not a TF OD API tf.train.Example ({exc})",
            path=file,
            fix="re-create the record file with the TF OD API layout",
        ) from None


def read_image_records(paths: str | Path | Sequence[str | Path]) -> list[ImageRecord]:
    """All records of the given files (see :func:`iter_image_records`)."""
    return [record for _, _, record in iter_image_records(paths)]


def read_annotated_set(
    paths: str | Path | Sequence[str | Path],
    label_map: LabelMap | Mapping[int, str] | Sequence[str] | str | Path | None = None,
) -> AnnotatedSet:
    """Read TF OD API records into an :class:`AnnotatedSet` (ground truth only).

    Image ids are 1..N in record order; ``images.file_names`` keeps each record's source id
    (or file name when the source id is empty). Boxes become absolute pixels; each box's ``area`` is
    the one the API's COCO evaluation uses (:func:`tfod_tools.data.areas.evaluated_areas`: the
    stored ``image/object/area`` when > 0, else the box area). Classes follow the API's decoder
    (:class:`tfod_tools.data.classes.ClassLookup`): with ``label_map``, the class text when a record
    has texts, else the label (a class the label map lacks is a :class:`TfodError`); without one, the
    labels. Categories come from ``label_map``; without one, from the labels and texts found.
    """
    lm = None if label_map is None else as_label_map(label_map)
    lookup = None if lm is None else ClassLookup(lm)
    widths: list[int] = []
    heights: list[int] = []
    names: list[str] = []
    image_ids: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    classes: list[int] = []
    areas: list[np.ndarray] = []
    crowd: list[int] = []
    difficult: list[int] = []
    seen: dict[int, str] = {}
    for image_id, (file, index, record) in enumerate(iter_image_records(paths), start=1):
        width, height = record.image_size()
        widths.append(width)
        heights.append(height)
        names.append(record.source_id or record.filename or str(image_id))
        n = record.num_boxes
        labels = _labels(record, lookup, file, index)
        for label, text in zip(labels, record.class_text or ("",) * n, strict=False):
            seen.setdefault(label, text or str(label))
        rec = replace(record, width=width, height=height)
        px = rec.boxes_pixels()
        image_ids.append(np.full(n, image_id, dtype=np.int64))
        boxes.append(px)
        classes.extend(labels)
        normalised = np.asarray([record.xmin, record.ymin, record.xmax, record.ymax], dtype=np.float64)
        areas.append(evaluated_areas(normalised.reshape(4, -1).T, width, height, record.area))
        crowd.extend(record.is_crowd or (0,) * n)
        difficult.extend(record.difficult or (0,) * n)
    categories = category_names(lm) if lm is not None else dict(sorted(seen.items()))
    ground_truth = GroundTruth.from_arrays(
        image_ids=np.concatenate(image_ids) if image_ids else [],
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        classes=classes,
        area=np.concatenate(areas) if areas else None,
        iscrowd=crowd,
        difficult=difficult,
    )
    images = ImageTable.from_sizes(
        ids=np.arange(1, len(widths) + 1), widths=widths, heights=heights, file_names=names
    )
    data = AnnotatedSet(images=images, categories=categories, ground_truth=ground_truth)
    data.validate(source=", ".join(str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)))
    return data


def _labels(record: ImageRecord, lookup: ClassLookup | None, file: Path, index: int) -> list[int]:
    """The API's class of each box (:mod:`tfod_tools.data.classes`); without a label map, the labels."""
    n = record.num_boxes
    if lookup is not None:
        return lookup.checked_ids(record.class_text, record.class_label, n, file=file, index=index)
    if n and not record.class_label:
        raise TfodError(
            f"record {index}: boxes have class text but no class labels",
            path=file,
            fix="pass the label map so class texts can be mapped to ids",
        )
    return list(record.class_label)
