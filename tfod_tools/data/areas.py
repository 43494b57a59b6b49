"""COCO area ranges, the one bucket count, and which area a box has in each evaluation.

**Ranges.** pycocotools' ``COCOeval`` evaluates a ground-truth box in an area range when
``lo <= area <= hi`` (it ignores the box when ``area < lo or area > hi``): both bounds are closed.
So a box of area exactly 32² is evaluated as *small and medium*, one of exactly 96² as *medium and
large*; the buckets overlap on their boundaries and their counts can add up to more than the
boxes. :data:`COCO_AREA_RANGES` holds the ranges, :func:`area_bucket_counts` counts exactly the
boxes ``COCOeval`` evaluates in each (crowd and ignored boxes are never counted, as ``COCOeval``
ignores them in every range).

**Which area.** The range test is on one number per box, and where it comes from depends on
who evaluates:

- TF OD API records, evaluated by the API (``model_main_tf2`` and ``tfod evaluate``): the API's
  ``ExportSingleImageGroundtruthToCoco`` takes ``groundtruth_area`` (the record's
  ``image/object/area``) when it is present and > 0, else the box area in the original image's
  pixels, computed in float32 from the normalised box scaled by the image size.
  :func:`evaluated_areas` is that rule; ``records.read_annotated_set`` (so ``tfod diagnose``) and
  ``tfod inspect`` use it.
- COCO JSON (``tfod metrics``): the annotation's ``area`` as written (pycocotools reads it as is;
  ``tfod_tools.data.coco`` gives an annotation without ``area`` its box area).
- Detections: their box (or mask) area, as pycocotools' ``loadRes`` computes it.

>>> counts = area_bucket_counts([10.0, 32.0**2, 50.0**2, 96.0**2, 200.0**2])
>>> counts  # 32² is small and medium, 96² medium and large
{'small': 2, 'medium': 3, 'large': 2}
>>> area_bucket_counts([32.0**2, 5.0], ignore=[True, False])
{'small': 1, 'medium': 0, 'large': 0}
>>> evaluated_areas([[0.0, 0.0, 0.32, 0.32], [0.0, 0.0, 0.5, 0.5]], 100, 100, [0.0, 7.0]).tolist()
[1024.0, 7.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "AREA_BUCKETS",
    "AREA_RULES",
    "COCO_AREA_RANGES",
    "area_bucket_counts",
    "evaluated_areas",
    "in_area_range",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

COCO_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0**2, 1e5**2),
    "small": (0.0**2, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
"""pycocotools' ``areaRng`` / ``areaRngLbl``: ``label -> (lo, hi)``, both bounds inclusive."""

AREA_BUCKETS: tuple[str, ...] = ("small", "medium", "large")
"""The size buckets of :data:`COCO_AREA_RANGES` (every range but ``all``), smallest first."""

AREA_RULES: dict[str, str] = {
    "small": "area <= 32²",
    "medium": "32² <= area <= 96²",
    "large": "area >= 96²",
}
"""Each bucket's rule in words (boundaries belong to both neighbours)."""


def in_area_range(area: Any, label: str) -> BoolArray:
    """Whether each area is evaluated in the range ``label`` (``lo <= area <= hi``).

    >>> in_area_range([1023.0, 1024.0, 1025.0], "small").tolist()
    [True, True, False]
    """
    lo, hi = COCO_AREA_RANGES[label]
    arr = np.asarray(area, dtype=np.float64)
    return np.asarray((arr >= lo) & (arr <= hi), dtype=bool)


def area_bucket_counts(area: Any, ignore: Any = None) -> dict[str, int]:
    """Boxes ``COCOeval`` evaluates in each of :data:`AREA_BUCKETS` (``ignore``: crowd/ignored boxes)."""
    arr = np.asarray(area, dtype=np.float64).reshape(-1)
    keep = np.ones(arr.shape, dtype=bool) if ignore is None else ~np.asarray(ignore, dtype=bool).reshape(-1)
    return {label: int(np.count_nonzero(in_area_range(arr, label) & keep)) for label in AREA_BUCKETS}


def evaluated_areas(
    boxes: Any, width: float, height: float, stored_area: Sequence[float] | FloatArray | None = None
) -> FloatArray:
    """Each box's area as the TF OD API's COCO evaluation uses it (see the module docstring).

    ``boxes`` are normalised ``[xmin, ymin, xmax, ymax]`` rows, ``width`` x ``height`` the original
    image size and ``stored_area`` the record's ``image/object/area`` (empty or None: not stored).
    A stored area > 0 wins; otherwise the box area, computed in float32 as the API does (scaled
    boxes, then ``(ymax - ymin) * (xmax - xmin)``), so boundary cases fall where the API puts them.
    Boxes the API already scaled to pixels (``tfod evaluate``) pass ``width = height = 1``.

    >>> evaluated_areas([[0.1, 0.1, 0.42, 0.42]], 100, 100).tolist()  # 32.0 x 32.0 in float32
    [1024.0]
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    sx, sy = np.float32(width), np.float32(height)
    box_area = ((b[:, 3] * sy) - (b[:, 1] * sy)) * ((b[:, 2] * sx) - (b[:, 0] * sx))
    out = box_area.astype(np.float64)
    if stored_area is not None and len(stored_area):
        stored = np.asarray(stored_area, dtype=np.float32).astype(np.float64).reshape(-1)
        out = np.where(stored > 0, stored, out)
    return out
