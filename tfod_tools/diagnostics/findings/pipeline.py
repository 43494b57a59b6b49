"""Findings read from ``pipeline.config``: post-processing that lowers mAP.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''model { ssd { post_processing { batch_non_max_suppression {
...   score_threshold: 0.3 max_detections_per_class: 100 max_total_detections: 100 } } } }''')
>>> f = score_threshold_high(cfg, "pipeline.config")
>>> f.id, f.evidence["settings"]["rows"][0]
('score_threshold_high', ['score_threshold', 0.3, '<= 0.01'])
"""

from __future__ import annotations

from typing import Any

from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, table

MAX_SCORE_THRESHOLD = 0.01
MIN_DETECTIONS = 100


def _nms(config: Any) -> tuple[str, Any] | None:
    kind = config.model.WhichOneof("model")
    if kind == "ssd" and config.model.ssd.HasField("post_processing"):
        return "model.ssd.post_processing.batch_non_max_suppression", config.model.ssd.post_processing
    if kind == "faster_rcnn" and config.model.faster_rcnn.HasField("second_stage_post_processing"):
        return (
            "model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression",
            config.model.faster_rcnn.second_stage_post_processing,
        )
    return None


@finding_rule(80, needs=("config",), call=lambda fn, d: fn(d.config, d.pipeline_path))
def score_threshold_high(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """A post-processing score threshold above 0.01, or fewer than 100 detections kept per image."""
    found = _nms(config)
    if found is None:
        return None
    where, post = found
    nms = post.batch_non_max_suppression
    rows = []
    threshold = round(float(nms.score_threshold), 6)
    if threshold > MAX_SCORE_THRESHOLD:
        rows.append(["score_threshold", threshold, f"<= {MAX_SCORE_THRESHOLD}"])
    total = int(nms.max_total_detections)
    per_class = int(nms.max_detections_per_class)
    if total < MIN_DETECTIONS:
        rows.append(["max_total_detections", total, f">= {MIN_DETECTIONS}"])
    if per_class < MIN_DETECTIONS:
        rows.append(["max_detections_per_class", per_class, f">= {MIN_DETECTIONS}"])
    if not rows:
        return None
    what = ", ".join(f"{r[0]}: {r[1]}" for r in rows)
    message = (
        f"post-processing keeps too few detections for evaluation ({what}). mAP integrates precision over "
        "the whole recall range and COCO counts up to 100 detections per image; detections cut off by a "
        "score threshold or a small max_*_detections are missing recall, so the reported mAP (and AR@100) "
        "drops although the model is the same"
    )
    fix = (
        f"In {pipeline_path or 'pipeline.config'} set {where} {{ score_threshold: 1e-8 "
        "max_detections_per_class: 100 max_total_detections: 100 } for training and evaluation; apply "
        "your operating threshold afterwards, when you use the detections (export or serving)."
    )
    evidence: dict[str, object] = {
        "settings": table(["setting", "value", "for evaluation"], rows),
        "at": where,
    }
    return Finding("score_threshold_high", "warning", message, evidence, fix)
