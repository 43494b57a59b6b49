"""``tfod train`` argument handling: flags after ``--`` reach model_main_tf2 unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.odapi import training


def test_extra_flags_after_double_dash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_train(pipeline: Path, model_dir: Path, **kwargs: Any) -> training.TrainResult:
        seen.update(kwargs, pipeline=pipeline, model_dir=model_dir)
        return training.TrainResult(
            model_dir=model_dir,
            log_path=model_dir / "logs" / "train.log",
            returncode=0,
            interrupted=False,
            elapsed_s=1.0,
            target_steps=200,
            progress=None,
        )

    monkeypatch.setattr(training, "train", fake_train)
    code = main(
        [
            "train",
            "--pipeline",
            "p.config",
            "--model-dir",
            str(tmp_path / "m"),
            "--num-steps",
            "150",
            "--checkpoint-every",
            "50",
            "--",
            "--num_workers=1",
            "--record_summaries=false",
        ]
    )
    assert code == 0
    assert seen["extra_flags"] == ["--num_workers=1", "--record_summaries=false"]
    assert (seen["num_steps"], seen["checkpoint_every"]) == (150, 50)


def test_model_main_argv_passes_the_stock_flags(tmp_path: Path) -> None:
    argv = training.model_main_argv(tmp_path / "p.config", tmp_path / "m", num_steps=150, checkpoint_every=50)
    assert argv[1:3] == ["-m", "tfod_tools.odapi.model_main"]
    assert argv[3:] == [
        f"--pipeline_config_path={tmp_path / 'p.config'}",
        f"--model_dir={tmp_path / 'm'}",
        "--num_train_steps=150",
        "--checkpoint_every_n=50",
        "--tfod_save_final_step",  # ours: model_main strips it before absl parses the flags
    ]
    assert training.effective_steps(150) == 200


def test_failed_result_exits_1_with_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(pipeline: Path, model_dir: Path, **kwargs: Any) -> training.TrainResult:
        return training.TrainResult(
            model_dir=model_dir,
            log_path=model_dir / "logs" / "train.log",
            returncode=1,
            interrupted=False,
            elapsed_s=1.0,
            target_steps=100,
            progress=None,
            error_lines=['File "x.py", line 1, in f', "ValueError: Unknown ssd feature_extractor: nope"],
        )

    monkeypatch.setattr(training, "train", failing)
    code = main(["train", "--pipeline", "p.config", "--model-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1
    assert "ValueError: Unknown ssd feature_extractor: nope" in err and "tfod doctor" in err
