"""Likely label errors: planted missing boxes, swapped labels and shifted boxes rank above the clean
boxes, in ``find_label_errors``, the ``likely_label_errors`` finding, ``tfod diagnose --json`` and the
HTML report's crops."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tfod_tools.cli.app import main
from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.data.records import read_annotated_set
from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.diagnostics.analysis import analyse_detections
from tfod_tools.diagnostics.findings.label_errors import HIGH_CONFIDENCE, MAX_ROWS, likely_label_errors
from tfod_tools.diagnostics.label_errors import (
    DEFAULT_MIN_SCORE,
    KINDS,
    LOOSE_MAX_IOU,
    LabelErrorCandidate,
    LabelErrorKind,
    find_label_errors,
)
from tfod_tools.metrics.boxes import iou_matrix

PLANTED_SCORE = 0.95


def _clean_set(seed: int = 0, images: int = 30) -> AnnotatedSet:
    """Images of 240 x 240 px, 1-4 boxes each in distinct cells of a 3 x 3 grid (no two overlap)."""
    rng = np.random.default_rng(seed)
    ids, boxes, classes = [], [], []
    for image_id in range(1, images + 1):
        for cell in rng.choice(9, size=int(rng.integers(1, 5)), replace=False).tolist():
            w, h = rng.uniform(30, 50, size=2)
            x = 80 * (cell % 3) + rng.uniform(2, 78 - w)
            y = 80 * (cell // 3) + rng.uniform(2, 78 - h)
            ids.append(image_id)
            boxes.append([x, y, x + w, y + h])
            classes.append(int(rng.integers(1, 4)))
    return AnnotatedSet(
        images=ImageTable.from_sizes(range(1, images + 1), [240] * images, [240] * images),
        categories={1: "cat", 2: "dog", 3: "bird"},
        ground_truth=GroundTruth.from_arrays(ids, boxes, classes),
    )


@dataclass(frozen=True)
class Planted:
    """A set with planted errors and, per kind, what was planted."""

    data: AnnotatedSet
    missing: list[tuple[int, list[float]]]  # (image id, the dropped box)
    wrong_label: dict[int, int]  # planted ground-truth row -> the true class
    loose_box: dict[int, list[float]]  # planted ground-truth row -> the true box


def _plant(clean: AnnotatedSet, detections: Detections, per_kind: int = 2, seed: int = 1) -> Planted:
    """Drop, relabel and shift ``per_kind`` boxes each; the model "sees" the true ones (score 0.95)."""
    rng = np.random.default_rng(seed)
    gt = clean.ground_truth
    rows = rng.choice(len(gt), size=3 * per_kind, replace=False)
    drop, swap, shift = rows[:per_kind], rows[per_kind : 2 * per_kind], rows[2 * per_kind :]
    classes = gt.classes.copy()
    classes[swap] = classes[swap] % 3 + 1
    boxes = gt.boxes.copy()
    w = boxes[shift, 2] - boxes[shift, 0]
    boxes[shift, 0] += w / 2
    boxes[shift, 2] += w / 2
    keep = np.setdiff1d(np.arange(len(gt)), drop)
    new_row = {int(old): new for new, old in enumerate(keep.tolist())}
    planted_gt = GroundTruth.from_arrays(gt.image_ids[keep], boxes[keep], classes[keep])
    seen = np.concatenate([drop, swap, shift])
    dets = Detections.from_arrays(
        np.concatenate([detections.image_ids, gt.image_ids[seen]]),
        np.concatenate([detections.boxes, gt.boxes[seen]]),
        np.concatenate([detections.classes, gt.classes[seen]]),
        np.concatenate([detections.scores, np.full(len(seen), PLANTED_SCORE)]),
    )
    return Planted(
        data=replace(clean, ground_truth=planted_gt, detections=dets),
        missing=[(int(gt.image_ids[r]), gt.boxes[r].tolist()) for r in drop],
        wrong_label={new_row[int(r)]: int(gt.classes[r]) for r in swap},
        loose_box={new_row[int(r)]: gt.boxes[r].tolist() for r in shift},
    )


def _iou(a: Any, b: Any) -> float:
    return float(iou_matrix(np.asarray([a], dtype=float), np.asarray([b], dtype=float))[0, 0])


def _is_planted(c: LabelErrorCandidate, p: Planted) -> bool:
    if c.kind == "missing":
        return any(i == c.image_id and _iou(c.box, box) >= 0.5 for i, box in p.missing)
    return c.gt_index in (p.wrong_label if c.kind == "wrong_label" else p.loose_box)


@pytest.fixture(scope="module")
def planted(b: Any) -> Planted:
    clean = _clean_set()
    return _plant(clean, b.noisy_detections(clean, seed=0))


def test_planted_errors_rank_above_the_clean_boxes(planted: Planted) -> None:
    found = find_label_errors(planted.data)
    for kind in KINDS:
        ranked = found[kind]
        assert all(c.kind == kind for c in ranked)
        flags = [_is_planted(c, planted) for c in ranked]
        assert flags[:2] == [True, True], (kind, ranked[:4])  # both planted ones first
        assert sum(flags) == 2  # each found once
        clean = [c.confidence for c, f in zip(ranked, flags, strict=True) if not f]
        assert all(c.confidence > max(clean, default=0.0) for c in ranked[:2])
        assert [c.confidence for c in ranked] == sorted((c.confidence for c in ranked), reverse=True)
        assert all(0.0 <= c.confidence <= 1.0 for c in ranked)
    for c in found["wrong_label"][:2]:
        assert c.suggested_class_id == planted.wrong_label[c.gt_index or 0] != c.class_id
        assert c.suggested_box is None and c.evidence["score"] >= PLANTED_SCORE
    for c in found["loose_box"][:2]:
        assert c.gt_index is not None and c.suggested_class_id is None and c.suggested_box is not None
        gt_box = planted.data.ground_truth.boxes[c.gt_index].tolist()
        assert _iou(c.box, gt_box) > 0.99
        assert _iou(c.suggested_box, planted.loose_box[c.gt_index]) > 0.7  # the consensus: the true box
        assert c.evidence["iou_consensus_box"] < LOOSE_MAX_IOU
    for c in found["missing"][:2]:
        assert c.gt_index is None and c.suggested_box == c.box and c.suggested_class_id == c.class_id


def test_a_perfect_set_has_no_candidates() -> None:
    clean = _clean_set(seed=4)
    gt = clean.ground_truth
    perfect = replace(
        clean, detections=Detections.from_arrays(gt.image_ids, gt.boxes, gt.classes, [0.9] * len(gt))
    )
    assert find_label_errors(perfect) == {"missing": [], "wrong_label": [], "loose_box": []}
    assert likely_label_errors(analyse_detections(perfect, step=1)) is None


def _one_image(gt: GroundTruth, dets: Detections) -> AnnotatedSet:
    return AnnotatedSet(ImageTable.from_sizes([1], [200], [200]), {1: "cat", 2: "dog"}, gt, dets)


def test_crowd_and_ignored_boxes_are_never_candidates() -> None:
    gt = GroundTruth.from_arrays(
        [1, 1], [[0, 0, 100, 100], [120, 120, 180, 180]], [1, 1], iscrowd=[True, False], ignore=[False, True]
    )
    dets = Detections.from_arrays(
        [1, 1, 1, 1],
        [[10, 10, 30, 30], [0, 0, 100, 100], [30, 0, 130, 100], [120, 120, 180, 180]],
        [2, 2, 1, 2],
        [0.9, 0.9, 0.9, 0.9],
    )  # inside the crowd region; another class on it; a loose same-class box on it; another class on it
    assert find_label_errors(_one_image(gt, dets)) == {"missing": [], "wrong_label": [], "loose_box": []}
    plain = replace(gt, iscrowd=np.zeros(2, dtype=bool), ignore=np.zeros(2, dtype=bool))
    found = find_label_errors(_one_image(plain, dets))
    assert {k: len(v) for k, v in found.items()} == {"missing": 1, "wrong_label": 1, "loose_box": 1}
    assert found["missing"][0].box == (10.0, 10.0, 30.0, 30.0)
    # box 0 has a confident cat at IoU 0.54 (a loose box, not a wrong label)
    assert found["wrong_label"][0].gt_index == 1


def test_confidence_neighbours_and_duplicates() -> None:
    gt = GroundTruth.from_arrays([1, 1], [[10, 10, 60, 60], [14, 14, 64, 64]], [1, 2])
    # the cat missed, the dog found: its detection is the dog's, not a relabelled cat
    dets = Detections.from_arrays([1], [[14, 14, 64, 64]], [2], [0.95])
    assert find_label_errors(_one_image(gt, dets))["wrong_label"] == []
    # one object, detected as cat and dog after class-wise NMS: one missing candidate, the best score
    dets = Detections.from_arrays([1, 1, 1], [[120, 120, 160, 160], [121, 120, 160, 161], [120, 0, 160, 10]],
                                  [2, 1, 1], [0.8, 0.9, DEFAULT_MIN_SCORE - 0.01])  # fmt: skip
    (only,) = find_label_errors(_one_image(GroundTruth.empty(), dets))["missing"]
    assert (only.class_id, only.confidence, only.evidence["also_detected_as"]) == (1, 0.9, [2])
    (dog,) = find_label_errors(_one_image(GroundTruth.empty(), dets), thresholds={1: 0.95})["missing"]
    assert dog.class_id == 2  # the cats are not confident at their own min score
    # a same-class detection below the min score lowers a wrong label's confidence
    gt = GroundTruth.from_arrays([1], [[10, 10, 60, 60]], [1])
    alone = Detections.from_arrays([1], [[10, 10, 60, 60]], [2], [0.9])
    both = Detections.from_arrays([1, 1], [[10, 10, 60, 60], [11, 10, 60, 60]], [2, 1], [0.9, 0.4])
    (a,) = find_label_errors(_one_image(gt, alone))["wrong_label"]
    (c,) = find_label_errors(_one_image(gt, both))["wrong_label"]
    assert a.confidence == 0.9 and c.confidence == pytest.approx(0.9 * 0.6, abs=1e-4)
    # two agreeing detections give more support to a loose box than one
    one = Detections.from_arrays([1], [[30, 10, 80, 60]], [1], [0.8])
    two = Detections.from_arrays([1, 1], [[30, 10, 80, 60], [31, 10, 81, 61]], [1, 1], [0.8, 0.7])
    (l1,) = find_label_errors(_one_image(gt, one))["loose_box"]
    (l2,) = find_label_errors(_one_image(gt, two))["loose_box"]
    assert l2.confidence > l1.confidence and l2.evidence["detections"] == 2


def test_empty_inputs() -> None:
    empty: dict[str, list[LabelErrorCandidate]] = {"missing": [], "wrong_label": [], "loose_box": []}
    no_images = AnnotatedSet(
        ImageTable.from_sizes([], [], []), {1: "cat"}, GroundTruth.empty(), Detections.empty()
    )
    assert find_label_errors(no_images) == empty
    clean = _clean_set(seed=2, images=3)
    assert find_label_errors(clean) == empty  # no detections at all
    assert find_label_errors(replace(clean, detections=Detections.empty())) == empty
    on_empty = replace(clean, ground_truth=GroundTruth.empty(),
                       detections=Detections.from_arrays([2], [[1, 1, 20, 20]], [1], [0.7]))  # fmt: skip
    (only,) = find_label_errors(on_empty)["missing"]
    assert only.image_id == 2 and only.evidence["max_iou_with_ground_truth"] == 0.0


def test_order_is_deterministic(planted: Planted) -> None:
    data = planted.data
    dets = data.detections
    assert dets is not None
    first = find_label_errors(data)
    shuffled = dets.select(np.random.default_rng(7).permutation(len(dets)))
    again = find_label_errors(replace(data, detections=shuffled))
    as_dicts = {k: [c.to_dict(data.categories) for c in v] for k, v in first.items()}
    assert as_dicts == {k: [c.to_dict(data.categories) for c in v] for k, v in again.items()}
    assert json.loads(json.dumps(as_dicts)) == as_dicts  # JSON-ready
    ties = Detections.from_arrays([1, 1], [[150, 150, 190, 190], [10, 150, 50, 190]], [1, 1], [0.8, 0.8])
    boxes = [c.box for c in find_label_errors(_one_image(GroundTruth.empty(), ties))["missing"]]
    assert boxes == [(10.0, 150.0, 50.0, 190.0), (150.0, 150.0, 190.0, 190.0)]


def test_the_finding_lists_the_planted_candidates_first(planted: Planted) -> None:
    f = likely_label_errors(analyse_detections(planted.data, step=300), eval_records=["eval.record"])
    assert f is not None and f.id == "likely_label_errors"
    found = find_label_errors(planted.data)
    assert f.evidence["counts"] == {k: len(v) for k, v in found.items()}
    assert f.evidence["step"] == 300 and f.evidence["eval_records"] == ["eval.record"]
    strong = [c for k in KINDS for c in found[k] if c.confidence >= HIGH_CONFIDENCE]
    assert f.evidence["high_confidence"] == len(strong) >= 4  # the planted missing boxes and labels
    assert f.severity == "warning"
    for kind in KINDS:
        t = f.evidence[kind]
        assert len(t["rows"]) == min(MAX_ROWS, len(found[kind]))
        col = {c: k for k, c in enumerate(t["columns"])}
        assert [r[col["rank"]] for r in t["rows"]] == list(range(1, len(t["rows"]) + 1))
        assert [r[col["confidence"]] for r in t["rows"]] == [c.confidence for c in found[kind][:MAX_ROWS]]
        assert all(r[col["model box"]] is not None and r[col["kind"]] == kind for r in t["rows"])
    assert "not verdicts" in f.message and "not modified" in f.message
    assert "source annotations" in f.fix
    assert json.loads(json.dumps(f.to_dict())) == f.to_dict()


# -- tfod diagnose on a model directory ------------------------------------------------------------


def _plant_records_set(data: AnnotatedSet) -> tuple[AnnotatedSet, Detections, dict[LabelErrorKind, str]]:
    """One planted error of each kind in the synthetic eval set; ``kind -> image file name``."""
    gt = data.ground_truth
    ious = iou_matrix(gt.boxes, gt.boxes)
    ious[gt.image_ids[:, None] != gt.image_ids[None, :]] = 0.0  # overlaps within an image only
    np.fill_diagonal(ious, 0.0)
    w = gt.boxes[:, 2] - gt.boxes[:, 0]
    alone = (
        (ious.max(axis=1) < 0.05)
        & (gt.boxes[:, 2] + w / 2 < data.images.widths[gt.image_ids - 1])
        & (w >= 16)
    )
    rows = np.flatnonzero(alone)
    per_image = {int(gt.image_ids[r]): int(r) for r in rows[::-1]}  # one row per image
    drop, swap, shift = list(per_image.values())[:3]
    classes = gt.classes.copy()
    classes[swap] = 3 - classes[swap]
    boxes = gt.boxes.copy()
    boxes[shift, [0, 2]] += w[shift] / 2
    keep = np.setdiff1d(np.arange(len(gt)), [drop])
    seen = [drop, swap, shift]
    dets = Detections.from_arrays(gt.image_ids[seen], gt.boxes[seen], gt.classes[seen], [PLANTED_SCORE] * 3)
    planted = replace(
        data, ground_truth=GroundTruth.from_arrays(gt.image_ids[keep], boxes[keep], classes[keep])
    )
    names = {k: data.images.file_names[int(gt.image_ids[r]) - 1] for k, r in zip(KINDS, seen, strict=True)}
    return planted, dets, names


def test_tfod_diagnose_json_and_report_crops(
    tmp_path: Path, xray: SyntheticDataset, b: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    b.write_events(tmp_path)
    data = read_annotated_set(xray.eval_record, xray.label_map)
    planted, seen, names = _plant_records_set(data)
    noise = b.noisy_detections(data, seed=1)
    dets = Detections.from_arrays(
        np.concatenate([noise.image_ids, seen.image_ids]),
        np.concatenate([noise.boxes, seen.boxes]),
        np.concatenate([noise.classes, seen.classes]),
        np.concatenate([noise.scores, seen.scores]),
    )
    b.store_detections(tmp_path, 4000, planted, dets)  # the best step of the events
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "eval" / "detections").iterdir())
    report = tmp_path / "report.html"
    code = main(
        ["diagnose", "--model-dir", str(tmp_path), "--eval-records", str(xray.eval_record),
         "--label-map", str(xray.label_map), "--json", "--quiet", "--html", str(report)]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (f,) = [f for f in doc["findings"] if f["id"] == "likely_label_errors"]
    assert f["evidence"]["step"] == 4000
    for kind in KINDS:
        t = f["evidence"][kind]
        top = dict(zip(t["columns"], t["rows"][0], strict=True))
        assert top["image"] == names[kind] and top["confidence"] >= 0.5, (kind, t["rows"][:3])
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "eval" / "detections").iterdir()) == before
    page = report.read_text()
    section = page[page.index('id="finding-likely_label_errors"') :]
    section = section[: section.index('<p class="fix">')]
    for kind in KINDS:
        gallery = re.search(rf'data-kind="{kind}">(.*?)</div>', section)
        assert gallery is not None, kind
        crops = re.findall(r'src="data:image/png;base64,([^"]+)"', gallery.group(1))
        counts = f["evidence"]["counts"][kind]
        assert len(crops) == min(12, counts, len(f["evidence"][kind]["rows"]))
        first = Image.open(io.BytesIO(base64.b64decode(crops[0])))
        assert max(first.size) == 160
        assert names[kind] in gallery.group(1)
