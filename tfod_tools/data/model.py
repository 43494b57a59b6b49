"""The one in-memory data model for ground truth and detections.

Everything that reads annotations (TFRecords, COCO JSON, Pascal VOC XML, CSV, a model's
detections) produces these columnar tables; everything that measures (metrics, diagnostics)
consumes them. One box convention inside: ``[x1, y1, x2, y2]`` in absolute pixels of the
original image, float64 ("continuous" coordinates, so a box's area is ``(x2-x1)*(y2-y1)``).
Rows of a table are boxes; ``image_ids`` says which image each row belongs to.

>>> import numpy as np
>>> images = ImageTable.from_sizes(ids=[1, 2], widths=[640, 320], heights=[480, 240])
>>> gt = GroundTruth.from_arrays(
...     image_ids=[1, 1, 2], boxes=[[0, 0, 10, 10], [5, 5, 25, 15], [1, 2, 3, 4]], classes=[1, 2, 1])
>>> gt.area.tolist()
[100.0, 200.0, 4.0]
>>> len(gt), gt.select(gt.classes == 1).image_ids.tolist()
(3, [1, 2])
>>> dt = Detections.from_arrays(image_ids=[1], boxes=[[0, 0, 9, 9]], classes=[1], scores=[0.9])
>>> data = AnnotatedSet(images=images, categories={1: "normal", 2: "covid"}, ground_truth=gt, detections=dt)
>>> data.validate()
>>> data.category_ids.tolist()
[1, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
RLE = dict[str, Any]
"""A COCO run-length-encoded mask: ``{"size": [h, w], "counts": bytes | str}``."""


def _as_boxes(boxes: Any) -> FloatArray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise TfodError(f"boxes must have shape (N, 4), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _column(values: Any, n: int, dtype: Any, default: Any) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise TfodError(f"column has {arr.shape[0]} values for {n} boxes")
    return arr


def _sizes_column(values: Any, n: int) -> FloatArray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1, 2) if n else np.zeros((0, 2))
    if arr.shape[0] != n:
        raise TfodError(f"{arr.shape[0]} widths/heights for {n} boxes")
    return arr


def box_areas(boxes: FloatArray) -> FloatArray:
    """Areas of ``[x1, y1, x2, y2]`` boxes (continuous convention).

    >>> box_areas(np.array([[0.0, 0.0, 2.0, 3.0]])).tolist()
    [6.0]
    """
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


@dataclass(frozen=True)
class ImageTable:
    """The images of a data set: id, original width and height, and file name / source id."""

    ids: IntArray
    widths: FloatArray
    heights: FloatArray
    file_names: tuple[str, ...] = ()

    @classmethod
    def from_sizes(
        cls,
        ids: Sequence[int] | IntArray,
        widths: Sequence[float] | FloatArray,
        heights: Sequence[float] | FloatArray,
        file_names: Sequence[str] | None = None,
    ) -> ImageTable:
        """Build a table from parallel sequences; file names default to the ids as text."""
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        n = id_arr.shape[0]
        names = tuple(str(i) for i in id_arr) if file_names is None else tuple(file_names)
        if len(names) != n:
            raise TfodError(f"{len(names)} file names for {n} images")
        table = cls(
            ids=id_arr,
            widths=_column(widths, n, np.float64, 0.0),
            heights=_column(heights, n, np.float64, 0.0),
            file_names=names,
        )
        if np.unique(id_arr).shape[0] != n:
            raise TfodError("duplicate image ids in the image table", fix="give every image a unique id")
        return table

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def index_of(self) -> dict[int, int]:
        """Map image id -> row index."""
        return {int(i): k for k, i in enumerate(self.ids)}


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth boxes of a whole data set, one row per box."""

    image_ids: IntArray
    boxes: FloatArray
    classes: IntArray
    area: FloatArray
    iscrowd: BoolArray
    difficult: BoolArray
    ignore: BoolArray
    masks: tuple[RLE, ...] | None = None
    ids: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    wh: FloatArray | None = None
    """``(N, 2)`` widths and heights as the source gave them (COCO ``[x, y, w, h]``), which
    ``x2 - x1`` does not always give back bit for bit; ``None``: ``x2 - x1``, ``y2 - y1``. Code that
    changes ``boxes`` drops it (``wh=None``)."""

    @classmethod
    def from_arrays(
        cls,
        image_ids: Any,
        boxes: Any,
        classes: Any,
        *,
        area: Any = None,
        iscrowd: Any = None,
        difficult: Any = None,
        ignore: Any = None,
        masks: Sequence[RLE] | None = None,
        ids: Any = None,
        wh: Any = None,
    ) -> GroundTruth:
        """Build from array-likes; ``area`` defaults to the box area, flags to False, ids to 1..N."""
        box_arr = _as_boxes(boxes)
        n = box_arr.shape[0]
        area_arr = box_areas(box_arr) if area is None else _column(area, n, np.float64, 0.0)
        if masks is not None and len(masks) != n:
            raise TfodError(f"{len(masks)} masks for {n} boxes")
        return cls(
            image_ids=_column(image_ids, n, np.int64, 0),
            boxes=box_arr,
            classes=_column(classes, n, np.int64, 0),
            area=area_arr,
            iscrowd=_column(iscrowd, n, np.bool_, False),
            difficult=_column(difficult, n, np.bool_, False),
            ignore=_column(ignore, n, np.bool_, False),
            masks=None if masks is None else tuple(masks),
            ids=np.arange(1, n + 1, dtype=np.int64) if ids is None else _column(ids, n, np.int64, 0),
            wh=_sizes_column(wh, n),
        )

    @classmethod
    def empty(cls) -> GroundTruth:
        """A table with no boxes."""
        return cls.from_arrays([], np.zeros((0, 4)), [])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, mask_or_index: Any) -> GroundTruth:
        """Rows picked by a boolean mask or an index array."""
        return _select(self, mask_or_index)


