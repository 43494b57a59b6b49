"""Continuous evaluation beside training: every checkpoint evaluated, none lost, no idle wait.

Training keeps only 1 checkpoint (``CheckpointManager(max_to_keep=1)``), and each evaluation is
made slower than checkpointing with the evaluator's test-only knob ``TFOD_EVAL_TEST_DELAY_S``
(seconds slept per checkpoint). The evaluator is started exactly as ``tfod train --eval
continuous`` starts it (:func:`start_continuous_evaluator`), beside a real training process.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.evaluation.channel import Evaluated
from tfod_tools.evaluation.continuous import finish_continuous_evaluator, start_continuous_evaluator
from tfod_tools.ledger import Ledger
from tfod_tools.odapi.evaluator import DELAY_ENV
from tfod_tools.odapi.pipeline import render_template, save_pipeline
from tfod_tools.odapi.runner import SupervisedProcess, child_environment
from tfod_tools.odapi.training import model_main_argv

pytestmark = pytest.mark.slow

DELAY_S = 20.0
STEPS = 300


def _sorted_json(record: Evaluated) -> str:
    return json.dumps(dataclasses.asdict(record), sort_keys=True)


def test_every_checkpoint_evaluated_although_max_to_keep_is_1(
    tmp_path: Path, synthetic_dataset: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = save_pipeline(
        render_template(
            "tiny-ssd",
            label_map=synthetic_dataset.label_map,
            train_records=synthetic_dataset.train_record,
            eval_records=synthetic_dataset.eval_record,
            num_steps=STEPS,
            batch_size=2,
        ),
        tmp_path / "pipeline.config",
    )
    model_dir = tmp_path / "model"
    flags = model_main_argv(pipeline, model_dir, num_steps=STEPS, checkpoint_every=100)[3:]
    trainer = SupervisedProcess(
        [sys.executable, str(Path(__file__).with_name("train_keep.py")), "1", *flags],
        tmp_path / "train.log",
        name="train",
        env=child_environment(),
    ).start()
    monkeypatch.setenv(DELAY_ENV, str(DELAY_S))
    records: list[object] = []
    evaluator = start_continuous_evaluator(
        pipeline, model_dir, final_step=STEPS, train_pid=trainer.pid, device="cpu", on_record=records.append
    )
    try:
        trained = trainer.wait(timeout=900)
        assert trained.returncode == 0, "\n".join(trained.tail[-30:])
        finished = finish_continuous_evaluator(evaluator)  # it must end by itself
    finally:
        for process in (trainer, evaluator):
            if process.poll() is None:
                process.stop(grace_s=5)
    log = finished.log_path.read_text()
    assert finished.result.returncode == 0 and not finished.result.interrupted, log[-3000:]

    # The manager deleted every checkpoint but the last ...
    assert sorted(p.name for p in model_dir.glob("ckpt-*.index")) == ["ckpt-4.index"]
    # ... and yet every one was evaluated, in order, once, each slower than checkpointing.
    with Ledger.open(model_dir, readonly=True) as ledger:
        rows = ledger.evaluations()
        assert [(r.step, r.checkpoint, r.status) for r in rows] == [
            (0, "ckpt-1", "ok"),
            (100, "ckpt-2", "ok"),
            (200, "ckpt-3", "ok"),
            (300, "ckpt-4", "ok"),
        ]
        assert all(r.duration_s is not None and r.duration_s >= DELAY_S for r in rows)
        best = ledger.best()
        assert best is not None and [k.checkpoint for k in ledger.kept()] == [best.checkpoint]
    # The evaluator reported each checkpoint on its record channel, as the ledger holds it
    # (compared as sorted JSON: the ledger's tag order is its own, and a NaN is not equal to itself).
    expected = [Evaluated(r.step, r.checkpoint, dict(r.metrics), r.duration_s) for r in rows]
    evaluated = [r for r in records if isinstance(r, Evaluated)]
    assert len(evaluated) == len(records), records
    assert [_sorted_json(r) for r in evaluated] == [_sorted_json(r) for r in expected]
    report = json.loads(log[log.rindex("\n{\n") :])  # the evaluator's --json document
    assert [e["step"] for e in report["evaluated"]] == [0, 100, 200, 300]
    assert report["skipped"] == []
    # The best checkpoint survives the manager's deletion; nothing else stays linked.
    assert {p.name.split(".")[0] for p in (model_dir / "eval" / "best").iterdir()} == {best.checkpoint}
    assert not list((model_dir / "eval" / "protected").iterdir())
