"""Findings from event files: overfitting, best checkpoint, single eval point, -1 metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.diagnostics.engine import diagnose, load_inputs
from tfod_tools.diagnostics.findings.curves import best_step, overfitting, single_eval_point
from tfod_tools.diagnostics.series import Scalars
from tfod_tools.errors import TfodError
from tfod_tools.tensorboard.reader import read_scalars
from tfod_tools.tensorboard.writer import EventWriter

MAP = "DetectionBoxes_Precision/mAP"
LOSS = "Loss/total_loss"


def _eval_set(boxes: int, images: int) -> AnnotatedSet:
    """An eval set of ``images`` images holding ``boxes`` ground-truth boxes (in memory, no records)."""
    ids = np.arange(1, images + 1)
    gt = GroundTruth.from_arrays(1 + np.arange(boxes) % images, [[0, 0, 20, 20]] * boxes, [1] * boxes)
    return AnnotatedSet(ImageTable.from_sizes(ids, [64] * images, [64] * images), {1: "nodule"}, gt)


def test_reported_numbers_raise_overfitting_at_5000_and_best_is_4000(tmp_path: Path, b: Any) -> None:
    # The reported mAP drop (0.837 -> 0.81) is real only on a large eval set: with 5000 eval boxes
    # its 95% interval (binomial approximation) lies above 0. (Events alone no longer suffice.)
    b.write_events(tmp_path)
    inputs = load_inputs(tmp_path)
    inputs.eval_set = _eval_set(5000, 1000)
    d = diagnose(tmp_path, inputs=inputs)
    (finding,) = d.get("overfitting")
    assert finding.severity == "warning"
    assert "5000 ground-truth boxes" in finding.message and "likely real" in finding.message
    assert finding.evidence["likely_real"] is True
    verdicts = {row[0]: row[-1] for row in finding.evidence["confidence"]["rows"]}
    # Three evaluations are too few for a trend test of the eval loss: that part is not shown real.
    assert verdicts == {"eval total loss rising": "within noise", "mAP drop": "likely real"}
    assert "too few for a trend test" in finding.message
    assert finding.evidence["at_step"] == 5000
    assert finding.evidence["use_step"] == 4000
    rows = finding.evidence["history"]["rows"]
    assert [r[0] for r in rows] == list(b.STEPS)
    assert [r[1] for r in rows] == list(b.TRAIN_LOSS)
    assert [r[2] for r in rows] == list(b.EVAL_LOSS)
    assert [r[3] for r in rows] == list(b.MAPS)
    assert "0.260" in finding.message and "0.370" in finding.message and "0.837" in finding.message
    assert "step 4000" in finding.fix
    best = d.best_checkpoint
    assert (best.step, best.metric, round(best.value or 0, 3), best.exists) == (4000, MAP, 0.837, False)
    assert d.to_dict()["best_checkpoint"] == {
        "step": 4000,
        "metric": MAP,
        "value": best.value,
        "exists": False,
        "path": None,
    }
    # The JSON document is plain JSON.
    assert json.loads(json.dumps(d.to_dict()))["findings"][0]["id"]


def test_only_loss_rising_is_enough_and_falling_loss_is_not_overfitting(tmp_path: Path, b: Any) -> None:
    with EventWriter(tmp_path / "train") as train, EventWriter(tmp_path / "eval") as ev:
        for step, t, e in zip(b.STEPS, b.TRAIN_LOSS, b.EVAL_LOSS, strict=True):
            train.add_scalar(LOSS, t, step=step)
            ev.add_scalar(LOSS, e, step=step)
    found = overfitting(Scalars(read_scalars(tmp_path)))
    assert found is not None and "eval total loss rose" in found.message
    assert found.evidence["use_step"] == 3000  # no mAP: the lowest eval loss
    # Three evaluations cannot show a trend (Mann-Kendall's smallest p is 1/6): info, not warning.
    assert found.severity == "info" and "only 3 evaluations" in found.message

    longer = tmp_path / "longer"
    with EventWriter(longer / "train") as train, EventWriter(longer / "eval") as ev:
        for k, e in enumerate((0.26, 0.27, 0.29, 0.31, 0.33, 0.37)):
            train.add_scalar(LOSS, 0.2 - 0.002 * k, step=1000 * (k + 1))
            ev.add_scalar(LOSS, e, step=1000 * (k + 1))
    found = overfitting(Scalars(read_scalars(longer)))
    assert found is not None and found.severity == "warning"
    assert "Mann-Kendall over the last 5 points" in found.message and "p = 0.0083" in found.message
    assert found.evidence["use_step"] == 1000

    healthy = tmp_path / "healthy"
    with EventWriter(healthy / "train") as train, EventWriter(healthy / "eval") as ev:
        for step, t, e, m in zip(b.STEPS, (0.3, 0.25, 0.2), (0.4, 0.35, 0.33), (0.5, 0.6, 0.65), strict=True):
            train.add_scalar(LOSS, t, step=step)
            ev.add_scalar(LOSS, e, step=step)
            ev.add_scalar(MAP, m, step=step)
    s = Scalars(read_scalars(healthy))
    assert overfitting(s) is None
    assert best_step(s) == (5000, MAP, 0.6499999761581421)


def test_train_loss_rising_too_is_not_overfitting(tmp_path: Path, b: Any) -> None:
    with EventWriter(tmp_path / "train") as train, EventWriter(tmp_path / "eval") as ev:
        for step, t, e in zip(b.STEPS, (0.2, 0.25, 0.35), b.EVAL_LOSS, strict=True):
            train.add_scalar(LOSS, t, step=step)
            ev.add_scalar(LOSS, e, step=step)
    assert overfitting(Scalars(read_scalars(tmp_path))) is None


def test_single_eval_point_names_the_command(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path, steps=(5000,))
    finding = single_eval_point(Scalars(read_scalars(tmp_path)), model_dir=str(tmp_path), pipeline="p.config")
    assert finding is not None
    assert finding.evidence["step"] == 5000
    assert f"tfod evaluate --pipeline p.config --model-dir {tmp_path} --checkpoints all" in finding.fix
    assert "max_to_keep" in finding.fix
    # Several points per tag: no finding.
    several = tmp_path / "several"
    b.write_events(several)
    assert single_eval_point(Scalars(read_scalars(several)), model_dir="m", pipeline=None) is None


def test_undefined_area_metric_counts_the_eval_boxes(tmp_path: Path, xray: SyntheticDataset, b: Any) -> None:
    b.write_events(tmp_path)
    d = diagnose(tmp_path, eval_records=xray.eval_record, label_map=xray.label_map)
    (finding,) = d.get("undefined_area_metric")
    rows = {r[0]: r for r in finding.evidence["metrics"]["rows"]}
    assert set(rows) == {"mAP (large)", "AR@100 (large)"}
    assert rows["mAP (large)"][1:3] == ["large", 0]
    assert rows["AR@100 (large)"][1:3] == ["large", 0]
    buckets = {r[0]: r[2] for r in finding.evidence["area_buckets"]["rows"]}
    assert buckets["large"] == 0 == xray.area_buckets["eval"]["large"]
    assert buckets["small"] + buckets["medium"] == sum(xray.class_counts["eval"].values())
    assert "mAP (large)" in finding.message and "AR@100 (large)" in finding.message
    assert "large: 0" in finding.message


def test_undefined_area_metric_without_records_asks_for_them(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    (finding,) = diagnose(tmp_path).get("undefined_area_metric")
    assert [r[2] for r in finding.evidence["metrics"]["rows"]] == [None, None]
    assert "--eval-records" in finding.fix


def test_no_finding_when_buckets_are_defined(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path, large=0.4)
    assert diagnose(tmp_path).get("undefined_area_metric") == []


def test_missing_model_dir_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(TfodError, match="directory not found"):
        diagnose(tmp_path / "nope")
