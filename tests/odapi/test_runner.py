"""SupervisedProcess (log, callbacks, crash summary, clean stop) and the log parser."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from tfod_tools.odapi.runner import SupervisedProcess, child_environment
from tfod_tools.odapi.trainlog import TrainProgressParser, crash_summary


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_crash_is_summarised_from_the_traceback(tmp_path: Path) -> None:
    proc = SupervisedProcess(
        _child(
            """
            import sys
            print("I1121 starting", flush=True)
            def build():
                raise ValueError("ssd feature extractor 'nope' is not supported")
            build()
            """
        ),
        tmp_path / "logs" / "train.log",
        name="train",
    )
    result = proc.run()
    assert result.returncode == 1 and not result.ok and not result.interrupted
    lines = result.error_lines()
    assert lines[-1] == "ValueError: ssd feature extractor 'nope' is not supported"
    assert lines[0].startswith('File "<string>", line 5, in build')
    assert "Traceback (most recent call last):" in (tmp_path / "logs" / "train.log").read_text()


def _wait_for(proc: SupervisedProcess, marker: str) -> None:
    import threading

    seen = threading.Event()
    proc.callbacks.append(lambda line: seen.set() if marker in line else None)
    proc.start()
    assert seen.wait(60), "child never became ready"


def test_stop_sends_sigint_and_the_child_exits(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    proc = SupervisedProcess(
        _child(
            f"""
            import time
            try:
                print("ready", flush=True)
                time.sleep(600)
            except KeyboardInterrupt:
                open({str(marker)!r}, "w").write("bye")
                raise SystemExit(130)
            """
        ),
        tmp_path / "child.log",
    )
    _wait_for(proc, "ready")
    result = proc.stop(grace_s=30)
    assert result.interrupted and result.returncode == 130
    assert marker.read_text() == "bye"  # the child handled SIGINT itself (clean stop)
    assert proc.poll() == 130


def test_stop_escalates_when_sigint_is_ignored(tmp_path: Path) -> None:
    proc = SupervisedProcess(
        _child(
            """
            import signal, time
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("ready", flush=True)
            time.sleep(600)
            """
        ),
        tmp_path / "child.log",
    )
    _wait_for(proc, "ready")
    result = proc.stop(grace_s=0.5)
    assert result.interrupted and result.returncode == -15  # SIGTERM


def test_child_environment_keeps_logs_readable(monkeypatch: object) -> None:
    env = child_environment()
    assert env["TF_CPP_MIN_LOG_LEVEL"] == (os.environ.get("TF_CPP_MIN_LOG_LEVEL") or "2")
    assert env["PYTHONUNBUFFERED"] == "1"


def test_parser_reads_model_lib_v2_chunks() -> None:
    log = [
        "INFO:tensorflow:Step 100 per-step time 0.412s",
        "I1121 23:25:30.9 140 model_lib_v2.py:705] Step 100 per-step time 0.412s",
        "INFO:tensorflow:{'Loss/classification_loss': np.float32(0.50),",
        " 'Loss/localization_loss': np.float32(0.30),",
        " 'Loss/total_loss': np.float32(0.8199681),",
        " 'learning_rate': np.float32(0.001)}",
        "I1121 model_lib_v2.py:705] Step 200 per-step time 0.250s",
        "I1121 model_lib_v2.py:708] {'Loss/classification_loss': 0.2, 'Loss/total_loss': 0.41, "
        "'learning_rate': 0.001}",
    ]
    parser = TrainProgressParser()
    updates = [u for u in (parser.feed(line) for line in log) if u is not None]
    assert [(u.step, u.total_loss) for u in updates if u.total_loss is not None][-2:] == [
        (100, 0.8199681),
        (200, 0.41),
    ]
    assert parser.progress is not None and parser.progress.steps_per_s == 4.0
    assert parser.progress.learning_rate == 0.001


def test_crash_summary_without_traceback_keeps_the_last_meaningful_lines() -> None:
    lines = ["W1121 noise", "FATAL Flags parsing error: flag --num_train_steps=abc", "I1121 exiting"]
    assert crash_summary(lines) == ["FATAL Flags parsing error: flag --num_train_steps=abc"]


def test_crash_summary_of_a_tensorflow_data_error() -> None:
    # The tail of a real train.log: a training record file that is not a TFRecord.
    log = [
        "Traceback (most recent call last):",
        '  File "/venv/site-packages/tensorflow/python/eager/execute.py", line 53, in quick_execute',
        "    tensors = pywrap_tfe.TFE_Py_Execute(ctx._handle, device_name, op_name,",
        "  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "tensorflow.python.framework.errors_impl.DataLossError: Graph execution error:",
        "",
        "Detected at node MultiDeviceIteratorGetNextFromShard defined at (most recent call last):",
        "<stack traces unavailable>",
        "corrupted record at 0 (Is this even a TFRecord file?)",
        "\t [[{{node MultiDeviceIteratorGetNextFromShard}}]]",
        "\t [[RemoteCall]]",
        "I1121 23:41:40.1 1404 tfod exit",
    ]
    assert crash_summary(log) == [
        'File "/venv/site-packages/tensorflow/python/eager/execute.py", line 53, in quick_execute',
        "tensorflow.python.framework.errors_impl.DataLossError: Graph execution error:",
        "corrupted record at 0 (Is this even a TFRecord file?)",
    ]
