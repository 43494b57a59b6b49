"""Annotation outliers: boxes whose size, shape or place is inconsistent with the rest of their class.

Collected during ``tfod inspect``'s one pass over the records (:class:`OutlierCollector`, fed by
:func:`tfod_tools.data.inspect.inspect_records`; the records are not read again), scored per class
when the pass ends (:meth:`OutlierCollector.report`). Only boxes the rest of ``inspect`` counts are
scored: a class in the label map (:class:`tfod_tools.data.classes.ClassLookup`), finite, not inverted,
a positive width and height in pixels, in an image of known size.

Features of one box (:data:`FEATURES`; ``W x H`` the image, ``w x h`` the box, in pixels):

``size``
    ``log(sqrt(w * h) / sqrt(W * H))``: the box's side relative to the image's.
``aspect``
    ``log(w / h)``.
``centre_x``, ``centre_y``
    the box centre, normalised to [0, 1].
``size_in_image``
    ``log(sqrt(w * h) / median of sqrt(w * h) of the other boxes in the image)`` (any class); only
    in images with at least 2 boxes. Above :data:`MAX_PAIRWISE` boxes the median of all the image's
    boxes (itself included) stands in for "the others".

Score (per class, per feature): the modified z-score of Iglewicz & Hoaglin (1993),
``0.6745 * (x - median) / MAD`` (MAD: the median absolute deviation from the median). When the MAD
is 0 (more than half the values equal) the mean absolute deviation stands in:
``(x - median) / (1.2533 * meanAD)``. The spread is never taken below :data:`MIN_SPREAD` (in the
feature's unit, as a standard deviation), so that rounding noise in a class of identical boxes (all
squares, all centred) does not make outliers of boxes a pixel off. A feature is not scored for a class
with fewer than :data:`MIN_BOXES` values of it (the class's ``skipped`` entry says so).

A box is an outlier when its largest ``|score|`` exceeds :data:`THRESHOLD` (3.5, Iglewicz & Hoaglin's
recommendation); it is listed under that feature, with a plain-words reason. Every outlier is counted
(per class and per feature: a box beyond the threshold on two features counts under both); the
:data:`MAX_LISTED` strongest (largest ``|score|``, ties by file, record and box index) are listed.
The same records give the same report.

>>> import numpy as np
>>> c = OutlierCollector({1: "square"}, max_listed=3)
>>> for k in range(12):  # 12 images of one 20x20 square each, at (10 + k, 10)
...     c.add("t.record", k, f"id{k}", "", np.array([[10.0 + k, 10, 30 + k, 30]]), np.array([1]), (100, 100))
>>> c.add("t.record", 12, "wide", "", np.array([[10.0, 10, 90, 20]]), np.array([1]), (100, 100))
>>> report = c.report()
>>> report.total, report.per_class["square"]["boxes"], report.per_class["square"]["outliers"]
(1, 13, 1)
>>> top = report.top[0]
>>> top.source_id, top.feature, top.reason
('wide', 'aspect', 'aspect 8.0:1 vs class median 1.0:1')
>>> report.per_class["square"]["skipped"]
{'size_in_image': '0 boxes in images with 2 or more boxes < 10'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "EDGE",
    "FEATURES",
    "MAX_LISTED",
    "MIN_BOXES",
    "MIN_SPREAD",
    "THRESHOLD",
    "Outlier",
    "OutlierCollector",
    "OutlierReport",
    "modified_z",
]

THRESHOLD = 3.5
"""A box is an outlier when its largest ``|modified z-score|`` exceeds this (Iglewicz & Hoaglin)."""
MIN_BOXES = 10
"""A feature is scored for a class only with at least this many values of it."""
MAX_LISTED = 20
"""The strongest outliers listed (all are counted)."""
MAX_PAIRWISE = 256
"""Above this many boxes in an image, ``size_in_image`` compares with the median of all its boxes."""
EDGE = 0.05
"""A box centre within this share of the image side from a border is "at the image edge"."""
FEATURES: tuple[str, ...] = ("size", "aspect", "centre_x", "centre_y", "size_in_image")
"""The features scored per class (see the module doc)."""
MIN_SPREAD: dict[str, float] = {
    "size": 0.05,
    "aspect": 0.05,
    "centre_x": 0.02,
    "centre_y": 0.02,
    "size_in_image": 0.05,
}
"""The least spread (a standard deviation: ~5 % for the log features, 2 % of the side for the
centres) a score divides by."""
_MAD_SCALE = 0.6745
_MEAN_AD_SCALE = 1.2533


def modified_z(values: npt.ArrayLike, min_spread: float = 0.0) -> npt.NDArray[np.float64]:
    """The modified z-score of each value (see the module doc; all 0 when there is no spread at all).

    >>> modified_z([1.0, 2.0, 3.0, 4.0, 100.0]).round(2).tolist()
    [-1.35, -0.67, 0.0, 0.67, 65.43]
    >>> modified_z([5.0, 5.0, 5.0, 9.0]).round(2).tolist()  # MAD 0: mean absolute deviation
    [0.0, 0.0, 0.0, 3.19]
    >>> modified_z([5.0, 5.0, 5.0]).tolist()
    [0.0, 0.0, 0.0]
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0)
    median = float(np.median(x))
    deviation = np.abs(x - median)
    mad = float(np.median(deviation))
    spread = mad / _MAD_SCALE if mad > 0 else _MEAN_AD_SCALE * float(deviation.mean())
    spread = max(spread, min_spread)
    if spread <= 0:
        return np.zeros_like(x)
    return (x - median) / spread


