"""The SQLite evaluation ledger: upsert semantics, concurrency, crash safety, best()."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfod_tools.errors import TfodError
from tfod_tools.ledger import (
    LEDGER_FILENAME,
    SCHEMA_VERSION,
    Evaluation,
    Ledger,
    checkpoint_content_hash,
)

MAP = "DetectionBoxes_Precision/mAP"
AR = "DetectionBoxes_Recall/AR@100"


def _eval(step: int, map_: float) -> Evaluation:
    return Evaluation(step, f"ckpt-{step // 100}", f"hash-{step}", {MAP: map_, AR: map_ / 2})


def test_location_wal_and_schema_version(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.path == tmp_path / "eval" / LEDGER_FILENAME
        ledger.record(_eval(100, 0.1))
    db = sqlite3.connect(tmp_path / "eval" / LEDGER_FILENAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()


def test_record_round_trips_every_field(tmp_path: Path) -> None:
    original = Evaluation(
        step=1200,
        checkpoint="ckpt-13",
        content_hash="abc",
        metrics={MAP: 0.125, "DetectionBoxes_Precision/mAP (small)": -1.0, "undefined": math.nan},
        detections_path="eval/detections/ckpt-13.npz",
        protocols=("coco", "voc2012"),
        evaluated_at=1700000000.5,
        duration_s=3.25,
    )
    with Ledger.open(tmp_path) as ledger:
        assert ledger.record(original) is False
        (read,) = ledger.evaluations()
    assert math.isnan(read.metrics["undefined"])
    assert {k: v for k, v in read.metrics.items() if k != "undefined"} == {
        MAP: 0.125,
        "DetectionBoxes_Precision/mAP (small)": -1.0,
    }
    assert (read.step, read.checkpoint, read.content_hash, read.status) == (1200, "ckpt-13", "abc", "ok")
    assert (read.detections_path, read.protocols) == ("eval/detections/ckpt-13.npz", ("coco", "voc2012"))
    assert (read.evaluated_at, read.duration_s) == (1700000000.5, 3.25)
    assert read.to_dict()["metrics"][MAP] == 0.125


def test_force_re_evaluation_replaces_the_row_and_its_metrics(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.record(_eval(100, 0.1))
        ledger.record(_eval(200, 0.2))
        forced = Evaluation(100, "ckpt-1", "hash-100", {MAP: 0.3}, evaluated_at=time.time() + 5)
        assert ledger.record(forced) is True
        evaluations = ledger.evaluations()
        assert [e.step for e in evaluations] == [100, 200]  # exactly one row per step
        assert evaluations[0].metrics == {MAP: 0.3}  # the old AR value is gone with the old row
        rows = ledger._db.execute("SELECT COUNT(*) FROM metrics WHERE step = 100").fetchone()[0]
        assert rows == 1


def test_has_find_get_and_skipped_rows(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.record(_eval(100, 0.1))
        ledger.record(
            Evaluation(200, "ckpt-2", "hash-200", status="skipped", reason="checkpoint deleted first")
        )
        with pytest.raises(ValueError):
            ledger.record(Evaluation(300, "ckpt-3", "h", status="skipped"))
        assert ledger.has("hash-100") and ledger.has("hash-100", checkpoint="ckpt-1")
        assert not ledger.has("hash-100", checkpoint="ckpt-9")
        assert ledger.has("hash-200") and not ledger.has("hash-200", status="ok")
        assert not ledger.has("nope")
        assert [e.step for e in ledger.evaluations(status="ok")] == [100]
        skipped = ledger.get(200)
        assert skipped is not None and skipped.reason == "checkpoint deleted first"
        assert skipped.metrics == {}
        found = ledger.find("hash-100")
        assert found is not None and found.step == 100
        assert ledger.get(999) is None and ledger.find("nope") is None


def test_best_ignores_undefined_and_skipped(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.best() is None
        ledger.record(_eval(100, 0.4))
        ledger.record(_eval(200, 0.6))
        ledger.record(_eval(300, 0.6))  # a tie: the earlier step wins
        ledger.record(Evaluation(400, "ckpt-4", "h4", {MAP: math.nan}))
        ledger.record(Evaluation(500, "ckpt-5", "h5", {MAP: 0.9}, status="skipped", reason="partial"))
        ledger.record(Evaluation(600, "ckpt-6", "h6", {"Loss/total_loss": 0.5}))
        ledger.record(Evaluation(700, "ckpt-7", "h7", {"Loss/total_loss": 0.25}))
        best = ledger.best()
        assert best is not None and best.step == 200
        best_ar = ledger.best(AR)
        assert best_ar is not None and best_ar.step == 200
        lowest = ledger.best("Loss/total_loss", higher_is_better=False)
        assert lowest is not None and lowest.step == 700
        assert ledger.best("absent") is None


def test_kept_checkpoints(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.mark_kept("ckpt-3", step=300, reason="best mAP")
        ledger.mark_kept("ckpt-1", reason="latest")
        ledger.mark_kept("ckpt-3", step=300, reason="best AR")
        assert [(k.checkpoint, k.step, k.reason) for k in ledger.kept()] == [
            ("ckpt-1", None, "latest"),
            ("ckpt-3", 300, "best AR"),
        ]
        assert ledger.unmark_kept("ckpt-1") and not ledger.unmark_kept("ckpt-1")
        assert [k.checkpoint for k in ledger.kept()] == ["ckpt-3"]


def test_readonly_rules(tmp_path: Path) -> None:
    with pytest.raises(TfodError) as info:
        Ledger.open(tmp_path, readonly=True)
    assert LEDGER_FILENAME in str(info.value) and "tfod evaluate" in str(info.value)
    Ledger.open(tmp_path).close()
    with Ledger.open(tmp_path, readonly=True) as reader:
        assert reader.evaluations() == []
        with pytest.raises(TfodError):
            reader.record(_eval(100, 0.1))


def test_newer_schema_and_garbage_are_refused(tmp_path: Path) -> None:
    Ledger.open(tmp_path).close()
    db = sqlite3.connect(Ledger.path_for(tmp_path))
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(TfodError, match="upgrade tfod_tools"):
        Ledger.open(tmp_path)
    other = tmp_path / "other"
    Ledger.path_for(other).parent.mkdir(parents=True)
    Ledger.path_for(other).write_bytes(b"this is not a database" * 100)
    with pytest.raises(TfodError, match="not a usable tfod ledger"):
        Ledger.open(other)


_WRITER = """
import sys, time
from tfod_tools.ledger import Evaluation, Ledger
tags = [f"tag{i}" for i in range(12)]
with Ledger.open(sys.argv[1]) as ledger:
    for step in range(1, int(sys.argv[2]) + 1):
        metrics = {t: step + i for i, t in enumerate(tags)}
        ledger.record(Evaluation(step * 100, f"ckpt-{step}", f"h{step}", metrics))
        if step % 10 == 0:  # re-evaluate an earlier step (--force)
            ledger.record(Evaluation(100, "ckpt-1", "h1", {t: 1000.0 + i for i, t in enumerate(tags)}))
