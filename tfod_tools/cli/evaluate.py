"""``tfod evaluate``: every checkpoint of a model directory, once, in global-step order, in one process.

The model and the eval input are built once; each checkpoint is restored in turn; metrics,
detections, the ledger and ``MODEL_DIR/eval`` (TensorBoard) are written per checkpoint. A bar per
checkpoint counts images; a table step -> mAP, AP50, AR@100, eval loss ends the run. ``--follow``
keeps watching a model directory that is still training until its final step. Bad input (no eval
images, label map vs ``num_classes``, no checkpoint in the model directory) fails before any
inference with exit 2; every requested checkpoint skipped exits 1; SIGTERM and SIGHUP stop it like
Ctrl-C (exit 143 / 129 / 130, protected links released). TensorFlow's own output goes to
``MODEL_DIR/logs/evaluate.log`` (``--verbose``: to stderr). This module does not import TensorFlow
(the library does, when a checkpoint is evaluated).

``--model DIR|FILE.tflite`` (instead of ``--model-dir``) scores an exported model on the eval records
(``--records``/``--label-map``, else ``--pipeline``'s, else the export's own ``pipeline.config``)
with the same metrics engine, into ``DIR/eval/FORMAT`` (``--out``), and prints a parity table against
the source checkpoint ``export.json`` names (:mod:`tfod_tools.evaluation.exported`); a COCO value that
dropped beyond the format's tolerance (``--max-drop``) exits 1. TensorFlow's own output goes to
``OUT.log`` beside the output directory (``--verbose``: to stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import BEAM_CONTEXT, BeamOption, JsonOption, beam_args
from tfod_tools.cli.output import Output
from tfod_tools.errors import TfodError


def _metrics_help() -> str:
    """The ``--metrics`` help, from the protocol registry (read when the CLI is built)."""
    from tfod_tools.evaluation.protocols import checkpoint_protocol_names

    names = checkpoint_protocol_names()
    return f"Metric protocols, comma-separated: {', '.join(names)} or {','.join(names)}."


_MODEL_PANEL = "An exported model (--model)"


@app.command("evaluate", context_settings=BEAM_CONTEXT)
def evaluate_command(
    ctx: typer.Context,
    pipeline: Path | None = typer.Option(
        None, "--pipeline", help="pipeline.config of the model (with --model: its eval records)."
    ),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="Training model_dir (ckpt-N files)."),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="Score an exported model: an export DIR or FILE.tflite.",
        rich_help_panel=_MODEL_PANEL,
    ),
    records: str | None = typer.Option(
        None,
        "--records",
        help="Eval records, comma-separated [default: --pipeline's, else the export's].",
        rich_help_panel=_MODEL_PANEL,
    ),
    label_map: Path | None = typer.Option(
        None,
        "--label-map",
        help="Class names [default: the export's label_map.pbtxt].",
        rich_help_panel=_MODEL_PANEL,
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Output directory [default: DIR/eval/FORMAT].",
        rich_help_panel=_MODEL_PANEL,
    ),
    compare: bool = typer.Option(
        False,
        "--compare-to-checkpoint",
        help="Parity table vs the source checkpoint [default: when export.json names it].",
        rich_help_panel=_MODEL_PANEL,
    ),
    no_compare: bool = typer.Option(
        False, "--no-compare-to-checkpoint", help="No parity table.", rich_help_panel=_MODEL_PANEL
    ),
    max_drop: float | None = typer.Option(
        None,
        "--max-drop",
        help="The largest COCO drop that is not a finding [default: per format].",
        rich_help_panel=_MODEL_PANEL,
    ),
    checkpoints: str = typer.Option(
        "all", "--checkpoints", help="all, latest, or global steps STEP,STEP,..."
    ),
    metrics: Annotated[str, typer.Option("--metrics", help=_metrics_help())] = "coco",
    follow: bool = typer.Option(
        False, "--follow", help="Keep evaluating new checkpoints until the final step."
    ),
    force: bool = typer.Option(False, "--force", help="Re-evaluate checkpoints already in the ledger."),
    final_step: int | None = typer.Option(
        None, "--final-step", help="With --follow: stop after this step [default: the config's num_steps]."
    ),
    until_pid: int | None = typer.Option(
        None,
        "--until-pid",
        hidden=True,
        help="With --follow: also stop once this (training) process is gone.",
    ),
    events_fd: int | None = typer.Option(
        None,
        "--events-fd",
        hidden=True,
        help="Also write each checkpoint's outcome as a JSON line to this descriptor (tfod train's pipe).",
    ),
    beam: BeamOption = False,
    json_mode: JsonOption = False,
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="TensorFlow's own output on stderr (default: MODEL_DIR/logs/evaluate.log; --model: OUT.log).",
    ),
) -> None:
    """Evaluate checkpoints: COCO/VOC metrics per step into MODEL_DIR/eval (TensorBoard) and a ledger."""
    from tfod_tools.evaluation.channel import RecordWriter, with_records
    from tfod_tools.evaluation.protocols import parse_protocols
    from tfod_tools.evaluation.runner import (
        EvalEvents,
        evaluate_log_path,
        evaluate_model_dir,
        parse_selection,
    )
    from tfod_tools.evaluation.summary import summary_rows, summary_table
    from tfod_tools.odapi.runner import interrupt_exit_code, termination_as_interrupt

    options = beam_args(ctx, beam)
    out = Output(json_mode=json_mode)
    if beam and model is None:
        raise TfodError("--beam scores an exported model", fix="pass --model EXPORT (or drop --beam)")
    if model is not None:
        if model_dir is not None:
            raise TfodError("--model and --model-dir together", fix="pass one of them")
        if compare and no_compare:
            raise TfodError(
                "--compare-to-checkpoint and --no-compare-to-checkpoint together", fix="pass one of them"
            )
        chosen = True if compare else (False if no_compare else None)
        if beam:  # remote paths: local stand-ins for the driver, a remote --out copied into place
            from tfod_tools.beam import require_beam

            require_beam()
            from tfod_tools.beam.evaluate import staged_inputs

            with staged_inputs(
                options, model, pipeline=pipeline, records=records, label_map=label_map, out=out_dir
            ) as staged:
                _evaluate_model(
                    out,
                    staged.model,
                    staged.pipeline,
                    staged.records,
                    staged.label_map,
                    staged.out,
                    chosen,
                    max_drop,
                    verbose,
                    staged.detect,
                    publish=staged.publish,
                )
            return
        _evaluate_model(out, model, pipeline, records, label_map, out_dir, chosen, max_drop, verbose)
        return
    if model_dir is None or pipeline is None:
        raise TfodError("--model-dir and --pipeline are needed", fix="pass both, or --model for an export")
    selection = parse_selection(checkpoints)
    protocols = parse_protocols(metrics)
    state: dict[str, Any] = {"bar": None, "ctx": None}

    def close_bar() -> None:
        if state["ctx"] is not None:
            state["ctx"].__exit__(None, None, None)
            state["ctx"] = state["bar"] = None

    def on_start(name: str, step: int | None, images: int) -> None:
        close_bar()
        ctx = out.progress(f"{name} (step {step})", total=images)
        state["bar"], state["ctx"] = ctx.__enter__(), ctx

    def on_batch(n: int) -> None:
        if state["bar"] is not None:
            state["bar"](n)

    def on_done(evaluation: Any) -> None:
        close_bar()
        value = evaluation.metrics.get("DetectionBoxes_Precision/mAP")
        shown = "" if value is None else f": mAP {value:.4f}"
        out.info(f"evaluated {evaluation.checkpoint} (step {evaluation.step}){shown}")

    def on_skip(skipped: Any) -> None:
        close_bar()
        out.warn(f"skipped {skipped.checkpoint}: {skipped.reason}")

    events = EvalEvents(
        on_start=on_start,
        on_batch=on_batch,
        on_done=on_done,
        on_skip=on_skip,
        on_note=out.info,
        on_warn=out.warn,
    )
    if events_fd is not None:  # the records tfod train reads; the human output stays as it is
        events = with_records(events, RecordWriter.open_fd(events_fd))
    log_path = None if verbose else evaluate_log_path(model_dir, follow=follow)
    try:
        with termination_as_interrupt():  # SIGTERM / SIGHUP: like Ctrl-C (links released; exit 143 / 129)
            result = evaluate_model_dir(
                pipeline,
                model_dir,
                checkpoints=selection,
                protocols=protocols,
                force=force,
                follow=follow,
                final_step=final_step,
                until_pid=until_pid,
                events=events,
                library_output=out.library_output_to(log_path),
            )
    except KeyboardInterrupt as exc:  # Typer would turn it into a silent exit 130, SIGTERM included
        close_bar()
        out.warn(f"interrupted: the checkpoints evaluated so far are kept in {model_dir}/eval")
        raise typer.Exit(interrupt_exit_code(exc)) from None
    finally:
        close_bar()

    def human(console: Console) -> None:
        rows = summary_rows(result.all_evaluations)
        if rows:
            best = None if result.best is None else result.best.step
            console.print(summary_table(rows, best_step=best, title=f"{model_dir}/eval (* best)"))
        console.print(
            f"{len(result.evaluated)} evaluated, {len(result.skipped)} skipped in {result.elapsed_s:.1f} s; "
            f"TensorBoard: tensorboard --logdir {model_dir}"
        )
        if tf_log is not None:
            console.print(f"TensorFlow's own output: {tf_log} (--verbose shows it)", highlight=False)

    tf_log = log_path if log_path is not None and log_path.is_file() else None
    out.result({**result.to_dict(), "tf_log": tf_log}, human=human)
    if result.exit_code:
        first = result.failed[0]
        typer.echo(
            f"error: none of the {len(result.failed)} requested checkpoints could be evaluated "
            f"({first.checkpoint}: {first.reason})",
            err=True,
        )
        raise typer.Exit(result.exit_code)


def _evaluate_model(
    out: Output,
    model: Path,
    pipeline: Path | None,
    records: str | None,
    label_map: Path | None,
    out_dir: Path | None,
    compare: bool | None,
    max_drop: float | None,
    verbose: bool,
    detect: Any = None,
    publish: Any = None,
) -> None:
    """``tfod evaluate --model``: one exported model (:mod:`tfod_tools.evaluation.exported`).

    ``publish(result)`` (``--beam``): puts the outputs in place and returns the ``--json`` fields that
    name them (remote paths) in place of the local ones."""
    from tfod_tools.evaluation.exported import evaluate_exported, log_path, parity_table

    state: dict[str, Any] = {"bar": None, "ctx": None}

    def on_start(images: int) -> None:
        ctx = out.progress(f"{model.name}", total=images)
        state["bar"], state["ctx"] = ctx.__enter__(), ctx

    def on_image() -> None:
        if state["bar"] is not None:
            state["bar"](1)

    try:
        result = evaluate_exported(
            model,
            records=None if records is None else [r for r in records.split(",") if r.strip()],
            label_map=label_map,
            pipeline=pipeline,
            out=out_dir,
            compare=compare,
            max_drop=max_drop,
            on_start=on_start,
            on_image=on_image,
            library_output=lambda log: out.library_output_to(None if verbose else log),
            detect=detect,
        )
    finally:
        if state["ctx"] is not None:
            state["ctx"].__exit__(None, None, None)

    def human(console: Console) -> None:
        value = result.metrics.get("DetectionBoxes_Precision/mAP")
        console.print(
            f"{shown.get('model', result.model)} ({result.kind}): {result.images} images, mAP {value:.4f}, "
            f"{result.latency_ms:.1f} ms per image; outputs: {shown.get('out', result.out)}",
            highlight=False,
        )
        if result.parity is not None:
            console.print(parity_table(result.parity))
            for line in [*result.parity.notes, *result.parity.findings]:
                console.print(line, highlight=False)
        if tf_log is not None:
            console.print(f"TensorFlow's own output: {tf_log} (--verbose shows it)", highlight=False)

    tf_log: Any = None if verbose or not log_path(result.out).is_file() else log_path(result.out)
    shown = {} if publish is None else publish(result)
    if "tf_log" in shown:
        tf_log = None if verbose else shown["tf_log"]
    out.result({**result.to_dict(), **shown, "tf_log": tf_log}, human=human)
    if result.exit_code:
        assert result.parity is not None
        typer.echo(f"error: {result.parity.findings[0]}", err=True)
        raise typer.Exit(result.exit_code)
