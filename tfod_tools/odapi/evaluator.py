"""In-process evaluation of checkpoints: build the model and the eval input once, restore each in turn.

:class:`CheckpointEvaluator` does what ``model_lib_v2.eval_continuously`` / ``eager_eval_loop`` do
for one checkpoint, without their side effects (summaries, images, polling):

- the model is built once from the pipeline (``model_builder.build`` with ``is_training=True``, then
  ``_is_training = False`` and Keras' learning phase 0, exactly as ``eval_continuously`` and
  ``eager_eval_loop`` do, so every layer behaves as in the stock evaluation) and the eval dataset
  once (``inputs.eval_input``, one epoch, already preprocessed);
- a ``tf.function`` runs, per batch, the API's own ``provide_groundtruth`` / ``predict`` /
  ``loss`` (``model_lib_v2._compute_losses_and_predictions_dicts``) and ``postprocess``; it is
  first traced on the first batch, before any checkpoint is restored, which also creates every
  variable (with ``eval_config.batch_size: 1`` the ground truth is unpadded, so, as in the stock
  evaluation, it traces once more per distinct number of boxes, during the first checkpoint only);
- each checkpoint is restored with ``tf.train.Checkpoint(step=..., model=...)`` (with the
  optimizer's moving averages swapped in when ``eval_config.use_moving_averages``);
- ``model_lib_v2.prepare_eval_dict`` scales boxes to absolute pixels of the original image and
  adds the label offset, exactly as the stock evaluation does, so metrics computed from the result
  equal the stock ones;
- eval losses are averaged over batches like ``eager_eval_loop``.

The result is plain numpy (:class:`EvalOutput`); :mod:`tfod_tools.evaluation` turns it into the data
model and metrics. Set ``TFOD_EVAL_TEST_DELAY_S`` (seconds, float) to make each checkpoint's
evaluation sleep that long: a test-only knob to make evaluation slower than checkpointing.

>>> _yxyx_to_xyxy([[10, 20, 30, 40]]).tolist()  # the API's [ymin, xmin, ymax, xmax] -> [x1, y1, x2, y2]
[[20.0, 10.0, 40.0, 30.0]]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError

DELAY_ENV = "TFOD_EVAL_TEST_DELAY_S"
"""Test-only: seconds each checkpoint's evaluation sleeps (makes evaluation slower than training)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class ImageResult:
    """Ground truth and detections of one evaluated image (absolute original-image pixels, [x1,y1,x2,y2])."""

    key: int
    height: int
    width: int
    gt_boxes: FloatArray
    gt_classes: IntArray
    gt_crowd: npt.NDArray[np.bool_]
    gt_difficult: npt.NDArray[np.bool_]
    det_boxes: FloatArray
    det_classes: IntArray
    det_scores: FloatArray
    gt_area: FloatArray | None = None  # groundtruth_area (image/object/area; 0 where not stored)


