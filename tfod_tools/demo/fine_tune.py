"""``tfod demo --fine-tune``: fine-tune the demo's best checkpoint on another data set, and prove the restore.

The ``fine-tune`` step (between ``export`` and ``report``, only with ``--fine-tune``) writes a
second synthetic set (``settings.fine_tune_kind``, ``shapes``) with a 3-class label map
(:data:`CLASSES`: another ``num_classes`` than the demo's 2), renders the demo's pipeline with
``fine_tune_checkpoint`` = the balanced run's best checkpoint and ``fine_tune_checkpoint_type:
detection`` (:func:`tfod_tools.demo.pipeline.write_pipeline`), and trains it for
``settings.fine_tune_steps`` steps at batch size ``settings.fine_tune_batch_size``
(:func:`tfod_tools.training.session.train_with_evaluation`, what ``tfod train`` runs).
``model_main_tf2`` saves ``ckpt-1`` at step 0, right after the restore:
:func:`tfod_tools.odapi.restored.compare_restore` counts the feature-extractor variables it holds
exactly as the source checkpoint does (N/N) and how many the training then moved. The box
predictor starts fresh (its class head has another shape). The first loss the trainer logs (at step
100) is recorded; no from-scratch run is trained to compare with (that would double the step's time).

:func:`fine_tune_markdown` / :func:`fine_tune_html` render the report's "Fine-tuning" section
(pure); :func:`fine_tune_summary` is the ``--json`` summary's ``fine_tune`` section.

>>> fine_tune_markdown({}) == [] and fine_tune_html({}) == ""
True
>>> doc = {"fine_tune": {"source_step": 600, "source_checkpoint": "runs/after/ckpt-7", "kind": "shapes",
...        "classes": ["square", "triangle", "circle"], "train_images": 32, "steps": 100,
...        "model_dir": "runs/fine-tune", "start_checkpoint": "runs/fine-tune/ckpt-1",
...        "restore": {"variables": 300, "restored_exactly": 300, "moved_by_training": 280, "ok": True},
...        "first_loss": {"step": 100, "total_loss": 1.25}, "train_seconds": 40.0}}
>>> print(fine_tune_markdown(doc)[4])
- feature extractor restored exactly: **300/300** variables (`runs/fine-tune/ckpt-1`, step 0, vs the \
source); 280/300 then moved by training
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tfod_tools.demo.continuous import check_outcome
from tfod_tools.demo.settings import DemoSettings
from tfod_tools.errors import TfodError

__all__ = ["CLASSES", "STEP", "fine_tune", "fine_tune_html", "fine_tune_markdown", "fine_tune_summary"]

STEP = "fine-tune"
"""The step's name in ``demo_state.json`` and the progress lines."""

CLASSES = {1: "square", 2: "triangle", 3: "circle"}
"""The fine-tune set's label map: ``shapes`` draws squares and triangles; ``circle`` is the third
class the label map adds, so the fine-tuned model has 3 classes where the demo's has 2."""


def _rel(workdir: Path, path: str | Path) -> str:
    return Path(path).resolve().relative_to(workdir.resolve()).as_posix()


def best_checkpoint(model_dir: Path, step: int) -> Path:
    """The prefix of ``model_dir``'s checkpoint at global step ``step`` (the model directory's own
    before the evaluator's kept copy); :class:`TfodError` when there is none."""
    from tfod_tools.odapi.checkpoints import list_checkpoints

    found = [c for c in list_checkpoints(model_dir) if c.step == step and c.problem is None]
    if not found:
        raise TfodError(
            f"no complete checkpoint of step {step} in the balanced run to fine-tune from",
            path=model_dir,
            fix="rerun tfod demo with --force (the run lost its best checkpoint)",
        )
    return sorted(found, key=lambda c: c.kept)[0].prefix


