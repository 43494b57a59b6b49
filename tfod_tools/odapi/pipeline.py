"""``pipeline.config`` files: parse, save, and render the shipped templates.

Parsing uses the API's own ``pipeline_pb2`` under the compatibility layer's proto fix, which needs
protobuf but not TensorFlow. Templates ship as package data (``tfod_tools/resources/pipelines``,
their one copy), so an installed tfod_tools finds them; ``tfod pipeline --template NAME`` writes one
to disk with your label map and records.

>>> config = render_template("tiny-ssd", label_map={1: "square", 2: "triangle"},
...                          train_records="data/train.record", eval_records="data/eval-*.record")
>>> num_classes(config), config.train_config.batch_size
(2, 8)
>>> config.eval_input_reader[0].tf_record_input_reader.input_path[0].endswith("data/eval-*.record")
True
>>> "num_classes: 2" in pipeline_to_text(config)
True
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.fsutil import write_text_atomic
from tfod_tools.odapi.label_map import LabelMap, as_label_map

TEMPLATES: dict[str, str] = {
    "tiny-ssd": "tiny_ssd.config",
    "tiny-fpnlite": "tiny_ssd_fpnlite.config",
    "ssd-mobilenet-v2-fpnlite-320": "ssd_mobilenet_v2_fpnlite_320x320.config",
}
"""Template name -> file name under ``tfod_tools/resources/pipelines``."""

PLACEHOLDER = "PATH_TO_BE_CONFIGURED"

TrainEvalPipelineConfig = Any
"""``object_detection.protos.pipeline_pb2.TrainEvalPipelineConfig`` (generated; typed loosely)."""


def _pipeline_pb2() -> Any:
    from tfod_tools.odapi import compat

    compat.install_protos()
    try:
        from object_detection.protos import pipeline_pb2
    except ImportError as exc:
        raise TfodError(
            f"cannot import the TF Object Detection API's protos ({exc})",
            fix=f"{compat.SETUP_FIX}, then run `tfod doctor`",
        ) from exc
    return pipeline_pb2


def new_pipeline() -> TrainEvalPipelineConfig:
    """An empty ``TrainEvalPipelineConfig``."""
    return _pipeline_pb2().TrainEvalPipelineConfig()


def parse_pipeline_text(text: str, path: str | Path | None = None) -> TrainEvalPipelineConfig:
    """Parse pipeline.config text; a :class:`TfodError` naming ``path`` when it does not parse.

    >>> parse_pipeline_text("train_config { batch_size: 4 }").train_config.batch_size
    4
    >>> parse_pipeline_text("train_config { batch_sise: 4 }", "p.config")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: p.config: does not parse as a pipeline config: 1:16 : ...batch_sise...
    """
    from google.protobuf import text_format

    config = new_pipeline()
    try:
        text_format.Merge(text, config)
    except text_format.ParseError as exc:
        raise TfodError(
            f"does not parse as a pipeline config: {exc}",
            path=path,
            fix="fix the field at that line (see object_detection/protos/*.proto for names)",
        ) from None
    return config


def load_pipeline(path: str | Path) -> TrainEvalPipelineConfig:
    """Read and parse a pipeline.config file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TfodError("pipeline config not found", path=file, fix="check the --pipeline path") from None
    except IsADirectoryError:
        raise TfodError("is a directory, not a pipeline config", path=file) from None
    except UnicodeDecodeError:
        raise TfodError("pipeline config is not UTF-8 text", path=file) from None
    return parse_pipeline_text(text, file)


