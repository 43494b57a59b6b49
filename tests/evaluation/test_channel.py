"""The evaluator's record channel: records survive the trip, a bad line is reported, never dropped.

The pipe, the writer and the reader are the real ones; the child is a real process (no TensorFlow)
started as the continuous evaluator is (:class:`ContinuousEvaluator`, ``pass_fds``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tfod_tools.evaluation.channel import (
    Evaluated,
    EvaluationFailed,
    EvaluationSkipped,
    MalformedRecord,
    Record,
    RecordReader,
    RecordWriter,
    decode_record,
    encode_record,
    with_records,
)
from tfod_tools.evaluation.continuous import ContinuousEvaluator
from tfod_tools.evaluation.runner import EvalEvents, Skipped
from tfod_tools.ledger import Evaluation
from tfod_tools.odapi.runner import child_environment

RECORDS: list[Record] = [
    Evaluated(0, "ckpt-1", {"DetectionBoxes_Precision/mAP": 0.0, "Loss/total_loss": 3.25}, 21.5),
    Evaluated(100, "ckpt-2", {"DetectionBoxes_Precision/mAP": 0.125}, None),
    Evaluated(200, "ckpt-3", {}, 0.0),
    EvaluationSkipped("ckpt-1", 0, "already evaluated at step 0 (--force re-evaluates)"),
    EvaluationFailed("ckpt-4", None, "missing ckpt-4.data-00000-of-00001"),
    EvaluationFailed("ckpt-5", 400, 'restore failed: "ünïcode" and\nnewline'),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r.KIND}-{r.checkpoint}")
def test_every_record_round_trips(record: Record) -> None:
    line = encode_record(record)
    assert "\n" not in line
    assert decode_record(line) == record


def test_non_finite_metrics_and_integer_values_round_trip() -> None:
    line = encode_record(Evaluated(300, "ckpt-4", {"nan": math.nan, "inf": math.inf, "one": 1.0}, 2.0))
    decoded = decode_record(line.replace('"one": 1.0', '"one": 1'))  # an integer is a number too
    assert isinstance(decoded, Evaluated)
    assert math.isnan(decoded.metrics["nan"]) and decoded.metrics["inf"] == math.inf
    assert decoded.metrics["one"] == 1.0 and isinstance(decoded.metrics["one"], float)


GOOD = json.loads(encode_record(RECORDS[0]))
DROP = object()


def _changed(**fields: object) -> str:
    data = {**GOOD, **fields}
    return json.dumps({k: v for k, v in data.items() if v is not DROP})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "not JSON: Expecting value"),
        (encode_record(RECORDS[0])[:-9], "not JSON: "),
        ("evaluated ckpt-3 (step 200): mAP 0.1234", "not JSON: "),  # the human line is not a record
        ("[1, 2]", "not a JSON object"),
        (_changed(v=2), "version 2, expected 1"),
        (_changed(v=DROP), "version None, expected 1"),
        (_changed(kind="started"), "unknown kind 'started'"),
        (_changed(step=DROP), "missing field 'step'"),
        (_changed(extra=1), "unexpected field 'extra'"),
        (_changed(step="200"), "field 'step' is not an integer"),
        (_changed(step=True), "field 'step' is not an integer"),
        (_changed(checkpoint=3), "field 'checkpoint' is not a string"),
        (_changed(metrics={"mAP": "0.5"}), "field 'metrics' is not an object of numbers"),
        (_changed(metrics=[0.5]), "field 'metrics' is not an object of numbers"),
        (_changed(seconds="fast"), "field 'seconds' is not a number"),
    ],
)
def test_a_malformed_line_is_reported_with_why(text: str, problem: str) -> None:
    decoded = decode_record(text)
    assert isinstance(decoded, MalformedRecord)
    assert decoded.text == text and decoded.problem.startswith(problem), decoded.problem
    assert problem.split(":")[0] in decoded.describe()


CHILD = textwrap.dedent(
    """
    import os, sys
    from tfod_tools.evaluation.channel import *
    fd = int(sys.argv[sys.argv.index("--events-fd") + 1])
    print("evaluated ckpt-1 (step 0): mAP 0.0000", flush=True)  # the human line, for the log only
    writer = RecordWriter.open_fd(fd)
    writer.write(Evaluated(0, "ckpt-1", {"DetectionBoxes_Precision/mAP": 0.0}, 1.5))
    os.write(fd, b"not a record\\n")
    os.write(fd, b"\\xff\\xfe\\n")
    writer.write(EvaluationFailed("ckpt-2", 100, "restore failed"))
    os.write(fd, b'{"v": 1, "kind": "evaluated", "step": 2')  # killed mid-line
    os._exit(int(sys.argv[1]))
    """
)


def _evaluator(tmp_path: Path, seen: list[object], exit_code: int = 0) -> ContinuousEvaluator:
    argv = [sys.executable, "-c", CHILD, str(exit_code)]
    return ContinuousEvaluator(argv, tmp_path / "eval.log", env=child_environment(), on_record=seen.append)


def test_a_child_s_records_arrive_in_order_and_every_bad_line_is_reported(tmp_path: Path) -> None:
    seen: list[object] = []
    result = _evaluator(tmp_path, seen, exit_code=3).start().wait(timeout=60)
    assert result.returncode == 3
    assert seen[0] == Evaluated(0, "ckpt-1", {"DetectionBoxes_Precision/mAP": 0.0}, 1.5)
    assert isinstance(seen[1], MalformedRecord) and seen[1].text == "not a record"
    assert isinstance(seen[2], MalformedRecord) and seen[2].problem.startswith("not UTF-8")
    assert seen[3] == EvaluationFailed("ckpt-2", 100, "restore failed")
    assert isinstance(seen[4], MalformedRecord)
    assert seen[4].problem == "cut off (no newline at the end of the stream)"
    assert len(seen) == 5
    # The human output stays in the log, untouched; no record lands there.
    assert (tmp_path / "eval.log").read_text() == "evaluated ckpt-1 (step 0): mAP 0.0000\n"


def test_an_error_in_the_record_callback_is_raised_by_wait(tmp_path: Path) -> None:
    def fail(record: object) -> None:
        raise RuntimeError(f"consumer broke on {type(record).__name__}")

    evaluator = ContinuousEvaluator(
        [sys.executable, "-c", CHILD, "0"], tmp_path / "eval.log", env=child_environment(), on_record=fail
    )
    with pytest.raises(RuntimeError, match="consumer broke on Evaluated"):
        evaluator.run()
    assert evaluator.poll() == 0


def test_without_on_record_no_descriptor_is_passed(tmp_path: Path) -> None:
    evaluator = ContinuousEvaluator(["true"], tmp_path / "eval.log", env=child_environment())
    assert "--events-fd" not in evaluator.argv and evaluator.pass_fds == ()
    assert evaluator.run().returncode == 0


def test_with_records_keeps_the_human_callbacks_and_writes_each_outcome() -> None:
    human: list[str] = []
    seen: list[object] = []
    reader = RecordReader(seen.append)
    writer = RecordWriter(os.dup(reader.write_fd))
    reader.start()
    events = with_records(
        EvalEvents(on_done=lambda e: human.append(e.checkpoint), on_note=human.append), writer
    )
    assert events.on_done is not None and events.on_skip is not None and events.on_note is not None
    events.on_done(Evaluation(100, "ckpt-2", "hash", {"DetectionBoxes_Precision/mAP": 0.5}, duration_s=3.0))
    events.on_skip(Skipped("ckpt-2", "already evaluated at step 100", 100, up_to_date=True))
    events.on_skip(Skipped("ckpt-3", "missing ckpt-3.index"))  # no human on_skip: still recorded
    events.on_note("a note")
    writer.close()
    assert reader.join()
    assert human == ["ckpt-2", "a note"]
    assert seen == [
        Evaluated(100, "ckpt-2", {"DetectionBoxes_Precision/mAP": 0.5}, 3.0),
        EvaluationSkipped("ckpt-2", 100, "already evaluated at step 100"),
        EvaluationFailed("ckpt-3", None, "missing ckpt-3.index"),
    ]


@pytest.mark.parametrize("fd", ["999", "0"])
def test_tfod_evaluate_refuses_a_descriptor_it_cannot_write(
    fd: str, tmp_path: Path, run_tfod: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    args = ["evaluate", "--pipeline", str(tmp_path / "p.config"), "--model-dir", str(tmp_path / "m")]
    (tmp_path / "stdin").write_bytes(b"")
    with open(tmp_path / "stdin", "rb") as stdin:  # fd 0 open, but for reading only
        proc = run_tfod([*args, "--follow", "--events-fd", fd], timeout=120, stdin=stdin)
    assert proc.returncode == 2, proc.stderr
    assert f"--events-fd {fd} is not an open file descriptor" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