def fine_tune(
    workdir: Path,
    settings: DemoSettings,
    source_dir: Path,
    source_step: int,
    note: Callable[[str], None],
) -> tuple[dict[str, Any], list[str], str]:
    """Run the step (see the module docstring); returns its result, outputs and one-line summary."""
    from tfod_tools.data.synthetic import write_synthetic_dataset
    from tfod_tools.demo.pipeline import write_pipeline
    from tfod_tools.odapi.checkpoints import list_checkpoints
    from tfod_tools.odapi.label_map import write_label_map
    from tfod_tools.odapi.quiet import divert_stderr
    from tfod_tools.odapi.restored import compare_restore
    from tfod_tools.training.session import Progress, TrainingEvent, train_with_evaluation

    data_dir, model_dir = workdir / "data" / STEP, workdir / "runs" / STEP
    pipeline = workdir / "pipelines" / f"{STEP}.config"
    for stale in (data_dir, model_dir):  # an interrupted earlier attempt: start the step over
        if stale.exists():
            shutil.rmtree(stale)
    source = best_checkpoint(source_dir, source_step)
    data = write_synthetic_dataset(
        data_dir,
        settings.fine_tune_kind,
        train_images=settings.fine_tune_train_images,
        eval_images=settings.fine_tune_eval_images,
        seed=settings.seed + 1,
        image_size=settings.image_size,
    )
    write_label_map(data.label_map, CLASSES)
    steps = settings.fine_tune_steps
    write_pipeline(
        settings,
        pipeline,
        label_map=data.label_map,
        train_records=data.train_record,
        eval_records=data.eval_record,
        num_steps=steps,
        batch_size=settings.fine_tune_batch_size,
        fine_tune_checkpoint=source,
    )
    rel = _rel(workdir, model_dir)
    note(
        f"  fine-tuning {_rel(workdir, source)} (step {source_step}) on {settings.fine_tune_kind} "
        f"({len(CLASSES)} classes) for {steps} steps -> {rel} (log: {rel}/logs/train.log)"
    )
    losses: list[tuple[int, float]] = []

    def on_event(event: TrainingEvent) -> None:
        p = event.progress if isinstance(event, Progress) else None
        if p is not None and p.complete and p.total_loss is not None:
            losses.append((p.step, p.total_loss))

    outcome = train_with_evaluation(
        pipeline, model_dir, num_steps=steps, checkpoint_every=steps, on_event=on_event
    )
    check_outcome(outcome, "the fine-tune run")
    trained = outcome.train
    saved = sorted(
        (c for c in list_checkpoints(model_dir) if not c.kept and c.step is not None), key=lambda c: c.number
    )
    if len(saved) < 2 or saved[0].step != 0:
        raise TfodError(
            "the fine-tune run saved no step-0 checkpoint and later one to compare",
            path=model_dir,
            fix="rerun tfod demo --fine-tune (the step starts over)",
        )
    start, end = saved[0], saved[-1]
    with divert_stderr(model_dir / "logs" / "restore.log", header="tfod demo: restore check"):
        check = compare_restore(source, start.prefix, end.prefix)
    if not check.ok:
        raise TfodError(
            f"the fine-tune's step-0 checkpoint holds {check.summary()}, expected all of them "
            f"(moved by training: {check.moved_by_training})",
            path=start.prefix,
            fix="read the fine-tune's train.log for the restore; run `tfod doctor`",
        )
    first = min(losses) if losses else None
    result: dict[str, Any] = {
        "source_checkpoint": _rel(workdir, source),
        "source_step": source_step,
        "kind": settings.fine_tune_kind,
        "classes": list(CLASSES.values()),
        "train_images": settings.fine_tune_train_images,
        "fine_tune_checkpoint_type": "detection",
        "steps": steps,
        "pipeline": _rel(workdir, pipeline),
        "model_dir": rel,
        "start_checkpoint": _rel(workdir, start.prefix),
        "end_checkpoint": _rel(workdir, end.prefix),
        "restore": check.to_dict(),
        "first_loss": None if first is None else {"step": first[0], "total_loss": first[1]},
        "train_seconds": round(trained.elapsed_s, 1),
    }
    loss = "" if first is None else f"; loss at step {first[0]} {first[1]:.3f}"
    summary = (
        f"{check.summary()} from step {source_step}, {check.moved_by_training}/{check.variables} "
        f"moved in {steps} steps on {settings.fine_tune_kind} ({len(CLASSES)} classes){loss}"
    )
    outputs = [rel, result["pipeline"], _rel(workdir, data.train_record), _rel(workdir, data.label_map)]
    return result, outputs, summary


def fine_tune_summary(workdir: Path, fine: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--json`` summary's ``fine_tune`` section: absolute paths, the restore counts, the loss."""
    restore = fine["restore"]
    return {
        "source_checkpoint": str(workdir / fine["source_checkpoint"]),
        "source_step": fine["source_step"],
        "kind": fine["kind"],
        "num_classes": len(fine["classes"]),
        "fine_tune_checkpoint_type": fine["fine_tune_checkpoint_type"],
        "steps": fine["steps"],
        "model_dir": str(workdir / fine["model_dir"]),
        "pipeline": str(workdir / fine["pipeline"]),
        "variables": restore["variables"],
        "restored_exactly": restore["restored_exactly"],
        "moved_by_training": restore["moved_by_training"],
        "ok": restore["ok"],
        "first_loss": fine["first_loss"],
        "train_seconds": fine["train_seconds"],
    }


def _facts(fine: Mapping[str, Any]) -> tuple[str, str, str]:
    r = fine["restore"]
    intro = (
        f"Fine-tuned from the balanced run's best checkpoint (step {fine['source_step']}, "
        f"`{fine['source_checkpoint']}`) on a second synthetic set (`{fine['kind']}`, "
        f"{fine['train_images']} train images, label map {', '.join(fine['classes'])}: "
        f"{len(fine['classes'])} classes) with `fine_tune_checkpoint_type: detection`, {fine['steps']} steps "
        f"(`{fine['model_dir']}`, {fine['train_seconds']:.0f} s)."
    )
    restored = (
        f"feature extractor restored exactly: **{r['restored_exactly']}/{r['variables']}** variables "
        f"(`{fine['start_checkpoint']}`, step 0, vs the source); "
        f"{r['moved_by_training']}/{r['variables']} then moved by training"
    )
    loss = fine.get("first_loss")
    head = "box predictor: starts fresh (its class head has another shape for the new num_classes)" + (
        "" if not loss else f"; first logged loss {loss['total_loss']:.3f} at step {loss['step']}"
    )
    return intro, restored, head


def fine_tune_markdown(report: Mapping[str, Any]) -> list[str]:
    """The report's "Fine-tuning" section as Markdown lines (none without ``fine_tune``)."""
    fine = report.get("fine_tune")
    if not fine:
        return []
    intro, restored, head = _facts(fine)
    return ["## Fine-tuning", "", intro, "", f"- {restored}", f"- {head}", ""]


def fine_tune_html(report: Mapping[str, Any]) -> str:
    """The same section as HTML (empty without ``fine_tune``)."""
    fine = report.get("fine_tune")
    if not fine:
        return ""

    def esc(text: str) -> str:
        out = html.escape(text)
        for mark, tag in (("**", "strong"), ("`", "code")):
            parts = out.split(mark)
            out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(parts))
        return out

    intro, restored, head = _facts(fine)
    return f"<h2>Fine-tuning</h2><p>{esc(intro)}</p><ul><li>{esc(restored)}</li><li>{esc(head)}</li></ul>"
