"""Bad input fails before any inference, with one line and exit 2; selection errors too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.label_map import write_label_map
from tfod_tools.data.records import write_image_records
from tfod_tools.data.synthetic import write_synthetic_dataset
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
    assert main([*base, "--eval", "sometimes"]) == 2
    assert "unknown --eval 'sometimes'" in capsys.readouterr().err
    assert main([*base, "--eval", "continuous", "--eval-device", "tpu"]) == 2
    assert "unknown --eval-device 'tpu'" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