def _ratio(value: float) -> str:
    """``w / h`` as ``"6.2:1"`` or ``"1:6.2"``."""
    return f"{value:.1f}:1" if value >= 1 else f"1:{1 / value:.1f}"


def _times(value: float, median: float, what: str) -> str:
    r = value / median
    return f"box {r:.1f}x larger than {what}" if r >= 1 else f"box {1 / r:.1f}x smaller than {what}"


def _reason(feature: str, value: float, median: float) -> str:
    """Plain words for one outlying feature (``value`` and ``median`` in :meth:`Outlier.value` units)."""
    if feature == "size":
        return _times(value, median, "class median")
    if feature == "aspect":
        return f"aspect {_ratio(value)} vs class median {_ratio(median)}"
    if feature == "size_in_image":
        return f"{_times(value, 1.0, 'the other boxes in its image')} (class median {median:.1f}x the others)"
    axis = feature[-1]
    if value < EDGE or value > 1 - EDGE:
        side = {"x": ("left", "right"), "y": ("top", "bottom")}[axis][value > 0.5]
        return f"centre at the {side} image edge ({axis} {value:.2f}; class median {median:.2f})"
    return f"centre {axis} {value:.2f} vs class median {median:.2f}"


def _others_median(
    side: npt.NDArray[np.float64], image: npt.NDArray[np.int64], images: int
) -> npt.NDArray[np.float64]:
    """For each box, the median ``side`` of the other boxes of its image (``image``: sorted image ids);
    NaN for a box alone in its image. Vectorised per number of boxes in an image.

    >>> _others_median(np.array([1.0, 2.0, 9.0, 5.0]), np.array([0, 0, 0, 1]), 2).tolist()
    [5.5, 5.0, 1.5, nan]
    """
    out = np.full(side.size, np.nan)
    per_image = np.bincount(image, minlength=images)
    n_of_box = per_image[image]
    for n in np.unique(n_of_box[n_of_box >= 2]).tolist():
        mine = np.flatnonzero(n_of_box == n)  # whole images of n boxes, in order
        grid = side[mine].reshape(-1, n)
        if n > MAX_PAIRWISE:
            out[mine] = np.repeat(np.median(grid, axis=1), n)
            continue
        others = np.asarray([[j for j in range(n) if j != i] for i in range(n)])
        step = max(1, 2_000_000 // (n * n))  # images per block: bounded memory
        for k in range(0, grid.shape[0], step):
            block = grid[k : k + step]
            out[mine[k * n : (k + step) * n]] = np.median(block[:, others], axis=2).reshape(-1)
    return out


@dataclass(frozen=True)
class Outlier:
    """One outlying box: where it is, what it is, and its strongest feature.

    ``value`` and ``median`` are in plain units: ``size`` the box side over the image side, ``aspect``
    ``w / h``, ``centre_*`` normalised, ``size_in_image`` the ratio to the other boxes' median.
    """

    file: str
    index: int
    source_id: str
    filename: str
    box_index: int
    class_name: str
    box: tuple[float, float, float, float]
    """``[x1, y1, x2, y2]`` in pixels."""
    image_size: tuple[int, int]
    feature: str
    value: float
    median: float
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "file": self.file,
            "index": self.index,
            "source_id": self.source_id,
            "filename": self.filename,
            "box_index": self.box_index,
            "class": self.class_name,
            "box": [round(v, 1) for v in self.box],
            "image_size": list(self.image_size),
            "feature": self.feature,
            "value": round(self.value, 4),
            "class_median": round(self.median, 4),
            "score": round(self.score, 2),
            "reason": self.reason,
        }


