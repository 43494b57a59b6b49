"""``best_checkpoint``: which evaluated checkpoint scored best, and whether its files still exist.

The best step comes from the eval events' headline metric (else the evaluation ledger); its files
are looked up among the checkpoints on disk (the evaluator's hard-linked copies first). The engine
reads the :class:`~tfod_tools.diagnostics.model.BestCheckpoint` for the diagnosis' summary.
"""

from __future__ import annotations

from typing import Any

from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.findings.curves import best_step
from tfod_tools.diagnostics.model import BestCheckpoint, Finding, table

__all__ = ["best_checkpoint", "best_checkpoint_of"]


def best_checkpoint_of(inputs: Any) -> tuple[BestCheckpoint, Finding | None]:
    """The best evaluated checkpoint of ``inputs`` (a ``DiagnosisInputs``) and its finding (None when
    nothing was evaluated): from the eval events, else from the evaluation ledger."""
    best = best_step(inputs.scalars)
    if best is None and inputs.evaluations:
        from tfod_tools.ledger import DEFAULT_METRIC

        scored = [e for e in inputs.evaluations if e.status == "ok" and DEFAULT_METRIC in e.metrics]
        if scored:
            top = max(scored, key=lambda e: (e.metrics[DEFAULT_METRIC], -e.step))
            best = (int(top.step), DEFAULT_METRIC, float(top.metrics[DEFAULT_METRIC]))
    if best is None:
        return BestCheckpoint(None, None, None, False), None
    step, metric, value = best
    kept_names = {k.checkpoint for k in inputs.kept}
    on_disk = [c for c in inputs.checkpoints if c.step == step]
    on_disk.sort(key=lambda c: (not (c.kept or c.name in kept_names), str(c.prefix)))
    here = [c for c in on_disk if c.prefix.parent == inputs.model_dir]
    candidates = here or on_disk
    chosen = candidates[0] if candidates else None
    exists = chosen is not None
    path = None if chosen is None else str(chosen.prefix)
    result = BestCheckpoint(step, metric, value, exists, path)
    rows = [
        [c.name, c.step, "kept by the evaluator" if (c.kept or c.name in kept_names) else "", str(c.prefix)]
        for c in sorted(inputs.checkpoints, key=lambda c: (c.step is None, c.step or 0))
    ]
    metric_name = metric.split("/", 1)[-1]
    series = inputs.scalars.series(inputs.scalars.eval_run, metric)
    evidence: dict[str, Any] = {
        **result.to_dict(),
        "evaluated_steps": len(series),
        "checkpoints_on_disk": table(["checkpoint", "step", "note", "prefix"], rows),
    }
    if exists:
        message = f"best checkpoint: step {step} ({metric_name} {value:.3f}), files at {path}"
        pipeline = inputs.pipeline_path or "pipeline.config"
        fix = (
            f"Export this one, not the newest: tfod export --pipeline {pipeline} --model-dir "
            f"{inputs.model_dir} --checkpoint {step} --out EXPORT_DIR (exports {path}; the stock exporter "
            "would restore the newest checkpoint the `checkpoint` file names)."
        )
        return result, Finding("best_checkpoint", "info", message, evidence, fix)
    remaining = [c for c in inputs.checkpoints if c.step is not None]
    alt = ""
    if remaining:
        values = dict(series)
        scored_alt = [(values[c.step], c) for c in remaining if c.step in values]
        if scored_alt:
            v, c = max(scored_alt, key=lambda vc: vc[0])
            alt = (
                f" The best checkpoint still on disk is step {c.step} ({metric_name} {v:.3f}) at {c.prefix}."
            )
    message = (
        f"the best checkpoint (step {step}, {metric_name} {value:.3f}) no longer exists: CheckpointManager "
        f"(max_to_keep, 7 in model_main_tf2) deleted it.{alt}"
    )
    fix = (
        "Keep every evaluated checkpoint's best: train with `tfod train --eval continuous` (the evaluator "
        "hard-links the best checkpoint under MODEL_DIR/eval), or raise checkpoint_max_to_keep."
    )
    return result, Finding("best_checkpoint", "warning", message, evidence, fix)


@finding_rule(70)
def best_checkpoint(inputs: Any) -> Finding | None:
    """Which checkpoint scored best, and whether its files are still on disk."""
    return best_checkpoint_of(inputs)[1]
