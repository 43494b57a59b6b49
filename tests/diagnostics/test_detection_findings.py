"""low_class_ap and image_level from synthetic AnnotatedSets and from detections stored by the evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.data.records import read_annotated_set
from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.diagnostics.analysis import analyse_detections
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.findings.detections import image_level, low_class_ap
from tfod_tools.metrics.image_level import image_level_metrics


def _r3(x: float) -> float | None:
    """What the evidence holds: rounded, and None where undefined (NaN, inf)."""
    return round(float(x), 3) if np.isfinite(x) else None


def _two_classes() -> AnnotatedSet:
    """Class "good" is found exactly; class "bad" is half missed, half confused with "good"."""
    n = 20
    ids = np.arange(1, n + 1)
    gt_boxes = [[10, 10, 50, 50]] * n + [[60, 60, 90, 90]] * n
    gt_ids = np.concatenate([ids, ids])
    gt_cls = np.array([1] * n + [2] * n)
    det_ids = np.concatenate([ids, ids[: n // 2]])
    det_boxes = [[10, 10, 50, 50]] * n + [[60, 60, 90, 90]] * (n // 2)
    det_cls = np.array([1] * n + [1] * (n // 2))  # bad boxes predicted as "good": Cls errors
    scores = np.linspace(0.99, 0.5, det_ids.shape[0])
    return AnnotatedSet(
        images=ImageTable.from_sizes(ids, [100] * n, [100] * n),
        categories={1: "good", 2: "bad"},
        ground_truth=GroundTruth.from_arrays(gt_ids, gt_boxes, gt_cls),
        detections=Detections.from_arrays(det_ids, det_boxes, det_cls, scores),
    )


def test_low_class_ap_names_the_weak_class_and_its_errors() -> None:
    analysis = analyse_detections(_two_classes(), step=7)
    finding = low_class_ap(analysis)
    assert finding is not None
    (row,) = finding.evidence["classes"]["rows"]
    columns = finding.evidence["classes"]["columns"]
    values = dict(zip(columns, row, strict=True))
    assert values["class"] == "bad" and values["AP"] == 0.0 and values["boxes"] == 20
    assert values["Cls"] == 0  # Cls errors count under the *detection's* class ("good")
    assert values["Miss"] == 20
    assert values["main error"] == "Miss"
    assert "bad" in finding.fix and "anchor coverage" in finding.fix
    errors = analysis.per_class_errors()
    assert errors["good"]["Cls"] == 10 and errors["good"]["Miss"] == 0


def test_image_level_matches_the_metrics_engine() -> None:
    data = _two_classes()
    analysis = analyse_detections(data, step=7)
    finding = image_level(analysis)
    assert finding is not None
    rows = {r[0]: r for r in finding.evidence["per_class"]["rows"]}
    reference = image_level_metrics(data, analysis.threshold)
    for name, ref in reference.items():
        _, _, _, thr, sens, spec, acc, auroc, pos, neg = rows[name]
        b = ref.best
        assert [thr, sens, spec, acc, auroc] == [
            _r3(b.threshold),
            _r3(b.sensitivity),
            _r3(b.specificity),
            _r3(b.accuracy),
            _r3(ref.auroc),
        ]
        assert (pos, neg) == (ref.positives, ref.negatives)
    assert rows["good"][4] == 1.0  # every "good" image found
    # The contrast is made with this run's own numbers, not a fixed example.
    assert "0.837" not in finding.message and "96%" not in finding.message
    at = {r[0]: r for r in finding.evidence["at_operating_threshold"]["rows"]}
    for name, ref in reference.items():
        a = ref.at_threshold
        assert at[name][1:] == [
            _r3(a.accuracy),
            _r3(a.sensitivity),
            _r3(a.specificity),
            a.tp,
            a.fp,
            a.tn,
            a.fn,
        ]
    assert finding.evidence["operating_threshold"] == analysis.threshold


def _one_class_run(found: int, n: int = 20, negatives: int = 10) -> AnnotatedSet:
    """``n`` positive images of which ``found`` are detected exactly, plus ``negatives`` empty images."""
    ids = np.arange(1, n + negatives + 1)
    pos = ids[:n]
    return AnnotatedSet(
        images=ImageTable.from_sizes(ids, [100] * ids.shape[0], [100] * ids.shape[0]),
        categories={1: "nodule"},
        ground_truth=GroundTruth.from_arrays(pos, [[10, 10, 50, 50]] * n, [1] * n),
        detections=Detections.from_arrays(
            pos[:found], [[10, 10, 50, 50]] * found, [1] * found, np.linspace(0.9, 0.6, found)
        ),
    )


def test_image_level_message_uses_each_runs_own_numbers() -> None:
    texts = []
    for found in (18, 9):
        analysis = analyse_detections(_one_class_run(found), step=found)
        finding = image_level(analysis)
        assert finding is not None
        ref = image_level_metrics(analysis.data, analysis.threshold)["nodule"].at_threshold
        m_ap = analysis.coco.stats["AP"]
        expected = (
            f"this run's mAP {m_ap:.3f} goes with {ref.accuracy * 100:.0f}% image-level accuracy and "
            f"{ref.sensitivity * 100:.0f}% sensitivity (recall) at its operating threshold "
            f"{analysis.threshold:g}"
        )
        assert expected in finding.message
        texts.append(expected)
    # 18 of 20 found: accuracy 28/30 = 93%, sensitivity 90%; 9 of 20: 19/30 = 63%, 45%.
    assert "93% image-level accuracy and 90% sensitivity" in texts[0]
    assert "63% image-level accuracy and 45% sensitivity" in texts[1]
    assert texts[0] != texts[1]


def test_stored_detections_feed_the_findings(model_dir: Path, xray: SyntheticDataset) -> None:
    d = diagnose(model_dir, eval_records=xray.eval_record, label_map=xray.label_map)
    # The best mAP step in the events is 4000: its stored detections are analysed.
    assert d.inputs.detections_step == 4000
    assert d.get("image_level")
    truth = read_annotated_set(xray.eval_record, xray.label_map)
    assert len(d.inputs.analysis.data.ground_truth) == len(truth.ground_truth)
    pinned = diagnose(model_dir, step=3000)
    assert pinned.inputs.detections_step == 3000


def test_no_detections_is_a_note_not_an_error(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    d = diagnose(tmp_path)
    assert d.get("low_class_ap") == [] and d.get("image_level") == []
    assert any("no stored detections" in n for n in d.notes)
