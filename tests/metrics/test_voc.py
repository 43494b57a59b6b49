"""Pascal VOC AP: the Padilla et al. worked example (inclusive pixels) and hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

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


def _tied_image() -> AnnotatedSet:
    """One image, three tie groups: TP + FP, TP + duplicate + one on a difficult box, FP + TP."""
    gt = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70], [80, 80, 90, 90]]
    dets = [
        ([0, 0, 10, 10], 0.75),  # TP
        ([0, 50, 10, 60], 0.75),  # FP (background)
        ([20, 20, 30, 30], 0.5),  # TP, or duplicate of the next
        ([20, 20, 30, 31], 0.5),  # duplicate, or TP
        ([80, 80, 90, 90], 0.5),  # on the difficult box: ignored
        ([50, 0, 60, 10], 0.25),  # FP
        ([40, 40, 50, 50], 0.25),  # TP
    ]
    return AnnotatedSet(
        ImageTable.from_sizes([1], [100], [100]),
        {1: "a"},
        GroundTruth.from_arrays([1] * len(gt), gt, [1] * len(gt), difficult=[False] * 4 + [True]),
        Detections.from_arrays([1] * len(dets), [d[0] for d in dets], [1] * len(dets), [d[1] for d in dets]),
    )


@pytest.mark.parametrize(
    ("method", "lowest", "highest"),
    # by hand: the three groups' false positives first, or their true positives first (4 boxes to find)
    [
        ("voc", 0.25 * (0.5 + 0.5 + 0.5), 0.25 * (1 + 2 / 3 + 3 / 5)),
        ("voc07", 8 * 0.5 / 11, (3 + 2 + 1.2) / 11),
    ],
)
def test_ap_tie_range_brackets_every_order(method: str, lowest: float, highest: float) -> None:
    """Every input order stays in the range; the duplicate can only come first in the API's second sort.

    tfod_tools matches and draws the curve in one order, so a duplicate always follows the true positive
    it lost to; the API sorts the curve again, and its second sort may put the duplicate first.
    """
    from dataclasses import replace

    from tfod_tools.metrics.voc import ap_tie_range

    data = _tied_image()
    assert data.detections is not None
    aps = set()
    rng = np.random.default_rng(0)
    for perm in [rng.permutation(len(data.detections)) for _ in range(100)]:
        res = evaluate_voc(replace(data, detections=data.detections.select(perm)), method=method)  # type: ignore[arg-type]
        lo, hi = ap_tie_range(res)["a"]
        assert (lo, hi) == (pytest.approx(lowest, abs=1e-12), pytest.approx(highest, abs=1e-12))
        assert lo - 1e-12 <= res.per_class["a"]["AP"] <= hi + 1e-12
        assert res.per_class["a"]["tp"] == 3  # the count of true positives does not depend on the order
        aps.add(round(res.per_class["a"]["AP"], 12))
    assert max(aps) == pytest.approx(highest, abs=1e-12) and len(aps) > 2


def test_ties_go_by_image_id_then_input_order(oracles: SimpleNamespace) -> None:
    one = oracles.two_tied
    fp_first, tp_first = 0.5, 1.0  # every-point AP of FP, TP and of TP, FP
    assert evaluate_voc(one(1, 2, [1, 0]), method="voc").mAP == fp_first  # image 1 first, whatever the rows
    assert evaluate_voc(one(2, 1, [0, 1]), method="voc").mAP == tp_first
    assert evaluate_voc(one(1, 1, [0, 1]), method="voc").mAP == fp_first  # same image: input order
    assert evaluate_voc(one(1, 1, [1, 0]), method="voc").mAP == tp_first


_API_PRECISION = """
import json, sys
import numpy as np
np.float = float  # the API's metrics.py still says np.float
from object_detection.utils import metrics
scores = np.array(json.loads(sys.argv[1]))
labels = np.array(json.loads(sys.argv[2]))
precision, _ = metrics.compute_precision_recall(scores, labels, int(labels.sum()))
print(json.dumps({"precision": precision.tolist(), "order": np.argsort(scores)[::-1].tolist()}))
"""


def test_the_api_orders_ties_by_an_unstable_sort_that_depends_on_the_cpu() -> None:
    """What the module docstring says about the TF OD API's ``compute_precision_recall`` on ties.

    With numpy's SIMD sorts turned off (``NPY_DISABLE_CPU_FEATURES``) ties of up to 16 elements come
    out reversed (a stable sort, reversed); with them on (AVX2 or AVX-512) in another order: the
    API's precision points, hence its Pascal AP, depend on the machine.
    """
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("object_detection") is None:
        pytest.skip("the TF OD API is not installed")
    from numpy._core import _multiarray_umath as cpu  # type: ignore[attr-defined]

    extra = [f for f, on in cpu.__cpu_features__.items() if on and f not in cpu.__cpu_baseline__]
    if not {"AVX2", "AVX512_SKX"} & set(extra):
        pytest.skip("numpy has no SIMD sort on this CPU: nothing to compare")
    scores = [0.5, 0.25, 0.5, 0.5, 0.25, 0.5, 0.25, 0.5, 0.5, 0.25, 0.5, 0.5]
    labels = [True, False, False, True, True, False, False, True, False, True, False, True]
    args = [sys.executable, "-c", _API_PRECISION, json.dumps(scores), json.dumps(labels)]
    simd = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(f for f in extra if f != "MMX")}
    plain = json.loads(subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout)
    reversed_stable = np.argsort(scores, kind="stable")[::-1].tolist()
    assert plain["order"] == reversed_stable  # the last tied detection added comes first
    assert simd["order"] != reversed_stable
    assert simd["precision"] != plain["precision"]
