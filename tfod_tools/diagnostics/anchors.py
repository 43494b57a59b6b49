"""SSD anchors computed in numpy from a pipeline's anchor generator and image resizer, and how well
they cover a data set's ground-truth boxes.

Supported: ``ssd_anchor_generator`` (``MultipleGridAnchorGenerator``: per-layer scales linearly
spaced from ``min_scale`` to ``max_scale`` or given as ``scales``, the reduced three-box lowest
layer, the interpolated extra anchor, ``base_anchor_height/width`` normalised to the shorter input
side, optional strides and offsets) and ``multiscale_anchor_generator`` (FPN levels
``min_level..max_level``, base size ``anchor_scale * 2^level``, ``scales_per_octave`` octave steps,
stride ``2^level``, half-stride offset only where the input side is divisible by the stride).
Anchors are in *model input* pixels, ``[x1, y1, x2, y2]``.

Feature-map sizes follow the feature extractors: for FPN extractors level ``l`` has
``ceil(side / 2^l)`` cells; the other SSD extractors take their first two maps at strides 16 and 32
and halve (rounding up) for every extra layer. Sides are first padded up to ``pad_to_multiple``.

Images reach the model through the pipeline's image resizer,
:class:`tfod_tools.odapi.resizer.ImageResizer`.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''model { ssd {
...   image_resizer { fixed_shape_resizer { height: 128 width: 128 } }
...   feature_extractor { type: "ssd_mobilenet_v2_keras" }
...   anchor_generator { ssd_anchor_generator { num_layers: 6 min_scale: 0.15 max_scale: 0.9
...     aspect_ratios: 1.0 aspect_ratios: 2.0 aspect_ratios: 0.5 } } } }''')
>>> model = AnchorModel.from_pipeline(cfg)
>>> grid = model.anchors(128, 128)
>>> [layer.grid for layer in grid.layers]
[(8, 8), (4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]
>>> grid.boxes().shape
(284, 4)
>>> grid.boxes()[0].round(2).tolist()   # first layer, cell (0, 0): the 0.1-scale square anchor
[1.6, 1.6, 14.4, 14.4]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError
from tfod_tools.odapi.resizer import SUPPORTED_RESIZERS, ImageResizer

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SsdAnchorSpec:
    """The fields of ``ssd_anchor_generator`` that shape the anchors."""

    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    scales: tuple[float, ...] = ()
    aspect_ratios: tuple[float, ...] = ()
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True
    base_anchor_height: float = 1.0
    base_anchor_width: float = 1.0
    strides: tuple[tuple[float, float], ...] = ()
    offsets: tuple[tuple[float, float], ...] = ()

    def box_specs(self) -> list[list[tuple[float, float]]]:
        """Per layer ``[(scale, aspect_ratio)]``, as the API's ``create_ssd_anchors`` lays them out."""
        n = self.num_layers
        if self.scales:
            scales = [*self.scales, 1.0]
        else:
            scales = [self.min_scale + (self.max_scale - self.min_scale) * i / (n - 1) for i in range(n)]
            scales.append(1.0)
        specs: list[list[tuple[float, float]]] = []
        for layer in range(n):
            scale, scale_next = scales[layer], scales[layer + 1]
            if layer == 0 and self.reduce_boxes_in_lowest_layer:
                specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
                continue
            boxes = [(scale, ar) for ar in self.aspect_ratios]
            if self.interpolated_scale_aspect_ratio > 0.0:
                boxes.append((math.sqrt(scale * scale_next), self.interpolated_scale_aspect_ratio))
            specs.append(boxes)
        return specs

    def describe(self) -> str:
        """One line for people."""
        scales = (
            f"scales {list(self.scales)}"
            if self.scales
            else f"min_scale {self.min_scale:g}, max_scale {self.max_scale:g}"
        )
        ars = ", ".join(f"{a:g}" for a in self.aspect_ratios)
        return f"ssd_anchor_generator: {self.num_layers} layers, {scales}, aspect_ratios [{ars}]"


