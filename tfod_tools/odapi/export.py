"""The API's own exporters: a checkpoint to a SavedModel, and an SSD checkpoint to a TFLite model.

- :func:`export_saved_model` runs ``exporter_lib_v2.export_inference_graph`` (input type
  ``image_tensor``: a ``uint8 [1, H, W, 3]`` image in, the model's own preprocessing and
  post-processing inside the graph, exactly as the stock ``exporter_main_v2.py`` does).
- :func:`export_tflite` runs ``export_tflite_graph_lib_tf2.export_tflite_model`` (the TFLite-friendly
  SavedModel whose post-processing is TFLite's ``TFLite_Detection_PostProcess`` op) and converts it
  with ``tf.lite.TFLiteConverter.from_saved_model`` (TFLITE_BUILTINS; ``float16`` weights; ``int8``
  weights and activations calibrated on a representative data set, float input and output kept).
- :func:`tflite_input` is what the TFLite model takes: the image resized and normalised by the
  model's own ``preprocess`` (``float32 [1, H, W, 3]``); the representative data set for ``int8`` is
  decoded training images through it.

The exporters read the checkpoint named by a directory's ``checkpoint`` file (the newest);
:func:`stage_checkpoint` gives them a directory of their own with hard links (copies where links
are impossible) to the chosen checkpoint's files and a ``checkpoint`` file naming it, so the
model directory's own ``checkpoint`` file is never read or written.

TensorFlow and the API are imported inside the functions, through the compatibility layer.
:func:`tflite_problem` needs neither:

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> tflite_problem(parse_pipeline_text("model { faster_rcnn { num_classes: 2 } }"))
"the API's TFLite exporter takes the ssd and center_net meta-architectures only, not faster_rcnn"
>>> tflite_problem(parse_pipeline_text("model { center_net { num_classes: 2 } }"))
'tfod export converts the ssd meta-architecture to TFLite, not center_net (the API can, not wired here)'
>>> tflite_problem(parse_pipeline_text(
...     "model { ssd { image_resizer { fixed_shape_resizer { height: 64 width: 64 } } } }")) is None
True
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError
from tfod_tools.odapi.checkpoints import CheckpointFiles, protect

__all__ = [
    "API_TFLITE_META_ARCHITECTURES",
    "QUANTIZATIONS",
    "TFLITE_META_ARCHITECTURES",
    "decode_image",
    "export_saved_model",
    "export_tflite",
    "library_versions",
    "run_tflite",
    "stage_checkpoint",
    "tflite_input",
    "tflite_problem",
]

TFLITE_META_ARCHITECTURES = ("ssd",)
"""Meta-architectures ``tfod export`` converts to TFLite (the API's TFLite exporter: SSD, CenterNet;
only SSD is wired and tested here)."""

API_TFLITE_META_ARCHITECTURES = ("ssd", "center_net")
"""Meta-architectures the API's ``export_tflite_graph_lib_tf2`` takes at all."""

QUANTIZATIONS = ("none", "float16", "int8")
"""``--tflite-quantize`` choices."""

Config = Any  # pipeline_pb2.TrainEvalPipelineConfig
FloatImage = npt.NDArray[np.float32]


def tflite_problem(config: Config) -> str | None:
    """Why the TFLite exporter cannot export this pipeline's model (None when it can); no TensorFlow."""
    kind = config.model.WhichOneof("model")
    if kind not in API_TFLITE_META_ARCHITECTURES:
        return (
            f"the API's TFLite exporter takes the {' and '.join(API_TFLITE_META_ARCHITECTURES)} "
            f"meta-architectures only, not {kind}"
        )
    if kind not in TFLITE_META_ARCHITECTURES:
        return (
            f"tfod export converts the {' / '.join(TFLITE_META_ARCHITECTURES)} meta-architecture to "
            f"TFLite, not {kind} (the API can, not wired here)"
        )
    resizer = config.model.ssd.image_resizer.WhichOneof("image_resizer_oneof")
    if resizer != "fixed_shape_resizer":
        return f"the TFLite exporter needs image_resizer {{ fixed_shape_resizer }}, not {resizer}"
    return None


def stage_checkpoint(checkpoint: CheckpointFiles, directory: str | Path) -> Path:
    """``directory`` holding the checkpoint's files (hard links) and a ``checkpoint`` file naming it.

    >>> import tempfile, pathlib
    >>> from tfod_tools.odapi.checkpoints import scan_checkpoints
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ckpt-2.index").write_bytes(b"i")
    >>> _ = (d / "ckpt-2.data-00000-of-00001").write_bytes(b"d")
    >>> staged = stage_checkpoint(scan_checkpoints(d)[0], d / "stage")
    >>> sorted(p.name for p in staged.iterdir())
    ['checkpoint', 'ckpt-2.data-00000-of-00001', 'ckpt-2.index']
    >>> (staged / "checkpoint").read_text().splitlines()[0]
    'model_checkpoint_path: "ckpt-2"'
    """
    target = Path(directory)
    linked = protect(checkpoint, target)
    (target / "checkpoint").write_text(
        f'model_checkpoint_path: "{linked.name}"\nall_model_checkpoint_paths: "{linked.name}"\n',
        encoding="utf-8",
    )
    return target