@dataclass
class OutlierReport:
    """What :meth:`OutlierCollector.report` found; :meth:`to_dict` is ``tfod inspect --json``'s
    ``outliers``."""

    threshold: float = THRESHOLD
    min_boxes: int = MIN_BOXES
    boxes_scored: int = 0
    total: int = 0
    """Boxes beyond the threshold on any feature."""
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per class: ``boxes`` scored, ``outliers``, ``per_feature`` counts, ``skipped`` features and why."""
    top: list[Outlier] = field(default_factory=list)
    """The strongest outliers, strongest first (at most :data:`MAX_LISTED`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "threshold": self.threshold,
            "min_boxes": self.min_boxes,
            "boxes_scored": self.boxes_scored,
            "outlier_boxes": self.total,
            "per_class": {
                k: {**v, "per_feature": dict(v["per_feature"]), "skipped": dict(v["skipped"])}
                for k, v in self.per_class.items()
            },
            "top": [o.to_dict() for o in self.top],
        }


class OutlierCollector:
    """Collects the boxes of one ``tfod inspect`` pass (:meth:`add` per image); :meth:`report` scores them."""

    def __init__(
        self,
        names: Mapping[int, str],
        *,
        threshold: float = THRESHOLD,
        min_boxes: int = MIN_BOXES,
        max_listed: int = MAX_LISTED,
    ) -> None:
        self.names = dict(names)
        self.threshold = threshold
        self.min_boxes = min_boxes
        self.max_listed = max_listed
        self.images: list[tuple[str, int, str, str, int, int]] = []
        self._boxes: list[npt.NDArray[np.float64]] = []
        self._classes: list[npt.NDArray[np.int64]] = []

    def add(
        self,
        file: str | Any,
        index: int,
        source_id: str,
        filename: str,
        boxes: npt.NDArray[np.float64],
        classes: npt.NDArray[np.int64],
        size: tuple[int, int],
    ) -> None:
        """One image's boxes: ``[x1, y1, x2, y2]`` rows in pixels, their class ids, ``(width, height)``.

        Boxes without a positive width and height, or of a class not in ``names``, are left out (when
        :meth:`report` scores; here the arrays are only kept, so the pass over the records stays fast).
        """
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if b.shape[0] == 0 or size[0] <= 0 or size[1] <= 0:
            return
        self.images.append((str(file), int(index), source_id, filename, int(size[0]), int(size[1])))
        self._boxes.append(b)
        self._classes.append(np.asarray(classes, dtype=np.int64).reshape(-1))

    def _table(self) -> npt.NDArray[np.float64]:
        """One row per usable box of a known class: image, box index, class, x1, y1, x2, y2, features."""
        if not self._boxes:
            return np.zeros((0, 7 + len(FEATURES)))
        counts = np.asarray([b.shape[0] for b in self._boxes])
        b = np.concatenate(self._boxes)
        cls = np.concatenate(self._classes)
        image = np.repeat(np.arange(counts.size), counts)
        box_index = np.arange(b.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        sizes = np.asarray([(i[4], i[5]) for i in self.images], dtype=np.float64)[image]
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(b).all(axis=1) & (w > 0) & (h > 0)
        b, w, h, sizes = b[ok], w[ok], h[ok], sizes[ok]
        cls, image, box_index = cls[ok], image[ok], box_index[ok]
        side = np.sqrt(w * h)
        rows = np.column_stack(
            [
                image,
                box_index,
                cls,
                b,
                np.log(side / np.sqrt(sizes[:, 0] * sizes[:, 1])),
                np.log(w / h),
                (b[:, 0] + b[:, 2]) / 2 / sizes[:, 0],
                (b[:, 1] + b[:, 3]) / 2 / sizes[:, 1],
                np.log(side / _others_median(side, image, counts.size)),
            ]
        )
        known = np.isin(cls, np.asarray(list(self.names), dtype=np.int64))
        return rows[known]

    def report(self) -> OutlierReport:
        """Score every class and list the strongest outliers (see the module doc)."""
        out = OutlierReport(threshold=self.threshold, min_boxes=self.min_boxes)
        rows = self._table()
        out.boxes_scored = int(rows.shape[0])
        nf = len(FEATURES)
        scores = np.zeros((rows.shape[0], nf))
        medians = np.full((rows.shape[0], nf), np.nan)
        for cid, name in self.names.items():
            mine = rows[:, 2] == cid
            entry: dict[str, Any] = {
                "boxes": int(np.count_nonzero(mine)),
                "outliers": 0,
                "per_feature": {},
                "skipped": {},
            }
            out.per_class[name] = entry
            if not mine.any():
                continue
            for k, feature in enumerate(FEATURES):
                values = rows[mine, 7 + k]
                present = np.isfinite(values)
                if np.count_nonzero(present) < self.min_boxes:
                    where = " in images with 2 or more boxes" if feature == "size_in_image" else ""
                    entry["skipped"][feature] = f"{np.count_nonzero(present)} boxes{where} < {self.min_boxes}"
                    continue
                z = np.zeros(values.size)
                z[present] = modified_z(values[present], MIN_SPREAD[feature])
                idx = np.flatnonzero(mine)
                scores[idx, k] = z
                medians[idx, k] = float(np.median(values[present]))
                entry["per_feature"][feature] = int(np.count_nonzero(np.abs(z) > self.threshold))
            entry["outliers"] = int(np.count_nonzero(np.abs(scores[mine]).max(axis=1) > self.threshold))
        strongest = np.abs(scores).max(axis=1) if rows.shape[0] else np.zeros(0)
        flagged = np.flatnonzero(strongest > self.threshold)
        out.total = int(flagged.size)
        keys = [(-float(strongest[i]), self.images[int(rows[i, 0])][:2], int(rows[i, 1])) for i in flagged]
        order = sorted(range(flagged.size), key=lambda j: keys[j])[: self.max_listed]
        for j in order:
            i = int(flagged[j])
            out.top.append(self._outlier(rows[i], scores[i], medians[i]))
        return out

    def _outlier(
        self, row: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], medians: npt.NDArray[np.float64]
    ) -> Outlier:
        k = int(np.argmax(np.abs(scores)))
        feature = FEATURES[k]
        plain = feature.startswith("centre")  # the log features are shown as ratios
        value = float(row[7 + k]) if plain else math.exp(float(row[7 + k]))
        median = float(medians[k]) if plain else math.exp(float(medians[k]))
        file, index, source_id, filename, width, height = self.images[int(row[0])]
        x1, y1, x2, y2 = (float(v) for v in row[3:7])
        return Outlier(
            file=file,
            index=index,
            source_id=source_id,
            filename=filename,
            box_index=int(row[1]),
            class_name=self.names[int(row[2])],
            box=(x1, y1, x2, y2),
            image_size=(width, height),
            feature=feature,
            value=value,
            median=median,
            score=float(scores[k]),
            reason=_reason(feature, value, median),
        )