@dataclass
class EvalOutput:
    """What evaluating one checkpoint produced."""

    step: int
    images: list[ImageResult]
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _yxyx_to_xyxy(boxes: Any) -> FloatArray:
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.ascontiguousarray(arr[:, [1, 0, 3, 2]])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CheckpointEvaluator:
    """Build once from ``pipeline_path``; :meth:`evaluate` any number of checkpoints of that model."""

    def __init__(self, pipeline_path: str | Path, eval_index: int = 0) -> None:
        from tfod_tools.odapi import compat

        compat.install()
        import tensorflow as tf
        from object_detection import inputs, model_lib, model_lib_v2
        from object_detection.builders import model_builder, optimizer_builder
        from object_detection.core import standard_fields
        from object_detection.utils import config_util

        self._tf = tf
        self._inputs = inputs
        self._model_lib_v2 = model_lib_v2
        configs = config_util.get_configs_from_pipeline_file(str(pipeline_path))
        configs = config_util.merge_external_params_with_configs(
            configs, None, kwargs_dict={"eval_num_epochs": 1, "sample_1_of_n_eval_examples": 1}
        )
        self.configs = configs
        eval_config = configs["eval_config"]
        eval_inputs = configs["eval_input_configs"]
        if eval_index >= len(eval_inputs):
            raise TfodError(f"the pipeline has no eval_input_reader #{eval_index}", path=pipeline_path)
        self.eval_input_config = eval_inputs[eval_index]
        self.batch_size = int(eval_config.batch_size)
        self.add_regularization_loss = bool(configs["train_config"].add_regularization_loss)
        self.use_moving_averages = bool(eval_config.use_moving_averages)
        tf.keras.backend.set_learning_phase(False)
        self.model = model_builder.build(model_config=configs["model"], is_training=True)
        self.model._is_training = False  # as model_lib_v2.eager_eval_loop does
        self.dataset = inputs.eval_input(
            eval_config=eval_config,
            eval_input_config=self.eval_input_config,
            model_config=configs["model"],
            model=self.model,
        )
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64)
        self.optimizer: Any = None
        if self.use_moving_averages:
            self.optimizer, _ = optimizer_builder.build(
                configs["train_config"].optimizer, global_step=self.step
            )
        fields = standard_fields.InputDataFields
        model = self.model
        batch_size = self.batch_size
        add_reg = self.add_regularization_loss

        # The API's model code is TF1-style graph code (no Python control flow on tensors), so
        # AutoGraph's source transformation is not needed: skipping it saves ~15 s of the first trace.
        @tf.function(autograph=False)
        def compute(features: Any, labels: Any) -> Any:
            boxes_shape = labels[fields.groundtruth_boxes].get_shape().as_list()
            unpad = boxes_shape[1] is not None and batch_size == 1
            unstacked = model_lib.unstack_batch(dict(labels), unpad_groundtruth_tensors=unpad)
            losses, predictions = model_lib_v2._compute_losses_and_predictions_dicts(
                model, features, unstacked, training_step=None, add_regularization_loss=add_reg
            )
            detections = model.postprocess(predictions, features[fields.true_image_shape])
            keep = (
                fields.image,
                fields.original_image,
                fields.original_image_spatial_shape,
                fields.true_image_shape,
                inputs.HASH_KEY,
            )
            eval_features = {k: features[k] for k in keep if k in features}
            return losses, detections, labels, eval_features

        self._compute = compute
        self._built = False
        self._initial: list[Any] = []
        self.last_restore_note = ""

    def _build(self) -> None:
        """Trace the function and create every variable on the first batch (before any restore)."""
        if self._built:
            return
        for features, labels in self.dataset.take(1):
            self._compute(features, labels)
        if self.optimizer is not None:
            self.optimizer.shadow_copy(self.model)
        self._initial = [variable.numpy() for variable in self.model.variables]
        self._built = True

    def source_keys(self, source_ids: list[str]) -> list[int]:
        """The ``hash`` key the eval input gives an image with each ``image/source_id``
        (:func:`tfod_tools.odapi.keys.source_keys`, the one rule)."""
        from tfod_tools.odapi.keys import source_keys

        return source_keys(source_ids)

    def restore(self, prefix: str | Path) -> int:
        """Restore a checkpoint into the model; return its global step. :class:`TfodError` on failure.

        A checkpoint without model weights (``model_main_tf2`` saves ``ckpt-1`` at step 0 before a
        model trained from scratch is built) leaves the model at its initial weights, as the stock
        evaluation does; :attr:`last_restore_note` says so.
        """
        tf = self._tf
        self._build()
        self.last_restore_note = ""
        try:
            reader = tf.train.load_checkpoint(str(prefix))
            has_model = any(k.startswith("model/") for k in reader.get_variable_to_shape_map())
            objects: dict[str, Any] = {"step": self.step}
            if has_model:
                objects["model"] = self.model
                if self.optimizer is not None:
                    objects["optimizer"] = self.optimizer
            else:
                for variable, value in zip(self.model.variables, self._initial, strict=True):
                    variable.assign(value)
                self.last_restore_note = "no model weights in the checkpoint: initial weights evaluated"
            status = tf.train.Checkpoint(**objects).restore(str(prefix)).expect_partial()
            if has_model:
                status.assert_existing_objects_matched()
        except Exception as exc:  # DataLossError, NotFoundError, AssertionError ...
            raise TfodError(f"cannot restore: {_first_line(exc)}", path=prefix) from None
        if self.optimizer is not None and has_model:
            self.optimizer.swap_weights()
        return int(self.step.numpy())

    def evaluate(self, prefix: str | Path, on_batch: Callable[[int], None] | None = None) -> EvalOutput:
        """Restore ``prefix`` and run the whole eval input through the model.

        ``on_batch(n_images)`` is called after every batch (progress).
        """
        started = time.monotonic()
        step = self.restore(prefix)
        delay = float(os.environ.get(DELAY_ENV) or 0.0)
        if delay > 0:
            time.sleep(delay)
        images: list[ImageResult] = []
        loss_sums: dict[str, float] = {}
        batches = 0
        for features, labels in self.dataset:
            losses, detections, groundtruth, eval_features = self._compute(features, labels)
            eval_dict, _ = self._model_lib_v2.prepare_eval_dict(detections, dict(groundtruth), eval_features)
            images.extend(self._unbatch(eval_dict))
            for key, value in losses.items():
                loss_sums[key] = loss_sums.get(key, 0.0) + float(value.numpy())
            batches += 1
            if on_batch is not None:
                on_batch(int(eval_features[self._inputs.HASH_KEY].shape[0]))
        losses_mean = {k: v / batches for k, v in loss_sums.items()} if batches else {}
        return EvalOutput(step=step, images=images, losses=losses_mean, seconds=time.monotonic() - started)

    def _unbatch(self, eval_dict: dict[str, Any]) -> list[ImageResult]:
        from object_detection.core import standard_fields

        inp = standard_fields.InputDataFields
        det = standard_fields.DetectionResultFields
        arrays = {k: v.numpy() for k, v in eval_dict.items() if hasattr(v, "numpy")}
        keys = arrays[inp.key].reshape(-1)
        n = keys.shape[0]
        shapes = arrays.get(inp.original_image_spatial_shape)
        if shapes is None:  # the stock evaluation then measures in the preprocessed image's pixels
            true_shapes = arrays[inp.true_image_shape]
            shapes = true_shapes[:, :2]
        num_gt = arrays.get(inp.num_groundtruth_boxes)
        num_det = arrays.get(det.num_detections)
        out: list[ImageResult] = []
        for i in range(n):
            g = int(num_gt[i]) if num_gt is not None else arrays[inp.groundtruth_boxes][i].shape[0]
            d = int(num_det[i]) if num_det is not None else arrays[det.detection_boxes][i].shape[0]
            crowd = arrays.get(inp.groundtruth_is_crowd)
            difficult = arrays.get(inp.groundtruth_difficult)
            area = arrays.get(inp.groundtruth_area)
            out.append(
                ImageResult(
                    key=int(keys[i]),
                    height=int(shapes[i][0]),
                    width=int(shapes[i][1]),
                    gt_boxes=_yxyx_to_xyxy(arrays[inp.groundtruth_boxes][i][:g]),
                    gt_classes=np.asarray(arrays[inp.groundtruth_classes][i][:g], dtype=np.int64),
                    gt_crowd=np.zeros(g, bool) if crowd is None else np.asarray(crowd[i][:g], dtype=bool),
                    gt_difficult=(
                        np.zeros(g, bool) if difficult is None else np.asarray(difficult[i][:g], dtype=bool)
                    ),
                    det_boxes=_yxyx_to_xyxy(arrays[det.detection_boxes][i][:d]),
                    det_classes=np.asarray(arrays[det.detection_classes][i][:d], dtype=np.int64),
                    det_scores=np.asarray(arrays[det.detection_scores][i][:d], dtype=np.float64),
                    gt_area=None if area is None else np.asarray(area[i][:g], dtype=np.float64),
                )
            )
        return out
