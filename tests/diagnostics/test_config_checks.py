"""Config checks (issue #18): each fires on a config made to trigger it, on the TF2 zoo configs edited
the way tutorials say, and stays silent on the shipped templates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.records import read_annotated_set
from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.findings.augmentation import recipe_in_use
from tfod_tools.diagnostics.findings.batch_size import ZOO_CONFIGS, base_learning_rate
from tfod_tools.diagnostics.findings.config import (
    config_findings,
    fine_tune_checkpoint_check,
    max_boxes_per_image,
)
from tfod_tools.errors import TfodError
from tfod_tools.odapi.checkpoints import checkpoint_keys
from tfod_tools.odapi.pipeline import (
    TEMPLATES,
    load_pipeline,
    parse_pipeline_text,
    render_template,
    save_pipeline,
)

ZOO = Path(__file__).resolve().parents[1] / "data" / "zoo"
FPNLITE = "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"
FASTER_RCNN = "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8"


def _ids(findings: list[Any]) -> list[str]:
    return [f.id for f in findings]


def _one(findings: list[Any], finding_id: str) -> Any:
    (found,) = [f for f in findings if f.id == finding_id]
    return found


def _tf() -> Any:
    """TensorFlow under the compatibility layer (legacy Keras 2, as the API runs)."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    return tf


def _tutorial_edit(name: str, data: SyntheticDataset, root: Path, *, batch_size: int = 4) -> Any:
    """A zoo config edited as the tutorials say: num_classes, every path (the checkpoint of the zoo
    tarball, unpacked under ``root``), fine_tune_checkpoint_type "detection", a smaller batch, and the
    learning-rate schedule left as shipped."""
    config = load_pipeline(ZOO / f"{name}.config")
    model = getattr(config.model, config.model.WhichOneof("model"))
    model.num_classes = 2
    tc = config.train_config
    tc.fine_tune_checkpoint = str(root / name / "checkpoint" / "ckpt-0")
    tc.fine_tune_checkpoint_type = "detection"
    tc.batch_size = batch_size
    readers = [(config.train_input_reader, data.train_record)]
    readers += [(reader, data.eval_record) for reader in config.eval_input_reader]
    for reader, records in readers:
        reader.label_map_path = str(data.label_map)
        reader.tf_record_input_reader.input_path[:] = [str(records)]
    return config


def _save_checkpoint(prefix: Path, **objects: Any) -> Path:
    """A real TF2 checkpoint of ``objects`` (Keras layers / checkpoints), saved at ``prefix`` itself."""
    tf = _tf()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(**objects).write(str(prefix))
    return prefix


def _dense() -> Any:
    tf = _tf()
    layer = tf.keras.layers.Dense(3)
    layer.build((None, 2))
    return layer


def _detection_like() -> Any:
    """model_main_tf2's checkpoint in miniature: ``model/_feature_extractor/``, ``model/_box_predictor/``."""
    tf = _tf()
    return tf.train.Checkpoint(_feature_extractor=_dense(), _box_predictor=_dense())


# -- the shipped templates ---------------------------------------------------------------------------


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_shipped_templates_are_silent(template: str, xray: SyntheticDataset, tmp_path: Path) -> None:
    config = render_template(
        template, label_map=xray.label_map, train_records=xray.train_record, eval_records=xray.eval_record
    )
    path = save_pipeline(config, tmp_path / "pipeline.config")
    eval_max = max_boxes_per_image(read_annotated_set(xray.eval_record, xray.label_map))
    assert eval_max is not None and eval_max > 0
    assert config_findings(load_pipeline(path), str(path), eval_max_boxes=eval_max) == []


def test_fpnlite_template_with_the_zoo_checkpoint_is_silent(xray: SyntheticDataset, tmp_path: Path) -> None:
    # The template trains batch 16 at 0.02: exactly 2x the linear-scaling rate 0.08 x 16/128, on the
    # line, not over it; "detection" matches what the zoo checkpoint holds.
    tarball = tmp_path / FPNLITE
    prefix = _save_checkpoint(tarball / "checkpoint" / "ckpt-0", model=_detection_like())
    shutil.copy(ZOO / f"{FPNLITE}.config", tarball / "pipeline.config")
    config = render_template(
        "ssd-mobilenet-v2-fpnlite-320",
        label_map=xray.label_map,
        train_records=xray.train_record,
        eval_records=xray.eval_record,
        fine_tune_checkpoint=prefix,
    )
    assert config.train_config.fine_tune_checkpoint_type == "detection"
    assert config_findings(config, "pipeline.config", eval_max_boxes=10) == []


