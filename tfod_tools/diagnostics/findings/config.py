"""Config checks: settings of a (hand-edited) ``pipeline.config`` that break or quietly hurt
training and evaluation, read from the config and from what it points at, before anything runs.

:func:`config_findings` runs them all, and the learning-rate schedule checks of
:mod:`tfod_tools.diagnostics.findings.training`; ``tfod inspect --pipeline``, ``tfod diagnose
--pipeline`` and ``tfod train`` (as pre-flight warnings) show them. Finding ids:

- ``learning_rate_vs_batch_size``: the base learning rate against linear scaling for this
  ``batch_size`` (:mod:`tfod_tools.diagnostics.findings.batch_size`);
- ``fine_tune_checkpoint_type_mismatch`` (error): ``fine_tune_checkpoint_type`` restores an object
  the checkpoint does not hold (its keys are read without TensorFlow), so ``model_main_tf2`` stops
  before the first step;
- ``fine_tune_checkpoint_not_tf2`` (error): a name-based (TF1) checkpoint, which the TF2 trainer
  refuses;
- ``fine_tune_checkpoint_architecture_mismatch`` (error): a detection checkpoint of another
  architecture than the config's model (:func:`tfod_tools.odapi.fine_tune.architecture_mismatch`);
- ``augmentation_contradicts_recipe``: a flip or 90-degree rotation the domain recipe in use leaves
  out (:mod:`tfod_tools.diagnostics.findings.augmentation`);
- ``max_detections_below_ground_truth``: the model keeps fewer detections per image than the most
  crowded eval image has ground-truth boxes;
- ``eval_batch_size_above_one``: ``eval_config.batch_size`` > 1.

None of them imports TensorFlow.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''train_config { batch_size: 4
...   fine_tune_checkpoint: "zoo/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8/checkpoint/ckpt-0"
...   optimizer { momentum_optimizer { learning_rate { cosine_decay_learning_rate {
...     learning_rate_base: 0.08 warmup_learning_rate: 0.026666 warmup_steps: 1000 } } } } }
... eval_config { batch_size: 8 }''')
>>> ids = [f.id for f in config_findings(cfg, "pipeline.config")]
>>> "learning_rate_vs_batch_size" in ids and "eval_batch_size_above_one" in ids
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.findings.augmentation import augmentation_contradicts_recipe
from tfod_tools.diagnostics.findings.batch_size import _in, learning_rate_vs_batch_size
from tfod_tools.diagnostics.findings.training import schedule_findings
from tfod_tools.diagnostics.model import Finding
from tfod_tools.odapi.fine_tune import fine_tune_problem

__all__ = [
    "config_findings",
    "eval_batch_size_above_one",
    "fine_tune_checkpoint_check",
    "max_boxes_per_image",
    "max_detections_below_ground_truth",
]


def fine_tune_checkpoint_check(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """``fine_tune_checkpoint`` against the checkpoint's keys (read without TensorFlow): the rule is
    :func:`tfod_tools.odapi.fine_tune.fine_tune_problem` (``tfod train`` refuses the same problem
    before TensorFlow starts), shown here as an error finding.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> fine_tune_checkpoint_check(parse_pipeline_text('train_config { fine_tune_checkpoint: "nope" }'))
    """
    problem = fine_tune_problem(config, _in(pipeline_path))
    if problem is None:
        return None
    return Finding(problem.id, "error", problem.message, problem.evidence, problem.fix)


def _detection_cap(config: Any) -> tuple[str, str, int] | None:
    """``(message path, field, value)`` of the number of detections the model keeps per image."""
    kind = config.model.WhichOneof("model")
    if kind == "ssd" and config.model.ssd.HasField("post_processing"):
        nms = config.model.ssd.post_processing.batch_non_max_suppression
        return (
            "model.ssd.post_processing.batch_non_max_suppression",
            "max_total_detections",
            nms.max_total_detections,
        )
    if kind == "faster_rcnn" and config.model.faster_rcnn.HasField("second_stage_post_processing"):
        nms = config.model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression
        where = "model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression"
        return where, "max_total_detections", nms.max_total_detections
    if kind == "center_net" and config.model.center_net.HasField("object_center_params"):
        params = config.model.center_net.object_center_params
        return "model.center_net.object_center_params", "max_box_predictions", params.max_box_predictions
    return None


def max_detections_below_ground_truth(
    config: Any, pipeline_path: str | None = None, eval_max_boxes: int | None = None
) -> Finding | None:
    """The model keeps fewer detections per image (NMS ``max_total_detections``; CenterNet's
    ``max_box_predictions``) than ``eval_max_boxes``, the most ground-truth boxes of one eval image.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('''model { ssd { post_processing { batch_non_max_suppression {
    ...   max_detections_per_class: 100 max_total_detections: 100 } } } }''')
    >>> max_detections_below_ground_truth(cfg, eval_max_boxes=140).evidence["max_total_detections"]
    100
    >>> max_detections_below_ground_truth(cfg, eval_max_boxes=60) is None
    True
    """
    cap = _detection_cap(config)
    if cap is None or eval_max_boxes is None:
        return None
    where, name, value = cap
    if int(value) >= eval_max_boxes:
        return None
    message = (
        f"{name} {value} ({where}) is below the {eval_max_boxes} ground-truth boxes of the most crowded "
        f"eval image: at most {value} of them can be detected there, so recall on crowded images is "
        "capped whatever the model learns (and mAP with it)"
    )
    fix = f"In {_in(pipeline_path)} set {where} {{ {name}: {max(eval_max_boxes, 100)} }}"
    if name == "max_total_detections":
        fix += " (and max_detections_per_class at least as large)"
    fix += "; COCO metrics still count the top 100 per image, exported detections keep them all."
    evidence: dict[str, Any] = {name: int(value), "eval_max_boxes_per_image": eval_max_boxes, "at": where}
    return Finding("max_detections_below_ground_truth", "warning", message, evidence, fix)


def eval_batch_size_above_one(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """``eval_config.batch_size`` > 1.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> eval_batch_size_above_one(parse_pipeline_text("eval_config { batch_size: 4 }")).evidence
    {'batch_size': 4}
    >>> eval_batch_size_above_one(parse_pipeline_text("eval_config { }")) is None
    True
    """
    batch = int(config.eval_config.batch_size)
    if batch <= 1:
        return None
    message = (
        f"eval_config.batch_size {batch}: the evaluator holds {batch} images' activations at once next to "
        "the trainer (the usual evaluation out-of-memory), pads every image to the resizer's fixed shape "
        "and the ground truth to max_number_of_boxes (images of different sizes under a "
        "keep_aspect_ratio_resizer without pad_to_max_dimension cannot be batched), and evaluates no "
        "better than one image at a time"
    )
    fix = f"In {_in(pipeline_path)} set eval_config {{ batch_size: 1 }}."
    return Finding("eval_batch_size_above_one", "warning", message, {"batch_size": batch}, fix)


def max_boxes_per_image(data: AnnotatedSet | None) -> int | None:
    """The most ground-truth boxes of one image of ``data`` (None without data).

    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> gt = GroundTruth.from_arrays([1, 2, 2, 2], [[0, 0, 5, 5]] * 4, [1, 1, 2, 1])
    >>> data = AnnotatedSet(ImageTable.from_sizes([1, 2], [10, 10], [10, 10]), {1: "a", 2: "b"}, gt)
    >>> max_boxes_per_image(None), max_boxes_per_image(data)
    (None, 3)
    """
    if data is None:
        return None
    ids = data.ground_truth.image_ids
    if len(ids) == 0:
        return 0
    return int(np.unique(ids, return_counts=True)[1].max())


@finding_rule(
    90,
    needs=("config",),
    call=lambda fn, d: fn(d.config, d.pipeline_path, eval_max_boxes=max_boxes_per_image(d.ground_truth_set)),
)
def config_findings(
    config: Any,
    pipeline_path: str | None = None,
    *,
    eval_max_boxes: int | None = None,
    recipe: str | None = None,
) -> list[Finding]:
    """Every config check of this module (see the module docstring), then the learning-rate
    schedule checks (:func:`tfod_tools.diagnostics.findings.training.schedule_findings`).

    ``eval_max_boxes`` is the most ground-truth boxes of one eval image (without it the
    detection-count check is skipped); ``recipe`` the ``tfod balance`` recipe in use (default: the
    one the balance manifest beside the train records names). What the config points at and cannot
    be read (a missing checkpoint, a broken manifest) only switches its check off; an unknown
    ``recipe`` raises :class:`TfodError`.
    """
    found = [
        learning_rate_vs_batch_size(config, pipeline_path),
        fine_tune_checkpoint_check(config, pipeline_path),
        augmentation_contradicts_recipe(config, pipeline_path, recipe),
        max_detections_below_ground_truth(config, pipeline_path, eval_max_boxes),
        eval_batch_size_above_one(config, pipeline_path),
    ]
    return [f for f in found if f is not None] + schedule_findings(config, pipeline_path)