"""


def test_concurrent_reader_sees_whole_records_while_a_process_writes(tmp_path: Path) -> None:
    Ledger.open(tmp_path).close()
    total = 150
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(total)])
    snapshots = 0
    last_count = 0
    try:
        with Ledger.open(tmp_path, readonly=True, timeout_s=30) as reader:
            while True:
                done = writer.poll() is not None
                evaluations = reader.evaluations()
                steps = [e.step for e in evaluations]
                assert steps == sorted(set(steps))
                assert all(len(e.metrics) == 12 for e in evaluations)  # never a half-written record
                assert len(evaluations) >= last_count
                last_count = len(evaluations)
                snapshots += 1
                if done:
                    break
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(timeout=60)
    assert writer.returncode == 0
    print(f"reader took {snapshots} snapshots while the writer ran")
    assert last_count == total and snapshots >= 2
    with Ledger.open(tmp_path, readonly=True) as reader:
        first = reader.get(100)
        assert first is not None and first.metrics["tag0"] == 1000.0


_KILLED = """
import os, sys
from tfod_tools.ledger import Evaluation, Ledger

class DiesMidway(dict):
    def items(self):
        for n, item in enumerate(super().items()):
            if n == 3:
                os._exit(9)  # the process is killed mid-record
            yield item

with Ledger.open(sys.argv[1]) as ledger:
    ledger.record(Evaluation(100, "ckpt-1", "h1", DiesMidway({f"t{i}": 9.0 for i in range(6)})))
"""


def test_a_process_killed_mid_record_leaves_the_previous_row(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.record(Evaluation(100, "ckpt-1", "h1", {"t0": 0.5, "t1": 0.25}))
    result = subprocess.run([sys.executable, "-c", _KILLED, str(tmp_path)], timeout=60)
    assert result.returncode == 9
    with Ledger.open(tmp_path) as ledger:
        (row,) = ledger.evaluations()
        assert row.metrics == {"t0": 0.5, "t1": 0.25}


def test_checkpoint_content_hash(tmp_path: Path) -> None:
    (tmp_path / "ckpt-1.index").write_bytes(b"index")
    (tmp_path / "ckpt-1.data-00000-of-00002").write_bytes(b"shard0")
    (tmp_path / "ckpt-1.data-00001-of-00002").write_bytes(b"shard1")
    (tmp_path / "ckpt-10.index").write_bytes(b"other checkpoint")  # not part of ckpt-1
    first = checkpoint_content_hash(tmp_path / "ckpt-1")
    assert first == checkpoint_content_hash(str(tmp_path / "ckpt-1"))
    (tmp_path / "ckpt-1.data-00001-of-00002").write_bytes(b"shard1!")
    assert checkpoint_content_hash(tmp_path / "ckpt-1") != first
    with pytest.raises(TfodError, match="incomplete"):
        checkpoint_content_hash(tmp_path / "ckpt-10")
