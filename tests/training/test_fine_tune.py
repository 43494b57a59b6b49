"""Fine-tuning from a detection checkpoint, with the real API.

The slow test fine-tunes the session's tiny SSD (trained 300 steps on synthetic ``shapes``, 2
classes) on a small synthetic ``xray-like`` set with a 3-class label map for 100 steps (the fewest
model_main_tf2 runs), from the ``tfod pipeline --fine-tune-checkpoint`` config: every feature
extractor variable of its step-0 checkpoint equals the source checkpoint's (none of which equals
the same model's weights at another step), the box predictor starts fresh (the class head has
another shape, another ``num_classes``), and training ran. The fast tests give ``tfod train`` /
``tfod pipeline`` the inputs that must stop before TensorFlow starts: the placeholder, a missing
checkpoint, checkpoints of another architecture.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TrainedModel, tfod_subprocess
from tfod_tools.data.synthetic import SyntheticDataset, write_synthetic_dataset
from tfod_tools.errors import TfodError
from tfod_tools.odapi.checkpoints import checkpoint_keys, read_step
from tfod_tools.odapi.fine_tune import check_fine_tune, fine_tune_problem
from tfod_tools.odapi.label_map import write_label_map
from tfod_tools.odapi.pipeline import PLACEHOLDER, load_pipeline, render_template, save_pipeline
from tfod_tools.odapi.restored import compare_restore, weight_keys

ZOO = Path(__file__).resolve().parents[1] / "data" / "zoo"
FASTER_RCNN = "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8"
VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def _tf() -> Any:
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    return tf


@pytest.fixture(scope="module")
def xray(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """A small xray-like set (2 box classes) with a 3-class label map: another num_classes."""
    data = write_synthetic_dataset(
        tmp_path_factory.mktemp("xray"), "xray-like", train_images=16, eval_images=4, seed=3, image_size=128
    )
    write_label_map(data.label_map, {1: "opacity", 2: "nodule", 3: "effusion"})
    return data


def _pipeline(xray: SyntheticDataset, path: Path, checkpoint: str | Path | None) -> Path:
    config = render_template(
        "tiny-ssd",
        label_map=xray.label_map,
        train_records=xray.train_record,
        eval_records=xray.eval_record,
        num_steps=10,
    )
    if checkpoint is not None:
        config.train_config.fine_tune_checkpoint = str(checkpoint)
        config.train_config.fine_tune_checkpoint_type = "detection"
    return save_pipeline(config, path)


def _one_line_exit_2(args: list[str], *needles: str) -> str:
    proc = tfod_subprocess(args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _train_args(pipeline: Path, model_dir: Path) -> list[str]:
    return ["train", "--pipeline", str(pipeline), "--model-dir", str(model_dir), "--num-steps", "10"]


def _fpn_detection_checkpoint(prefix: Path) -> Path:
    """A TF2 detection checkpoint shaped like an SSD MobileNet FPN model's: a depthwise backbone and
    ``_fpn_features_generator``."""
    tf = _tf()

    def dense() -> Any:
        layer = tf.keras.layers.Dense(3)
        layer.build((None, 2))
        return layer

    depthwise = tf.keras.layers.DepthwiseConv2D(3)
    depthwise.build((None, 8, 8, 4))
    extractor = tf.train.Checkpoint(classification_backbone=depthwise, _fpn_features_generator=dense())
    model = tf.train.Checkpoint(_feature_extractor=extractor, _box_predictor=dense())
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(model=model).write(str(prefix))
    return prefix


# -- refused before TensorFlow starts --------------------------------------------------------------


def test_placeholder_and_missing_checkpoint_stop_tfod_train(xray: SyntheticDataset, tmp_path: Path) -> None:
    placeholder = _pipeline(xray, tmp_path / "a" / "pipeline.config", f"{PLACEHOLDER}/checkpoint/ckpt-0")
    line = _one_line_exit_2(_train_args(placeholder, tmp_path / "a" / "model"), str(placeholder), PLACEHOLDER)
    assert "fix:" in line
    missing = _pipeline(xray, tmp_path / "b" / "pipeline.config", tmp_path / "nowhere" / "ckpt-4")
    line = _one_line_exit_2(_train_args(missing, tmp_path / "b" / "model"), str(missing), "does not exist")
    assert "fix:" in line
    assert not (tmp_path / "a" / "model" / "logs").exists() and not (tmp_path / "b" / "model").exists()
    # The library check says the same about the placeholder, in its own words.
    with pytest.raises(TfodError, match="still the template placeholder"):
        check_fine_tune(load_pipeline(placeholder), placeholder)


def test_checkpoint_of_another_architecture_is_refused(xray: SyntheticDataset, tmp_path: Path) -> None:
    fpn = _fpn_detection_checkpoint(tmp_path / "fpn" / "ckpt-7")
    pipeline = _pipeline(xray, tmp_path / "pipeline.config", fpn)
    problem = fine_tune_problem(load_pipeline(pipeline), pipeline)
    assert problem is not None and problem.id == "fine_tune_checkpoint_architecture_mismatch"
    assert "_fpn_features_generator" in problem.message and "ssd_mobilenet_v2_keras" in problem.message
    _one_line_exit_2(
        _train_args(pipeline, tmp_path / "model"), str(pipeline), "do not match the model", "fix:"
    )
    assert not (tmp_path / "model").exists()
    # `tfod pipeline` refuses it too (and writes nothing); `tfod inspect --pipeline` shows the finding.
    out = tmp_path / "rendered.config"
    args = ["pipeline", "--template", "tiny-ssd", "--label-map", str(xray.label_map)]
    args += ["--train-records", str(xray.train_record), "--eval-records", str(xray.eval_record)]
    _one_line_exit_2([*args, "--out", str(out), "--fine-tune-checkpoint", str(fpn)], str(out), "FPN")
    assert not out.exists()
    # The same checkpoint fits an FPN config.
    fpn_config = render_template(
        "tiny-fpnlite",
        label_map=xray.label_map,
        train_records=xray.train_record,
        eval_records=xray.eval_record,
        fine_tune_checkpoint=fpn,
    )
    assert fine_tune_problem(fpn_config) is None


def test_zoo_tarball_of_another_meta_architecture_is_refused(xray: SyntheticDataset, tmp_path: Path) -> None:
    # A zoo tarball: MODEL/pipeline.config beside MODEL/checkpoint/ckpt-0; the Faster R-CNN config
    # it ships names the architecture even where the keys alone would not.
    tarball = tmp_path / FASTER_RCNN
    prefix = _fpn_detection_checkpoint(tarball / "checkpoint" / "ckpt-0")
    shutil.copy(ZOO / f"{FASTER_RCNN}.config", tarball / "pipeline.config")
    pipeline = _pipeline(xray, tmp_path / "pipeline.config", prefix)
    with pytest.raises(TfodError) as info:
        check_fine_tune(load_pipeline(pipeline), pipeline)
    line = info.value.one_line()
    assert "faster_rcnn" in line and "faster_rcnn_resnet50_keras" in line and str(pipeline) in line
    assert "\n" not in line


# -- the real fine-tune --------------------------------------------------------------------------


def _values(prefix: Path, keys: list[str]) -> dict[str, np.ndarray]:
    tf = _tf()
    return {key: tf.train.load_variable(str(prefix), key) for key in keys}


@pytest.mark.slow
def test_fine_tune_restores_the_backbone_and_trains_a_new_class_head(
    trained_model_dir: TrainedModel, xray: SyntheticDataset, tmp_path: Path
) -> None:
    source_dir = trained_model_dir.model_dir
    source = source_dir / "ckpt-4"
    earlier = source_dir / "ckpt-2"  # the same run 200 steps before: other weights of this model
    assert (read_step(source), read_step(earlier)) == (trained_model_dir.num_steps, 100)
    pipeline = tmp_path / "pipeline.config"
    args = ["pipeline", "--template", "tiny-ssd", "--label-map", str(xray.label_map)]
    args += ["--train-records", str(xray.train_record), "--eval-records", str(xray.eval_record)]
    args += ["--out", str(pipeline), "--num-steps", "100", "--fine-tune-checkpoint", str(source), "--json"]
    proc = tfod_subprocess(args)
    assert proc.returncode == 0, proc.stderr
    rendered = json.loads(proc.stdout)
    assert rendered["fine_tune_checkpoint_type"] == "detection" and rendered["num_classes"] == 3
    assert rendered["fine_tune_checkpoint"] == str(source)
    assert fine_tune_problem(load_pipeline(pipeline), pipeline) is None
    # The real tiny SSD checkpoint (plain feature map generator) against an FPN config: refused.
    fpn = render_template(
        "tiny-fpnlite",
        label_map=xray.label_map,
        train_records=xray.train_record,
        eval_records=xray.eval_record,
        fine_tune_checkpoint=source,
    )
    problem = fine_tune_problem(fpn, "fpn.config")
    assert problem is not None and problem.id == "fine_tune_checkpoint_architecture_mismatch"

    # 100 steps: model_main_tf2 trains in chunks of 100, the fewest it runs.
    model_dir = tmp_path / "model"
    args = ["train", "--pipeline", str(pipeline), "--model-dir", str(model_dir), "--num-steps", "100"]
    proc = tfod_subprocess([*args, "--checkpoint-every", "100", "--json"])
    log = model_dir / "logs" / "train.log"
    assert proc.returncode == 0, proc.stderr[-2000:] + (log.read_text()[-3000:] if log.exists() else "")
    start, end = model_dir / "ckpt-1", model_dir / "ckpt-2"
    assert (read_step(start), read_step(end)) == (0, 100)

    def weights(prefix: Path, part: str) -> list[str]:
        keys = checkpoint_keys(prefix)
        return [k for k in keys if k.startswith(part) and k.endswith(VALUE) and ".OPTIMIZER_SLOT" not in k]

    backbone = weight_keys(source)
    assert len(backbone) > 100 and backbone == weight_keys(start)
    # Step 0 of the fine-tune holds the source's feature extractor exactly: every variable, none
    # of which equals the same model's weights at another step; training on the new set moved it.
    check = compare_restore(source, start, end)
    assert check.ok and check.restored_exactly == check.variables == len(backbone), check
    assert check.moved_by_training
    src, other = _values(source, backbone), _values(earlier, backbone)
    assert all(not np.allclose(src[k], other[k]) for k in backbone)

    # The box predictor starts fresh: the class head has another shape (another num_classes) and
    # the box encoder kernels, of the same shapes, were not restored either (a bias the source
    # never trained is zero in both).
    predictor = weights(start, "model/_box_predictor/")
    assert predictor and set(predictor) <= set(weights(source, "model/_box_predictor/"))
    new, old = _values(start, predictor), _values(source, predictor)
    heads = [k for k in predictor if "class_predictions" in k]
    assert heads and all(new[k].shape != old[k].shape for k in heads)
    kernel = next(k for k in heads if k.endswith("/kernel" + VALUE))
    assert new[kernel].shape[-1] * 3 == old[kernel].shape[-1] * 4  # anchors x (3 + 1) vs (2 + 1)
    boxes = [k for k in predictor if "box_encodings" in k and k.endswith("/kernel" + VALUE)]
    assert boxes and all(new[k].shape == old[k].shape and not np.allclose(new[k], old[k]) for k in boxes)
    assert json.loads(proc.stdout)["exit_code"] == 0
