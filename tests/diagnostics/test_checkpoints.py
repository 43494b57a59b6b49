"""Checkpoint steps read without TensorFlow; does the best checkpoint still exist?"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.errors import TfodError
from tfod_tools.ledger import Evaluation, Ledger
from tfod_tools.odapi.checkpoints import (
    checkpoint_keys,
    list_checkpoints,
    read_index,
    read_step,
    scan_checkpoints,
)


def _fake_checkpoint(prefix: Path) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_name(prefix.name + ".index").write_bytes(b"index")
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(b"data")


def test_best_checkpoint_found_through_the_ledger(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    for n in (4, 5, 6):
        _fake_checkpoint(tmp_path / f"ckpt-{n}")
    with Ledger.open(tmp_path) as ledger:
        for n, step in ((4, 3000), (5, 4000), (6, 5000)):
            ledger.record(Evaluation(step, f"ckpt-{n}", f"h{n}", {b.MAP: 0.5}))
    d = diagnose(tmp_path)
    assert d.best_checkpoint.exists and d.best_checkpoint.path == str(tmp_path / "ckpt-5")
    (finding,) = d.get("best_checkpoint")
    assert finding.severity == "info" and "ckpt-5" in finding.fix
    steps = {r[0]: r[1] for r in finding.evidence["checkpoints_on_disk"]["rows"]}
    assert steps == {"ckpt-4": 3000, "ckpt-5": 4000, "ckpt-6": 5000}


def test_best_checkpoint_kept_by_the_evaluator(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    _fake_checkpoint(tmp_path / "eval" / "best" / "ckpt-5")  # the manager deleted the top-level files
    _fake_checkpoint(tmp_path / "ckpt-6")
    with Ledger.open(tmp_path) as ledger:
        ledger.record(Evaluation(4000, "ckpt-5", "h5", {b.MAP: 0.837}))
        ledger.record(Evaluation(5000, "ckpt-6", "h6", {b.MAP: 0.81}))
        ledger.mark_kept("ckpt-5", reason="best mAP", step=4000)
    d = diagnose(tmp_path)
    assert d.best_checkpoint.exists
    assert d.best_checkpoint.path == str(tmp_path / "eval" / "best" / "ckpt-5")
    rows = {r[0]: r for r in d.get("best_checkpoint")[0].evidence["checkpoints_on_disk"]["rows"]}
    assert rows["ckpt-5"][2] == "kept by the evaluator"


def test_deleted_best_names_the_best_remaining(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    _fake_checkpoint(tmp_path / "ckpt-6")
    with Ledger.open(tmp_path) as ledger:
        ledger.record(Evaluation(5000, "ckpt-6", "h6", {b.MAP: 0.81}))
    d = diagnose(tmp_path)
    (finding,) = d.get("best_checkpoint")
    assert not d.best_checkpoint.exists and finding.severity == "warning"
    assert "step 5000" in finding.message and "no longer exists" in finding.message


def test_not_a_table_reads_as_no_step(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path / "ckpt-1")
    with pytest.raises(TfodError, match="unreadable checkpoint: not a checkpoint index"):
        read_step(tmp_path / "ckpt-1")
    with pytest.raises(ValueError):
        read_index(tmp_path / "ckpt-1.index")
    assert [(c.name, c.step, c.kept) for c in list_checkpoints(tmp_path)] == [("ckpt-1", None, False)]
    with pytest.raises(TfodError, match="unreadable checkpoint"):
        read_step(tmp_path / "ckpt-9")  # no files at all


def test_listed_checkpoints_carry_their_files_and_problems(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path / "ckpt-2")
    _fake_checkpoint(tmp_path / "eval" / "best" / "ckpt-1")
    (tmp_path / "eval" / "best" / "ckpt-1.data-00000-of-00001").unlink()
    listed = list_checkpoints(tmp_path, {"ckpt-1": 0})
    assert [(c.name, c.number, c.step, c.kept) for c in listed] == [
        ("ckpt-2", 2, None, False),
        ("ckpt-1", 1, 0, True),
    ]
    assert listed[0].files == tuple(sorted(tmp_path.glob("ckpt-2.*")))
    assert listed[1].problem is not None and "missing ckpt-1.data-00000-of-00001" in listed[1].problem
    assert [c.name for c in scan_checkpoints(tmp_path)] == ["ckpt-2"]  # the top level only


_MAKE = """
import sys, tensorflow as tf
step = tf.Variable(0, dtype=tf.int64)
ckpt = tf.train.Checkpoint(step=step, w=tf.Variable(tf.zeros([64, 64])), b=tf.Variable(tf.ones([3])))
manager = tf.train.CheckpointManager(ckpt, sys.argv[1], max_to_keep=2)
for s in (1000, 2000, 123456789012):
    step.assign(s)
    manager.save()