# -- learning rate vs batch size --------------------------------------------------------------------


@pytest.mark.parametrize("name", [FPNLITE, FASTER_RCNN])
def test_zoo_table_rows_match_the_zoo_configs(name: str) -> None:
    config = load_pipeline(ZOO / f"{name}.config")
    rate = base_learning_rate(config)
    assert rate is not None and rate.schedule == "cosine_decay_learning_rate"
    assert ZOO_CONFIGS[name] == (config.train_config.batch_size, rate.base, rate.warmup)


def test_zoo_fpnlite_edited_to_batch_4_fires(xray: SyntheticDataset, tmp_path: Path) -> None:
    config = _tutorial_edit(FPNLITE, xray, tmp_path)
    found = _one(config_findings(config, "pipeline.config"), "learning_rate_vs_batch_size")
    ev = found.evidence
    assert found.severity == "warning"
    assert (ev["batch_size"], ev["reference_batch_size"]) == (4, 128)
    assert (ev["learning_rate"], ev["reference_learning_rate"]) == (0.08, 0.08)
    assert ev["suggested_learning_rate"] == pytest.approx(0.08 * 4 / 128)
    assert ev["times_suggested"] == pytest.approx(32.0)
    assert ev["reference"] == f"the TF2 zoo config {FPNLITE}"
    for text in ("batch_size 4", "batch 128", "0.08", "0.0025"):
        assert text in found.message, text
    assert "learning_rate_base: 0.0025" in found.fix
    assert f"warmup_learning_rate: {0.026666 * 4 / 128:.4g}" in found.fix
    where = "train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate"
    assert found.fix.startswith(f"In pipeline.config set {where} {{ learning_rate_base: 0.0025 ")
    rows = {r[0]: r[1:] for r in ev["rates"]["rows"]}
    assert rows["warmup_learning_rate"] == [0.026666, pytest.approx(0.026666 * 4 / 128, rel=1e-3)]


def test_zoo_faster_rcnn_edited_to_batch_2_fires(xray: SyntheticDataset, tmp_path: Path) -> None:
    config = _tutorial_edit(FASTER_RCNN, xray, tmp_path, batch_size=2)
    found = _one(config_findings(config), "learning_rate_vs_batch_size")
    assert found.evidence["suggested_learning_rate"] == pytest.approx(0.04 * 2 / 64)
    assert "batch 64" in found.message and "0.00125" in found.message


def test_scaled_rate_is_silent_and_the_threshold_is_twice_linear(
    xray: SyntheticDataset, tmp_path: Path
) -> None:
    config = _tutorial_edit(FPNLITE, xray, tmp_path)
    cosine = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    for rate, fires in ((0.0025, False), (0.005, False), (0.0051, True)):
        cosine.learning_rate_base, cosine.warmup_learning_rate = rate, rate / 3
        assert ("learning_rate_vs_batch_size" in _ids(config_findings(config))) is fires, rate


def test_reference_from_the_pipeline_config_beside_the_checkpoint(
    xray: SyntheticDataset, tmp_path: Path
) -> None:
    # A zoo-like download under a name the table does not know: only the tarball's pipeline.config
    # (batch 128, 0.08) can tell what the rate was made for.
    tarball = tmp_path / "downloads" / "my_detector"
    prefix = _save_checkpoint(tarball / "checkpoint" / "ckpt-0", model=_detection_like())
    shutil.copy(ZOO / f"{FPNLITE}.config", tarball / "pipeline.config")
    config = _tutorial_edit(FPNLITE, xray, tmp_path)
    config.train_config.fine_tune_checkpoint = str(prefix)
    own = save_pipeline(config, tmp_path / "mine" / "pipeline.config")
    found = config_findings(load_pipeline(own), str(own))
    assert _ids(found) == ["learning_rate_vs_batch_size"]  # the checkpoint holds model/: "detection" fits
    ev = found[0].evidence
    assert ev["reference"] == f"the pipeline.config beside the checkpoint ({tarball / 'pipeline.config'})"
    assert (ev["reference_batch_size"], ev["suggested_learning_rate"]) == (128, 0.0025)
    # Without the tarball's file and with an unknown name there is nothing to compare with.
    (tarball / "pipeline.config").unlink()
    assert config_findings(load_pipeline(own), str(own)) == []