@dataclass(frozen=True)
class Detections:
    """A model's detections over a whole data set, one row per detection.

    ``area`` is the area that decides a detection's COCO area range when it is known from the source
    (a COCO results file: pycocotools' ``loadRes`` takes the bbox's ``w * h`` whenever the results
    carry a bbox, masks or not); ``None`` means "the box area, or the mask area for mask IoU".
    """

    image_ids: IntArray
    boxes: FloatArray
    classes: IntArray
    scores: FloatArray
    masks: tuple[RLE, ...] | None = None
    area: FloatArray | None = None
    wh: FloatArray | None = None
    """``(N, 2)`` widths and heights as the source gave them; see :class:`GroundTruth`."""

    @classmethod
    def from_arrays(
        cls,
        image_ids: Any,
        boxes: Any,
        classes: Any,
        scores: Any,
        *,
        masks: Sequence[RLE] | None = None,
        area: Any = None,
        wh: Any = None,
    ) -> Detections:
        """Build from array-likes."""
        box_arr = _as_boxes(boxes)
        n = box_arr.shape[0]
        if masks is not None and len(masks) != n:
            raise TfodError(f"{len(masks)} masks for {n} detections")
        return cls(
            image_ids=_column(image_ids, n, np.int64, 0),
            boxes=box_arr,
            classes=_column(classes, n, np.int64, 0),
            scores=_column(scores, n, np.float64, 0.0),
            masks=None if masks is None else tuple(masks),
            area=None if area is None else _column(area, n, np.float64, 0.0),
            wh=_sizes_column(wh, n),
        )

    @classmethod
    def empty(cls) -> Detections:
        """A table with no detections."""
        return cls.from_arrays([], np.zeros((0, 4)), [], [])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, mask_or_index: Any) -> Detections:
        """Rows picked by a boolean mask or an index array."""
        return _select(self, mask_or_index)


def _select(table: Any, mask_or_index: Any) -> Any:
    index = np.asarray(mask_or_index)
    if index.dtype == np.bool_:
        index = np.flatnonzero(index)
    changes: dict[str, Any] = {}
    for f in fields(table):
        value = getattr(table, f.name)
        if isinstance(value, np.ndarray):
            changes[f.name] = value[index] if value.shape[0] else value
        elif isinstance(value, tuple):
            changes[f.name] = tuple(value[int(i)] for i in index)
    return replace(table, **changes)


@dataclass(frozen=True)
class AnnotatedSet:
    """Images, categories, ground truth and (optionally) detections of one evaluation."""

    images: ImageTable
    categories: Mapping[int, str]
    ground_truth: GroundTruth
    detections: Detections | None = None

    @property
    def category_ids(self) -> IntArray:
        """Sorted category ids."""
        return np.asarray(sorted(self.categories), dtype=np.int64)

    def validate(self, source: str | None = None) -> None:
        """Raise :class:`TfodError` for NaN or negative-size boxes and unknown image/category ids."""
        known_images = set(self.images.ids.tolist())
        tables: list[tuple[str, GroundTruth | Detections]] = [("ground truth", self.ground_truth)]
        if self.detections is not None:
            tables.append(("detections", self.detections))
        for label, table in tables:
            _check_boxes(label, table.boxes, table.image_ids, source)
            unknown_images = sorted(set(table.image_ids.tolist()) - known_images)
            if unknown_images:
                raise TfodError(
                    f"{label} refer to image ids not in the image table: {_preview(unknown_images)}",
                    path=source,
                    fix="use the ground truth's image ids",
                )
            unknown_classes = sorted(set(table.classes.tolist()) - set(self.categories))
            if unknown_classes:
                raise TfodError(
                    f"{label} use category ids not in the categories: {_preview(unknown_classes)}",
                    path=source,
                    fix="use the ground truth's category ids (label map ids)",
                )
        if self.detections is not None and len(self.detections):
            scores = self.detections.scores
            if not np.all(np.isfinite(scores)):
                bad = self.detections.image_ids[~np.isfinite(scores)]
                raise TfodError(
                    f"detections with NaN/inf scores in images {_preview(sorted(set(bad.tolist())))}",
                    path=source,
                )


def _check_boxes(label: str, boxes: FloatArray, image_ids: IntArray, source: str | None) -> None:
    if not len(boxes):
        return
    finite = np.all(np.isfinite(boxes), axis=1)
    if not finite.all():
        bad = sorted(set(image_ids[~finite].tolist()))
        raise TfodError(f"{label} have NaN/inf box coordinates in images {_preview(bad)}", path=source)
    negative = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if negative.any():
        bad = sorted(set(image_ids[negative].tolist()))
        raise TfodError(
            f"{label} have negative-size boxes (x2 < x1 or y2 < y1) in images {_preview(bad)}",
            path=source,
            fix="boxes are [x1, y1, x2, y2] here; COCO files use [x, y, w, h] with w, h >= 0",
        )


def _preview(values: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")
