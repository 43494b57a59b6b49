"""The pipeline's ``image_resizer`` without TensorFlow: what shape an image reaches the model in.

Mirrors the API's resizers (``object_detection/builders/image_resizer_builder.py`` and
``core/preprocessor.py``) for static image shapes:

- ``fixed_shape_resizer`` stretches to ``height x width``;
- ``keep_aspect_ratio_resizer`` (``resize_to_range``) scales the short side to ``min_dimension``,
  unless the long side would then exceed ``max_dimension``, in which case the long side is scaled
  to ``max_dimension``; each side is rounded to whole pixels (Python's ``round``, as the API's
  static path). With ``pad_to_max_dimension`` the image is then padded (bottom/right) to
  ``max_dimension`` squared: the model input is larger than the resized image, the scale is not
  changed;
- ``identity_resizer`` keeps the image as it is.

Shapes are always passed by keyword, ``height=`` and ``width=``, and come back named
(:class:`ResizedShape`), so that no caller can swap them.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''model { ssd { image_resizer { keep_aspect_ratio_resizer {
...   min_dimension: 320 max_dimension: 640 pad_to_max_dimension: true } } } }''')
>>> resizer = ImageResizer.from_pipeline(cfg)
>>> resizer.describe()
'keep_aspect_ratio_resizer 320-640, padded'
>>> shape = resizer.resize(height=480, width=640)
>>> shape.height, shape.width, shape.input_height, shape.input_width
(320, 427, 640, 640)
>>> round(shape.scale_y, 4), round(shape.scale_x, 4)
(0.6667, 0.6672)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

__all__ = ["SUPPORTED_RESIZERS", "ImageResizer", "ResizedShape"]

SUPPORTED_RESIZERS = ("fixed_shape_resizer", "keep_aspect_ratio_resizer", "identity_resizer")
"""The ``image_resizer`` oneof cases :class:`ImageResizer` models."""


class ResizedShape(NamedTuple):
    """What the resizer makes of one image.

    ``height`` x ``width``: the resized image (the API's ``true_image_shape``);
    ``input_height`` x ``input_width``: the tensor the model gets (larger only when padded);
    ``scale_y``, ``scale_x``: original pixels -> model-input pixels along y and x.
    """

    height: int
    width: int
    input_height: int
    input_width: int
    scale_y: float
    scale_x: float


@dataclass(frozen=True)
class ImageResizer:
    """One ``image_resizer``: its ``kind`` (a :data:`SUPPORTED_RESIZERS` case) and its sizes.

    >>> ImageResizer("fixed_shape_resizer", height=320, width=320).resize(height=640, width=400)
    ResizedShape(height=320, width=320, input_height=320, input_width=320, scale_y=0.5, scale_x=0.8)
    >>> keep = ImageResizer("keep_aspect_ratio_resizer", min_dimension=600, max_dimension=1024)
    >>> keep.resize(height=1000, width=2000)[:2]   # the long side capped at 1024
    (512, 1024)
    >>> keep.resize(height=480, width=640)[:2]     # the short side to 600
    (600, 800)
    """

    kind: str
    height: int = 0
    width: int = 0
    min_dimension: int = 0
    max_dimension: int = 0
    pad_to_max_dimension: bool = False

    @classmethod
    def from_config(cls, image_resizer: Any) -> ImageResizer | None:
        """The resizer of an ``ImageResizer`` proto; None when unset or not a supported kind."""
        kind = image_resizer.WhichOneof("image_resizer_oneof")
        if kind == "fixed_shape_resizer":
            f = image_resizer.fixed_shape_resizer
            return cls(kind, height=int(f.height), width=int(f.width))
        if kind == "keep_aspect_ratio_resizer":
            k = image_resizer.keep_aspect_ratio_resizer
            return cls(
                kind,
                min_dimension=int(k.min_dimension),
                max_dimension=int(k.max_dimension),
                pad_to_max_dimension=bool(k.pad_to_max_dimension),
            )
        if kind == "identity_resizer":
            return cls(kind)
        return None

    @classmethod
    def from_pipeline(cls, config: Any) -> ImageResizer | None:
        """The resizer of a pipeline config's model; None for a model without a supported one.

        >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
        >>> ImageResizer.from_pipeline(parse_pipeline_text(
        ...     'model { faster_rcnn { image_resizer { identity_resizer { } } } }')).kind
        'identity_resizer'
        """
        which = config.model.WhichOneof("model")
        model = None if which is None else getattr(config.model, which)
        if model is None or "image_resizer" not in model.DESCRIPTOR.fields_by_name:
            return None
        return cls.from_config(model.image_resizer)

    def resize(self, *, height: float, width: float) -> ResizedShape:
        """The shapes and scales for an original image of ``height`` x ``width`` pixels."""
        if self.kind == "fixed_shape_resizer":
            new_h, new_w = self.height, self.width
        elif self.kind == "keep_aspect_ratio_resizer":
            factor = self.min_dimension / min(height, width)
            new_h, new_w = round(height * factor), round(width * factor)
            if self.max_dimension and max(new_h, new_w) > self.max_dimension:
                factor = self.max_dimension / max(height, width)
                new_h, new_w = round(height * factor), round(width * factor)
            if self.pad_to_max_dimension:
                side = self.max_dimension
                return ResizedShape(new_h, new_w, side, side, new_h / height, new_w / width)
        else:  # identity_resizer
            return ResizedShape(round(height), round(width), round(height), round(width), 1.0, 1.0)
        return ResizedShape(new_h, new_w, new_h, new_w, new_h / height, new_w / width)

    def describe(self) -> str:
        """One line for people.

        >>> ImageResizer("fixed_shape_resizer", height=320, width=640).describe()
        'fixed_shape_resizer 320x640'
        """
        if self.kind == "fixed_shape_resizer":
            return f"fixed_shape_resizer {self.height}x{self.width}"
        if self.kind == "keep_aspect_ratio_resizer":
            pad = ", padded" if self.pad_to_max_dimension else ""
            return f"keep_aspect_ratio_resizer {self.min_dimension}-{self.max_dimension}{pad}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: ``resizer`` (the kind) and the sizes that kind uses.

        >>> ImageResizer("keep_aspect_ratio_resizer", min_dimension=600, max_dimension=1024).to_dict()
        {'resizer': 'keep_aspect_ratio_resizer', 'min_dimension': 600, 'max_dimension': 1024}
        """
        out: dict[str, Any] = {"resizer": self.kind}
        if self.kind == "fixed_shape_resizer":
            out.update(height=self.height, width=self.width)
        elif self.kind == "keep_aspect_ratio_resizer":
            out.update(min_dimension=self.min_dimension, max_dimension=self.max_dimension)
        return out

    def scaled(self, factor: float) -> ImageResizer:
        """The same resizer with every size multiplied by ``factor`` (a what-if).

        >>> ImageResizer("fixed_shape_resizer", height=320, width=320).scaled(2).describe()
        'fixed_shape_resizer 640x640'
        """
        return replace(
            self,
            height=round(self.height * factor),
            width=round(self.width * factor),
            min_dimension=round(self.min_dimension * factor),
            max_dimension=round(self.max_dimension * factor),
        )
