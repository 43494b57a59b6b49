"""The loss watch on a real child process that logs like ``model_lib_v2.train_loop`` (no TensorFlow)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tfod_tools.diagnostics.health import IMPLAUSIBLE_LOSS, first_loss_problem
from tfod_tools.odapi.runner import SupervisedProcess
from tfod_tools.odapi.trainlog import TrainProgressParser
from tfod_tools.training.watch import LossWatch, checkpoints_around, describe_checkpoints

# What train.log holds for one logged step (both loggers print the dict), then NaN at step 300.
FAKE_TRAINER = textwrap.dedent(
    """
    import sys, time
    def step(n, cls, loc, total):
        for prefix in ("INFO:tensorflow:", "I1201 10:01:36.24 1 model_lib_v2.py:705] "):
            print(f"{prefix}Step {n} per-step time 0.100s")
        for prefix in ("INFO:tensorflow:", "I1201 10:01:36.24 1 model_lib_v2.py:708] "):
            print(f"{prefix}{{'Loss/classification_loss': np.float32({cls}),")
            print(f" 'Loss/localization_loss': np.float32({loc}),")
            print(f" 'Loss/total_loss': np.float32({total}),")
            print(" 'learning_rate': 0.004}")
        sys.stdout.flush()
    step(100, 0.9, 0.4, 1.3)
    step(200, 0.7, 0.3, 1.0)
    step(300, "nan", 0.3, "nan")
    time.sleep(600)  # a trainer that would go on: the watch must stop it
    step(400, 0.1, 0.1, 0.2)
    """
)


def test_nan_in_the_log_stops_the_child_and_names_step_and_term(tmp_path: Path) -> None:
    parser, watch, seen = TrainProgressParser(), LossWatch(stop=True), []

    def on_line(line: str) -> None:
        update = parser.feed(line)
        if update is not None:
            problem = watch.feed(update)
            if problem is not None:
                seen.append(problem)

    process = SupervisedProcess([sys.executable, "-c", FAKE_TRAINER], tmp_path / "train.log", on_line=on_line)
    watch.attach(process.start())
    result = process.wait(timeout=120)
    assert result.interrupted and watch.stopped
    assert len(seen) == 1  # checked once per step although both loggers print it
    problem = seen[0]
    assert (problem.kind, problem.step, problem.term, problem.last_good_step) == (
        "loss_nan",
        300,
        "Loss/classification_loss",
        200,
    )
    assert "Step 400" not in (tmp_path / "train.log").read_text()


def test_without_stop_the_watch_reports_and_the_child_runs_on(tmp_path: Path) -> None:
    watch = LossWatch(stop=False)
    parser = TrainProgressParser()
    script = FAKE_TRAINER.replace("time.sleep(600)", "pass")
    process = SupervisedProcess(
        [sys.executable, "-c", script],
        tmp_path / "train.log",
        on_line=lambda line: (u := parser.feed(line)) is not None and watch.feed(u),
    )
    watch.attach(process.start())
    assert process.wait(timeout=60).ok
    assert watch.problem is not None and watch.problem.step == 300 and not watch.stopped


def test_live_watch_and_event_file_rule_agree() -> None:
    # The same numbers, once as logged updates and once as event-file series: one rule, one answer.
    steps = {100: (0.9, 1.3), 200: (0.8, 1.1), 300: (5e5, 5e5 + 0.3)}
    series = {
        "Loss/classification_loss": [(s, c) for s, (c, _) in steps.items()],
        "Loss/total_loss": [(s, t) for s, (_, t) in steps.items()],
    }
    from_events = first_loss_problem(series)
    watch = LossWatch(stop=False)
    from tfod_tools.odapi.trainlog import TrainProgress

    for s, (c, t) in steps.items():
        watch.feed(
            TrainProgress(s, losses={"Loss/classification_loss": c, "Loss/total_loss": t}, complete=True)
        )
    assert from_events == watch.problem
    assert (
        from_events is not None
        and from_events.kind == "loss_divergence"
        and from_events.value > IMPLAUSIBLE_LOSS
    )


def test_checkpoints_around_a_problem_step(tmp_path: Path) -> None:
    # Real index files are what model_main_tf2 writes; here the step is unreadable: left out of both.
    (tmp_path / "ckpt-1.index").write_bytes(b"not a table")
    (tmp_path / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    good, bad = checkpoints_around(tmp_path, 300)
    assert (good, bad) == (None, [])
    assert describe_checkpoints(good, bad) == ["no checkpoint was saved before the problem step"]
