"""Run an exported detection model: a SavedModel (``exporter_lib_v2``) or a TFLite SSD model.

:meth:`ExportedModel.load` takes an export directory (``DIR/saved_model``, as ``tfod export``
writes it), a SavedModel directory itself, or a ``.tflite`` file; beside the model it reads
``label_map.pbtxt``, ``pipeline.config`` and ``export.json`` when they are there.
:meth:`ExportedModel.detect` runs decoded ``uint8 [H, W, 3]`` images and returns per image the
detections in **original-image pixels** ``[x1, y1, x2, y2]`` with 1-based class ids:

- the SavedModel's ``serving_default`` takes ``input_tensor`` ``uint8 [1, H, W, 3]`` (the model's
  own resizing and normalisation are inside the graph) and gives normalised ``detection_boxes``
  ``[ymin, xmin, ymax, xmax]``, ``detection_classes`` (1-based, as floats), ``detection_scores``
  and ``num_detections``;
- a TFLite SSD (``export_tflite_graph_lib_tf2`` + ``TFLiteConverter``; post-processing is the
  ``TFLite_Detection_PostProcess`` op) takes the image already resized and normalised by the model's
  ``preprocess`` (:func:`tfod_tools.odapi.export.tflite_input`, which needs the ``pipeline.config``
  beside the model) and gives boxes, **0-based** classes, scores and a count; an input of integer
  type is quantised with the scale and zero point of its input details.

:func:`detect_images` runs a sequence of ``(image_id, pixels)`` and returns the rows of all their
detections (:class:`DetectionRows`: ``Detections.from_arrays(*rows.columns())`` is the data model's
table, ready for an ``AnnotatedSet``; this layer does not import the data model), for ``tfod predict``
and any command that scores an exported model. TensorFlow is imported inside the functions,
through the compatibility layer.

>>> boxes = to_pixel_boxes([[0.25, 0.5, 0.75, 1.0]], width=200, height=100)
>>> boxes.tolist()
[[100.0, 25.0, 200.0, 75.0]]
>>> ExportedModel.load("/no/such/model")
Traceback (most recent call last):
...
tfod_tools.errors.TfodError: /no/such/model: no exported model here (fix: pass an export directory \
(with saved_model/), a SavedModel directory or a .tflite file)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, read_label_map

__all__ = [
    "DetectionRows",
    "ExportedModel",
    "ImageDetections",
    "decode_image",
    "detect_images",
    "to_pixel_boxes",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Image = npt.NDArray[np.uint8]

_FIX_PATH = "pass an export directory (with saved_model/), a SavedModel directory or a .tflite file"


def to_pixel_boxes(normalised: Any, *, width: float, height: float) -> FloatArray:
    """The API's normalised ``[ymin, xmin, ymax, xmax]`` as ``[x1, y1, x2, y2]`` pixels of the image.

    Coordinates are clipped to ``[0, 1]`` first (as the API's own ``prepare_eval_dict`` boxes are).
    """
    arr = np.clip(np.asarray(normalised, dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return np.ascontiguousarray(arr[:, [1, 0, 3, 2]] * scale)


@dataclass(frozen=True)
class ImageDetections:
    """One image's detections: ``[x1, y1, x2, y2]`` original-image pixels, 1-based classes, scores."""

    boxes: FloatArray
    classes: IntArray
    scores: FloatArray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def above(self, threshold: float) -> ImageDetections:
        """The detections with ``score >= threshold``."""
        keep = self.scores >= threshold
        return ImageDetections(self.boxes[keep], self.classes[keep], self.scores[keep])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TfodError(f"unreadable export manifest ({exc})", path=path, fix="re-run tfod export") from None
    return value if isinstance(value, dict) else {}


def _locate(path: Path) -> tuple[str, Path, Path]:
    """``(kind, model path, directory of the side files)`` for what the user named."""
    if path.is_file():
        if path.suffix.lower() != ".tflite":
            raise TfodError("not a .tflite file nor a model directory", path=path, fix=_FIX_PATH)
        return "tflite", path, path.parent
    if (path / "saved_model.pb").is_file():
        side = path.parent if path.name == "saved_model" else path
        return "saved_model", path, side
    if (path / "saved_model" / "saved_model.pb").is_file():
        return "saved_model", path / "saved_model", path
    if path.is_dir() and (path / "model.tflite").is_file():
        return "tflite", path / "model.tflite", path
    raise TfodError("no exported model here", path=path, fix=_FIX_PATH)


@dataclass
class ExportedModel:
    """An exported detection model, loaded and ready to run (see the module docstring)."""

    path: Path
    kind: str
    """``saved_model`` or ``tflite``."""
    label_map: LabelMap | None = None
    """The export's own ``label_map.pbtxt`` (None when there is none beside the model)."""
    label_map_path: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    """``export.json`` (empty when there is none)."""
    num_classes: int | None = None
    """The model's number of classes (from the model's outputs or its ``pipeline.config``)."""
    input_size: tuple[int, int] | None = None
    """TFLite: the model's ``(height, width)`` input; None for a SavedModel (any size)."""
    side_dir: Path | None = None
    """Where ``label_map.pbtxt``, ``pipeline.config`` and ``export.json`` are looked for."""
    config: Any = None
    """The parsed ``pipeline.config`` beside the model (None when there is none)."""
    _run: Callable[[Image], tuple[Any, Any, Any, int]] | None = field(default=None, repr=False)
    _keep: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> ExportedModel:
        """Find the model and read its side files, without TensorFlow (:meth:`start` loads it)."""
        kind, model_path, side = _locate(Path(path))
        model = cls(path=model_path, kind=kind, side_dir=side)
        label_map_path = side / "label_map.pbtxt"
        if label_map_path.is_file():
            model.label_map, model.label_map_path = read_label_map(label_map_path), label_map_path
        if (side / "export.json").is_file():
            model.manifest = _read_json(side / "export.json")
        if (side / "pipeline.config").is_file():
            from tfod_tools.odapi import pipeline as pipeline_lib

            model.config = pipeline_lib.load_pipeline(side / "pipeline.config")
            model.num_classes = pipeline_lib.num_classes(model.config)
        return model

    @classmethod
    def load(cls, path: str | Path) -> ExportedModel:
        """:meth:`open` then :meth:`start`: the model ready to run; :class:`TfodError` for anything else."""
        return cls.open(path).start()

    def start(self) -> ExportedModel:
        """Load the model itself (TensorFlow is imported here) and warm it up; returns ``self``.

        The warm-up runs one small blank image: a SavedModel's first call initialises and optimises
        its graph (seconds), which would otherwise stall the first real image.
        """
        if self._run is None:
            if self.kind == "saved_model":
                self._load_saved_model()
            else:
                self._load_tflite(self.config, self.side_dir or self.path.parent)
            self.detect_one(np.zeros((32, 32, 3), dtype=np.uint8))
        return self

    @property
    def started(self) -> bool:
        """Whether :meth:`start` loaded the model."""
        return self._run is not None

    # -- back ends ------------------------------------------------------------------------------

    def _load_saved_model(self) -> None:
        from tfod_tools.odapi import compat

        compat.install()
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, RuntimeError, tf.errors.OpError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TfodError(f"cannot load the SavedModel ({first})", path=self.path, fix=_FIX_PATH) from None
        signature = loaded.signatures.get("serving_default")
        if signature is None:
            raise TfodError("the SavedModel has no serving_default signature", path=self.path, fix=_FIX_PATH)
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        needed = {"detection_boxes", "detection_classes", "detection_scores", "num_detections"}
        if len(inputs) != 1 or not needed <= set(outputs):
            raise TfodError(
                "not an object detection SavedModel (it needs one image input and detection_boxes, "
                "detection_classes, detection_scores, num_detections outputs)",
                path=self.path,
                fix="export with tfod export (or the API's exporter_main_v2.py, input type image_tensor)",
            )
        ((input_name, spec),) = inputs.items()
        if spec.dtype != tf.uint8:
            raise TfodError(
                f"the SavedModel takes {spec.dtype.name} input, not a uint8 image",
                path=self.path,
                fix="export with input type image_tensor",
            )
        multiclass = outputs.get("detection_multiclass_scores")
        if self.num_classes is None and multiclass is not None and multiclass.shape[-1] is not None:
            self.num_classes = int(multiclass.shape[-1]) - 1  # the background column
        self._keep = loaded  # the signature needs its object alive

        def run(image: Image) -> tuple[Any, Any, Any, int]:
            out = signature(**{input_name: tf.convert_to_tensor(image[np.newaxis])})
            count = int(out["num_detections"].numpy().reshape(-1)[0])
            return (
                out["detection_boxes"].numpy()[0, :count],
                out["detection_classes"].numpy()[0, :count],
                out["detection_scores"].numpy()[0, :count],
                0,  # classes are already 1-based
            )

        self._run = run

    def _load_tflite(self, config: Any, side: Path) -> None:
        from tfod_tools.odapi import compat

        compat.install()
        import tensorflow as tf

        try:
            interpreter = tf.lite.Interpreter(model_path=str(self.path))
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TfodError(
                f"cannot load the TFLite model ({first})", path=self.path, fix=_FIX_PATH
            ) from None
        runner = interpreter.get_signature_runner()
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        if len(inputs) != 1 or sorted(outputs) != [f"output_{i}" for i in range(4)]:
            raise TfodError(
                "not a TFLite detection model (it needs one image input and the 4 outputs of "
                "TFLite_Detection_PostProcess)",
                path=self.path,
                fix="export with tfod export --format tflite",
            )
        ((input_name, detail),) = inputs.items()
        if config is None:
            raise TfodError(
                "a TFLite model needs its pipeline.config beside it (the model's own preprocessing)",
                path=side / "pipeline.config",
                fix="export with tfod export --format tflite, or copy the pipeline.config next to the model",
            )
        from tfod_tools.odapi.export import tflite_input

        prepare = tflite_input(config)
        height, width = int(detail["shape"][1]), int(detail["shape"][2])
        self.input_size = (height, width)
        dtype = detail["dtype"]
        scale, zero = detail.get("quantization", (0.0, 0))

        def run(image: Image) -> tuple[Any, Any, Any, int]:
            tensor = prepare(image)
            if tuple(tensor.shape[1:3]) != (height, width):
                raise TfodError(
                    f"the pipeline.config resizes to {tensor.shape[2]}x{tensor.shape[1]} but the TFLite "
                    f"model takes {width}x{height}",
                    path=side / "pipeline.config",
                    fix="use the pipeline.config the model was exported from",
                )
            if np.issubdtype(dtype, np.integer):  # an integer input: quantised as its details say
                info = np.iinfo(dtype)
                tensor = np.clip(np.rint(tensor / scale + zero), info.min, info.max)
            out = runner(**{input_name: tensor.astype(dtype)})
            boxes, classes, scores, count = _postprocess_outputs(out)
            n = int(count.reshape(-1)[0])
            return boxes.reshape(-1, 4)[:n], classes.reshape(-1)[:n], scores.reshape(-1)[:n], 1  # 0-based

        self._run = run

    # -- running --------------------------------------------------------------------------------

    def detect_one(self, image: Image) -> ImageDetections:
        """Detections of one decoded ``uint8 [H, W, 3]`` image, in its own pixels."""
        if self._run is None:
            raise RuntimeError("ExportedModel.detect_one before start()")
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"an image must be uint8 [H, W, 3], got {pixels.dtype} {pixels.shape}")
        boxes, classes, scores, offset = self._run(pixels)
        height, width = pixels.shape[:2]
        return ImageDetections(
            boxes=to_pixel_boxes(boxes, width=width, height=height),
            classes=np.rint(np.asarray(classes, dtype=np.float64)).astype(np.int64).reshape(-1) + offset,
            scores=np.asarray(scores, dtype=np.float64).reshape(-1),
        )

    def detect(self, images: Sequence[Image]) -> list[ImageDetections]:
        """Detections of a batch of images, one :class:`ImageDetections` per image, in order.

        Both exports take one image per call (the SavedModel's ``image_tensor`` input is
        ``[1, H, W, 3]``; images of a batch may differ in size), so a batch runs image by image.
        """
        return [self.detect_one(image) for image in images]

    def classes_text(self) -> str:
        """What the model says about its classes, for messages."""
        return "unknown" if self.num_classes is None else str(self.num_classes)


