"""``tfod train``: check the inputs, then run ``model_main_tf2`` training as a supervised child.

The child is ``python -m tfod_tools.odapi.model_main`` (the stock entry point under the
compatibility layer); its whole output goes to ``MODEL_DIR/logs/train.log`` and its progress lines
feed a callback. While it trains, ``MODEL_DIR/tfod-train.lock`` keeps a second ``tfod train`` out
(:mod:`tfod_tools.odapi.trainlock`).

``model_main_tf2`` trains in chunks of 100 steps and looks at its checkpoint interval only between
chunks, so ``num_steps`` is rounded up to the next multiple of 100 (:func:`effective_steps`) and so
is the interval; its loop saves only on interval boundaries, so the last steps of a run whose
length the interval does not divide were never saved (``--num-steps 100`` with the default 1000
kept only the step-0 checkpoint). :func:`plan_training` says each of these changes in a note, and
the child is asked (``--tfod_save_final_step``, handled by :mod:`tfod_tools.odapi.model_main`) to
save the final step as well. ``ckpt-N`` counts saves (``ckpt-1`` is step 0).

>>> effective_steps(30), effective_steps(200), effective_steps(None)
(100, 200, None)
>>> plan = plan_training(20, 10, config_steps=5000)
>>> plan.target_steps, plan.checkpoint_every, plan.saves_final_step
(100, 100, False)
>>> for note in plan_training(150, None, config_steps=0).notes: print(note)
--num-steps 150 -> 200: model_main_tf2 trains in chunks of 100 steps
the final step 200 is saved too (checkpoints every 1000 steps would not reach it)
>>> argv = model_main_argv("p.config", "runs/m", num_steps=200, checkpoint_every=100,
...                        extra=["--alsologtostderr"])
>>> argv[1:3], [a.split("=")[0] for a in argv[3:]]
(['-m', 'tfod_tools.odapi.model_main'], ['--pipeline_config_path', '--model_dir', '--num_train_steps', \
'--checkpoint_every_n', '--tfod_save_final_step', '--alsologtostderr'])
"""

from __future__ import annotations

import datetime
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tfod_tools.errors import TfodError
from tfod_tools.odapi.checks import CheckedInputs, check_inputs
from tfod_tools.odapi.fine_tune import check_fine_tune
from tfod_tools.odapi.runner import SupervisedProcess, child_environment
from tfod_tools.odapi.trainlock import TrainLock
from tfod_tools.odapi.trainlog import TrainProgress, TrainProgressParser

STEPS_PER_ITERATION = 100
"""``model_lib_v2.NUM_STEPS_PER_ITERATION``: training runs and checkpoints in chunks of this size."""

DEFAULT_CHECKPOINT_EVERY = 1000
"""``model_main_tf2``'s ``--checkpoint_every_n`` default."""

MAX_TO_KEEP = 7
"""``model_lib_v2.train_loop``'s ``checkpoint_max_to_keep`` (``model_main_tf2`` does not set it)."""

SAVE_FINAL_FLAG = "--tfod_save_final_step"
"""Our flag to the child: save the final step when the interval did not (stripped before absl)."""

MODEL_MAIN_MODULE = "tfod_tools.odapi.model_main"


def effective_steps(num_steps: int | None) -> int | None:
    """The step count ``model_main_tf2`` really reaches: the next multiple of 100."""
    if num_steps is None or num_steps <= 0:
        return None
    return math.ceil(num_steps / STEPS_PER_ITERATION) * STEPS_PER_ITERATION


@dataclass(frozen=True)
class TrainPlan:
    """What a training will really do, and a note for every value that differs from what was asked."""

    target_steps: int | None
    checkpoint_every: int
    saves_final_step: bool
    notes: tuple[str, ...] = ()


def _round_up(value: int) -> int:
    return math.ceil(value / STEPS_PER_ITERATION) * STEPS_PER_ITERATION


def plan_training(num_steps: int | None, checkpoint_every: int | None, *, config_steps: int) -> TrainPlan:
    """The steps and checkpoints ``model_main_tf2`` will produce for these options.

    ``num_steps`` None means the config's ``train_config.num_steps`` (``config_steps``; 0 trains
    forever in the API); ``checkpoint_every`` None means the flag's default, 1000.
    """
    notes: list[str] = []
    asked = num_steps if num_steps is not None else config_steps
    where = "--num-steps" if num_steps is not None else "train_config.num_steps"
    target = effective_steps(asked)
    if target is not None and target != asked:
        notes.append(
            f"{where} {asked} -> {target}: model_main_tf2 trains in chunks of {STEPS_PER_ITERATION} steps"
        )
    every = checkpoint_every if checkpoint_every is not None else DEFAULT_CHECKPOINT_EVERY
    real_every = _round_up(every)
    if real_every != every:
        notes.append(
            f"--checkpoint-every {every} -> {real_every}: model_main_tf2 checks its checkpoint interval "
            f"only every {STEPS_PER_ITERATION} steps"
        )
    final = target is not None and target % real_every != 0
    if final:
        notes.append(
            f"the final step {target} is saved too (checkpoints every {real_every} steps would not reach it)"
        )
    if target is not None and target // real_every + 1 + final > MAX_TO_KEEP:
        notes.append(
            f"model_main_tf2 keeps only the {MAX_TO_KEEP} newest checkpoints: earlier ones are deleted as "
            "training goes (--eval continuous evaluates each first and keeps the best)"
        )
    return TrainPlan(target, real_every, final, tuple(notes))


