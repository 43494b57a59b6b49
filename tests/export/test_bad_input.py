"""``tfod export`` refusals: one line on stderr, exit 2, nothing written, the model directory untouched.

Each case runs the real CLI in-process (:func:`tfod_tools.cli.app.main`); every refusal comes from
the checks made before TensorFlow starts, so the cases take a moment each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.odapi.pipeline import load_pipeline, save_pipeline

pytestmark = pytest.mark.slow  # the cases need the session's trained model

ZOO = Path(__file__).resolve().parents[1] / "data" / "zoo"
FASTER_RCNN = ZOO / "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config"


def _tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file; SQLite's ``-shm`` left out, an empty ``-wal`` as none (by size only).

    Any reader of the ledger (a WAL database), read-only ones too, maps ``-shm`` and may create an
    empty ``-wal``; neither holds data until something is written.
    """
    state: dict[str, tuple[int, int]] = {}
    for p in sorted(directory.rglob("*")):
        if not p.is_file() or p.name.endswith("-shm"):
            continue
        size = p.stat().st_size
        if p.name.endswith("-wal"):
            if size:
                state[str(p.relative_to(directory))] = (size, 0)
            continue
        state[str(p.relative_to(directory))] = (size, p.stat().st_mtime_ns)
    return state


@pytest.fixture
def unevaluated(tmp_path: Path, trained_model_dir: Any) -> Path:
    """A hard-linked copy of the trained model directory without any ledger."""
    target = tmp_path / "model"
    shutil.copytree(
        trained_model_dir.model_dir,
        target,
        copy_function=os.link,
        ignore=shutil.ignore_patterns("eval", "logs"),
    )
    return target


def _refused(capsys: pytest.CaptureFixture[str], model_dir: Path, out: Path, args: list[str]) -> str:
    before = _tree(model_dir)
    out_before = _tree(out) if out.exists() else None
    code = main(["export", "--model-dir", str(model_dir), "--out", str(out), *args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert captured.out == ""
    assert _tree(model_dir) == before
    assert (_tree(out) if out.exists() else None) == out_before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temporary left
    return lines[0]


def test_refusals_exit_2_before_tensorflow(
    tmp_path: Path, unevaluated: Path, trained_model_dir: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = ["--pipeline", str(trained_model_dir.pipeline)]
    out = tmp_path / "export"
    message = _refused(capsys, unevaluated, out, pipeline)  # --checkpoint best is the default
    assert "needs the evaluation ledger" in message and "tfod evaluate" in message
    message = _refused(capsys, unevaluated, out, [*pipeline, "--checkpoint", "12345"])
    assert "no checkpoint at step 12345" in message and "0, 100, 200, 300" in message
    message = _refused(capsys, unevaluated, out, [*pipeline, "--checkpoint", "ckpt-4"])
    assert "--checkpoint must be best, latest or a global step" in message
    message = _refused(
        capsys,
        unevaluated,
        out,
        [*pipeline, "--checkpoint", "latest", "--format", "tflite", "--tflite-quantize", "int8"],
    )
    assert "int8 quantization needs representative images" in message
    message = _refused(
        capsys, unevaluated, out, [*pipeline, "--checkpoint", "latest", "--score-threshold", "1.5"]
    )
    assert "--score-threshold must be in [0, 1]" in message

    config = load_pipeline(trained_model_dir.pipeline)
    config.model.faster_rcnn.num_classes = 2  # the model becomes a Faster R-CNN: no TFLite exporter for it
    faster = save_pipeline(config, tmp_path / "faster_rcnn.config")
    message = _refused(
        capsys, unevaluated, out, ["--pipeline", str(faster), "--checkpoint", "latest", "--format", "tflite"]
    )
    assert "not faster_rcnn" in message and str(faster) in message

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    message = _refused(capsys, unevaluated, busy, [*pipeline, "--checkpoint", "latest"])
    assert "not empty and holds no export" in message
    message = _refused(capsys, unevaluated, unevaluated.parent, [*pipeline, "--checkpoint", "latest"])
    assert "would hold the model directory" in message


def test_tflite_of_a_zoo_faster_rcnn_is_refused_before_tensorflow(
    tmp_path: Path, unevaluated: Path, trained_model_dir: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The TF2 zoo's Faster R-CNN config, edited as the tutorials say (num_classes, the paths)."""
    config = load_pipeline(FASTER_RCNN)
    config.model.faster_rcnn.num_classes = 2
    readers = [(config.train_input_reader, trained_model_dir.train_record)]
    readers += [(reader, trained_model_dir.eval_record) for reader in config.eval_input_reader]
    for reader, records in readers:
        reader.label_map_path = str(trained_model_dir.label_map)
        reader.tf_record_input_reader.input_path[:] = [str(records)]
    faster = save_pipeline(config, tmp_path / "faster_rcnn.config")
    out = tmp_path / "export"
    for formats in ("tflite", "saved_model,tflite"):
        args = ["--pipeline", str(faster), "--checkpoint", "latest", "--format", formats]
        message = _refused(capsys, unevaluated, out, args)
        assert "the API's TFLite exporter takes the ssd and center_net" in message, message
        assert "not faster_rcnn" in message and str(faster) in message and "--format saved_model" in message
    # in a fresh process: refused before TensorFlow is imported at all
    probe = (
        "import json, sys; from tfod_tools.cli.app import main; "
        f"code = main({json.dumps(['export', '--model-dir', str(unevaluated), '--out', str(out), *args])}); "
        "print(json.dumps([code, 'tensorflow' in sys.modules]))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1")
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [2, False], proc.stderr[-2000:]
    assert not out.exists()


def test_an_existing_export_is_refused_without_force(
    exports: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    model = exports.model
    message = _refused(
        capsys,
        model.model_dir,
        exports.float_dir,
        ["--pipeline", str(model.pipeline), "--checkpoint", "best"],
    )
    assert "already holds an export" in message and "--force" in message


def test_a_failed_export_keeps_its_log_and_writes_nothing(
    tmp_path: Path, unevaluated: Path, trained_model_dir: Any, run_tfod: Any
) -> None:
    """TensorFlow failing mid-export (the checkpoint does not fit the edited pipeline's model)."""
    config = load_pipeline(trained_model_dir.pipeline)
    config.model.ssd.feature_extractor.depth_multiplier = 0.5  # trained at 0.35: other kernel shapes
    edited = save_pipeline(config, tmp_path / "edited.config")
    out = tmp_path / "export"
    before = _tree(unevaluated)
    proc = run_tfod(
        ["export", "--pipeline", str(edited), "--model-dir", str(unevaluated), "--out", str(out),
         "--checkpoint", "latest", "--json"],
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stdout == ""
    log = tmp_path / "export.failed.log"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: export failed while exporting the SavedModel (ValueError: ")
    assert last.endswith(f"); the log: {log}")
    assert "incompatible" in last and "restore" in last  # the restore's own reason, one line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.config", "export.failed.log", "model"]
    text = log.read_text()
    assert "tfod export --pipeline" in text.splitlines()[0]  # TensorFlow's output as export.log had it ...
    assert "Traceback (most recent call last)" in text and "incompatible" in text  # ... and the traceback
    assert _tree(unevaluated) == before
