"""Pascal VOC AP: the Padilla et al. worked example (inclusive pixels) and hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.metrics.voc import evaluate_voc

REF = Path(__file__).resolve().parents[1] / "data" / "voc_padilla_7img"


def padilla_set() -> AnnotatedSet:
    g_rows, d_rows = [], []
    names = sorted(p.name for p in (REF / "gts").glob("*.txt"))
    for i, name in enumerate(names, start=1):
        for line in (REF / "gts" / name).read_text().split("\n"):
            if line.strip():
                _, x, y, w, h = line.split()
                g_rows.append((i, [float(x), float(y), float(x) + float(w), float(y) + float(h)]))
        for line in (REF / "dets" / name).read_text().split("\n"):
            if line.strip():
                _, s, x, y, w, h = line.split()
                d_rows.append((i, [float(x), float(y), float(x) + float(w), float(y) + float(h)], float(s)))
    return AnnotatedSet(
        ImageTable.from_sizes(range(1, len(names) + 1), [1000] * len(names), [1000] * len(names)),
        {1: "object"},
        GroundTruth.from_arrays([r[0] for r in g_rows], [r[1] for r in g_rows], [1] * len(g_rows)),
        Detections.from_arrays(
            [r[0] for r in d_rows], [r[1] for r in d_rows], [1] * len(d_rows), [r[2] for r in d_rows]
        ),
    )


@pytest.mark.parametrize("iou", ["0.1", "0.3", "0.5", "0.75"])
@pytest.mark.parametrize(("method", "key"), [("voc07", "eleven_point"), ("voc", "every_point")])
def test_padilla_reference(iou: str, method: str, key: str) -> None:
    expected = json.loads((REF / "expected.json").read_text())[key][iou]
    data = padilla_set()
    assert len(data.ground_truth) == 15 and data.detections is not None and len(data.detections) == 24
    res = evaluate_voc(data, iou=float(iou), method=method, pixel_convention="inclusive")  # type: ignore[arg-type]
    assert abs(res.per_class["object"]["AP"] - expected) <= 1e-9
    assert res.mAP == res.per_class["object"]["AP"]


def test_continuous_convention_differs_as_documented() -> None:
    res = evaluate_voc(padilla_set(), iou=0.1, method="voc", pixel_convention="continuous")
    assert res.mAP == pytest.approx(0.2801, abs=1e-4)


def _one_image(gt_boxes, gt_difficult, det_boxes, scores) -> AnnotatedSet:  # type: ignore[no-untyped-def]
    return AnnotatedSet(
        ImageTable.from_sizes([1], [100], [100]),
        {1: "a", 2: "b"},
        GroundTruth.from_arrays([1] * len(gt_boxes), gt_boxes, [1] * len(gt_boxes), difficult=gt_difficult),
        Detections.from_arrays([1] * len(det_boxes), det_boxes, [1] * len(det_boxes), scores),
    )


def test_difficult_and_duplicates() -> None:
    data = _one_image(
        [[0, 0, 10, 10], [20, 20, 30, 30]],
        [False, True],
        [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30]],
        [0.9, 0.8, 0.7, 0.6],
    )
    res = evaluate_voc(data, method="voc")
    cls = res.per_class["a"]
    assert (
        cls["num_gt"] == 1 and cls["tp"] == 1 and cls["fp"] == 1
    )  # both detections on the difficult box ignored
    np.testing.assert_allclose(res.precision["a"], [1.0, 0.5])
    assert cls["AP"] == 1.0
    assert np.isnan(res.per_class["b"]["AP"]) and res.mAP == 1.0
    assert res.to_dict()["per_class"]["b"]["AP"] is None


def test_voc_takes_best_box_even_if_taken() -> None:
    # The second detection overlaps box 0 best (taken) and box 1 enough: VOC calls it a duplicate.
    data = _one_image(
        [[0, 0, 10, 10], [5, 0, 15, 10]], [False, False], [[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.8]
    )
    assert evaluate_voc(data, method="voc").per_class["a"]["tp"] == 1
