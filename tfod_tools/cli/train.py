"""``tfod train``: train with ``model_main_tf2`` under the compatibility layer, supervised and watched.

Inputs are checked first (exit 2, nothing started); a second ``tfod train`` on a model_dir that is
being trained exits 2 naming the running pid. The config checks and every value changed for the
API (steps rounded to 100, the final save) are printed as warnings and notes. Then a progress bar
(step / steps, total loss, steps/s, ETA) follows the child's log; the whole log is
``MODEL_DIR/logs/train.log``. A NaN, Inf or diverging loss stops the run (exit 1) with the step,
the term, the last good checkpoint and the likely causes (``--no-stop-on-nan`` keeps going).
Ctrl-C, SIGTERM and SIGHUP stop the children cleanly (exit 130 / 143 / 129); a crash exits 1 with
the lines that explain it and a doctor hint. Flags after ``--`` go to ``model_main_tf2``
unchanged. This command module does not import TensorFlow (the child does).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, one_of
from tfod_tools.cli.output import Output
from tfod_tools.evaluation.continuous import DEVICES as EVAL_DEVICES
from tfod_tools.evaluation.continuous import MODES as EVAL_MODES


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train_command(
    ctx: typer.Context,
    pipeline: Path = typer.Option(..., "--pipeline", help="pipeline.config to train."),
    model_dir: Path = typer.Option(..., "--model-dir", help="Directory for checkpoints, events and logs."),
    num_steps: int | None = typer.Option(
        None, "--num-steps", help="Training steps (rounded up to a multiple of 100) [default: the config's]."
    ),
    checkpoint_every: int | None = typer.Option(
        None,
        "--checkpoint-every",
        help="Save a checkpoint every N steps (rounded up to a multiple of 100; the final step is "
        "always saved) [default: 1000].",
    ),
    json_mode: JsonOption = False,
    eval_mode: Annotated[
        one_of(lambda: EVAL_MODES),  # type: ignore[valid-type]
        typer.Option(
            "--eval",
            metavar="MODE",
            help="none | continuous: evaluate every checkpoint beside training (tfod evaluate --follow).",
        ),
    ] = "none",
    eval_device: Annotated[
        one_of(lambda: EVAL_DEVICES),  # type: ignore[valid-type]
        typer.Option(
            "--eval-device",
            metavar="DEVICE",
            help="Continuous evaluator device: cpu | auto (cpu: CUDA_VISIBLE_DEVICES=-1).",
        ),
    ] = "cpu",
    stop_on_nan: bool = typer.Option(
        True,
        "--stop-on-nan/--no-stop-on-nan",
        help="Stop when the loss is NaN/Inf or diverges (1000x its lowest value, or above 1e4).",
    ),
) -> None:
    """Train a pipeline with model_main_tf2 (extra model_main_tf2 flags after --)."""
    from tfod_tools.evaluation.continuous import check_eval_options
    from tfod_tools.training import session

    out = Output(json_mode=json_mode)
    check_eval_options(eval_mode, eval_device)
    state: dict[str, Any] = {"last": 0, "advance": None}

    with contextlib.ExitStack() as stack:

        def on_event(event: session.TrainingEvent) -> None:
            if isinstance(event, session.Planned):
                for note in event.notes:
                    out.info(f"note: {note}")
                for finding in event.warnings:
                    out.warn(f"{finding.id}: {finding.message} (fix: {finding.fix})")
            elif isinstance(event, session.Started):
                out.info(f"training {pipeline} -> {model_dir} (log: {event.log_path})")
                if event.evaluator_log is not None:
                    out.info(f"continuous evaluation on {eval_device} (log: {event.evaluator_log})")
                # The bar opens only once the inputs passed their checks and the child runs.
                state["advance"] = stack.enter_context(
                    out.progress("train: building the model", total=event.target_steps)
                )
            elif isinstance(event, session.Progress):
                update = event.progress
                loss = "?" if update.total_loss is None else f"{update.total_loss:.3f}"
                rate = "" if update.steps_per_s is None else f", {update.steps_per_s:.1f} steps/s"
                if state["advance"] is not None:
                    state["advance"](update.step - state["last"], description=f"train: loss {loss}{rate}")
                state["last"] = update.step
            elif isinstance(event, session.LossTrouble):
                if event.stopping:  # explained in full once the children have stopped
                    out.info("stopping the trainer and the evaluator (the loss is not finite or diverged)")
                else:
                    out.warn(f"{event.problem.describe()}: going on (--no-stop-on-nan)")
            elif isinstance(event, session.MalformedRecord):
                out.warn(event.describe())
            # Evaluated, EvaluationSkipped, EvaluationFailed: shown in eval.log and the final table

        try:
            outcome = session.train_with_evaluation(
                pipeline,
                model_dir,
                num_steps=num_steps,
                checkpoint_every=checkpoint_every,
                evaluate=eval_mode == "continuous",
                eval_device=eval_device,
                stop_on_problem=stop_on_nan,
                extra_flags=list(ctx.args),
                on_event=on_event,
            )
        except KeyboardInterrupt as exc:  # before the trainer ran (its own stop is handled inside)
            from tfod_tools.odapi.runner import interrupt_exit_code

            out.warn("interrupted before training started")
            raise typer.Exit(interrupt_exit_code(exc)) from None

    result, evaluation = outcome.train, outcome.evaluation
    if evaluation is not None and not outcome.interrupted and result.ok:
        out.info("training ended; the evaluator finished the remaining checkpoints")

    def human(console: Console) -> None:
        if evaluation is not None:
            evaluation.print_summary(console, model_dir)
        if result.ok:
            step = "?" if result.progress is None else result.progress.step
            console.print(
                f"trained to step {step} in {result.elapsed_s:.0f} s; checkpoints: "
                f"{', '.join(result.checkpoints) or 'none'} in {result.model_dir}"
            )

    out.result(outcome.to_dict(), human=human)
    if outcome.problem is not None:
        label = (
            "[red]error:[/red] training stopped" if outcome.stopped_for_loss else "[yellow]warning:[/yellow]"
        )
        out.stderr.print(f"{label}: {outcome.problem.describe()}", highlight=False)
        for line in outcome.problem_lines():
            out.stderr.print(f"  {line}", highlight=False, markup=False)
        out.stderr.print(f"full log: {result.log_path}", highlight=False)
    if outcome.interrupted:
        out.warn(
            f"stopped; the newest checkpoint is {result.checkpoints[-1] if result.checkpoints else 'none'} "
            f"(full log: {result.log_path})"
        )
    elif not result.ok and not outcome.stopped_for_loss:
        out.stderr.print(
            f"[red]error:[/red] training failed (exit code {result.returncode})", highlight=False
        )
        for line in result.error_lines:
            out.stderr.print(f"  {line}", highlight=False, markup=False)
        out.stderr.print(f"full log: {result.log_path}", highlight=False)
        out.stderr.print("hint: run `tfod doctor` to check the environment", highlight=False)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)
