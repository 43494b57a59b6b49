"""Bad input fails before any inference, with one line and exit 2; selection errors too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.records import write_image_records
from tfod_tools.data.synthetic import write_synthetic_dataset
from tfod_tools.odapi.label_map import write_label_map
from tfod_tools.odapi.pipeline import render_template, save_pipeline


def _pipeline(tmp_path: Path, *, eval_records: Path | None = None, label_map: Path | None = None) -> Path:
    data = write_synthetic_dataset(tmp_path / "data", "shapes", train_images=2, eval_images=2, seed=1)
    config = render_template(
        "tiny-ssd",
        label_map=label_map or data.label_map,
        train_records=data.train_record,
        eval_records=eval_records or data.eval_record,
    )
    return save_pipeline(config, tmp_path / "pipeline.config")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["evaluate", *args])
    return code, capsys.readouterr().err


def test_empty_eval_records_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.record"
    write_image_records(empty, [])
    pipeline = _pipeline(tmp_path, eval_records=empty)
    code, err = _run(capsys, "--pipeline", str(pipeline), "--model-dir", str(tmp_path / "model"))
    assert code == 2
    assert "hold no image" in err and "empty.record" in err
    assert not (tmp_path / "model" / "eval").exists()  # nothing started, nothing written


def test_label_map_disagreeing_with_num_classes_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three = write_label_map(tmp_path / "three.pbtxt", {1: "square", 2: "triangle", 3: "circle"})
    pipeline = _pipeline(tmp_path)
    text = pipeline.read_text().replace(str((tmp_path / "data" / "label_map.pbtxt").resolve()), str(three))
    pipeline.write_text(text)
    code, err = _run(capsys, "--pipeline", str(pipeline), "--model-dir", str(tmp_path / "model"))
    assert code == 2
    assert "num_classes is 2" in err and "3 classes" in err


def test_bad_selection_and_metrics_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = _pipeline(tmp_path)
    base = ["--pipeline", str(pipeline), "--model-dir", str(tmp_path)]
    assert _run(capsys, *base, "--checkpoints", "first")[0] == 2
    code, err = _run(capsys, *base, "--metrics", "lvis")
    assert code == 2 and "lvis" in err


def test_missing_model_dir_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--pipeline", str(_pipeline(tmp_path)), "--model-dir", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err


def test_train_rejects_unknown_eval_options_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _pipeline(tmp_path)
    base = ["train", "--pipeline", str(pipeline), "--model-dir", str(tmp_path / "model")]
    assert main([*base, "--eval", "sometimes"]) == 2  # a usage error: Typer lists the choices
    err = capsys.readouterr().err
    assert "'sometimes'" in err and "none" in err and "continuous" in err
    assert main([*base, "--eval", "continuous", "--eval-device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "'tpu'" in err and "cpu" in err and "auto" in err
    assert not (tmp_path / "model").exists()


def test_model_dir_without_checkpoints_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _pipeline(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    code, err = _run(capsys, "--pipeline", str(pipeline), "--model-dir", str(model))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(model) in lines[0] and "no checkpoint" in lines[0] and "fix: pass the --model-dir" in lines[0]
    assert list(model.iterdir()) == []  # no eval/, no logs/


def test_state_file_naming_deleted_checkpoints_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-3"\n', encoding="utf-8"
    )
    code, err = _run(capsys, "--pipeline", str(_pipeline(tmp_path)), "--model-dir", str(model))
    assert code == 2
    assert "no checkpoint" in err and "lists ckpt-3 but their files are gone" in err
    assert sorted(p.name for p in model.iterdir()) == ["checkpoint"]


def _broken_checkpoint(model: Path) -> None:
    """``ckpt-2`` with a truncated index and no data shard (no TensorFlow needed to see it)."""
    model.mkdir(exist_ok=True)
    (model / "ckpt-2.index").write_bytes(b"cut")


def test_every_checkpoint_skipped_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    _broken_checkpoint(model)
    code, err = _run(capsys, "--pipeline", str(_pipeline(tmp_path)), "--model-dir", str(model))
    assert code == 1
    assert "skipped ckpt-2: truncated index file ckpt-2.index" in err
    assert "error: none of the 1 requested checkpoints could be evaluated" in err
    assert (model / "ckpt-2.index").read_bytes() == b"cut"  # user data untouched


def test_requested_step_absent_exit_1_names_the_steps_on_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    _broken_checkpoint(model)
    pipeline = _pipeline(tmp_path)
    code, err = _run(capsys, "--pipeline", str(pipeline), "--model-dir", str(model), "--checkpoints", "500")
    assert code == 1
    assert "skipped step 500: no checkpoint at this step (steps on disk: none" in err
    assert "step unknown: ckpt-2: truncated index file ckpt-2.index" in err


@pytest.mark.slow
def test_latest_with_unrestorable_newest_names_both(
    model_copy: Path, trained_model_dir: Any, tfod_json: Callable[..., Any]
) -> None:
    (model_copy / "ckpt-4.data-00000-of-00001").unlink()  # a hard link: the shared model is untouched
    args = ["evaluate", "--pipeline", str(trained_model_dir.pipeline), "--model-dir", str(model_copy)]
    code, data, err = tfod_json([*args, "--checkpoints", "latest"])
    assert code == 0, err[-2000:]
    assert [(e["checkpoint"], e["step"]) for e in data["evaluated"]] == [("ckpt-3", 200)]
    expected = (
        "--checkpoints latest: evaluating ckpt-3 (step 200); the newer ckpt-4 on disk cannot be restored: "
        "missing ckpt-4.data-00000-of-00001"
    )
    assert data["warnings"] == [expected]
    assert f"warning: {expected}" in " ".join(err.split())
