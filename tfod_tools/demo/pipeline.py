"""The demo's pipeline files: a template rendered with the demo's training choices.

Every training run of the demo (``before``, ``after`` and the ``--fine-tune`` run) trains a
``pipeline.config`` made here: :func:`write_pipeline` renders ``settings.template``
(:func:`~tfod_tools.odapi.pipeline.render_template`) and applies what the demo decides beyond the
template: no horizontal flip (chest radiographs have a laterality; the balance step's recipe is
where augmentation comes from), the settings' learning rate, and 100 detections per image kept for
evaluation.

>>> import tempfile
>>> from pathlib import Path
>>> from tfod_tools.demo.settings import QUICK
>>> from tfod_tools.odapi.pipeline import load_pipeline
>>> d = Path(tempfile.mkdtemp())
>>> _ = (d / "label_map.pbtxt").write_text('item { id: 1 name: "a" }')
>>> path = write_pipeline(QUICK, d / "p.config", label_map=d / "label_map.pbtxt",
...                       train_records=d / "t.record", eval_records=d / "e.record", num_steps=100)
>>> cfg = load_pipeline(path)
>>> len(cfg.train_config.data_augmentation_options), cfg.train_config.num_steps
(0, 100)
"""

from __future__ import annotations

from pathlib import Path

from tfod_tools.demo.settings import DemoSettings

__all__ = ["write_pipeline"]


def write_pipeline(
    settings: DemoSettings,
    out: Path,
    *,
    label_map: Path,
    train_records: str | Path,
    eval_records: str | Path,
    num_steps: int,
    batch_size: int | None = None,
    fine_tune_checkpoint: str | Path | None = None,
) -> Path:
    """Render the demo's pipeline into ``out`` (a ``detection`` fine-tune from ``fine_tune_checkpoint``
    when given; ``batch_size`` None: the template's) and return ``out``."""
    from tfod_tools.odapi.pipeline import render_template, save_pipeline

    config = render_template(
        settings.template,
        label_map=label_map,
        train_records=train_records,
        eval_records=eval_records,
        num_steps=num_steps,
        batch_size=batch_size,
        fine_tune_checkpoint=fine_tune_checkpoint,
        fine_tune_type=None if fine_tune_checkpoint is None else "detection",
    )
    del config.train_config.data_augmentation_options[:]
    rate = config.train_config.optimizer.adam_optimizer.learning_rate
    if rate.WhichOneof("learning_rate") == "cosine_decay_learning_rate":
        rate.cosine_decay_learning_rate.learning_rate_base = settings.learning_rate
        rate.cosine_decay_learning_rate.warmup_learning_rate = settings.learning_rate / 10
    else:
        rate.constant_learning_rate.learning_rate = settings.learning_rate
    # COCO counts up to 100 detections per image: keep them all for evaluation (see
    # docs/concepts.md: a shorter list cuts the tail of the precision-recall curve).
    nms = config.model.ssd.post_processing.batch_non_max_suppression
    nms.max_detections_per_class = nms.max_total_detections = 100
    return save_pipeline(config, out)
