"""``tfod train`` with the real API: a diverging loss stops the run, the final step is always saved,
and the trainer and evaluator never outlive their supervisor (SIGTERM, kill -9), one trainer per
model_dir, and a rerun resumes with no checkpoint left unevaluated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.odapi.checkpoints import list_checkpoints
from tfod_tools.odapi.pipeline import render_template, save_pipeline

pytestmark = pytest.mark.slow


def _pipeline(tmp_path: Path, data: Any, *, lr_factor: float = 1.0, num_steps: int = 300) -> Path:
    config = render_template(
        "tiny-ssd",
        label_map=data.label_map,
        train_records=data.train_record,
        eval_records=data.eval_record,
        num_steps=num_steps,
    )
    optimizer = config.train_config.optimizer
    rate = getattr(optimizer, optimizer.WhichOneof("optimizer")).learning_rate
    assert rate.WhichOneof("learning_rate") == "constant_learning_rate"
    rate.constant_learning_rate.learning_rate *= lr_factor
    return save_pipeline(config, tmp_path / f"pipeline_lr{lr_factor:g}.config")


def _steps(model_dir: Path) -> dict[str, int | None]:
    here = model_dir.resolve()
    return {c.name: c.step for c in list_checkpoints(model_dir) if c.prefix.parent.resolve() == here}


def test_a_diverging_loss_stops_the_run_with_exit_1_and_diagnose_reports_it(
    tmp_path: Path, synthetic_dataset: Any, run_tfod: Any
) -> None:
    # The tiny template with its learning rate raised 10^7-fold: total loss ~3.6e8 at step 100.
    pipeline = _pipeline(tmp_path, synthetic_dataset, lr_factor=1e7, num_steps=2000)
    model_dir = tmp_path / "diverged"
    proc = run_tfod(
        [
            "train",
            "--pipeline",
            str(pipeline),
            "--model-dir",
            str(model_dir),
            "--checkpoint-every",
            "100",
            "--json",
        ]
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    problem = result["loss_problem"]
    assert problem["kind"] == "loss_divergence" and problem["step"] == 100
    assert result["stopped_for_loss"] is True and result["exit_code"] == 1
    assert "training stopped: loss diverged at step 100" in proc.stderr
    assert "last good checkpoint: ckpt-1 (step 0)" in proc.stderr
    assert "learning rate is too high" in proc.stderr  # the likely causes, with their fixes
    steps = _steps(model_dir)
    assert steps.get("ckpt-1") == 0 and max(s or 0 for s in steps.values()) <= 200  # stopped at once
    assert "Step 2000" not in (model_dir / "logs" / "train.log").read_text()

    diagnosis = run_tfod(["diagnose", "--model-dir", str(model_dir), "--json"])
    assert diagnosis.returncode == 0, diagnosis.stderr[-2000:]
    findings = {f["id"]: f for f in json.loads(diagnosis.stdout)["findings"]}
    assert "loss_divergence" in findings, sorted(findings)
    assert "100" in findings["loss_divergence"]["message"]


def test_num_steps_100_with_the_default_interval_leaves_a_checkpoint_at_step_100(
    tmp_path: Path, synthetic_dataset: Any, run_tfod: Any
) -> None:
    from tfod_tools.odapi.pipeline import load_pipeline

    pipeline = _pipeline(tmp_path, synthetic_dataset)
    config = load_pipeline(pipeline)
    config.eval_config.batch_size = 2  # harmless for training: shows the pre-flight config checks
    save_pipeline(config, pipeline)
    model_dir = tmp_path / "short"
    proc = run_tfod(
        ["train", "--pipeline", str(pipeline), "--model-dir", str(model_dir), "--num-steps", "20"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: eval_batch_size_above_one" in proc.stderr
    assert "note: --num-steps 20 -> 100" in proc.stderr
    assert "note: the final step 100 is saved too" in proc.stderr
    assert _steps(model_dir) == {"ckpt-1": 0, "ckpt-2": 100}  # stock keeps only ckpt-1 (step 0)
    assert "tfod: saved the final step 100" in (model_dir / "logs" / "train.log").read_text()


def _processes_mentioning(text: str, exclude: set[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _start_training(pipeline: Path, model_dir: Path) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "tfod_tools",
        "train",
        "--pipeline",
        str(pipeline),
        "--model-dir",
        str(model_dir),
    ]
    argv += ["--checkpoint-every", "100", "--eval", "continuous", "--json"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(predicate: Any, what: str, proc: subprocess.Popen[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(
                f"tfod train ended ({proc.returncode}) before {what}: {proc.communicate()[1][-3000:]}"
            )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _wait_no_children(model_dir: Path, exclude: set[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_mentioning(str(model_dir), exclude)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the children")
def test_sigterm_and_kill_9_leave_no_child_and_a_rerun_resumes_with_every_checkpoint_evaluated(
    tmp_path: Path, synthetic_dataset: Any, run_tfod: Any
) -> None:
    from tfod_tools.ledger import Ledger

    pipeline = _pipeline(tmp_path, synthetic_dataset, num_steps=400)
    model_dir = tmp_path / "supervised"
    me = {os.getpid()}

    # 1. Running: a second tfod train on the same model_dir is refused (exit 2, naming the pid).
    first = _start_training(pipeline, model_dir)
    _wait_for(lambda: 100 in _steps(model_dir).values(), "the step-100 checkpoint", first)
    second = run_tfod(["train", "--pipeline", str(pipeline), "--model-dir", str(model_dir)])
    assert second.returncode == 2, second.stderr[-2000:]
    assert "another tfod train" in second.stderr and f"pid {first.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1

    # 2. SIGTERM (timeout, systemd, schedulers): stopped like Ctrl-C, exit 143, no child left.
    children = _processes_mentioning(str(model_dir), me | {first.pid})
    assert len(children) >= 2, "trainer and evaluator should both run"
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 143, err[-3000:]
    assert _wait_no_children(model_dir, me) == []

    # 3. kill -9 of the supervisor: the kernel ends the trainer and the evaluator with it.
    third = _start_training(pipeline, model_dir)
    _wait_for(lambda: 200 in _steps(model_dir).values(), "the step-200 checkpoint", third)
    assert len(_processes_mentioning(str(model_dir), me | {third.pid})) >= 2
    third.kill()
    third.wait(timeout=30)
    assert _wait_no_children(model_dir, me) == []

    # 4. A rerun takes over the dead supervisor's lock, resumes, and the evaluator misses nothing.
    final = _start_training(pipeline, model_dir)
    out, err = final.communicate(timeout=1200)
    assert final.returncode == 0, err[-3000:]
    assert "took over the lock of a dead tfod train" in err
    result = json.loads(out)
    assert result["step"] == 400 and result["evaluation"]["ok"] is True
    with Ledger.open(model_dir, readonly=True) as ledger:
        evaluated = sorted({e.step for e in ledger.evaluations(status="ok")})
    saved = sorted(s for s in _steps(model_dir).values() if s is not None)
    assert evaluated[-1] == 400 and set(saved) <= set(evaluated), (evaluated, saved)
