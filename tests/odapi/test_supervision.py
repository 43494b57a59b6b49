"""Supervision without TensorFlow: children die with their supervisor, SIGTERM stops like Ctrl-C,
one trainer per model_dir. Real processes throughout (a supervisor script, a sleeping child)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tfod_tools.errors import TfodError
from tfod_tools.odapi.training import plan_training
from tfod_tools.odapi.trainlock import LOCK_NAME, TrainLock

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


SUPERVISOR = textwrap.dedent(
    """
    import sys, time
    from tfod_tools.odapi.runner import SupervisedProcess, termination_as_interrupt
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    child = SupervisedProcess(sleeper, sys.argv[1], name="sleeper")
    with termination_as_interrupt():
        child.start()
        print(child.pid, flush=True)
        result = child.run()
    print("stopped", result.interrupted, child.interrupt_signal, flush=True)
    """
)


def _start_supervisor(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path / "child.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    child_pid = int(proc.stdout.readline())
    assert _alive(child_pid)
    return proc, child_pid


@linux_only
def test_kill_9_of_the_supervisor_kills_its_child(tmp_path: Path) -> None:
    proc, child = _start_supervisor(tmp_path)
    proc.kill()  # SIGKILL: no handler of ours runs
    proc.wait(timeout=10)
    assert _wait_gone(child), f"child {child} outlived its killed supervisor"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_child_like_ctrl_c(tmp_path: Path, signum: int) -> None:
    proc, child = _start_supervisor(tmp_path)
    time.sleep(0.5)  # let it reach run(); a signal before that is the caller's to handle (train's finally)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["stopped", "True", str(int(signum))]
    assert _wait_gone(child)


def test_second_lock_names_the_owner_and_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tfod_tools.odapi.trainlock import TrainLock\n"
            "lock = TrainLock(sys.argv[1]).acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(model_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(TfodError) as caught:
            TrainLock(model_dir).acquire()
        assert f"pid {holder.pid}" in caught.value.message and caught.value.exit_code == 2
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # The kernel released the dead holder's flock; its file (with its pid) is still there.
    assert json.loads((model_dir / LOCK_NAME).read_text())["pid"] == holder.pid
    lock = TrainLock(model_dir).acquire()
    try:
        assert lock.taken_over is not None and lock.taken_over.pid == holder.pid
        lock.set_trainer(4242)
        owner = lock.owner()
        assert owner is not None and owner.pid == os.getpid() and owner.trainer_pid == 4242
    finally:
        lock.release()
    assert not (model_dir / LOCK_NAME).exists()
    assert TrainLock(model_dir).acquire().taken_over is None  # a clean release leaves no stale lock


def test_a_child_that_inherited_the_lock_keeps_it_after_its_supervisor_released_nothing(
    tmp_path: Path,
) -> None:
    lock = TrainLock(tmp_path).acquire()
    assert lock.fd is not None
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=(lock.fd,), close_fds=True
    )
    try:
        os.close(lock.fd)  # the supervisor is gone (without removing the file), the child is not
        lock.fd = None
        with pytest.raises(TfodError, match="another tfod train"):
            TrainLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait(timeout=10)
    TrainLock(tmp_path).acquire().release()  # the child's death released the flock


@pytest.mark.parametrize(
    ("num_steps", "every", "config_steps", "target", "real_every", "final", "notes"),
    [
        (100, None, 5000, 100, 1000, True, ["the final step 100 is saved too"]),
        (20, 10, 0, 100, 100, False, ["--num-steps 20 -> 100", "--checkpoint-every 10 -> 100"]),
        (
            None,
            150,
            450,
            500,
            200,
            True,
            ["train_config.num_steps 450 -> 500", "--checkpoint-every 150 -> 200", "final step 500 is saved"],
        ),
        (1000, 100, 0, 1000, 100, False, ["keeps only the 7 newest"]),
        (300, 100, 0, 300, 100, False, []),
        (None, None, 0, None, 1000, False, []),
    ],
)
def test_plan_says_every_value_it_changes(
    num_steps: int | None,
    every: int | None,
    config_steps: int,
    target: int | None,
    real_every: int,
    final: bool,
    notes: list[str],
) -> None:
    plan = plan_training(num_steps, every, config_steps=config_steps)
    assert (plan.target_steps, plan.checkpoint_every, plan.saves_final_step) == (target, real_every, final)
    assert len(plan.notes) == len(notes)
    for expected, note in zip(notes, plan.notes, strict=True):
        assert expected in note
