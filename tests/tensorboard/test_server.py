"""A real TensorBoard server over our files: one point per step after a re-evaluation rewrite."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.tensorboard.layout import odapi_layout
from tfod_tools.tensorboard.pr_curves import compute_pr_curve
from tfod_tools.tensorboard.reader import PRCurvePoint, ScalarPoint, read_scalars
from tfod_tools.tensorboard.writer import EventWriter, write_scalars_file

MAP = "DetectionBoxes_Precision/mAP"
WAIT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, route: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{route}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _server_env(workdir: Path) -> dict[str, str]:
    del workdir
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@contextmanager
def tensorboard(logdir: Path, load_fast: str) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    """A ``tensorboard`` server on 127.0.0.1 (its own process group, always killed)."""
    port = _free_port()
    binary = Path(sys.executable).with_name("tensorboard")
    log = logdir.parent / f"tensorboard-{load_fast}.log"
    env = _server_env(logdir.parent)
    command = [str(binary), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--reload_interval", "1", "--load_fast", load_fast]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield port, log, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _wait_for(
    fetch: Callable[[], Any], done: Callable[[Any], bool], log: Path, proc: subprocess.Popen[bytes]
) -> Any:
    """Poll ``fetch`` until ``done`` (bounded by WAIT_S); return the last result."""
    deadline = time.monotonic() + WAIT_S
    last: Any = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            last = fetch()
            if done(last):
                return last
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError, TimeoutError):
            pass
        time.sleep(0.5)
    tail = log.read_text()[-2000:]
    pytest.fail(f"TensorBoard did not serve the expected data; last: {last!r}; log: {tail}")


def _points(values: dict[int, float], wall: float) -> list[ScalarPoint]:
    return [ScalarPoint("eval", MAP, step, value, wall + step) for step, value in values.items()]


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_one_point_per_step_after_re_evaluation(tmp_path: Path, load_fast: str) -> None:
    model_dir = tmp_path / "model"
    with EventWriter(model_dir / "train", marker=None) as train:  # like model_main_tf2's train run
        for step in (100, 200, 300, 400):
            train.add_scalar("Loss/total_loss", 1.0 / step, step)
    first_eval = _points({100: 0.1, 200: 0.2, 300: 0.3}, 1000.0)
    write_scalars_file(model_dir / "eval", first_eval, layout=odapi_layout())

    with tensorboard(model_dir, load_fast) as (port, log, proc):

        def scalars() -> list[list[float]]:
            result: list[list[float]] = _get(port, "/data/plugin/scalars/scalars", run="eval", tag=MAP)
            return result

        first = _wait_for(scalars, lambda rows: len(rows) == 3, log, proc)
        assert [int(r[1]) for r in first] == [100, 200, 300]

        # An evaluator killed mid-rewrite leaves a partial temp file; TensorBoard must ignore it.
        (model_dir / "eval" / ".tfod-rewrite-killed.tmp").write_bytes(b"\x10\x00\x00")
        # `--force` re-evaluation of step 200, then a new checkpoint at step 400: rewrite the run.
        curve = compute_pr_curve([True, False, True, False], [0.9, 0.7, 0.4, 0.2], num_thresholds=5)
        write_scalars_file(
            model_dir / "eval",
            _points({100: 0.1, 200: 0.875, 300: 0.3, 400: 0.4}, 2000.0),
            pr_curves=[PRCurvePoint("eval", "pr/all", 400, 2400.0, curve)],
            layout=odapi_layout(),
        )
        rows = _wait_for(scalars, lambda rows: len(rows) >= 4 and rows[1][2] == 0.875, log, proc)
        steps = [int(r[1]) for r in rows]
        assert steps == [100, 200, 300, 400]  # exactly one point per step
        assert [r[2] for r in rows] == pytest.approx([0.1, 0.875, 0.3, 0.4], rel=1e-6)
        # Our reader agrees with the server.
        ours = [(p.step, p.value) for p in read_scalars(model_dir) if p.run == "eval" and p.tag == MAP]
        assert [s for s, _ in ours] == steps

        pr = _wait_for(
            lambda: _get(port, "/data/plugin/pr_curves/pr_curves", run="eval", tag="pr/all"),
            lambda data: bool(data.get("eval")),
            log,
            proc,
        )
        (entry,) = pr["eval"]
        assert entry["step"] == 400
        # The plugin trims the thresholds where nothing is predicted positive (TP + FP = 0).
        shown = int(((curve.tp + curve.fp) > 0).nonzero()[0].max()) + 1
        assert entry["true_positives"] == curve.tp[:shown].astype(int).tolist()
        assert entry["precision"] == pytest.approx(curve.precision[:shown].tolist(), rel=1e-6)
        assert entry["recall"] == pytest.approx(curve.recall[:shown].tolist(), rel=1e-6)

        layout = _wait_for(lambda: _get(port, "/data/plugin/custom_scalars/layout"), bool, log, proc)
        assert [c["title"] for c in layout["category"]][:3] == [c.title for c in odapi_layout().category]

        train = _get(port, "/data/plugin/scalars/scalars", run="train", tag="Loss/total_loss")
        assert [int(r[1]) for r in train] == [100, 200, 300, 400]
