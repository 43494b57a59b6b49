"""The evaluator's TensorBoard run ``MODEL_DIR/eval``, rewritten whole from the ledger.

After each checkpoint, :func:`rewrite_eval_run` writes every recorded evaluation as one event
file (:func:`tfod_tools.tensorboard.writer.write_scalars_file`: atomic, replaces our previous
file, never touches ``model_main_tf2``'s own event files): each metric tag at the checkpoint's
global step (non-finite values are left out), the per-class PR curves stored with the detections,
and the custom-scalars layout (train and eval total loss on one chart, mAP and AR groups). So
TensorBoard shows exactly one point per step and tag, also after ``--force`` or a killed run.

>>> import tempfile, pathlib
>>> from tfod_tools.ledger import Evaluation
>>> from tfod_tools.tensorboard.reader import read_scalars
>>> model_dir = pathlib.Path(tempfile.mkdtemp())
>>> rows = [Evaluation(100, "ckpt-2", "h", {"DetectionBoxes_Precision/mAP": 0.5, "x": float("nan")})]
>>> _ = rewrite_eval_run(model_dir, rows)
>>> [(p.run, p.tag, p.step, p.value) for p in read_scalars(model_dir)]
[('eval', 'DetectionBoxes_Precision/mAP', 100, 0.5)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from tfod_tools.data.store import load_pr_counts
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.scoring import curve_from_counts, pr_tag
from tfod_tools.ledger import Evaluation
from tfod_tools.tensorboard.layout import odapi_layout
from tfod_tools.tensorboard.reader import PRCurvePoint, ScalarPoint, iter_events
from tfod_tools.tensorboard.writer import owned_event_files, write_scalars_file

__all__ = ["refresh_eval_run", "rewrite_eval_run"]


def rewrite_eval_run(model_dir: str | Path, evaluations: Iterable[Evaluation]) -> Path:
    """Rewrite ``MODEL_DIR/eval`` from ``evaluations`` (the ledger's ``ok`` rows); return the file."""
    eval_dir = Path(model_dir) / "eval"
    points: list[ScalarPoint] = []
    curves: list[PRCurvePoint] = []
    for row in evaluations:
        if row.status != "ok":
            continue
        wall = float(row.evaluated_at)
        for tag, value in sorted(row.metrics.items()):
            if value is not None and math.isfinite(value):
                points.append(ScalarPoint("eval", tag, int(row.step), float(value), wall))
        if row.detections_path:
            try:
                counts = load_pr_counts(eval_dir / row.detections_path)
            except TfodError:
                counts = {}
            for name, array in sorted(counts.items()):
                curves.append(
                    PRCurvePoint("eval", pr_tag(name), int(row.step), wall, curve_from_counts(array))
                )
    return write_scalars_file(eval_dir, points, pr_curves=curves, layout=odapi_layout())


def refresh_eval_run(model_dir: str | Path, evaluations: list[Evaluation]) -> Path | None:
    """Rewrite ``MODEL_DIR/eval`` only if our event file does not hold exactly the recorded evaluations.

    A process killed after recording a checkpoint in the ledger but before rewriting the run left
    TensorBoard one step behind; the next run calls this first. Each point of our file carries its
    ledger row's ``evaluated_at`` as wall time, so the file is current exactly when its
    ``(step, wall_time)`` pairs equal the ledger's (no file-system clock is compared). Returns the new
    file, or None when nothing had to be written.
    """
    rows = [e for e in evaluations if e.status == "ok"]
    if not rows:
        return None
    recorded = {(int(e.step), float(e.evaluated_at)) for e in rows}
    owned = owned_event_files(Path(model_dir) / "eval")
    if owned and _written_stamps(owned) == recorded:
        return None
    return rewrite_eval_run(model_dir, rows)


def _written_stamps(paths: Iterable[Path]) -> set[tuple[int, float]]:
    """The ``(step, wall_time)`` pairs of the metric events in our files (the layout has its own time)."""
    return {
        (int(event.step), float(event.wall_time))
        for path in paths
        for event in iter_events(path)
        if event.HasField("summary")
        and event.summary.value
        and all(v.metadata.plugin_data.plugin_name != "custom_scalars" for v in event.summary.value)
    }