@dataclass(frozen=True)
class MultiscaleAnchorSpec:
    """The fields of ``multiscale_anchor_generator`` (FPN) that shape the anchors."""

    min_level: int = 3
    max_level: int = 7
    anchor_scale: float = 4.0
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5)
    scales_per_octave: int = 2

    def describe(self) -> str:
        """One line for people."""
        ars = ", ".join(f"{a:g}" for a in self.aspect_ratios)
        return (
            f"multiscale_anchor_generator: levels {self.min_level}-{self.max_level}, anchor_scale "
            f"{self.anchor_scale:g}, scales_per_octave {self.scales_per_octave}, aspect_ratios [{ars}]"
        )


@dataclass(frozen=True)
class AnchorLayer:
    """One feature map's anchors: grid, per-location box sizes (pixels), stride and offset (pixels)."""

    grid: tuple[int, int]
    heights: tuple[float, ...]
    widths: tuple[float, ...]
    stride: tuple[float, float]
    offset: tuple[float, float]
    labels: tuple[str, ...]

    def boxes(self) -> FloatArray:
        """``(grid_h * grid_w * k, 4)`` ``[x1, y1, x2, y2]``; box spec fastest, then x, then y."""
        gh, gw = self.grid
        yc = np.arange(gh, dtype=np.float64) * self.stride[0] + self.offset[0]
        xc = np.arange(gw, dtype=np.float64) * self.stride[1] + self.offset[1]
        h = np.asarray(self.heights, dtype=np.float64)
        w = np.asarray(self.widths, dtype=np.float64)
        cy = np.broadcast_to(yc[:, None, None], (gh, gw, h.shape[0])).reshape(-1)
        cx = np.broadcast_to(xc[None, :, None], (gh, gw, h.shape[0])).reshape(-1)
        hh = np.broadcast_to(h[None, None, :], (gh, gw, h.shape[0])).reshape(-1)
        ww = np.broadcast_to(w[None, None, :], (gh, gw, h.shape[0])).reshape(-1)
        return np.stack([cx - ww / 2, cy - hh / 2, cx + ww / 2, cy + hh / 2], axis=1)


