"""The eval run is rebuilt from the ledger: one point per step, and a killed run is caught up."""

from __future__ import annotations

from pathlib import Path

from tfod_tools.evaluation.events import refresh_eval_run, rewrite_eval_run
from tfod_tools.ledger import Evaluation, Ledger
from tfod_tools.tensorboard.reader import read_scalars
from tfod_tools.tensorboard.writer import EventWriter, owned_event_files

MAP = "DetectionBoxes_Precision/mAP"


def _row(step: int, value: float) -> Evaluation:
    return Evaluation(
        step, f"ckpt-{step // 100 + 1}", f"h{step}", {MAP: value, "Loss/total_loss": 1.0 / (step + 1)}
    )


def test_killed_between_ledger_and_rewrite_is_caught_up(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "eval", marker=None) as stock:  # model_main_tf2's own file: never touched
        stock.add_scalar(MAP, 0.125, 100)
    stock_file = stock.path
    with Ledger.open(tmp_path) as ledger:
        ledger.record(_row(100, 0.25))
        rewrite_eval_run(tmp_path, ledger.evaluations())
        assert refresh_eval_run(tmp_path, ledger.evaluations()) is None  # up to date: nothing written
        ledger.record(_row(200, 0.5))  # ... and the process dies before rewriting the run
        assert refresh_eval_run(tmp_path, ledger.evaluations()) is not None
        assert refresh_eval_run(tmp_path, ledger.evaluations()) is None  # caught up
        ledger.record(_row(100, 0.75))  # --force at step 100, killed before the rewrite
        assert refresh_eval_run(tmp_path, ledger.evaluations()) is not None
    ours = [p for p in read_scalars(tmp_path / "eval") if p.tag == MAP]
    assert len(owned_event_files(tmp_path / "eval")) == 1
    assert stock_file.exists()
    assert {p.step: p.value for p in ours} == {100: 0.75, 200: 0.5}
