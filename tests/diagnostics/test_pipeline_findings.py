"""score_threshold_high from a rendered pipeline; diagnose with --pipeline reads its records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.findings.pipeline import score_threshold_high
from tfod_tools.odapi.pipeline import render_template


def test_score_threshold_03_is_flagged(pipeline_file: Path, tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    d = diagnose(tmp_path, pipeline=pipeline_file)
    (finding,) = d.get("score_threshold_high")
    settings = {r[0]: r[1] for r in finding.evidence["settings"]["rows"]}
    assert settings["score_threshold"] == 0.3
    assert "score_threshold: 1e-8" in finding.fix and str(pipeline_file) in finding.fix
    # The pipeline's own records were read: data findings and anchor coverage ran.
    assert d.inputs.eval_set is not None and d.inputs.train_set is not None
    assert "anchor_coverage" in d.ids()


def test_eval_friendly_post_processing_is_not_flagged(xray: SyntheticDataset) -> None:
    config = render_template(
        "tiny-ssd", label_map=xray.label_map, train_records=xray.train_record, eval_records=xray.eval_record
    )
    nms = config.model.ssd.post_processing.batch_non_max_suppression
    assert score_threshold_high(config) is not None  # the template keeps only 50 detections
    nms.max_total_detections = 100
    nms.max_detections_per_class = 100
    assert nms.score_threshold <= 0.01
    assert score_threshold_high(config) is None
    nms.score_threshold = 0.05
    found = score_threshold_high(config)
    assert found is not None and [r[0] for r in found.evidence["settings"]["rows"]] == ["score_threshold"]


def test_faster_rcnn_second_stage_is_checked() -> None:
    from tfod_tools.odapi.pipeline import parse_pipeline_text

    config = parse_pipeline_text(
        "model { faster_rcnn { second_stage_post_processing { batch_non_max_suppression {"
        " score_threshold: 0.5 max_detections_per_class: 100 max_total_detections: 300 } } } }"
    )
    found = score_threshold_high(config)
    assert found is not None and "second_stage_post_processing" in found.evidence["at"]