def pipeline_to_text(config: TrainEvalPipelineConfig) -> str:
    """The protobuf text form of ``config``."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def save_pipeline(config: TrainEvalPipelineConfig, path: str | Path) -> Path:
    """Write ``config`` to ``path`` atomically and return the path.

    >>> import tempfile
    >>> config = parse_pipeline_text("train_config { num_steps: 7 }")
    >>> p = save_pipeline(config, tempfile.mkdtemp() + "/p.config")
    >>> load_pipeline(p).train_config.num_steps
    7
    """
    return write_text_atomic(path, pipeline_to_text(config))


def template_text(name: str) -> str:
    """The text of the template called ``name`` (see :data:`TEMPLATES`).

    >>> "ssd_mobilenet_v2_keras" in template_text("tiny-ssd")
    True
    """
    if name not in TEMPLATES:
        raise TfodError(f"unknown template {name!r}", fix=f"use one of: {', '.join(TEMPLATES)}")
    resource = resources.files("tfod_tools") / "resources" / "pipelines" / TEMPLATES[name]
    return resource.read_text(encoding="utf-8")


def model_config(config: TrainEvalPipelineConfig) -> Any:
    """The model's own message (``ssd``, ``faster_rcnn``, ``center_net``, ...), or None."""
    kind = config.model.WhichOneof("model")
    return None if kind is None else getattr(config.model, kind)


def num_classes(config: TrainEvalPipelineConfig) -> int | None:
    """The model's ``num_classes`` (None when the model has no such field)."""
    model = model_config(config)
    if model is None or "num_classes" not in model.DESCRIPTOR.fields_by_name:
        return None
    return int(model.num_classes)


def set_num_classes(config: TrainEvalPipelineConfig, value: int) -> None:
    """Set the model's ``num_classes``."""
    model = model_config(config)
    if model is None or "num_classes" not in model.DESCRIPTOR.fields_by_name:
        raise TfodError("the pipeline's model has no num_classes field")
    model.num_classes = value


