"""The TF-free image resizer against its definition and against the API's own resizer functions."""

from __future__ import annotations

import pytest

from tfod_tools.odapi.pipeline import parse_pipeline_text
from tfod_tools.odapi.resizer import ImageResizer, ResizedShape

KEEP = ImageResizer("keep_aspect_ratio_resizer", min_dimension=600, max_dimension=1024)

# (original height, width): square, landscape, portrait, long-side capped, odd sizes where
# rounding decides, a tiny image scaled up.
SIZES = [
    (480, 640),
    (640, 480),
    (300, 400),
    (3000, 600),
    (600, 3000),
    (333, 445),
    (301, 402),
    (17, 1000),
    (1, 1),
]


def test_keep_aspect_ratio_short_side_then_long_side_cap() -> None:
    assert KEEP.resize(height=400, width=300) == ResizedShape(800, 600, 800, 600, 2.0, 2.0)
    capped = KEEP.resize(height=3000, width=600)
    assert (capped.height, capped.width) == (1024, 205)  # the long side capped at 1024
    assert capped.scale_y == pytest.approx(1024 / 3000) and capped.scale_x == pytest.approx(205 / 600)


def test_fixed_shape_stretches_identity_keeps() -> None:
    fixed = ImageResizer("fixed_shape_resizer", height=128, width=256)
    assert fixed.resize(height=512, width=512) == ResizedShape(128, 256, 128, 256, 0.25, 0.5)
    assert ImageResizer("identity_resizer").resize(height=70.4, width=99.6) == (70, 100, 70, 100, 1.0, 1.0)


def test_padding_changes_the_input_not_the_scale() -> None:
    padded = ImageResizer(
        "keep_aspect_ratio_resizer", min_dimension=600, max_dimension=1024, pad_to_max_dimension=True
    )
    for h, w in SIZES:
        plain, pad = KEEP.resize(height=h, width=w), padded.resize(height=h, width=w)
        assert pad[:2] == plain[:2] and pad[4:] == plain[4:] and pad[2:4] == (1024, 1024)


def test_from_pipeline_reads_every_supported_kind_and_refuses_others() -> None:
    def resizer(text: str) -> ImageResizer | None:
        return ImageResizer.from_pipeline(
            parse_pipeline_text(f"model {{ ssd {{ image_resizer {{ {text} }} }} }}")
        )

    assert resizer("fixed_shape_resizer { height: 320 width: 256 }") == ImageResizer(
        "fixed_shape_resizer", height=320, width=256
    )
    keep = resizer(
        "keep_aspect_ratio_resizer { min_dimension: 320 max_dimension: 512 pad_to_max_dimension: true }"
    )
    assert keep == ImageResizer(
        "keep_aspect_ratio_resizer", min_dimension=320, max_dimension=512, pad_to_max_dimension=True
    )
    assert resizer("keep_aspect_ratio_resizer { }") == KEEP  # the proto's defaults are the API's
    assert resizer("identity_resizer { }") == ImageResizer("identity_resizer")
    assert resizer("conditional_shape_resizer { }") is None
    assert resizer("") is None  # unset: the API refuses to build it
    assert ImageResizer.from_pipeline(parse_pipeline_text("model { }")) is None


@pytest.mark.slow
def test_shapes_match_the_api_resizer_functions() -> None:
    """The API's ``image_resizer_builder.build`` (``resize_image`` / ``resize_to_range``) on real tensors."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.builders import image_resizer_builder

    configs = [
        "fixed_shape_resizer { height: 320 width: 256 }",
        "keep_aspect_ratio_resizer { min_dimension: 600 max_dimension: 1024 }",
        "keep_aspect_ratio_resizer { min_dimension: 320 max_dimension: 512 pad_to_max_dimension: true }",
        "keep_aspect_ratio_resizer { min_dimension: 600 max_dimension: 801 }",
        "identity_resizer { }",
    ]
    for text in configs:
        config = parse_pipeline_text(f"model {{ ssd {{ image_resizer {{ {text} }} }} }}")
        ours = ImageResizer.from_pipeline(config)
        assert ours is not None
        api = image_resizer_builder.build(config.model.ssd.image_resizer)
        for h, w in SIZES:
            image, true_shape = api(tf.zeros([h, w, 3]))
            got = ours.resize(height=h, width=w)
            assert (got.input_height, got.input_width) == tuple(image.shape[:2]), (text, h, w)
            assert (got.height, got.width) == tuple(int(v) for v in true_shape[:2]), (text, h, w)