def model_main_argv(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    num_steps: int | None = None,
    checkpoint_every: int | None = None,
    save_final_step: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of a training child."""
    argv = [
        sys.executable,
        "-m",
        MODEL_MAIN_MODULE,
        f"--pipeline_config_path={os.path.abspath(pipeline)}",
        f"--model_dir={os.path.abspath(model_dir)}",
    ]
    if num_steps is not None:
        argv.append(f"--num_train_steps={num_steps}")
    if checkpoint_every is not None:
        argv.append(f"--checkpoint_every_n={checkpoint_every}")
    if save_final_step:
        argv.append(SAVE_FINAL_FLAG)
    return argv + list(extra)


def checkpoint_names(model_dir: str | Path) -> list[str]:
    """``ckpt-N`` names present in ``model_dir``, by N.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in (10, 2): _ = (d / f"ckpt-{n}.index").write_text("")
    >>> checkpoint_names(d)
    ['ckpt-2', 'ckpt-10']
    """
    numbers = []
    for path in Path(model_dir).glob("ckpt-*.index"):
        match = re.fullmatch(r"ckpt-(\d+)\.index", path.name)
        if match:
            numbers.append(int(match.group(1)))
    return [f"ckpt-{n}" for n in sorted(numbers)]


@dataclass
class TrainResult:
    """The outcome of one ``tfod train``."""

    model_dir: Path
    log_path: Path
    returncode: int
    interrupted: bool
    elapsed_s: float
    target_steps: int | None
    progress: TrainProgress | None
    checkpoints: list[str] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What training does differently from what was asked (rounding, the final save)."""
    interrupt_signal: int | None = None
    """The signal that stopped the run (SIGINT, SIGTERM, SIGHUP) when one did."""

    @property
    def ok(self) -> bool:
        """True when training ran to its end."""
        return self.returncode == 0 and not self.interrupted

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        progress = self.progress
        return {
            "ok": self.ok,
            "model_dir": str(self.model_dir),
            "log": str(self.log_path),
            "returncode": self.returncode,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 2),
            "target_steps": self.target_steps,
            "step": None if progress is None else progress.step,
            "total_loss": None if progress is None else progress.total_loss,
            "checkpoints": self.checkpoints,
            "error_lines": self.error_lines,
            "notes": self.notes,
        }


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise TfodError(f"{name} must be >= 1, got {value}", fix=f"pass {name} 1 or more")


def train(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    num_steps: int | None = None,
    checkpoint_every: int | None = None,
    extra_flags: Sequence[str] = (),
    on_progress: Callable[[TrainProgress], None] | None = None,
    on_start: Callable[[SupervisedProcess, int | None], None] | None = None,
    on_plan: Callable[[TrainPlan, CheckedInputs], None] | None = None,
) -> TrainResult:
    """Check the inputs, then train in a supervised child until it ends (or Ctrl-C stops it).

    Raises :class:`TfodError` (nothing started) when an input check fails or another ``tfod
    train`` holds the model directory. ``on_plan`` receives the plan and the checked inputs before
    the child starts (pre-flight warnings); ``on_start`` the process and the step count training
    will reach; ``on_progress`` every parsed update (on the output thread: to stop the run from
    there, call the process's ``request_stop``).
    """
    _positive("--num-steps", num_steps)
    _positive("--checkpoint-every", checkpoint_every)
    checked = check_inputs(pipeline, model_dir)
    assert checked.model_dir is not None
    check_fine_tune(checked.config, checked.pipeline_path, checked.model_dir)
    out_dir = checked.model_dir
    plan = plan_training(num_steps, checkpoint_every, config_steps=int(checked.config.train_config.num_steps))
    with TrainLock(out_dir) as lock:
        if lock.taken_over is not None:
            taken = f"took over the lock of a dead tfod train ({lock.taken_over.describe()})"
            plan = replace(plan, notes=(taken, *plan.notes))
        if on_plan is not None:
            on_plan(plan, checked)
        return _run_child(
            checked, out_dir, plan, lock, num_steps, checkpoint_every, extra_flags, on_progress, on_start
        )


def _run_child(
    checked: CheckedInputs,
    out_dir: Path,
    plan: TrainPlan,
    lock: TrainLock,
    num_steps: int | None,
    checkpoint_every: int | None,
    extra_flags: Sequence[str],
    on_progress: Callable[[TrainProgress], None] | None,
    on_start: Callable[[SupervisedProcess, int | None], None] | None,
) -> TrainResult:
    target = plan.target_steps
    notes = list(plan.notes)
    log_path = out_dir / "logs" / "train.log"
    argv = model_main_argv(
        checked.pipeline_path,
        out_dir,
        num_steps=num_steps,
        checkpoint_every=checkpoint_every,
        extra=extra_flags,
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        log.write(f"=== tfod train {stamp}: {' '.join(argv)}\n")

    parser = TrainProgressParser()

    def on_line(line: str) -> None:
        update = parser.feed(line)
        if update is not None and on_progress is not None:
            on_progress(update)

    process = SupervisedProcess(
        argv,
        log_path,
        name="train",
        env=child_environment(),
        on_line=on_line,
        pass_fds=() if lock.fd is None else (lock.fd,),
    )
    process.start()
    if process.pid is not None:
        lock.set_trainer(process.pid)
    try:
        if on_start is not None:
            on_start(process, target)
        result = process.run()
    finally:
        if process.poll() is None:
            process.stop()
    return TrainResult(
        model_dir=out_dir,
        log_path=log_path,
        returncode=result.returncode,
        interrupted=result.interrupted,
        elapsed_s=result.elapsed_s,
        target_steps=target,
        progress=parser.progress,
        checkpoints=checkpoint_names(out_dir),
        error_lines=[] if result.ok or result.interrupted else result.error_lines(),
        notes=notes,
        interrupt_signal=process.interrupt_signal,
    )