@pytest.mark.parametrize(
    ("schedule", "base", "warmup"),
    [
        ("constant_learning_rate { learning_rate: 0.01 }", 0.01, None),
        (
            "exponential_decay_learning_rate { initial_learning_rate: 0.004 decay_steps: 800 "
            "decay_factor: 0.95 burnin_learning_rate: 0.001 burnin_steps: 100 }",
            0.004,
            0.001,
        ),
        (
            "manual_step_learning_rate { initial_learning_rate: 0.001 schedule { step: 500 learning_rate: "
            "0.003 } schedule { step: 900 learning_rate: 0.0003 } }",
            0.003,
            None,
        ),
        (
            "cosine_decay_learning_rate { learning_rate_base: 0.04 total_steps: 1000 warmup_steps: 0 }",
            0.04,
            None,
        ),
    ],
)
def test_base_learning_rate_of_every_schedule(schedule: str, base: float, warmup: float | None) -> None:
    for optimizer in ("momentum_optimizer", "adam_optimizer", "rms_prop_optimizer"):
        config = parse_pipeline_text(
            f"train_config {{ optimizer {{ {optimizer} {{ learning_rate {{ {schedule} }} }} }} }}"
        )
        rate = base_learning_rate(config)
        assert rate is not None and (rate.optimizer, rate.base, rate.warmup) == (optimizer, base, warmup)


def test_manual_step_schedule_is_scaled_step_by_step(xray: SyntheticDataset, tmp_path: Path) -> None:
    config = _tutorial_edit(FPNLITE, xray, tmp_path, batch_size=8)
    rate = config.train_config.optimizer.momentum_optimizer.learning_rate
    rate.manual_step_learning_rate.initial_learning_rate = 0.08
    rate.manual_step_learning_rate.schedule.add(step=40000, learning_rate=0.008)
    found = _one(config_findings(config), "learning_rate_vs_batch_size")
    assert "initial_learning_rate: 0.005 schedule { step: 40000 learning_rate: 0.0005 }" in found.fix


# -- fine_tune_checkpoint_type against the checkpoint ------------------------------------------------


def test_checkpoint_keys_equal_tensorflows_list(tmp_path: Path) -> None:
    tf = _tf()
    prefix = tf.train.Checkpoint(
        step=tf.Variable(7, dtype=tf.int64), model=_detection_like(), optimizer=tf.keras.optimizers.SGD()
    ).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(prefix)]
    assert checkpoint_keys(prefix) == names
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in names
    assert any(n.startswith("model/_feature_extractor/") for n in names)


def _config_for(prefix: Path | str, kind: str) -> Any:
    return parse_pipeline_text(
        f'train_config {{ fine_tune_checkpoint: "{prefix}" fine_tune_checkpoint_type: "{kind}" '
        "fine_tune_checkpoint_version: V2 }"
    )


def test_classification_type_with_a_detection_checkpoint(tmp_path: Path) -> None:
    prefix = _save_checkpoint(tmp_path / "zoo" / "checkpoint" / "ckpt-0", model=_detection_like())
    found = fine_tune_checkpoint_check(_config_for(prefix, "classification"), "p.config")
    assert (
        found is not None and found.id == "fine_tune_checkpoint_type_mismatch" and found.severity == "error"
    )
    assert found.evidence["checkpoint_holds"] == "detection" and found.evidence["top_level"] == "model"
    assert "restores feature_extractor/" in found.message and "AssertionError" in found.message
    assert 'In p.config set train_config { fine_tune_checkpoint_type: "detection" }' in found.fix
    assert fine_tune_checkpoint_check(_config_for(prefix, "detection")) is None
    assert fine_tune_checkpoint_check(_config_for(prefix, "full")) is None
    # An empty type is "classification" to the API (unless from_detection_checkpoint).
    empty = parse_pipeline_text(f'train_config {{ fine_tune_checkpoint: "{prefix}" }}')
    found = fine_tune_checkpoint_check(empty)
    assert found is not None and '"" (read as classification)' in found.message
    empty.train_config.from_detection_checkpoint = True
    assert fine_tune_checkpoint_check(empty) is None


