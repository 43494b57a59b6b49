"""``tfod train``: check the inputs, then run ``model_main_tf2`` training as a supervised child.

The child is ``python -m tfod_tools.odapi.model_main`` (the stock entry point under the
compatibility layer); its whole output goes to ``MODEL_DIR/logs/train.log`` and its progress lines
feed a callback. ``model_main_tf2`` trains in chunks of 100 steps, so ``num_steps`` is rounded up
to the next multiple of 100 (:func:`effective_steps`); ``ckpt-N`` counts saves (``ckpt-1`` is step 0).

>>> effective_steps(30), effective_steps(200), effective_steps(None)
(100, 200, None)
>>> argv = model_main_argv("p.config", "runs/m", num_steps=200, checkpoint_every=100,
...                        extra=["--alsologtostderr"])
>>> argv[1:3], [a.split("=")[0] for a in argv[3:]]
(['-m', 'tfod_tools.odapi.model_main'], ['--pipeline_config_path', '--model_dir', '--num_train_steps', \
'--checkpoint_every_n', '--alsologtostderr'])
"""

from __future__ import annotations

import datetime
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfod_tools.errors import TfodError
from tfod_tools.odapi.checks import check_inputs
from tfod_tools.odapi.runner import SupervisedProcess, child_environment
from tfod_tools.odapi.trainlog import TrainProgress, TrainProgressParser

STEPS_PER_ITERATION = 100
"""``model_lib_v2.NUM_STEPS_PER_ITERATION``: training runs and checkpoints in chunks of this size."""

MODEL_MAIN_MODULE = "tfod_tools.odapi.model_main"


def effective_steps(num_steps: int | None) -> int | None:
    """The step count ``model_main_tf2`` really reaches: the next multiple of 100."""
    if num_steps is None or num_steps <= 0:
        return None
    return math.ceil(num_steps / STEPS_PER_ITERATION) * STEPS_PER_ITERATION


def model_main_argv(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    num_steps: int | None = None,
    checkpoint_every: int | None = None,
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
) -> TrainResult:
    """Check the inputs, then train in a supervised child until it ends (or Ctrl-C stops it).

    Raises :class:`TfodError` (nothing started) when an input check fails. ``on_start`` receives
    the process and the step count training will reach; ``on_progress`` every parsed update.
    """
    _positive("--num-steps", num_steps)
    _positive("--checkpoint-every", checkpoint_every)
    checked = check_inputs(pipeline, model_dir)
    assert checked.model_dir is not None
    out_dir = checked.model_dir
    target = effective_steps(
        num_steps if num_steps is not None else int(checked.config.train_config.num_steps)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
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

    process = SupervisedProcess(argv, log_path, name="train", env=child_environment(), on_line=on_line)
    process.start()
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
    )
