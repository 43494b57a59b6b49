"""The compatibility layer: each fix applied only when needed, and the API working after install()."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from tfod_tools.errors import TfodError
from tfod_tools.odapi import compat
from tfod_tools.odapi.compat import coco, estimator, keras, pillow, slim


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env)
    full_env.pop("TF_USE_LEGACY_KERAS", None)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )


@pytest.fixture(scope="module")
def report() -> compat.CompatReport:
    return compat.install()


def test_install_is_idempotent_and_reports_what_this_environment_needs(report: compat.CompatReport) -> None:
    assert compat.install() is report
    tf_version = report.versions["tensorflow"]
    assert tf_version is not None
    modern_tf = keras.needs_legacy_keras(tf_version)
    assert ("legacy-keras" in report.applied) == modern_tf
    assert ("estimator" in report.applied) == modern_tf
    assert ("protos" in report.applied) == compat.protos.protobuf_refuses_old_style()
    assert os.environ.get("TF_USE_LEGACY_KERAS") == (
        "1" if modern_tf else os.environ.get("TF_USE_LEGACY_KERAS")
    )
    assert {fix.name for fix in report.fixes} == {
        "protos",
        "legacy-keras",
        "estimator",
        "tf-slim",
        "pillow",
        "coco-category",
        "numpy-aliases",
        "tensorflow-io",
    }
    import numpy as np

    from tfod_tools.odapi.compat import numpy_aliases

    assert numpy_aliases.missing_aliases() == []
    assert np.float is float


def test_api_imports_and_builds_the_tiny_ssd_after_install(report: compat.CompatReport) -> None:
    import tensorflow as tf
    from object_detection import inputs, model_lib_v2  # noqa: F401
    from object_detection.builders import model_builder
    from object_detection.metrics import coco_evaluation  # noqa: F401
    from object_detection.utils import object_detection_evaluation  # noqa: F401

    from tfod_tools.odapi.pipeline import render_template

    assert inputs.tf_estimator.ModeKeys.TRAIN == "train"
    config = render_template("tiny-ssd", label_map={1: "a", 2: "b"}, train_records="t", eval_records="e")
    model = model_builder.build(model_config=config.model, is_training=False)
    images, shapes = model.preprocess(tf.zeros([1, 64, 64, 3]))
    detections = model.postprocess(model.predict(images, shapes), shapes)
    assert images.shape == (1, 128, 128, 3)
    assert detections["detection_boxes"].shape == (1, 50, 4)
    assert "keras.src" not in type(model).__mro__[1].__module__


def test_estimator_stand_in_only_when_missing() -> None:
    real = types.SimpleNamespace(estimator=types.SimpleNamespace(ModeKeys="real"))
    assert estimator.has_estimator(real)
    bare = types.SimpleNamespace()
    assert not estimator.has_estimator(bare)
    module = estimator.install_stand_in(bare)
    assert bare.estimator is module and sys.modules[estimator.STAND_IN_NAME] is module
    assert module.ModeKeys.PREDICT == "infer"
    with pytest.raises(AttributeError, match="provides only ModeKeys"):
        _ = module.EstimatorSpec


def test_slim_and_pillow_fixes_are_not_reapplied(report: compat.CompatReport) -> None:
    from PIL import ImageFont
    from tensorflow.python.ops import control_flow_ops

    assert slim.restore_moved_ops() == []  # present now (restored by install or native)
    assert slim.missing_names(control_flow_ops) == []
    assert pillow.add_getsize() == []
    font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox("Loss 0.5")
    assert font.getsize("Loss 0.5") == (right - left, bottom - top)  # type: ignore[union-attr]


def test_legacy_keras_decision_from_versions() -> None:
    assert keras.needs_legacy_keras("2.16.1") and keras.needs_legacy_keras("2.21.0")
    assert not keras.needs_legacy_keras("2.13.0") and not keras.needs_legacy_keras("2.15.1")


def test_install_refuses_tensorflow_already_imported_with_keras_3() -> None:
    proc = _python(
        """
        import tensorflow as tf
        tf.keras.layers.Layer  # resolves tf.keras to Keras 3 (switch unset)
        from tfod_tools.errors import TfodError
        from tfod_tools.odapi import compat
        try:
            compat.install()
        except TfodError as exc:
            print(exc.one_line())
        """
    )
    if not keras.needs_legacy_keras(keras.tensorflow_version()):
        pytest.skip("TensorFlow < 2.16 ships Keras 2")
    assert "imported with Keras 3" in proc.stdout, proc.stderr[-2000:]


def test_install_sets_the_switch_before_tensorflow_is_imported() -> None:
    proc = _python(
        """
        import os, sys
        from tfod_tools.odapi import compat
        assert "tensorflow" not in sys.modules
        report = compat.install()
        import tensorflow as tf
        print(os.environ.get("TF_USE_LEGACY_KERAS"), tf.keras.layers.Layer.__module__.split(".")[0])
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if keras.needs_legacy_keras(keras.tensorflow_version()):
        assert proc.stdout.split() == ["1", "tf_keras"]


