"""Likely label errors: annotations that a trained model's confident detections disagree with.

Three kinds of candidate, from one step's ground truth + detections (numpy only, TF-free; the data
is read, never modified). A detection is *confident* when its score is at least the minimum score of
its class (``min_score``, or ``thresholds[class_id]`` when given). Crowd, ignored and difficult
ground-truth boxes are never candidates (they still count as overlaps).

- ``missing`` - *possibly missing box*: a confident detection whose IoU with every ground-truth box
  of the image (any class; crowd regions by crowd IoU, the share of the detection inside them) is
  below :data:`MISSING_MAX_IOU`. Overlapping candidates of one image (IoU >= :data:`DEDUP_IOU`, any
  class) are one candidate: the best-scoring one, the others counted in its evidence.
  ``confidence`` = the detection's score.
- ``wrong_label`` - *possibly wrong label*: a ground-truth box overlapped (IoU >= :data:`MATCH_IOU`)
  by a confident detection of another class, that detection overlapping no ground truth of its own
  class at :data:`MATCH_IOU`, and by no confident detection of the box's own class.
  ``confidence`` = best other-class score x (1 - best same-class score at that overlap, any score).
- ``loose_box`` - *possibly loose box*: a ground-truth box whose confident same-class detections
  (each overlapping it by at least :data:`LOOSE_MIN_IOU` and overlapping no other box of the class
  more) all overlap it by less than :data:`LOOSE_MAX_IOU`. The best-scoring one and those agreeing
  with it (IoU >= :data:`AGREE_IOU`) give a consensus box (their score-weighted mean); it is a
  candidate when ``LOOSE_MIN_IOU <= IoU(consensus, box) < LOOSE_MAX_IOU``. ``confidence`` =
  (1 - prod(1 - score)) over the agreeing detections x (1 - IoU(consensus, box)).

Each kind is ranked by ``confidence``, highest first; ties by image id, box and class, so the order
is deterministic. These are candidates for a person to review, not verdicts: a model that has
learnt an annotation habit agrees with it.

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2, 3], [100] * 3, [100] * 3), categories={1: "cat", 2: "dog"},
...     ground_truth=GroundTruth.from_arrays(
...         [1, 2, 3], [[10, 10, 40, 40], [10, 10, 40, 40], [10, 10, 40, 40]], [1, 1, 1]),
...     detections=Detections.from_arrays(
...         [1, 1, 2, 3], [[10, 10, 40, 40], [60, 60, 90, 90], [11, 10, 40, 41], [25, 10, 55, 40]],
...         [1, 2, 2, 1], [0.9, 0.8, 0.95, 0.9]))
>>> found = find_label_errors(data)
>>> [(c.kind, c.image_id, c.class_id, c.suggested_class_id) for k in KINDS for c in found[k]]
[('missing', 1, 2, 2), ('wrong_label', 2, 1, 2), ('loose_box', 3, 1, None)]
>>> found["loose_box"][0].suggested_box, round(found["loose_box"][0].confidence, 3)
((25.0, 10.0, 55.0, 40.0), 0.6)
>>> found["wrong_label"][0].to_dict(data.categories)["suggested_class"]
'dog'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth
from tfod_tools.metrics.boxes import iou_matrix

__all__ = [
    "AGREE_IOU",
    "DEDUP_IOU",
    "DEFAULT_MIN_SCORE",
    "KINDS",
    "LOOSE_MAX_IOU",
    "LOOSE_MIN_IOU",
    "MATCH_IOU",
    "MISSING_MAX_IOU",
    "LabelErrorCandidate",
    "LabelErrorKind",
    "find_label_errors",
]

LabelErrorKind = Literal["missing", "wrong_label", "loose_box"]
KINDS: tuple[LabelErrorKind, ...] = ("missing", "wrong_label", "loose_box")
"""The kinds of candidate, in the order they are reported."""

DEFAULT_MIN_SCORE = 0.5
"""A detection scoring at least this is confident (unless a per-class threshold says otherwise)."""
MISSING_MAX_IOU = 0.2
"""``missing``: a confident detection overlapping every ground-truth box by less than this."""
DEDUP_IOU = 0.5
"""``missing``: candidates of one image overlapping this much (any class) are one candidate."""
MATCH_IOU = 0.5
"""``wrong_label``: the overlap at which a detection is a detection of a ground-truth box."""
LOOSE_MIN_IOU = 0.2
"""``loose_box``: the least overlap of a same-class detection (and of the consensus) with the box."""
LOOSE_MAX_IOU = 0.7
"""``loose_box``: every confident same-class detection (and the consensus) overlaps the box less."""
AGREE_IOU = 0.7
"""``loose_box``: detections overlapping the best-scoring one this much agree with it."""

Box = tuple[float, float, float, float]
_FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LabelErrorCandidate:
    """One annotation a person should look at (see the module docstring for each kind).

    ``box`` is the detection (``missing``) or the ground-truth box (the others), ``[x1, y1, x2, y2]``
    in original pixels; ``class_id`` the detected class (``missing``) or the box's class;
    ``suggested_class_id`` the class the detections say (``loose_box``: None); ``suggested_box`` the
    detection (``missing``) or the consensus box (``loose_box``; ``wrong_label``: None, the detection
    is in the evidence); ``gt_index`` the row in ``data.ground_truth`` (``missing``: None).
    """

    kind: LabelErrorKind
    image_id: int
    box: Box
    class_id: int
    suggested_class_id: int | None
    suggested_box: Box | None
    gt_index: int | None
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[float, int, Box, int]:
        """Best first: confidence, then image id, box and class."""
        return (-self.confidence, self.image_id, self.box, self.class_id)

    def to_dict(self, categories: Mapping[int, str]) -> dict[str, Any]:
        """JSON-ready form, with the class names.

        >>> c = LabelErrorCandidate("missing", 3, (1.0, 2.0, 3.0, 4.0), 1, 1, (1.0, 2.0, 3.0, 4.0), None,
        ...                         0.9, {"score": 0.9})
        >>> c.to_dict({1: "cat"})["class"], c.to_dict({1: "cat"})["box"]
        ('cat', [1.0, 2.0, 3.0, 4.0])
        """
        suggested = self.suggested_class_id
        return {
            "kind": self.kind,
            "image_id": self.image_id,
            "box": list(self.box),
            "class_id": self.class_id,
            "class": categories.get(self.class_id, str(self.class_id)),
            "suggested_class_id": suggested,
            "suggested_class": None if suggested is None else categories.get(suggested, str(suggested)),
            "suggested_box": None if self.suggested_box is None else list(self.suggested_box),
            "gt_index": self.gt_index,
            "confidence": self.confidence,
            "evidence": self.evidence,
        }


def _box(row: Any) -> Box:
    x1, y1, x2, y2 = (round(float(v), 2) for v in row)
    return (x1, y1, x2, y2)


def _r(x: float) -> float:
    return round(float(x), 4)


def _iou(a: _FloatArray, b: _FloatArray, crowd: Any = None) -> _FloatArray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float64)
    return iou_matrix(a, b, crowd)


def find_label_errors(
    data: AnnotatedSet,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    thresholds: Mapping[int, float] | None = None,
) -> dict[LabelErrorKind, list[LabelErrorCandidate]]:
    """Every candidate of each kind, ranked best first (deterministic order; ties broken by image id,
    box). ``thresholds`` maps class ids to their own minimum score (``min_score`` for the others).

    >>> from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
    >>> empty = AnnotatedSet(ImageTable.from_sizes([1], [10], [10]), {1: "a"}, GroundTruth.empty())
    >>> find_label_errors(empty)
    {'missing': [], 'wrong_label': [], 'loose_box': []}
    """
    found: dict[LabelErrorKind, list[LabelErrorCandidate]] = {kind: [] for kind in KINDS}
    dets = data.detections if data.detections is not None else Detections.empty()
    if not len(dets):
        return found
    per_class = dict(thresholds or {})
    floor = np.array([per_class.get(int(c), min_score) for c in dets.classes.tolist()], dtype=np.float64)
    confident = dets.scores >= floor
    gt = data.ground_truth
    gt_rows = _rows_by_image(gt.image_ids)
    det_rows = _rows_by_image(dets.image_ids)
    for image_id in sorted(det_rows):
        d_idx = det_rows[image_id]
        if not confident[d_idx].any():  # every kind needs a confident detection
            continue
        g_idx = gt_rows.get(image_id, np.zeros(0, dtype=np.int64))
        image = _Image(image_id, dets.select(d_idx), confident[d_idx], gt.select(g_idx), g_idx)
        found["missing"].extend(image.missing())
        found["wrong_label"].extend(image.wrong_labels())
        found["loose_box"].extend(image.loose_boxes())
    for kind in KINDS:
        found[kind].sort(key=LabelErrorCandidate.sort_key)
    return found


def _rows_by_image(image_ids: npt.NDArray[np.int64]) -> dict[int, npt.NDArray[np.int64]]:
    order = np.argsort(image_ids, kind="stable")
    ids, starts = np.unique(image_ids[order], return_index=True)
    ends = np.append(starts[1:], len(order)).astype(np.int64) if len(ids) else starts
    return {int(i): order[s:e] for i, s, e in zip(ids, starts, ends, strict=True)}


class _Image:
    """One image's detections and ground truth, with their IoUs computed once."""

    def __init__(
        self,
        image_id: int,
        dets: Detections,
        confident: npt.NDArray[np.bool_],
        gt: GroundTruth,
        gt_index: npt.NDArray[np.int64],
    ) -> None:
        self.image_id = image_id
        self.dets = dets
        self.confident = confident
        self.gt = gt
        self.gt_index = gt_index
        self.iou = _iou(dets.boxes, gt.boxes)  # plain IoU, every detection x every box
        self.eligible = ~(gt.iscrowd | gt.ignore | gt.difficult)
        self.same = dets.classes[:, None] == gt.classes[None, :]

    def missing(self) -> list[LabelErrorCandidate]:
        """Confident detections overlapping no ground truth, overlapping ones merged."""
        sure = np.flatnonzero(self.confident)
        if self.gt.iscrowd.any():  # a detection inside a crowd region overlaps it by the crowd IoU
            overlap = _iou(self.dets.boxes[sure], self.gt.boxes, self.gt.iscrowd)
        else:
            overlap = self.iou[sure]
        best = np.zeros(len(self.dets))
        best[sure] = overlap.max(axis=1) if overlap.shape[1] else 0.0
        rows = sure[best[sure] < MISSING_MAX_IOU]
        if not len(rows):
            return []
        rows = rows[np.lexsort((rows, -self.dets.scores[rows]))]
        between = _iou(self.dets.boxes[rows], self.dets.boxes[rows])
        kept: list[int] = []
        merged: dict[int, list[int]] = {}
        for k in range(len(rows)):
            owner = next((j for j in kept if between[k, j] >= DEDUP_IOU), None)
            if owner is None:
                kept.append(k)
                merged[k] = []
            else:
                merged[owner].append(k)
        out = []
        for k in kept:
            d = int(rows[k])
            score = float(self.dets.scores[d])
            box = _box(self.dets.boxes[d])
            cls = int(self.dets.classes[d])
            others = sorted({int(self.dets.classes[rows[j]]) for j in merged[k]} - {cls})
            evidence = {
                "score": _r(score),
                "max_iou_with_ground_truth": _r(best[d]),
                "overlapping_detections": len(merged[k]),
                "also_detected_as": others,
            }
            out.append(
                LabelErrorCandidate("missing", self.image_id, box, cls, cls, box, None, _r(score), evidence)
            )
        return out

    def wrong_labels(self) -> list[LabelErrorCandidate]:
        """Boxes matched only by confident detections of another class."""
        matched = self.iou >= MATCH_IOU
        own_class_match = (matched & self.same).any(axis=1)  # a detection of another box of its class
        out = []
        for g in np.flatnonzero(self.eligible).tolist():
            same = matched[:, g] & self.same[:, g]
            if (same & self.confident).any():
                continue
            other = matched[:, g] & ~self.same[:, g] & self.confident & ~own_class_match
            if not other.any():
                continue
            rows = np.flatnonzero(other)
            d = int(rows[np.lexsort((rows, -self.iou[rows, g], -self.dets.scores[rows]))][0])
            suggested = int(self.dets.classes[d])
            same_score = float(self.dets.scores[same].max()) if same.any() else 0.0
            score = float(self.dets.scores[d])
            evidence = {
                "score": _r(score),
                "iou": _r(self.iou[d, g]),
                "same_class_score": _r(same_score),
                "detections": int((self.dets.classes[rows] == suggested).sum()),
                "detection_box": list(_box(self.dets.boxes[d])),
            }
            out.append(
                LabelErrorCandidate(
                    "wrong_label",
                    self.image_id,
                    _box(self.gt.boxes[g]),
                    int(self.gt.classes[g]),
                    suggested,
                    None,
                    int(self.gt_index[g]),
                    _r(score * (1.0 - same_score)),
                    evidence,
                )
            )
        return out

    def loose_boxes(self) -> list[LabelErrorCandidate]:
        """Boxes whose confident same-class detections agree with each other but not with the box."""
        same_iou = np.where(self.same, self.iou, -1.0)
        owner = same_iou.argmax(axis=1) if same_iou.shape[1] else np.zeros(len(self.dets), dtype=np.int64)
        out = []
        for g in np.flatnonzero(self.eligible).tolist():
            near = self.same[:, g] & self.confident & (self.iou[:, g] >= LOOSE_MIN_IOU)
            if not near.any() or (self.iou[near, g] >= LOOSE_MAX_IOU).any():
                continue
            rows = np.flatnonzero(near & (owner == g))
            if not len(rows):
                continue
            rows = rows[np.lexsort((rows, -self.dets.scores[rows]))]
            agree = _iou(self.dets.boxes[rows[:1]], self.dets.boxes[rows])[0] >= AGREE_IOU
            members = rows[agree]
            scores = self.dets.scores[members]
            consensus = (self.dets.boxes[members] * scores[:, None]).sum(axis=0) / scores.sum()
            iou = float(_iou(consensus[None, :], self.gt.boxes[g : g + 1])[0, 0])
            if not LOOSE_MIN_IOU <= iou < LOOSE_MAX_IOU:
                continue
            pairwise = _iou(self.dets.boxes[members], self.dets.boxes[members])
            support = 1.0 - float(np.prod(1.0 - scores))
            evidence = {
                "detections": len(members),
                "scores": [_r(s) for s in scores.tolist()],
                "iou_consensus_box": _r(iou),
                "agreement_iou": _r(pairwise.min()),
            }
            out.append(
                LabelErrorCandidate(
                    "loose_box",
                    self.image_id,
                    _box(self.gt.boxes[g]),
                    int(self.gt.classes[g]),
                    None,
                    _box(consensus),
                    int(self.gt_index[g]),
                    _r(support * (1.0 - iou)),
                    evidence,
                )
            )
        return out
