"""``tfod train`` end to end with the real API (the session's 300-step tiny SSD), crash and Ctrl-C."""

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

from tfod_tools.odapi.pipeline import render_template, save_pipeline
from tfod_tools.odapi.trainlog import TrainProgressParser

pytestmark = pytest.mark.slow


def train_scalars(event_dir: Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of one tag in the event files of ``event_dir`` (read with TensorFlow)."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    values: dict[int, float] = {}
    for file in sorted(event_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(file)):
            for value in event.summary.value:
                if value.tag == tag:
                    number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                    values[event.step] = float(number)
    return values


def test_tfod_train_writes_checkpoints_events_and_log(trained_model_dir: Any) -> None:
    model_dir: Path = trained_model_dir.model_dir
    result = trained_model_dir.result
    assert result["ok"] is True and result["returncode"] == 0
    assert result["checkpoints"] == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4"]
    assert result["step"] == 300 and result["target_steps"] == 300
    for n in range(1, 5):
        assert (model_dir / f"ckpt-{n}.index").is_file()
    losses = train_scalars(model_dir / "train", "Loss/total_loss")
    assert sorted(losses) == [100, 200, 300]
    assert all(v == v and v > 0 for v in losses.values())  # finite, positive
    log = (model_dir / "logs" / "train.log").read_text()
    assert log.startswith("=== tfod train ") and "tfod compat: applied" in log
    parser = TrainProgressParser()
    steps = {
        u.step: u.total_loss for u in map(parser.feed, log.splitlines()) if u and u.total_loss is not None
    }
    assert sorted(steps) == [100, 200, 300]
    assert steps[300] == pytest.approx(losses[300], rel=1e-4)  # the bar shows what TensorBoard shows
    # stderr is a pipe here: no progress bar (Output.progress draws one on terminals only)
    assert "train: loss" not in trained_model_dir.stderr and "training " in trained_model_dir.stderr


def test_crash_exits_1_with_the_error_and_a_doctor_hint(
    tmp_path: Path, synthetic_dataset: Any, run_tfod: Any
) -> None:
    config = render_template(
        "tiny-ssd",
        label_map=synthetic_dataset.label_map,
        train_records=synthetic_dataset.train_record,
        eval_records=synthetic_dataset.eval_record,
    )
    config.model.ssd.feature_extractor.type = "ssd_no_such_net"  # passes the input checks, fails in the API
    pipeline = save_pipeline(config, tmp_path / "pipeline.config")
    proc = run_tfod(
        ["train", "--pipeline", str(pipeline), "--model-dir", str(tmp_path / "m"), "--num-steps", "100"]
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "training failed" in proc.stderr and "tfod doctor" in proc.stderr
    assert "ssd_no_such_net" in proc.stderr, proc.stderr[-3000:]
    assert str(tmp_path / "m" / "logs" / "train.log") in proc.stderr


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the child")
def test_ctrl_c_stops_the_child_cleanly(tmp_path: Path, synthetic_dataset: Any) -> None:
    pipeline = save_pipeline(
        render_template(
            "tiny-ssd",
            label_map=synthetic_dataset.label_map,
            train_records=synthetic_dataset.train_record,
            eval_records=synthetic_dataset.eval_record,
        ),
        tmp_path / "pipeline.config",
    )
    model_dir = tmp_path / "interrupted_model"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfod_tools",
            "train",
            "--pipeline",
            str(pipeline),
            "--model-dir",
            str(model_dir),
            "--num-steps",
            "100000",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    log = model_dir / "logs" / "train.log"
    deadline = time.monotonic() + 300
    while not (log.exists() and "tfod compat:" in log.read_text()):
        assert parent.poll() is None, parent.communicate()
        assert time.monotonic() < deadline, "the training child never started"
        time.sleep(0.5)
    children = [pid for pid in _processes_mentioning(f"--model_dir={model_dir}") if pid != parent.pid]
    assert children, "no training child found"
    parent.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, err[-3000:]
    result = json.loads(out)
    assert result["interrupted"] is True and result["ok"] is False
    assert "stopped" in err
    assert _processes_mentioning(f"--model_dir={model_dir}") == []