def _api() -> Any:
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    return tf


def export_saved_model(config: Config, staged_dir: str | Path, work_dir: str | Path) -> Path:
    """Export the staged checkpoint with ``exporter_lib_v2`` into ``work_dir``; return its ``saved_model``.

    ``work_dir`` also receives the exporter's own ``checkpoint/`` and ``pipeline.config`` copies.
    """
    _api()
    from object_detection import exporter_lib_v2

    exporter_lib_v2.export_inference_graph("image_tensor", config, str(staged_dir), str(work_dir))
    return Path(work_dir) / "saved_model"


def export_tflite(
    config: Config,
    staged_dir: str | Path,
    work_dir: str | Path,
    *,
    quantize: str = "none",
    representative: Callable[[], Iterable[FloatImage]] | None = None,
    max_detections: int = 100,
    use_regular_nms: bool = True,
) -> bytes:
    """The TFLite flatbuffer of the staged SSD checkpoint (``work_dir`` keeps the TFLite graph).

    ``quantize``: ``none`` (float32), ``float16`` (float16 weights), ``int8`` (int8 weights and
    activations, calibrated on ``representative()``: :func:`tflite_input` arrays; input and output
    stay float32). ``use_regular_nms`` picks TFLite's multi-class NMS (as the SavedModel's), not
    the faster class-agnostic one.
    """
    if quantize not in QUANTIZATIONS:
        raise TfodError(
            f"unknown TFLite quantization {quantize!r}", fix=f"use one of {', '.join(QUANTIZATIONS)}"
        )
    if quantize == "int8" and representative is None:
        raise TfodError(
            "int8 quantization needs a representative data set", fix="pass --representative-records"
        )
    problem = tflite_problem(config)
    if problem is not None:
        raise TfodError(problem, fix="export a SavedModel only (--format saved_model)")
    tf = _api()
    from object_detection import export_tflite_graph_lib_tf2

    export_tflite_graph_lib_tf2.export_tflite_model(
        config, str(staged_dir), str(work_dir), max_detections, use_regular_nms
    )
    converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(work_dir) / "saved_model"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        assert representative is not None

        def dataset() -> Iterator[list[FloatImage]]:
            for image in representative():
                yield [image]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,  # the detection post-processing op stays float
        ]
    return bytes(converter.convert())


def tflite_input(config: Config) -> Callable[[npt.NDArray[np.uint8]], FloatImage]:
    """``f(image)``: a decoded ``uint8 [H, W, 3]`` image as the TFLite model's input.

    The model's own ``preprocess`` (its image resizer and feature-extractor normalisation), as the
    SavedModel applies it inside its graph. The model is built once, here.
    """
    tf = _api()
    from object_detection.builders import model_builder

    model = model_builder.build(model_config=config.model, is_training=False)

    def prepare(image: npt.NDArray[np.uint8]) -> FloatImage:
        batch = tf.cast(tf.convert_to_tensor(image)[tf.newaxis], tf.float32)
        preprocessed, _ = model.preprocess(batch)
        return np.asarray(preprocessed.numpy(), dtype=np.float32)

    return prepare


def decode_image(encoded: bytes) -> npt.NDArray[np.uint8]:
    """Decode a JPEG/PNG into ``uint8 [H, W, 3]`` with TensorFlow's decoder (as the API's input does)."""
    tf = _api()
    return np.asarray(tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy())


def run_tflite(path: str | Path, inputs: Iterable[FloatImage]) -> Iterator[dict[str, npt.NDArray[Any]]]:
    """Run a detection ``.tflite`` on each :func:`tflite_input` array.

    Yields ``{"boxes": [N, 4] normalised ymin, xmin, ymax, xmax, "classes": [N] (0-based),
    "scores": [N]}`` with the model's ``N = num_detections``.
    """
    tf = _api()
    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner()
    for image in inputs:
        out = {name: np.asarray(value) for name, value in runner(input=image).items()}
        # The exporter returns TFLite_Detection_PostProcess's outputs reversed: output_0 is the
        # number of detections, output_1 the scores, output_2 the classes, output_3 the boxes.
        count = int(out["output_0"].reshape(-1)[0])
        yield {
            "boxes": out["output_3"].reshape(-1, 4)[:count],
            "classes": out["output_2"].reshape(-1)[:count],
            "scores": out["output_1"].reshape(-1)[:count],
        }


def library_versions() -> dict[str, str | None]:
    """The versions that shape an export: TensorFlow, tf-keras, the API's distribution, protobuf."""
    names = {
        "tensorflow": "tensorflow",
        "tf_keras": "tf-keras",
        "object_detection": "tf-models-research-object-detection",
        "protobuf": "protobuf",
    }
    found: dict[str, str | None] = {}
    for key, dist in names.items():
        try:
            found[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    return found