def test_detection_type_with_a_classification_checkpoint(tmp_path: Path) -> None:
    prefix = _save_checkpoint(tmp_path / "imagenet" / "mobilenet_v2.ckpt-1", feature_extractor=_dense())
    found = fine_tune_checkpoint_check(_config_for(prefix, "detection"))
    assert found is not None and found.evidence["checkpoint_holds"] == "classification"
    assert 'fine_tune_checkpoint_type: "classification"' in found.fix
    assert fine_tune_checkpoint_check(_config_for(prefix, "classification")) is None


def test_unknown_type_and_a_checkpoint_neither_can_restore(tmp_path: Path) -> None:
    detection = _save_checkpoint(tmp_path / "a" / "ckpt-1", model=_detection_like())
    found = fine_tune_checkpoint_check(_config_for(detection, "detections"))
    assert found is not None and "not a type the API restores" in found.message
    assert 'fine_tune_checkpoint_type: "detection"' in found.fix
    keras = _save_checkpoint(tmp_path / "b" / "weights", layer_with_weights=_dense())
    found = fine_tune_checkpoint_check(_config_for(keras, "detection"))
    assert found is not None and found.evidence["checkpoint_holds"] == "neither"


def test_a_checkpoint_folder_is_resolved_through_its_state_file(tmp_path: Path) -> None:
    tf = _tf()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=_detection_like()), str(tmp_path), 3)
    manager.save()
    found = fine_tune_checkpoint_check(_config_for(tmp_path, "classification"))
    assert found is not None and found.evidence["checkpoint"] == manager.latest_checkpoint


def test_name_based_tf1_checkpoint(tmp_path: Path) -> None:
    tf = _tf()
    prefix = str(tmp_path / "model.ckpt")
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("FeatureExtractor/MobilenetV2/w", [2])
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, prefix, write_meta_graph=False)
    assert checkpoint_keys(prefix) == [name for name, _ in tf.train.list_variables(prefix)]
    found = fine_tune_checkpoint_check(_config_for(prefix, "detection"))
    assert found is not None and found.id == "fine_tune_checkpoint_not_tf2" and found.severity == "error"


def test_missing_or_unreadable_checkpoint_is_not_a_finding(tmp_path: Path) -> None:
    assert fine_tune_checkpoint_check(_config_for(tmp_path / "nope" / "ckpt-0", "classification")) is None
    (tmp_path / "ckpt-1.index").write_bytes(b"truncated")
    assert fine_tune_checkpoint_check(_config_for(tmp_path / "ckpt-1", "classification")) is None