"""


@pytest.mark.slow
def test_steps_of_tensorflow_checkpoints(tmp_path: Path) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    subprocess.run([sys.executable, "-c", _MAKE, str(tmp_path)], check=True, env=env, timeout=300)
    found = {c.name: c.step for c in list_checkpoints(tmp_path)}
    assert found == {"ckpt-2": 2000, "ckpt-3": 123456789012}  # max_to_keep=2 deleted ckpt-1
    assert "step/.ATTRIBUTES/VARIABLE_VALUE" in read_index(tmp_path / "ckpt-3.index")
    assert [c.problem for c in scan_checkpoints(tmp_path)] == [None, None]
    # The same keys and steps as TensorFlow's own reader (in a child: this process stays TF-free).
    probe = (
        "import sys, json, tensorflow as tf\n"
        "out = {}\n"
        "for name in ('ckpt-2', 'ckpt-3'):\n"
        "    prefix = sys.argv[1] + '/' + name\n"
        "    out[name] = [sorted(k for k, _ in tf.train.list_variables(prefix)),\n"
        "                 int(tf.train.load_variable(prefix, 'step/.ATTRIBUTES/VARIABLE_VALUE'))]\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    expected = json.loads(run.stdout.strip().splitlines()[-1])
    ours = {name: [checkpoint_keys(tmp_path / name), read_step(tmp_path / name)] for name in expected}
    assert ours == expected


@pytest.mark.slow
def test_trained_model_dir(trained_model_dir: Any) -> None:
    """A model trained by ``tfod train``: checkpoint steps read TF-free, as the trainer wrote them."""
    model = trained_model_dir
    found = {c.name: c.step for c in list_checkpoints(model.model_dir) if not c.kept}
    assert found == {f"ckpt-{k + 1}": k * model.checkpoint_every for k in range(4)}
    d = diagnose(model.model_dir, pipeline=model.pipeline)
    assert "score_threshold_high" in d.ids()  # the template keeps 50 detections
    assert d.inputs.train_set is not None and d.inputs.eval_set is not None


@pytest.mark.slow
def test_a_step_whose_bytes_fail_their_crc_is_refused(trained_model_dir: Any, tmp_path: Path) -> None:
    """A copy of the last checkpoint with its step bytes changed: no wrong step, an error naming the file."""
    model = trained_model_dir
    name, step = "ckpt-4", 3 * model.checkpoint_every
    assert read_step(model.model_dir / name) == step
    for file in model.model_dir.glob(f"{name}.*"):
        shutil.copy(file, tmp_path / file.name)
    (data_file,) = tmp_path.glob(f"{name}.data-*")
    data = data_file.read_bytes()
    stored, changed = struct.pack("<q", step), struct.pack("<q", step + 1)
    assert stored in data  # the step (and the optimizer's iteration count): both changed
    data_file.write_bytes(data.replace(stored, changed))
    with pytest.raises(TfodError, match=f"{data_file.name}: the bytes of step/.* fail their CRC-32C check"):
        read_step(tmp_path / name)
    assert [(c.name, c.step) for c in list_checkpoints(tmp_path)] == [(name, None)]
    assert read_step(model.model_dir / name) == step  # the original is untouched