@dataclass(frozen=True)
class AnchorGrid:
    """Every anchor of one model input shape."""

    input_shape: tuple[int, int]
    layers: tuple[AnchorLayer, ...]

    def boxes(self) -> FloatArray:
        """All anchors, layer by layer, ``[x1, y1, x2, y2]`` input pixels."""
        return np.concatenate([layer.boxes() for layer in self.layers], axis=0)

    def shape_labels(self) -> list[str]:
        """A label (layer, scale, aspect ratio) per anchor, aligned with :meth:`boxes`."""
        out: list[str] = []
        for layer in self.layers:
            out.extend(list(layer.labels) * (layer.grid[0] * layer.grid[1]))
        return out


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class AnchorModel:
    """An SSD's anchor generator, resizer, feature extractor and matcher thresholds."""

    spec: SsdAnchorSpec | MultiscaleAnchorSpec
    resizer: ImageResizer
    feature_extractor: str = ""
    pad_to_multiple: int = 1
    matched_threshold: float = 0.5
    unmatched_threshold: float = 0.5
    force_match_for_each_row: bool = False
    _cache: dict[tuple[int, int], AnchorGrid] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_pipeline(cls, config: Any) -> AnchorModel | None:
        """The anchor model of an SSD pipeline; None for models without grid anchors (Faster R-CNN
        has its own ``first_stage_anchor_generator`` and is not covered, CenterNet has none).

        Raises :class:`TfodError` for an anchor generator or resizer this module does not model.
        """
        if config.model.WhichOneof("model") != "ssd":
            return None
        ssd = config.model.ssd
        generator = ssd.anchor_generator.WhichOneof("anchor_generator_oneof")
        spec: SsdAnchorSpec | MultiscaleAnchorSpec
        if generator == "ssd_anchor_generator":
            g = ssd.anchor_generator.ssd_anchor_generator
            spec = SsdAnchorSpec(
                num_layers=int(g.num_layers),
                min_scale=float(g.min_scale),
                max_scale=float(g.max_scale),
                scales=tuple(float(s) for s in g.scales),
                aspect_ratios=tuple(float(a) for a in g.aspect_ratios),
                interpolated_scale_aspect_ratio=float(g.interpolated_scale_aspect_ratio),
                reduce_boxes_in_lowest_layer=bool(g.reduce_boxes_in_lowest_layer),
                base_anchor_height=float(g.base_anchor_height),
                base_anchor_width=float(g.base_anchor_width),
                strides=tuple(
                    zip((float(s) for s in g.height_stride), (float(s) for s in g.width_stride), strict=False)
                ),
                offsets=tuple(
                    zip((float(s) for s in g.height_offset), (float(s) for s in g.width_offset), strict=False)
                ),
            )
        elif generator == "multiscale_anchor_generator":
            g = ssd.anchor_generator.multiscale_anchor_generator
            spec = MultiscaleAnchorSpec(
                min_level=int(g.min_level),
                max_level=int(g.max_level),
                anchor_scale=float(g.anchor_scale),
                aspect_ratios=tuple(float(a) for a in g.aspect_ratios),
                scales_per_octave=int(g.scales_per_octave),
            )
        else:
            raise TfodError(
                f"anchor generator {generator!r} is not modelled",
                fix="anchor coverage supports ssd_anchor_generator and multiscale_anchor_generator",
            )
        resizer = ImageResizer.from_config(ssd.image_resizer)
        if resizer is None:
            kind = ssd.image_resizer.WhichOneof("image_resizer_oneof")
            raise TfodError(
                f"image resizer {kind!r} is not modelled" if kind else "the ssd model sets no image_resizer",
                fix=f"anchor coverage supports {', '.join(SUPPORTED_RESIZERS)}",
            )
        matcher = ssd.matcher.argmax_matcher
        return cls(
            spec=spec,
            resizer=resizer,
            feature_extractor=str(ssd.feature_extractor.type),
            pad_to_multiple=max(int(ssd.feature_extractor.pad_to_multiple), 1),
            matched_threshold=float(matcher.matched_threshold),
            unmatched_threshold=float(matcher.unmatched_threshold),
            force_match_for_each_row=bool(matcher.force_match_for_each_row),
        )

    def with_spec(self, spec: SsdAnchorSpec | MultiscaleAnchorSpec) -> AnchorModel:
        """A copy with another anchor spec (a what-if)."""
        return replace(self, spec=spec, _cache={})

    def with_resizer(self, resizer: ImageResizer) -> AnchorModel:
        """A copy with another resizer (a what-if)."""
        return replace(self, resizer=resizer, _cache={})

    def feature_map_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The feature-map grid of every anchor layer for an input of ``height x width``.

        >>> resizer = ImageResizer("fixed_shape_resizer", height=320, width=320)
        >>> m = AnchorModel(MultiscaleAnchorSpec(3, 7), resizer)
        >>> m.feature_map_sizes(320, 320)
        [(40, 40), (20, 20), (10, 10), (5, 5), (3, 3)]
        """
        m = self.pad_to_multiple
        h, w = _ceil_div(height, m) * m, _ceil_div(width, m) * m
        if isinstance(self.spec, MultiscaleAnchorSpec):
            return [
                (_ceil_div(h, 2**level), _ceil_div(w, 2**level))
                for level in range(self.spec.min_level, self.spec.max_level + 1)
            ]
        sizes = [(_ceil_div(h, 16), _ceil_div(w, 16))]
        while len(sizes) < self.spec.num_layers:
            if len(sizes) == 1:
                sizes.append((_ceil_div(h, 32), _ceil_div(w, 32)))
            else:
                sizes.append((_ceil_div(sizes[-1][0], 2), _ceil_div(sizes[-1][1], 2)))
        return sizes[: self.spec.num_layers]

    def anchors(self, height: int, width: int) -> AnchorGrid:
        """The anchors of an input of ``height x width`` (cached per shape)."""
        key = (int(height), int(width))
        if key not in self._cache:
            self._cache[key] = self._build(*key)
        return self._cache[key]

    def _build(self, height: int, width: int) -> AnchorGrid:
        sizes = self.feature_map_sizes(height, width)
        layers: list[AnchorLayer] = []
        if isinstance(self.spec, MultiscaleAnchorSpec):
            s = self.spec
            octave = [2 ** (k / s.scales_per_octave) for k in range(s.scales_per_octave)]
            for (gh, gw), level in zip(sizes, range(s.min_level, s.max_level + 1), strict=True):
                stride = float(2**level)
                base = stride * s.anchor_scale
                pairs = [(sc, ar) for ar in s.aspect_ratios for sc in octave]
                oy = stride / 2 if height % stride == 0 else 0.0
                ox = stride / 2 if width % stride == 0 else 0.0
                layers.append(
                    AnchorLayer(
                        grid=(gh, gw),
                        heights=tuple(sc / math.sqrt(ar) * base for sc, ar in pairs),
                        widths=tuple(sc * math.sqrt(ar) * base for sc, ar in pairs),
                        stride=(stride, stride),
                        offset=(oy, ox),
                        labels=tuple(f"level {level}, size {sc * base:.0f}px, ar {ar:g}" for sc, ar in pairs),
                    )
                )
            return AnchorGrid((height, width), tuple(layers))
        spec = self.spec
        short = float(min(height, width))
        for k, ((gh, gw), boxes) in enumerate(zip(sizes, spec.box_specs(), strict=True)):
            step_yx: tuple[float, float] = spec.strides[k] if spec.strides else (height / gh, width / gw)
            offset = spec.offsets[k] if spec.offsets else (step_yx[0] / 2, step_yx[1] / 2)
            layers.append(
                AnchorLayer(
                    grid=(gh, gw),
                    heights=tuple(sc / math.sqrt(ar) * spec.base_anchor_height * short for sc, ar in boxes),
                    widths=tuple(sc * math.sqrt(ar) * spec.base_anchor_width * short for sc, ar in boxes),
                    stride=(float(step_yx[0]), float(step_yx[1])),
                    offset=(float(offset[0]), float(offset[1])),
                    labels=tuple(f"layer {k}, scale {sc:.3g}, ar {ar:g}" for sc, ar in boxes),
                )
            )
        return AnchorGrid((height, width), tuple(layers))

    def smallest_anchor_side(self, height: int, width: int) -> float:
        """``sqrt(h * w)`` of the smallest anchor, input pixels."""
        grid = self.anchors(height, width)
        return min(
            math.sqrt(h * w)
            for layer in grid.layers
            for h, w in zip(layer.heights, layer.widths, strict=False)
        )

    def aspect_ratios(self) -> tuple[float, ...]:
        """Every anchor aspect ratio (width / height) the generator places."""
        if isinstance(self.spec, MultiscaleAnchorSpec):
            return tuple(sorted(set(self.spec.aspect_ratios)))
        return tuple(sorted({ar for layer in self.spec.box_specs() for _, ar in layer}))

    def describe(self) -> str:
        """One line for people."""
        return f"{self.spec.describe()}; {self.resizer.describe()}; {self.feature_extractor or 'extractor ?'}"


def best_iou(
    boxes: FloatArray, anchors: FloatArray, chunk: int = 512
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """For every box, the highest IoU with any anchor and that anchor's index.

    >>> b = np.array([[0.0, 0.0, 10.0, 10.0]])
    >>> a = np.array([[0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0]])
    >>> iou, idx = best_iou(b, a)
    >>> iou.tolist(), idx.tolist()
    ([0.5], [0])
    """
    n = boxes.shape[0]
    out = np.zeros(n, dtype=np.float64)
    arg = np.zeros(n, dtype=np.int64)
    if n == 0 or anchors.shape[0] == 0:
        return out, arg
    ax1, ay1, ax2, ay2 = (anchors[:, i][None, :] for i in range(4))
    a_area = (ax2 - ax1) * (ay2 - ay1)
    for start in range(0, n, chunk):
        b = boxes[start : start + chunk]
        bx1, by1, bx2, by2 = (b[:, i][:, None] for i in range(4))
        iw = np.clip(np.minimum(bx2, ax2) - np.maximum(bx1, ax1), 0.0, None)
        ih = np.clip(np.minimum(by2, ay2) - np.maximum(by1, ay1), 0.0, None)
        inter = iw * ih
        union = (bx2 - bx1) * (by2 - by1) + a_area - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        k = iou.argmax(axis=1)
        arg[start : start + chunk] = k
        out[start : start + chunk] = iou[np.arange(iou.shape[0]), k]
    return out, arg


@dataclass(frozen=True)
class Coverage:
    """Every box's best anchor IoU in model-input space, with its input-space size and class."""

    iou: FloatArray
    width: FloatArray
    height: FloatArray
    classes: npt.NDArray[np.int64]
    input_short_side: FloatArray
    best_anchor: tuple[str, ...]

    def below(self, threshold: float) -> npt.NDArray[np.bool_]:
        """Boxes whose best anchor IoU is under ``threshold``."""
        return self.iou < threshold

    def share_below(self, threshold: float) -> float:
        """Share of boxes under ``threshold`` (0 without boxes)."""
        return float(self.below(threshold).mean()) if self.iou.shape[0] else 0.0


