"""Error breakdown in the TIDE sense: what each kind of mistake costs in AP.

Detections are matched COCO-style at the foreground IoU ``fg`` (0.5) with the shared engine; every
false positive gets one type, checked in this order ("same" = ground truth of the detection's class,
"other" = of another class, IoU over non-crowd boxes of the image):

- **Bkg**: IoU < ``bg`` (0.1) with every box;
- **Dupe**: IoU >= ``fg`` with a same-class box (already taken by a higher-scoring detection);
- **Cls**: IoU >= ``fg`` with an other-class box;
- **Loc**: ``bg`` <= IoU < ``fg`` with a same-class box;
- **Both**: ``bg`` <= IoU < ``fg`` with an other-class box.

A ground-truth box that no detection matched and that is not the box of a Cls or Loc error is a
**Miss**. The oracle AP gain ``dAP`` of a type is the
COCO AP at ``fg`` (101-point, mean over classes) after fixing only that type, minus the AP as is:
Cls errors take the class of their box, Loc errors take the box of their best same-class box,
Both / Dupe / Bkg false positives are removed, missed boxes are ignored. ``fp_share`` is each type's
share of the false positives.

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a", 2: "b"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 2]),
...     detections=Detections.from_arrays([1, 1, 1], [[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
...                                       [1, 1, 1], [0.9, 0.8, 0.7]))
>>> br = error_breakdown(data)
>>> br.counts
{'Cls': 1, 'Loc': 0, 'Both': 0, 'Dupe': 1, 'Bkg': 0, 'Miss': 0}
>>> round(br.ap, 6), round(br.dap["Cls"], 6), round(br.dap["Dupe"], 6)
(0.5, 0.5, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.metrics.boxes import pair_iou
from tfod_tools.metrics.coco import evaluate_coco
from tfod_tools.metrics.matching import candidate_pairs
from tfod_tools.metrics.protocol import match_coco

ERROR_TYPES: tuple[str, ...] = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")


@dataclass(frozen=True)
class ErrorBreakdown:
    """Counts, AP gains and false-positive shares per error type; ``det_type`` per detection row."""

    ap: float
    counts: dict[str, int]
    dap: dict[str, float]
    fp_share: dict[str, float]
    det_type: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """As plain data (without the per-detection types)."""
        return {"ap": self.ap, "counts": self.counts, "dap": self.dap, "fp_share": self.fp_share}


def _ap50(data: AnnotatedSet, fg: float) -> float:
    res = evaluate_coco(
        data,
        iou_thresholds=[fg],
        area_ranges={"all": (0.0, 1e10)},
        max_dets=(100,),
        per_class=False,
        validate=False,
    )
    return max(res.stats["AP"], 0.0)


def error_breakdown(data: AnnotatedSet, fg: float = 0.5, bg: float = 0.1) -> ErrorBreakdown:
    """Classify every false positive and missed box, and measure each type's oracle AP gain."""
    data.validate()
    dets = data.detections if data.detections is not None else Detections.empty()
    gt = data.ground_truth
    m = match_coco(data, iou_thresholds=[fg], area_ranges={"all": (0.0, 1e10)}, max_det=100, validate=False)
    n = m.det_index.shape[0]
    rows = m.det_index
    # Class-agnostic IoUs with non-crowd boxes of the same image.
    g_img = np.searchsorted(m.image_ids, gt.image_ids)
    pd, pg = candidate_pairs(m.det_image, np.where(gt.iscrowd, -1, g_img))
    iou = pair_iou(dets.boxes[rows][pd], gt.boxes[pg])
    same = gt.classes[pg] == dets.classes[rows][pd]
    best_same = np.zeros(n)
    best_other = np.zeros(n)
    np.maximum.at(best_same, pd[same], iou[same])
    np.maximum.at(best_other, pd[~same], iou[~same])
    # Best same-class box (for Loc fixes) and best other-class box (for Cls fixes).
    target_same = _argbest(pd[same], pg[same], iou[same], n)
    target_other = _argbest(pd[~same], pg[~same], iou[~same], n)
    fp = ~m.matched[0, 0] & ~m.ignored[0, 0]
    kind = np.full(n, "", dtype=object)
    kind[m.matched[0, 0]] = "TP"
    best_any = np.maximum(best_same, best_other)
    rules = [
        ("Bkg", best_any < bg),
        ("Dupe", best_same >= fg),
        ("Cls", best_other >= fg),
        ("Loc", best_same >= bg),
        ("Both", best_other >= bg),
        ("Bkg", np.ones(n, dtype=bool)),
    ]
    for name, cond in rules:
        pick = fp & (kind == "") & cond
        kind[pick] = name
    matched_gt = m.dt_gt()[0, 0]
    found = np.zeros(len(gt), dtype=bool)
    found[matched_gt[m.matched[0, 0]]] = True
    targeted = np.zeros(len(gt), dtype=bool)
    targeted[target_other[kind == "Cls"]] = True
    targeted[target_same[kind == "Loc"]] = True
    missed = ~found & ~m.gt_ignore[0] & ~targeted
    counts = {t: int((kind == t).sum()) for t in ERROR_TYPES[:-1]}
    counts["Miss"] = int(missed.sum())
    n_fp = int(fp.sum())
    share = {t: (counts[t] / n_fp if n_fp else 0.0) for t in ERROR_TYPES[:-1]}
    base = _ap50(data, fg)

    def with_dets(keep: npt.NDArray[np.bool_], classes: Any = None, boxes: Any = None) -> AnnotatedSet:
        new_classes = dets.classes.copy() if classes is None else classes
        new_boxes = dets.boxes.copy() if boxes is None else boxes
        changed = Detections.from_arrays(dets.image_ids, new_boxes, new_classes, dets.scores)
        return replace(data, detections=changed.select(keep))

    all_rows = np.ones(len(dets), dtype=bool)
    dap: dict[str, float] = {}
    cls_fix = dets.classes.copy()
    sel = kind == "Cls"
    cls_fix[rows[sel]] = gt.classes[target_other[sel]]
    dap["Cls"] = _ap50(with_dets(all_rows, classes=cls_fix), fg) - base
    box_fix = dets.boxes.copy()
    sel = kind == "Loc"
    box_fix[rows[sel]] = gt.boxes[target_same[sel]]
    dap["Loc"] = _ap50(with_dets(all_rows, boxes=box_fix), fg) - base
    for name in ("Both", "Dupe", "Bkg"):
        keep = all_rows.copy()
        keep[rows[kind == name]] = False
        dap[name] = _ap50(with_dets(keep), fg) - base
    dap["Miss"] = _ap50(replace(data, ground_truth=replace(gt, ignore=gt.ignore | missed)), fg) - base
    det_type = np.full(len(dets), "", dtype=object)
    det_type[rows] = kind
    return ErrorBreakdown(base, counts, dap, share, tuple(str(x) for x in det_type))


def _argbest(
    pd: npt.NDArray[np.int64], pg: npt.NDArray[np.int64], iou: npt.NDArray[np.float64], n: int
) -> Any:
    """Per detection, the ground-truth row with the highest IoU (``0`` where none)."""
    out = np.zeros(n, dtype=np.int64)
    if not pd.shape[0]:
        return out
    order = np.lexsort((iou, pd))  # per detection, the best IoU last
    last = np.flatnonzero(np.append(pd[order][1:] != pd[order][:-1], True))
    out[pd[order][last]] = pg[order][last]
    return out
