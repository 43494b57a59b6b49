"""Input checks: every bad input makes ``tfod train`` exit 2 with one line, and nothing starts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tfod_tools.cli.app import main
from tfod_tools.odapi import checks
from tfod_tools.odapi import pipeline as pl

LABELS = "item { id: 1 name: 'square' }\nitem { id: 2 name: 'triangle' }\n"


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "train.record").write_bytes(b"x")
    (tmp_path / "eval.record").write_bytes(b"x")
    (tmp_path / "label_map.pbtxt").write_text(LABELS)
    config = pl.render_template(
        "tiny-ssd",
        label_map=tmp_path / "label_map.pbtxt",
        train_records=tmp_path / "train.record",
        eval_records=tmp_path / "eval.record",
    )
    pipeline = pl.save_pipeline(config, tmp_path / "pipeline.config")
    return {
        "dir": tmp_path,
        "pipeline": pipeline,
        "labels": tmp_path / "label_map.pbtxt",
        "model": tmp_path / "model",
    }


@pytest.fixture(autouse=True)
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def _edit(path: Path, change: Callable[[object], None]) -> None:
    config = pl.load_pipeline(path)
    change(config)
    pl.save_pipeline(config, path)


def _train(setup: dict[str, Path], capsys: pytest.CaptureFixture[str], model: Path | None = None) -> str:
    model_dir = model or setup["model"]
    code = main(
        ["train", "--pipeline", str(setup["pipeline"]), "--model-dir", str(model_dir), "--num-steps", "100"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not (model_dir / "logs").exists()
    return lines[0]


def test_inputs_pass(setup: dict[str, Path]) -> None:
    result = checks.check_inputs(setup["pipeline"], setup["model"])
    assert result.records == {
        "train": [str(setup["dir"] / "train.record")],
        "eval": [str(setup["dir"] / "eval.record")],
    }
    assert result.label_map.categories() == {1: "square", 2: "triangle"}
    assert not setup["model"].exists()


def test_pipeline_missing(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    setup["pipeline"] = setup["dir"] / "nope.config"
    line = _train(setup, capsys)
    assert "nope.config: pipeline config not found" in line


def test_pipeline_does_not_parse(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    setup["pipeline"].write_text(setup["pipeline"].read_text().replace("batch_size", "batch_sise"))
    line = _train(setup, capsys)
    assert f"{setup['pipeline']}: does not parse" in line and "batch_sise" in line


@pytest.mark.parametrize("role", ["train", "eval"])
def test_record_glob_matches_nothing(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], role: str
) -> None:
    os.remove(setup["dir"] / f"{role}.record")
    line = _train(setup, capsys)
    assert f"{setup['pipeline']}: {role}_input_reader input_path" in line and "matches no file" in line
    assert "(fix: " in line


def test_label_map_missing(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    setup["labels"].unlink()
    assert "label_map_path" in _train(setup, capsys) and "does not exist" in _train(setup, capsys)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("item { id: 0 name: 'bg' }\nitem { id: 1 name: 'a' }\n", "ids start at 1"),
        ("item { id: 1 name: 'a' }\nitem { id: 1 name: 'b' }\n", "duplicate id 1"),
        ("item { id: 1 name: 'a' }\nitem { id: 3 name: 'b' }\n", "are not 1..2"),
        ("item { id: 1 name: 'a' \n", "label_map.pbtxt"),
    ],
)
def test_bad_label_map(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    setup["labels"].write_text(text)
    line = _train(setup, capsys)
    assert str(setup["labels"]) in line and expected in line


def test_num_classes_differs_from_label_map(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(setup["pipeline"], lambda c: pl.set_num_classes(c, 3))
    line = _train(setup, capsys)
    assert "num_classes is 3 but the label map" in line and "set num_classes: 2" in line


def test_fine_tune_checkpoint_missing(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    def change(c: object) -> None:
        c.train_config.fine_tune_checkpoint = str(setup["dir"] / "ckpt-0")  # type: ignore[attr-defined]

    _edit(setup["pipeline"], change)
    assert "fine_tune_checkpoint" in _train(setup, capsys)


def test_model_dir_is_a_file(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    file = setup["dir"] / "afile"
    file.write_text("")
    assert f"{file}: model_dir is a file" in _train(setup, capsys, model=file)


def test_model_dir_not_writable_by_access(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    denied = {str(setup["dir"]), str(setup["dir"] / "existing")}
    real_access = os.access
    monkeypatch.setattr(
        checks.os, "access", lambda path, mode: str(path) not in denied and real_access(path, mode)
    )
    assert "model_dir cannot be created" in _train(setup, capsys, model=setup["dir"] / "new" / "model")
    (setup["dir"] / "existing").mkdir()
    with pytest.raises(checks.TfodError, match="existing: model_dir is not writable"):
        checks.check_model_dir(setup["dir"] / "existing")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_model_dir_not_writable(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    locked = setup["dir"] / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "cannot be created" in _train(setup, capsys, model=locked / "model")
    finally:
        locked.chmod(0o700)


def test_bad_step_arguments(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "--pipeline",
            str(setup["pipeline"]),
            "--model-dir",
            str(setup["model"]),
            "--num-steps",
            "0",
        ]
    )
    assert code == 2 and "--num-steps must be >= 1" in capsys.readouterr().err