@pytest.mark.slow
def test_real_detection_model_checkpoint_and_what_the_api_does(tmp_path: Path) -> None:
    """The tiny SSD built by the API and saved as model_main_tf2 saves it: the keys read without TF
    equal TF's, the check names the type to use, and the API itself refuses the mismatched type."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection import model_lib_v2
    from object_detection.builders import model_builder
    from object_detection.protos import train_pb2

    config = render_template("tiny-ssd", label_map={1: "a", 2: "b"}, train_records="t", eval_records="e")
    resizer = config.model.ssd.image_resizer.fixed_shape_resizer

    def build() -> Any:
        model = model_builder.build(model_config=config.model, is_training=True)
        images, shapes = model.preprocess(tf.zeros([1, resizer.height, resizer.width, 3]))
        model.predict(images, shapes)
        return model

    trained = build()
    detection = tf.train.Checkpoint(step=tf.Variable(100, dtype=tf.int64), model=trained).save(
        str(tmp_path / "run" / "ckpt")
    )
    classification = tf.train.Checkpoint(
        feature_extractor=trained._feature_extractor.classification_backbone
    ).save(str(tmp_path / "backbone" / "ckpt"))
    assert checkpoint_keys(detection) == [n for n, _ in tf.train.list_variables(detection)]
    fresh = build()

    def restore(prefix: str, kind: str) -> None:
        model_lib_v2.load_fine_tune_checkpoint(
            fresh, prefix, kind, train_pb2.CheckpointVersion.V2, False, None, False
        )

    cases = ((detection, "detection", "classification"), (classification, "classification", "detection"))
    for prefix, holds, other in cases:
        found = fine_tune_checkpoint_check(_config_for(prefix, other))
        assert found is not None and found.evidence["checkpoint_holds"] == holds
        assert f'fine_tune_checkpoint_type: "{holds}"' in found.fix
        with pytest.raises(AssertionError, match="not bound to checkpointed values"):
            restore(prefix, other)
        assert fine_tune_checkpoint_check(_config_for(prefix, holds)) is None
        restore(prefix, holds)


# -- augmentation vs the domain recipe ----------------------------------------------------------------


def _with_augmentations(config: Any, *options: str) -> Any:
    del config.train_config.data_augmentation_options[:]
    for option in options:
        getattr(config.train_config.data_augmentation_options.add(), option).SetInParent()
    return config


def _template(xray: SyntheticDataset, train_records: str | Path | None = None) -> Any:
    return render_template(
        "tiny-ssd",
        label_map=xray.label_map,
        train_records=train_records or xray.train_record,
        eval_records=xray.eval_record,
    )


ALL_FLIPS = ("random_horizontal_flip", "random_vertical_flip", "random_rotation90", "random_crop_image")


def test_chest_xray_recipe_rules_out_flips_and_rotation(xray: SyntheticDataset) -> None:
    config = _with_augmentations(_template(xray), *ALL_FLIPS)
    found = _one(config_findings(config, "p.config", recipe="chest-xray"), "augmentation_contradicts_recipe")
    rows = found.evidence["options"]["rows"]
    assert rows == [
        ["random_horizontal_flip", "HorizontalFlip", "behind the switch 'hflip' (off)"],
        ["random_vertical_flip", "VerticalFlip", "not in the recipe"],
        ["random_rotation90", "RandomRotate90", "not in the recipe"],
    ]
    assert "laterality" in found.evidence["rationale"] and found.evidence["recipe"] == "chest-xray"
    assert "data_augmentation_options { random_vertical_flip { } }" in found.fix
    assert "tfod balance --enable hflip" in found.fix
    assert "random_crop_image" not in found.message


@pytest.mark.parametrize(
    ("recipe", "flagged"),
    [("natural", ["random_vertical_flip", "random_rotation90"]), ("aerial", [])],
)
def test_other_recipes(recipe: str, flagged: list[str], xray: SyntheticDataset) -> None:
    config = _with_augmentations(_template(xray), *ALL_FLIPS)
    found = [f for f in config_findings(config, recipe=recipe) if f.id == "augmentation_contradicts_recipe"]
    assert [r[0] for f in found for r in f.evidence["options"]["rows"]] == flagged


def test_recipe_from_the_balance_manifest(xray: SyntheticDataset, tmp_path: Path) -> None:
    from tfod_tools.data.balance import balance, manifest_path

    out = tmp_path / "train_bal.record"
    balance([xray.train_record], xray.label_map, out, recipe="chest-xray", strategy="oversample", shards=2)
    config = _with_augmentations(_template(xray, f"{out}-?????-of-00002"), "random_horizontal_flip")
    assert recipe_in_use(config) is not None
    found = _one(config_findings(config), "augmentation_contradicts_recipe")
    assert found.evidence["recipe_from"] == str(manifest_path(out))
    assert found.evidence["options"]["rows"][0][0] == "random_horizontal_flip"
    # Balanced with --allow-hflip: the horizontal flip is part of the recipe in use.
    flipped = tmp_path / "flipped.record"
    balance([xray.train_record], xray.label_map, flipped, recipe="chest-xray", enable=["hflip"], seed=1)
    config = _with_augmentations(_template(xray, flipped), "random_horizontal_flip", "random_vertical_flip")
    found = _one(config_findings(config), "augmentation_contradicts_recipe")
    assert [r[0] for r in found.evidence["options"]["rows"]] == ["random_vertical_flip"]


def test_unknown_recipe_is_an_error(xray: SyntheticDataset) -> None:
    with pytest.raises(TfodError, match="recipe 'mri' not found"):
        config_findings(_template(xray), recipe="mri")


# -- max detections, eval batch size -----------------------------------------------------------------


def test_max_total_detections_below_the_most_crowded_eval_image(xray: SyntheticDataset) -> None:
    config = _template(xray)  # tiny-ssd keeps 50
    assert "max_detections_below_ground_truth" not in _ids(config_findings(config, eval_max_boxes=50))
    found = _one(config_findings(config, "p.config", eval_max_boxes=51), "max_detections_below_ground_truth")
    assert found.evidence == {
        "max_total_detections": 50,
        "eval_max_boxes_per_image": 51,
        "at": "model.ssd.post_processing.batch_non_max_suppression",
    }
    assert "max_total_detections: 100" in found.fix
    zoo = load_pipeline(ZOO / f"{FASTER_RCNN}.config")  # second stage keeps 300
    found = _one(config_findings(zoo, eval_max_boxes=400), "max_detections_below_ground_truth")
    assert found.evidence["at"] == "model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression"
    center = parse_pipeline_text("model { center_net { object_center_params { max_box_predictions: 20 } } }")
    found = _one(config_findings(center, eval_max_boxes=30), "max_detections_below_ground_truth")
    assert found.evidence["max_box_predictions"] == 20 and "max_box_predictions: 100" in found.fix


def test_eval_batch_size_above_one(xray: SyntheticDataset) -> None:
    config = _template(xray)
    config.eval_config.batch_size = 8
    found = _one(config_findings(config, "p.config"), "eval_batch_size_above_one")
    assert found.evidence == {"batch_size": 8} and "out-of-memory" in found.message
    assert found.fix == "In p.config set eval_config { batch_size: 1 }."


# -- where they show ---------------------------------------------------------------------------------


def _broken_pipeline(xray: SyntheticDataset, path: Path) -> Path:
    config = _template(xray)
    config.eval_config.batch_size = 4
    config.model.ssd.post_processing.batch_non_max_suppression.max_total_detections = 1
    return save_pipeline(config, path)


def test_diagnose_with_pipeline_reports_config_findings(xray: SyntheticDataset, tmp_path: Path) -> None:
    pipeline = _broken_pipeline(xray, tmp_path / "pipeline.config")
    (tmp_path / "model").mkdir()
    d = diagnose(tmp_path / "model", pipeline=pipeline)
    assert {"eval_batch_size_above_one", "max_detections_below_ground_truth"} <= set(d.ids())
    (found,) = d.get("max_detections_below_ground_truth")
    expected = max_boxes_per_image(read_annotated_set(xray.eval_record, xray.label_map))
    assert found.evidence["eval_max_boxes_per_image"] == expected


def test_inspect_pipeline_json_and_human(
    xray: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _broken_pipeline(xray, tmp_path / "pipeline.config")
    args = ["inspect", str(xray.eval_record), "-l", str(xray.label_map), "--pipeline", str(pipeline), "-q"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_id = {f["id"]: f for f in doc["config_findings"]}
    assert set(by_id) == {"eval_batch_size_above_one", "max_detections_below_ground_truth"}
    assert by_id["max_detections_below_ground_truth"]["evidence"]["eval_max_boxes_per_image"] == int(
        doc["boxes_per_image"]["max"]
    )
    assert set(by_id["eval_batch_size_above_one"]) == {"id", "severity", "message", "evidence", "fix"}
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "config checks: 2 finding(s)" in out and "warning eval_batch_size_above_one" in out
    assert "fix: In " in out
    assert main(["inspect", str(xray.eval_record), "-l", str(xray.label_map), "--json", "-q"]) == 0
    assert "config_findings" not in json.loads(capsys.readouterr().out)
