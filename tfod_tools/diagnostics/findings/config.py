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

import re
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.findings.augmentation import augmentation_contradicts_recipe
from tfod_tools.diagnostics.findings.batch_size import _in, learning_rate_vs_batch_size
from tfod_tools.diagnostics.findings.training import schedule_findings
from tfod_tools.diagnostics.model import Finding
from tfod_tools.odapi.checkpoints import checkpoint_keys

__all__ = [
    "config_findings",
    "eval_batch_size_above_one",
    "fine_tune_checkpoint_check",
    "max_boxes_per_image",
    "max_detections_below_ground_truth",
]

_RESTORED_ROOT = {"classification": "feature_extractor", "detection": "model", "full": "model"}
_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(?P<path>[^"]+)"', re.MULTILINE)


def _checkpoint_prefix(text: str) -> Path | None:
    """The checkpoint a ``fine_tune_checkpoint`` names (a prefix, or a folder with a state file)."""
    if not text or "://" in text:
        return None
    path = Path(text)
    if path.with_name(path.name + ".index").is_file():
        return path
    state = path / "checkpoint"
    if path.is_dir() and state.is_file():
        match = _STATE_PATH.search(state.read_text(encoding="utf-8", errors="replace"))
        if match:
            named = Path(match.group("path"))
            prefix = named if named.is_absolute() else path / named
            if prefix.with_name(prefix.name + ".index").is_file():
                return prefix
    return None


def fine_tune_checkpoint_check(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """``fine_tune_checkpoint_type`` against the keys of the checkpoint (read without TensorFlow).

    ``model_lib_v2.load_fine_tune_checkpoint`` restores ``tf.train.Checkpoint(**restore_map)``
    with ``assert_existing_objects_matched()``, where the meta-architectures' ``restore_from_objects``
    map is ``{"feature_extractor": backbone}`` for ``classification`` and ``{"model": ...}`` for
    ``detection`` (feature extractor, and FPN) and ``full`` (everything). A detection checkpoint
    (``model_main_tf2``'s, the zoo's ``checkpoint/ckpt-0``) holds ``model/...``; an ImageNet backbone
    checkpoint holds ``feature_extractor/...``. Restoring an object the checkpoint lacks binds no
    variable, and the assertion stops training before the first step; a checkpoint without
    ``_CHECKPOINTABLE_OBJECT_GRAPH`` (TF1, name-based) is refused outright. An empty type is read as
    the API does (``from_detection_checkpoint`` ? detection : classification).

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> fine_tune_checkpoint_check(parse_pipeline_text('train_config { fine_tune_checkpoint: "nope" }'))
    """
    tc = config.train_config
    prefix = _checkpoint_prefix(tc.fine_tune_checkpoint)
    if prefix is None:
        return None
    try:
        keys = checkpoint_keys(prefix)
    except (OSError, ValueError):
        return None
    kind = tc.fine_tune_checkpoint_type or ("detection" if tc.from_detection_checkpoint else "classification")
    written = (
        f'"{tc.fine_tune_checkpoint_type}"' if tc.fine_tune_checkpoint_type else '"" (read as ' + kind + ")"
    )
    roots = sorted({key.split("/", 1)[0] for key in keys} - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
    evidence: dict[str, Any] = {
        "checkpoint": str(prefix),
        "fine_tune_checkpoint_type": kind,
        "tensors": len(keys),
        "top_level": ", ".join(roots),
    }
    where = _in(pipeline_path)
    if "_CHECKPOINTABLE_OBJECT_GRAPH" not in keys:
        message = (
            f"fine_tune_checkpoint {prefix} is a name-based (TF1) checkpoint: it has no "
            "_CHECKPOINTABLE_OBJECT_GRAPH, and model_main_tf2 refuses it ('Checkpoint is expected to be an "
            "object-based checkpoint')"
        )
        fix = (
            f"In {where} point train_config.fine_tune_checkpoint at a TF2 checkpoint: the TF2 Detection "
            "Model Zoo tarball's MODEL/checkpoint/ckpt-0 (tf2_detection_zoo.md), not a TF1 model.ckpt."
        )
        return Finding("fine_tune_checkpoint_not_tf2", "error", message, evidence, fix)
    holds = "detection" if "model" in roots else "classification" if "feature_extractor" in roots else None
    needed = _RESTORED_ROOT.get(kind)
    if needed is not None and needed in roots:
        return None
    if needed is None:
        problem = f"{written} is not a type the API restores (classification, detection, full)"
    else:
        problem = (
            f"fine_tune_checkpoint_type {written} restores {needed}/..., which {prefix.name} does not hold "
            f"(its {len(keys)} tensors are under {', '.join(f'{r}/' for r in roots) or 'nothing'})"
        )
    if holds is None:
        message = (
            f"{problem}; the checkpoint is neither a detection checkpoint (model/...) nor a classification "
            "one (feature_extractor/...), so no fine_tune_checkpoint_type can restore it: model_main_tf2 "
            "stops at start ('AssertionError: ... not bound to checkpointed values')"
        )
        fix = (
            f"In {where} point train_config.fine_tune_checkpoint at a checkpoint model_main_tf2 or `tfod "
            "train` wrote, or a TF2 zoo tarball's MODEL/checkpoint/ckpt-0."
        )
    else:
        message = (
            f"{problem}: {prefix} is a {holds} checkpoint, so nothing is restored and model_main_tf2 stops "
            "at start ('AssertionError: ... not bound to checkpointed values')"
        )
        what = (
            "the feature extractor (and FPN) from the detection checkpoint; the box predictor starts fresh "
            "for your num_classes"
            if holds == "detection"
            else "the backbone from the classification checkpoint"
        )
        fix = f'In {where} set train_config {{ fine_tune_checkpoint_type: "{holds}" }}: it restores {what}.'
    evidence["checkpoint_holds"] = holds or "neither"
    return Finding("fine_tune_checkpoint_type_mismatch", "error", message, evidence, fix)


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