def placeholders(config: TrainEvalPipelineConfig) -> list[tuple[str, str]]:
    """``[(field, value)]`` for every string field that still holds the templates' :data:`PLACEHOLDER`.

    >>> cfg = parse_pipeline_text('train_config { fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/ckpt-0" }'
    ...                           ' eval_input_reader { label_map_path: "lm.pbtxt" }')
    >>> placeholders(cfg)
    [('train_config.fine_tune_checkpoint', 'PATH_TO_BE_CONFIGURED/ckpt-0')]
    """
    found: list[tuple[str, str]] = []

    def walk(message: Any, prefix: str) -> None:
        for field, value in message.ListFields():
            name = f"{prefix}{field.name}"
            repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` before
            if repeated is None:
                repeated = field.label == field.LABEL_REPEATED
            items = list(value) if repeated else [value]
            for k, item in enumerate(items):
                where = f"{name}[{k}]" if repeated and len(items) > 1 else name
                if field.type == field.TYPE_MESSAGE:
                    walk(item, f"{where}.")
                elif isinstance(item, str) and PLACEHOLDER in item:
                    found.append((where, item))

    walk(config, "")
    return found


def check_configured(config: TrainEvalPipelineConfig, path: str | Path | None = None) -> None:
    """:class:`TfodError` naming the first field that still holds the templates' placeholder.

    A template's ``PATH_TO_BE_CONFIGURED`` (``fine_tune_checkpoint``, ``label_map_path``,
    ``input_path``) means the config was never filled in; the API would fail on it minutes later.

    >>> check_configured(parse_pipeline_text('train_config { fine_tune_checkpoint: '
    ...                                      '"PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0" }'), "p.config")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: p.config: train_config.fine_tune_checkpoint is still the template \
placeholder 'PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0' (fix: ...)
    """
    found = placeholders(config)
    if not found:
        return
    field, value = found[0]
    if field.endswith("fine_tune_checkpoint"):
        fix = (
            "set it to a checkpoint prefix (.../checkpoint/ckpt-0), or delete the line to train from "
            "scratch (tfod pipeline --fine-tune-checkpoint fills it in)"
        )
    else:
        fix = "set the real path (tfod pipeline fills a template's paths in)"
    more = f" ({len(found) - 1} more such fields)" if len(found) > 1 else ""
    raise TfodError(f"{field} is still the template placeholder {value!r}{more}", path=path, fix=fix)


def input_readers(config: TrainEvalPipelineConfig) -> list[tuple[str, Any]]:
    """``[(role, InputReader)]``: ``train`` first, then ``eval``, ``eval[1]``, ..."""
    readers: list[tuple[str, Any]] = []
    if config.HasField("train_input_reader"):
        readers.append(("train", config.train_input_reader))
    for index, reader in enumerate(config.eval_input_reader):
        readers.append(("eval" if index == 0 else f"eval[{index}]", reader))
    return readers


def _set_steps(config: TrainEvalPipelineConfig, num_steps: int) -> None:
    """Set ``num_steps`` and keep a cosine schedule's ``total_steps``/``warmup_steps`` consistent."""
    config.train_config.num_steps = num_steps
    optimizer = config.train_config.optimizer
    kind = optimizer.WhichOneof("optimizer")
    if kind is None:
        return
    rate = getattr(optimizer, kind).learning_rate
    if rate.WhichOneof("learning_rate") == "cosine_decay_learning_rate":
        cosine = rate.cosine_decay_learning_rate
        cosine.total_steps = num_steps
        cosine.warmup_steps = min(cosine.warmup_steps, num_steps // 10)


def render_template(
    name: str,
    *,
    label_map: LabelMap | str | Path | dict[int, str],
    train_records: str | Path,
    eval_records: str | Path,
    label_map_path: str | Path | None = None,
    batch_size: int | None = None,
    num_steps: int | None = None,
    fine_tune_checkpoint: str | Path | None = None,
    fine_tune_type: str | None = None,
) -> TrainEvalPipelineConfig:
    """Fill a template: ``num_classes`` from the label map, record globs and label map path.

    ``label_map`` is a path (also written into the config) or an in-memory map, in which case
    ``label_map_path`` names the file the config should point at. Paths become absolute.
    Without ``fine_tune_checkpoint`` a template's placeholder checkpoint is cleared (train from
    scratch); with it, ``fine_tune_checkpoint_type`` is ``fine_tune_type`` (default: the
    template's, else ``detection``) and ``fine_tune_checkpoint_version`` V2 (the TF2 trainer
    refuses V1, the field's default). The checkpoint itself is checked by
    :func:`tfod_tools.odapi.fine_tune.check_fine_tune` (``tfod pipeline``, ``tfod train``).

    >>> cfg = render_template("tiny-ssd", label_map={1: "a"}, train_records="t", eval_records="e",
    ...                       fine_tune_checkpoint="/m/ckpt-4")
    >>> cfg.train_config.fine_tune_checkpoint_type, cfg.train_config.fine_tune_checkpoint_version
    ('detection', 2)
    """
    labels = as_label_map(label_map)
    if isinstance(label_map, (str, Path)) and label_map_path is None:
        label_map_path = label_map
    map_path = os.path.abspath(str(label_map_path or "label_map.pbtxt"))
    config = parse_pipeline_text(template_text(name), f"template {name}")
    set_num_classes(config, len(labels.items))
    if batch_size is not None:
        if batch_size < 1:
            raise TfodError(f"batch size must be >= 1, got {batch_size}", fix="pass --batch-size 1 or more")
        config.train_config.batch_size = batch_size
    if num_steps is not None:
        if num_steps < 1:
            raise TfodError(f"num_steps must be >= 1, got {num_steps}", fix="pass --num-steps 1 or more")
        _set_steps(config, num_steps)
    if fine_tune_checkpoint is not None:
        config.train_config.fine_tune_checkpoint = os.path.abspath(str(fine_tune_checkpoint))
        tc = config.train_config
        tc.fine_tune_checkpoint_type = fine_tune_type or tc.fine_tune_checkpoint_type or "detection"
        version = tc.DESCRIPTOR.fields_by_name["fine_tune_checkpoint_version"].enum_type
        tc.fine_tune_checkpoint_version = version.values_by_name["V2"].number
    elif PLACEHOLDER in config.train_config.fine_tune_checkpoint:
        config.train_config.ClearField("fine_tune_checkpoint")
        config.train_config.ClearField("fine_tune_checkpoint_type")
    for role, reader in input_readers(config):
        records = train_records if role == "train" else eval_records
        reader.label_map_path = map_path
        del reader.tf_record_input_reader.input_path[:]
        reader.tf_record_input_reader.input_path.append(os.path.abspath(str(records)))
    return config
