"""Fine-tuning from a checkpoint, checked without TensorFlow before anything starts.

``model_lib_v2.load_fine_tune_checkpoint`` restores ``tf.train.Checkpoint(**restore_map)`` with
``assert_existing_objects_matched()``; the meta-architectures' ``restore_from_objects`` map is
``{"feature_extractor": backbone}`` for ``classification`` and ``{"model": ...}`` for ``detection``
(feature extractor, and FPN; the box predictor starts fresh, so ``num_classes`` may differ) and
``full`` (everything). This module reads the checkpoint's keys
(:func:`tfod_tools.odapi.checkpoints.checkpoint_keys`) and tells:

- :func:`checkpoint_holds`: what a checkpoint is (``detection``: ``model/...``, ``classification``:
  ``feature_extractor/...``), so ``tfod pipeline --fine-tune-checkpoint`` sets the type that fits;
- :func:`fine_tune_problem`: the one problem that stops ``model_main_tf2`` at its start, or None:
  a name-based (TF1) checkpoint, a ``fine_tune_checkpoint_type`` restoring an object the
  checkpoint lacks, or a checkpoint of another architecture (:func:`architecture_mismatch`);
- :func:`check_fine_tune`: the same as a :class:`~tfod_tools.errors.TfodError` (``tfod train``,
  ``tfod pipeline``), with a placeholder or missing checkpoint and a checkpoint inside the
  model directory refused too.

:mod:`tfod_tools.diagnostics.findings.config` shows the problem as a finding (``tfod inspect
--pipeline``, ``tfod diagnose --pipeline``). Nothing here imports TensorFlow.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('model { ssd { feature_extractor { type: "ssd_mobilenet_v2_keras" } } }')
>>> keys = ["model/_feature_extractor/_fpn_features_generator/top_down/kernel/.ATTRIBUTES/VARIABLE_VALUE",
...         "model/_box_predictor/w/.ATTRIBUTES/VARIABLE_VALUE"]
>>> print(architecture_mismatch(cfg, keys))
an FPN feature extractor (model/_feature_extractor/_fpn_features_generator/...), but \
ssd_mobilenet_v2_keras has none
>>> checkpoint_holds(keys)
'detection'
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi.checkpoints import checkpoint_keys
from tfod_tools.odapi.pipeline import PLACEHOLDER, load_pipeline

__all__ = [
    "FINE_TUNE_TYPES",
    "FineTuneProblem",
    "architecture_mismatch",
    "check_fine_tune",
    "checkpoint_holds",
    "checkpoint_prefix",
    "fine_tune_problem",
    "fitting_type",
    "shipped_pipeline",
]

FINE_TUNE_TYPES = ("detection", "classification", "full")
"""The ``fine_tune_checkpoint_type`` values the TF2 meta-architectures restore."""

_RESTORED_ROOT = {"classification": "feature_extractor", "detection": "model", "full": "model"}
_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(?P<path>[^"]+)"', re.MULTILINE)
_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"

# What each meta-architecture keeps under model/ (its attribute names in object_detection's
# meta_architectures/*_meta_arch.py): one of them present means that meta-architecture.
_META_MARKERS = {
    "ssd": ("_box_predictor",),
    "faster_rcnn": ("_first_stage_box_predictor", "_mask_rcnn_box_predictor"),
    "center_net": ("_prediction_head_dict",),
}
_FPN = "model/_feature_extractor/_fpn_features_generator/"
_PLAIN_SSD = "model/_feature_extractor/feature_map_generator/"
_BACKBONE = "model/_feature_extractor/classification_backbone/"


@dataclass(frozen=True)
class FineTuneProblem:
    """What stops ``model_main_tf2`` from restoring ``fine_tune_checkpoint``: an id, one-line
    message, the fix and the evidence (the finding's fields)."""

    id: str
    message: str
    fix: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def error(self, pipeline_path: str | Path | None) -> TfodError:
        """The problem as a :class:`TfodError` naming ``pipeline_path``."""
        return TfodError(self.message, path=pipeline_path, fix=self.fix)


def checkpoint_prefix(text: str) -> Path | None:
    """The checkpoint a ``fine_tune_checkpoint`` names (a prefix, or a folder with a state file).

    >>> checkpoint_prefix("gs://bucket/ckpt-0") is None, checkpoint_prefix("/no/such/ckpt-0") is None
    (True, True)
    """
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


def checkpoint_holds(keys: Sequence[str]) -> str | None:
    """``detection`` (``model/...``), ``classification`` (``feature_extractor/...``) or None.

    >>> checkpoint_holds(["feature_extractor/w/.ATTRIBUTES/VARIABLE_VALUE"]), checkpoint_holds([])
    ('classification', None)
    """
    roots = {key.split("/", 1)[0] for key in keys}
    return "detection" if "model" in roots else "classification" if "feature_extractor" in roots else None


def fitting_type(text: str) -> str | None:
    """The ``fine_tune_checkpoint_type`` that fits the checkpoint ``text`` names (what it holds), or
    None when it cannot be read.

    >>> fitting_type("/no/such/ckpt-0") is None
    True
    """
    prefix = checkpoint_prefix(text)
    if prefix is None:
        return None
    try:
        return checkpoint_holds(checkpoint_keys(prefix))
    except (OSError, ValueError):
        return None


def _model_kind(config: Any) -> tuple[str | None, str]:
    kind = config.model.WhichOneof("model")
    if kind is None:
        return None, ""
    model = getattr(config.model, kind)
    extractor = getattr(model, "feature_extractor", None)
    return kind, "" if extractor is None else str(extractor.type)


def shipped_pipeline(checkpoint: str | Path | None, *, own: str | Path | None = None) -> Path | None:
    """The ``pipeline.config`` a zoo tarball ships beside ``checkpoint/ckpt-0`` (or beside the
    prefix), never ``own`` (the user's own pipeline file); None for a URL or when there is none.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "checkpoint").mkdir()
    >>> _ = (root / "pipeline.config").write_text("")
    >>> shipped_pipeline(root / "checkpoint" / "ckpt-0") == root / "pipeline.config"
    True
    >>> shipped_pipeline(root / "checkpoint" / "ckpt-0", own=root / "pipeline.config") is None
    True
    """
    text = "" if checkpoint is None else str(checkpoint)
    if not text or "://" in text:
        return None
    folder = Path(text).parent
    candidates = [folder / "pipeline.config"]
    if folder.name == "checkpoint":
        candidates.append(folder.parent / "pipeline.config")
    own_path = Path(own).resolve() if own else None
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() != own_path:
            return candidate
    return None


def architecture_mismatch(config: Any, keys: Sequence[str], prefix: Path | None = None) -> str | None:
    """What the detection checkpoint holds that ``config``'s model is not, or None.

    Positive evidence only (a checkpoint without these marks passes): the ``pipeline.config``
    shipped beside the checkpoint (a zoo tarball's) names another meta-architecture or feature
    extractor type; the checkpoint's ``model/`` holds another meta-architecture's parts
    (``_box_predictor`` for SSD, ``_first_stage_box_predictor`` for Faster R-CNN,
    ``_prediction_head_dict`` for CenterNet); an SSD's FPN (``_fpn_features_generator``) against a
    plain feature map generator; or a backbone with depthwise kernels (MobileNet, EfficientNet)
    against a ResNet / Inception type and back. Restoring such a checkpoint binds nothing (names
    differ) or fails on shapes inside TensorFlow.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('model { faster_rcnn { feature_extractor { type: "x" } } }')
    >>> architecture_mismatch(cfg, ["model/_box_predictor/w/.ATTRIBUTES/VARIABLE_VALUE"])
    'an ssd model (model/_box_predictor/...), not a faster_rcnn'
    """
    kind, extractor = _model_kind(config)
    if kind is None:
        return None
    shipped_path = shipped_pipeline(prefix)
    if shipped_path is not None:
        try:
            shipped_kind, shipped_type = _model_kind(load_pipeline(shipped_path))
        except TfodError:
            shipped_kind, shipped_type = None, ""
        if shipped_kind is not None and (shipped_kind, shipped_type) != (kind, extractor):
            return (
                f"a {shipped_kind} model with feature extractor {shipped_type or '(none)'} "
                f"(its {shipped_path}), not a {kind} with {extractor or '(none)'}"
            )
    children = {key.split("/")[1] for key in keys if key.startswith("model/") and key.count("/") > 1}
    own = set(_META_MARKERS.get(kind, ()))
    for other, markers in _META_MARKERS.items():
        found = sorted(children & set(markers))
        if other != kind and found and not children & own:
            return f"an {other} model (model/{found[0]}/...), not a {kind}"
    if kind != "ssd" or not extractor:
        return None
    fpn = any(key.startswith(_FPN) for key in keys)
    plain = any(key.startswith(_PLAIN_SSD) for key in keys)
    if fpn and not plain and "fpn" not in extractor:
        return f"an FPN feature extractor ({_FPN}...), but {extractor} has none"
    if plain and not fpn and "fpn" in extractor:
        return f"a feature extractor without FPN ({_PLAIN_SSD}...), but {extractor} is an FPN one"
    backbone = [key for key in keys if key.startswith(_BACKBONE)]
    if backbone:
        depthwise = any("/depthwise_kernel/" in key for key in backbone)
        wants = "mobilenet" in extractor or "efficientnet" in extractor
        refuses = any(name in extractor for name in ("resnet", "inception"))
        if wants and not depthwise:
            return f"a backbone without depthwise convolutions ({_BACKBONE}...), but {extractor} needs them"
        if refuses and depthwise:
            return f"a backbone of depthwise convolutions (MobileNet-like, {_BACKBONE}...), not {extractor}"
    return None


def fine_tune_problem(config: Any, pipeline_path: str | Path | None = None) -> FineTuneProblem | None:
    """What stops ``model_main_tf2`` from restoring ``train_config.fine_tune_checkpoint``, or None.

    A checkpoint without ``_CHECKPOINTABLE_OBJECT_GRAPH`` (TF1, name-based) is refused outright
    (``fine_tune_checkpoint_not_tf2``); a type restoring an object the checkpoint does not hold
    binds no variable and the assertion stops training before the first step
    (``fine_tune_checkpoint_type_mismatch``; an empty type is read as the API does:
    ``from_detection_checkpoint`` ? detection : classification); a detection checkpoint of another
    architecture (:func:`architecture_mismatch`) is ``fine_tune_checkpoint_architecture_mismatch``.
    A checkpoint that is missing or cannot be read is None here (:func:`check_fine_tune` refuses it).

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> fine_tune_problem(parse_pipeline_text('train_config { fine_tune_checkpoint: "nope" }')) is None
    True
    """
    tc = config.train_config
    prefix = checkpoint_prefix(tc.fine_tune_checkpoint)
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
    roots = sorted({key.split("/", 1)[0] for key in keys} - {_GRAPH})
    evidence: dict[str, Any] = {
        "checkpoint": str(prefix),
        "fine_tune_checkpoint_type": kind,
        "tensors": len(keys),
        "top_level": ", ".join(roots),
    }
    where = str(pipeline_path or "pipeline.config")
    if _GRAPH not in keys:
        message = (
            f"fine_tune_checkpoint {prefix} is a name-based (TF1) checkpoint: it has no "
            "_CHECKPOINTABLE_OBJECT_GRAPH, and model_main_tf2 refuses it ('Checkpoint is expected to be an "
            "object-based checkpoint')"
        )
        fix = (
            f"In {where} point train_config.fine_tune_checkpoint at a TF2 checkpoint: the TF2 Detection "
            "Model Zoo tarball's MODEL/checkpoint/ckpt-0 (tf2_detection_zoo.md), not a TF1 model.ckpt."
        )
        return FineTuneProblem("fine_tune_checkpoint_not_tf2", message, fix, evidence)
    holds = checkpoint_holds(keys)
    needed = _RESTORED_ROOT.get(kind)
    if needed is not None and needed in roots:
        mismatch = architecture_mismatch(config, keys, prefix) if needed == "model" else None
        if mismatch is None:
            return None
        model_kind, extractor = _model_kind(config)
        evidence["checkpoint_holds"] = mismatch
        message = (
            f"fine_tune_checkpoint {prefix} is {mismatch}: its variables do not match the model this "
            "pipeline builds, so model_main_tf2 restores nothing useful or fails on shapes"
        )
        fix = (
            f"In {where} point train_config.fine_tune_checkpoint at a checkpoint of the same architecture "
            f"({model_kind} with {extractor or 'its feature extractor'}: a model_dir's ckpt-N of this "
            "pipeline, or the zoo tarball of that model), or delete it to train from scratch."
        )
        return FineTuneProblem("fine_tune_checkpoint_architecture_mismatch", message, fix, evidence)
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
    return FineTuneProblem("fine_tune_checkpoint_type_mismatch", message, fix, evidence)


def check_fine_tune(
    config: Any, pipeline_path: str | Path | None = None, model_dir: str | Path | None = None
) -> None:
    """Refuse, before TensorFlow starts, a ``fine_tune_checkpoint`` that ``model_main_tf2`` would
    stop on: the templates' placeholder, a missing checkpoint (no ``PREFIX.index``), one inside
    ``model_dir`` itself (the API raises on it), and every :func:`fine_tune_problem`.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> check_fine_tune(parse_pipeline_text('train_config { fine_tune_checkpoint: '
    ...                                     '"PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0" }'), "p.config")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: p.config: fine_tune_checkpoint 'PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0' \
is still the template placeholder (fix: ...)
    >>> check_fine_tune(parse_pipeline_text("train_config { }"))  # training from scratch
    """
    text = config.train_config.fine_tune_checkpoint
    if not text or "://" in text:
        return
    if PLACEHOLDER in text:
        raise TfodError(
            f"fine_tune_checkpoint {text!r} is still the template placeholder",
            path=pipeline_path,
            fix="set it to a checkpoint prefix (.../checkpoint/ckpt-0; tfod pipeline --fine-tune-checkpoint "
            "fills it in), or delete the line to train from scratch",
        )
    prefix = Path(text)
    if not prefix.with_name(prefix.name + ".index").is_file():
        found = checkpoint_prefix(text)
        hint = f"the prefix {found}" if found is not None else "a checkpoint prefix (.../checkpoint/ckpt-0)"
        raise TfodError(
            f"fine_tune_checkpoint {text!r} does not exist (no {prefix.name}.index)",
            path=pipeline_path,
            fix=f"point it at {hint}, or delete it to train from scratch",
        )
    if model_dir is not None and os.path.abspath(prefix.parent) == os.path.abspath(model_dir):
        raise TfodError(
            f"fine_tune_checkpoint {text!r} lies in the model directory itself, which model_main_tf2 refuses",
            path=pipeline_path,
            fix="train into a new --model-dir (the checkpoint stays where it is), or copy the checkpoint out",
        )
    problem = fine_tune_problem(config, pipeline_path)
    if problem is not None:
        raise problem.error(pipeline_path)