def test_tf_keras_missing_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras, "tensorflow_version", lambda: "2.20.0")
    monkeypatch.setattr(keras, "tf_keras_installed", lambda: False)
    with pytest.raises(TfodError, match=r"needs the tf-keras package.*pip install 'tf-keras~=2.20.0'"):
        compat._install_legacy_keras()


def _coco_inputs() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    gt = {
        "groundtruth_boxes": np.array(
            [[10, 10, 50, 50], [60, 60, 90, 95], [5, 60, 30, 90]], dtype=np.float32
        ),
        "groundtruth_classes": np.array([1, 2, 2]),
    }
    det = {
        "detection_boxes": np.array(
            [[11, 11, 50, 52], [60, 58, 90, 95], [0, 0, 20, 20], [5, 62, 28, 90]], dtype=np.float32
        ),
        "detection_scores": np.array([0.9, 0.8, 0.7, 0.4], dtype=np.float32),
        "detection_classes": np.array([1, 2, 2, 1]),
    }
    return gt, det


def test_per_category_coco_metrics_match_single_category_cocoeval(report: compat.CompatReport) -> None:
    from object_detection.metrics import coco_evaluation, coco_tools
    from pycocotools import cocoeval

    assert coco.stock_cocoeval_lacks_category_stats() == ("coco-category" in report.applied)
    categories = [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"}]
    evaluator = coco_evaluation.CocoDetectionEvaluator(
        categories, include_metrics_per_category=True, all_metrics_per_category=True
    )
    gt, det = _coco_inputs()
    evaluator.add_single_ground_truth_image_info("img1", gt)
    evaluator.add_single_detected_image_info("img1", det)
    metrics = evaluator.evaluate()  # stock pycocotools: raised 'Category stats do not exist' before the fix

    groundtruth = coco_tools.ExportGroundtruthToCOCO(
        ["img1"], [gt["groundtruth_boxes"]], [gt["groundtruth_classes"]], categories
    )
    detections = coco_tools.ExportDetectionsToCOCO(
        ["img1"], [det["detection_boxes"]], [det["detection_scores"]], [det["detection_classes"]], categories
    )
    coco_gt = coco_tools.COCOWrapper(groundtruth)
    coco_dt = coco_gt.LoadAnnotations(detections)
    for category in categories:
        single = cocoeval.COCOeval(coco_gt, coco_dt, iouType="bbox")
        single.params.catIds = [category["id"]]
        single.evaluate()
        single.accumulate()
        single.summarize()
        name = category["name"]
        assert metrics[f"DetectionBoxes_PerformanceByCategory/mAP/{name}"] == pytest.approx(single.stats[0])
        assert metrics[f"DetectionBoxes_Precision/mAP@.50IOU ByCategory/{name}"] == pytest.approx(
            single.stats[1]
        )
        assert metrics[f"DetectionBoxes_Recall/AR@100 ByCategory/{name}"] == pytest.approx(single.stats[8])
    assert metrics["DetectionBoxes_PerformanceByCategory/mAP/square"] > 0
