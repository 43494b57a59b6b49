"""``tfod train``: train with ``model_main_tf2`` under the compatibility layer, supervised.

Inputs are checked first (exit 2, nothing started). Then a progress bar (step / steps, total loss,
steps/s, ETA) follows the child's log; the whole log is ``MODEL_DIR/logs/train.log``. Ctrl-C stops
the child cleanly (exit 130); a crash exits 1 with the lines that explain it and a doctor hint.
Flags after ``--`` go to ``model_main_tf2`` unchanged. This command module does not import
TensorFlow (the child does).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.output import Output


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
        None, "--checkpoint-every", help="Save a checkpoint every N steps [default: 1000]."
    ),
    json_mode: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    eval_mode: str = typer.Option(
        "none",
        "--eval",
        help="continuous: evaluate every checkpoint beside training (tfod evaluate --follow).",
    ),
    eval_device: str = typer.Option(
        "cpu", "--eval-device", help="Continuous evaluator device: cpu (CUDA_VISIBLE_DEVICES=-1) or auto."
    ),
) -> None:
    """Train a pipeline with model_main_tf2 (extra model_main_tf2 flags after --)."""
    from tfod_tools.evaluation.continuous import check_eval_options, finish_continuous_evaluator
    from tfod_tools.odapi.training import TrainResult, train

    out = Output(json_mode=json_mode)
    extra = list(ctx.args)
    state: dict[str, Any] = {"last": 0, "advance": None, "evaluator": None}
    check_eval_options(eval_mode, eval_device)

    with contextlib.ExitStack() as stack:
        # The bar opens only once the inputs passed their checks and the child runs.
        def on_start(process: Any, target: int | None) -> None:
            out.info(f"training {pipeline} -> {model_dir} (log: {Path(model_dir) / 'logs' / 'train.log'})")
            state["advance"] = stack.enter_context(out.progress("train: building the model", total=target))
            if eval_mode == "continuous":
                from tfod_tools.evaluation.continuous import start_continuous_evaluator

                state["evaluator"] = start_continuous_evaluator(
                    pipeline, model_dir, final_step=target, train_pid=process.pid, device=eval_device
                )
                out.info(f"continuous evaluation on {eval_device} (log: {state['evaluator'].log_path})")

        def on_progress(update: Any) -> None:
            loss = "?" if update.total_loss is None else f"{update.total_loss:.3f}"
            rate = "" if update.steps_per_s is None else f", {update.steps_per_s:.1f} steps/s"
            if state["advance"] is not None:
                state["advance"](update.step - state["last"], description=f"train: loss {loss}{rate}")
            state["last"] = update.step

        result: TrainResult = train(
            pipeline,
            model_dir,
            num_steps=num_steps,
            checkpoint_every=checkpoint_every,
            extra_flags=extra,
            on_progress=on_progress,
            on_start=on_start,
        )

    evaluation = None
    if state["evaluator"] is not None:
        if not result.interrupted:
            out.info("training ended; the evaluator finishes the remaining checkpoints")
        evaluation = finish_continuous_evaluator(state["evaluator"], stop=result.interrupted)

    def human(console: Console) -> None:
        if evaluation is not None:
            evaluation.print_summary(console, model_dir)
        if result.ok:
            step = "?" if result.progress is None else result.progress.step
            console.print(
                f"trained to step {step} in {result.elapsed_s:.0f} s; checkpoints: "
                f"{', '.join(result.checkpoints) or 'none'} in {result.model_dir}"
            )

    data = result.to_dict()
    if evaluation is not None:
        data["evaluation"] = evaluation.to_dict()
    out.result(data, human=human)
    if result.interrupted:
        out.warn(
            f"stopped; the newest checkpoint is {result.checkpoints[-1] if result.checkpoints else 'none'} "
            f"(full log: {result.log_path})"
        )
        raise typer.Exit(130)
    if not result.ok:
        out.stderr.print(
            f"[red]error:[/red] training failed (exit code {result.returncode})", highlight=False
        )
        for line in result.error_lines:
            out.stderr.print(f"  {line}", highlight=False, markup=False)
        out.stderr.print(f"full log: {result.log_path}", highlight=False)
        out.stderr.print("hint: run `tfod doctor` to check the environment", highlight=False)
        raise typer.Exit(1)