def decode_image(encoded: bytes) -> Image:
    """Decode image bytes into ``uint8 [H, W, 3]`` as the API's own input decoder does.

    TensorFlow's ``decode_image`` with ``channels=3`` (grayscale expanded, alpha dropped, EXIF
    ignored): the pixels a model saw in training and evaluation
    (:func:`tfod_tools.odapi.export.decode_image`).
    """
    from tfod_tools.odapi.export import decode_image as api_decode

    return api_decode(encoded)


def _postprocess_outputs(out: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """``(boxes, classes, scores, count)`` among the signature outputs of ``TFLite_Detection_PostProcess``.

    Their names do not follow the op's order (TF 2.20 here: ``output_0`` the count, ``output_1`` the
    scores, ``output_2`` the classes, ``output_3`` the boxes), so shapes decide: boxes ``[1, N, 4]``,
    the count ``[1]``; of the two ``[1, N]``, the classes are whole numbers (when both or neither
    are, the measured name order decides).

    >>> z = np.zeros
    >>> out = {"output_0": z(1) + 2, "output_1": np.array([[0.9, 0.4]]), "output_2": z((1, 2)),
    ...        "output_3": z((1, 2, 4))}
    >>> [v.shape for v in _postprocess_outputs(out)], _postprocess_outputs(out)[2].tolist()
    ([(1, 2, 4), (1, 2), (1, 2), (1,)], [[0.9, 0.4]])
    """
    arrays = {k: np.asarray(v) for k, v in sorted(out.items())}
    boxes = next(k for k, v in arrays.items() if v.ndim == 3)
    count = next(k for k, v in arrays.items() if v.size == 1 and k != boxes)
    first, second = (k for k in arrays if k not in (boxes, count))  # name order: scores, classes
    whole = {k: bool(np.all(arrays[k] == np.rint(arrays[k]))) for k in (first, second)}
    classes, scores = (first, second) if whole[first] and not whole[second] else (second, first)
    return arrays[boxes], arrays[classes], arrays[scores], arrays[count]


@dataclass(frozen=True)
class DetectionRows:
    """Detections of many images, one row each: the columns of a ``Detections`` table."""

    image_ids: IntArray
    boxes: FloatArray
    classes: IntArray
    scores: FloatArray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def columns(self) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
        """``(image_ids, boxes, classes, scores)``, the arguments of ``Detections.from_arrays``."""
        return self.image_ids, self.boxes, self.classes, self.scores


def detect_images(
    model: ExportedModel,
    images: Iterable[tuple[int, Image]],
    *,
    score_threshold: float = 0.0,
    on_image: Callable[[int, Image, ImageDetections], None] | None = None,
) -> DetectionRows:
    """Run ``(image_id, pixels)`` pairs through ``model``; the rows of all their detections.

    Detections below ``score_threshold`` are dropped; ``on_image(image_id, pixels, detections)``
    sees each image's kept detections as they come (a progress bar, drawing).
    """
    ids: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    boxes: list[FloatArray] = [np.zeros((0, 4), dtype=np.float64)]
    classes: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    scores: list[FloatArray] = [np.zeros(0, dtype=np.float64)]
    for image_id, pixels in images:
        found = model.detect_one(pixels).above(score_threshold)
        ids.append(np.full(len(found), int(image_id), dtype=np.int64))
        boxes.append(found.boxes)
        classes.append(found.classes)
        scores.append(found.scores)
        if on_image is not None:
            on_image(int(image_id), pixels, found)
    return DetectionRows(
        np.concatenate(ids), np.concatenate(boxes), np.concatenate(classes), np.concatenate(scores)
    )
