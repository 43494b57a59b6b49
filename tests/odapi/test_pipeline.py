"""Pipeline templates, rendering, load/save, and ``tfod pipeline``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfod_tools.cli.app import main
from tfod_tools.errors import TfodError
from tfod_tools.odapi import pipeline as pl


@pytest.mark.parametrize("name", sorted(pl.TEMPLATES))
def test_template_ships_as_package_data(name: str) -> None:
    config = pl.parse_pipeline_text(pl.template_text(name), name)
    assert config.model.WhichOneof("model") == "ssd"
    assert pl.PLACEHOLDER in config.train_input_reader.label_map_path


def test_tiny_ssd_template_is_the_cpu_model() -> None:
    config = pl.parse_pipeline_text(pl.template_text("tiny-ssd"))
    ssd = config.model.ssd
    assert ssd.feature_extractor.type == "ssd_mobilenet_v2_keras"
    assert ssd.feature_extractor.depth_multiplier == pytest.approx(0.35)
    assert (ssd.image_resizer.fixed_shape_resizer.height, ssd.image_resizer.fixed_shape_resizer.width) == (
        128,
        128,
    )
    assert config.train_config.batch_size == 8
    assert not config.train_config.fine_tune_checkpoint


def test_tiny_fpnlite_template_is_the_scaled_down_fpnlite() -> None:
    tiny = pl.parse_pipeline_text(pl.template_text("tiny-fpnlite")).model.ssd
    full = pl.parse_pipeline_text(pl.template_text("ssd-mobilenet-v2-fpnlite-320")).model.ssd
    assert tiny.feature_extractor.type == full.feature_extractor.type == "ssd_mobilenet_v2_fpn_keras"
    assert tiny.feature_extractor.use_depthwise and tiny.feature_extractor.fpn.min_level == 3
    assert tiny.image_resizer.fixed_shape_resizer.height == 128
    assert tiny.box_predictor.WhichOneof("box_predictor_oneof") == "weight_shared_convolutional_box_predictor"
    assert tiny.anchor_generator.WhichOneof("anchor_generator_oneof") == "multiscale_anchor_generator"
    config = pl.render_template(
        "tiny-fpnlite", label_map={1: "x"}, train_records="t", eval_records="e", num_steps=600
    )
    cosine = config.train_config.optimizer.adam_optimizer.learning_rate.cosine_decay_learning_rate
    assert (cosine.total_steps, cosine.warmup_steps) == (600, 60)
    assert not config.train_config.fine_tune_checkpoint


def test_render_fills_classes_paths_batch_and_steps(tmp_path: Path) -> None:
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'a' }\nitem { id: 2 name: 'b' }\nitem { id: 3 name: 'c' }\n")
    config = pl.render_template(
        "ssd-mobilenet-v2-fpnlite-320",
        label_map=label_map,
        train_records=tmp_path / "train-*.record",
        eval_records="relative/eval.record",
        batch_size=4,
        num_steps=1000,
    )
    assert pl.num_classes(config) == 3
    assert config.train_config.batch_size == 4 and config.train_config.num_steps == 1000
    cosine = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert cosine.total_steps == 1000 and cosine.warmup_steps <= 100
    assert not config.train_config.fine_tune_checkpoint  # placeholder cleared: trains from scratch
    assert list(config.train_input_reader.tf_record_input_reader.input_path) == [
        str(tmp_path / "train-*.record")
    ]
    assert config.eval_input_reader[0].tf_record_input_reader.input_path[0] == str(
        Path.cwd() / "relative/eval.record"
    )
    for _, reader in pl.input_readers(config):
        assert reader.label_map_path == str(label_map)
    with_ckpt = pl.render_template(
        "ssd-mobilenet-v2-fpnlite-320",
        label_map=label_map,
        train_records="t",
        eval_records="e",
        fine_tune_checkpoint=tmp_path / "ckpt-0",
    )
    assert with_ckpt.train_config.fine_tune_checkpoint == str(tmp_path / "ckpt-0")
    assert with_ckpt.train_config.fine_tune_checkpoint_type == "detection"


def test_load_and_save_round_trip(tmp_path: Path) -> None:
    config = pl.render_template("tiny-ssd", label_map={1: "x"}, train_records="t", eval_records="e")
    path = pl.save_pipeline(config, tmp_path / "sub" / "pipeline.config")
    assert pl.load_pipeline(path) == config
    assert [p.name for p in path.parent.iterdir()] == ["pipeline.config"]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TfodError, match=r"missing\.config: pipeline config not found"):
        pl.load_pipeline(tmp_path / "missing.config")
    bad = tmp_path / "bad.config"
    bad.write_text("model {\n  ssd {\n    num_clases: 2\n  }\n}\n")
    with pytest.raises(TfodError) as info:
        pl.load_pipeline(bad)
    assert str(bad) in str(info.value) and "3:" in str(info.value) and "num_clases" in str(info.value)
    assert "\n" not in str(info.value)


def test_parsing_and_rendering_do_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from tfod_tools.odapi import pipeline as pl\n"
        "c = pl.render_template('tiny-ssd', label_map={1: 'x'}, train_records='t', eval_records='e')\n"
        "pl.parse_pipeline_text(pl.pipeline_to_text(c))\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_tfod_pipeline_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label_map = tmp_path / "lm.pbtxt"
    label_map.write_text("item { id: 1 name: 'square' }\nitem { id: 2 name: 'triangle' }\n")
    (tmp_path / "train.record").write_bytes(b"")
    out = tmp_path / "p.config"
    code = main(
        [
            "pipeline",
            "--template",
            "tiny-ssd",
            "--label-map",
            str(label_map),
            "--train-records",
            str(tmp_path / "train.record"),
            "--eval-records",
            str(tmp_path / "eval-*.record"),
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--num-steps",
            "300",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert '"num_classes": 2' in captured.out
    assert "eval records" in captured.err and "match no file" in captured.err
    config = pl.load_pipeline(out)
    assert (pl.num_classes(config), config.train_config.batch_size, config.train_config.num_steps) == (
        2,
        2,
        300,
    )


def test_tfod_pipeline_unknown_template_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "pipeline",
            "--template",
            "yolo",
            "--label-map",
            "x",
            "--train-records",
            "t",
            "--eval-records",
            "e",
            "--out",
            str(tmp_path / "p.config"),
        ]
    )
    assert code == 2
    words = " ".join(capsys.readouterr().err.replace("│", " ").split())  # Typer's usage error
    assert "'yolo' is not one of 'tiny-ssd', 'tiny-fpnlite', 'ssd-mobilenet-v2-fpnlite-320'" in words
    assert not (tmp_path / "p.config").exists()