def _input_boxes(
    model: AnchorModel, boxes: FloatArray, orig_h: FloatArray, orig_w: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Boxes in input pixels and each box's input shape."""
    out = np.empty_like(boxes)
    in_h = np.empty(boxes.shape[0], dtype=np.int64)
    in_w = np.empty(boxes.shape[0], dtype=np.int64)
    pairs = np.stack([orig_h, orig_w], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for k, (h, w) in enumerate(uniq.tolist()):
        sel = inverse == k
        shape = model.resizer.resize(height=h, width=w)
        out[sel] = boxes[sel] * np.array([shape.scale_x, shape.scale_y, shape.scale_x, shape.scale_y])
        in_h[sel], in_w[sel] = shape.input_height, shape.input_width
    return out, in_h, in_w


def anchor_coverage(
    model: AnchorModel,
    boxes: FloatArray,
    classes: Sequence[int] | npt.NDArray[np.int64],
    image_heights: FloatArray,
    image_widths: FloatArray,
) -> Coverage:
    """Best anchor IoU of every ``[x1, y1, x2, y2]`` original-pixel box of images of the given sizes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cls = np.asarray(classes, dtype=np.int64).reshape(-1)
    inp, in_h, in_w = _input_boxes(
        model, boxes, np.asarray(image_heights, dtype=np.float64), np.asarray(image_widths, dtype=np.float64)
    )
    iou = np.zeros(boxes.shape[0], dtype=np.float64)
    labels: list[str] = [""] * boxes.shape[0]
    shapes = np.stack([in_h, in_w], axis=1)
    for h, w in np.unique(shapes, axis=0).tolist() if boxes.shape[0] else []:
        sel = np.flatnonzero((in_h == h) & (in_w == w))
        grid = model.anchors(h, w)
        best, arg = best_iou(inp[sel], grid.boxes())
        iou[sel] = best
        names = grid.shape_labels()
        for i, a in zip(sel.tolist(), arg.tolist(), strict=True):
            labels[i] = names[a]
    return Coverage(
        iou=iou,
        width=inp[:, 2] - inp[:, 0],
        height=inp[:, 3] - inp[:, 1],
        classes=cls,
        input_short_side=np.minimum(in_h, in_w).astype(np.float64),
        best_anchor=tuple(labels),
    )
