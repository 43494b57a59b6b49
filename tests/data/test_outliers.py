"""Annotation outliers: planted odd boxes are found and ranked first, clean data gives (almost) none,
small classes are skipped, the report is deterministic; ``tfod inspect --json`` lists them. No TF."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.inspect import inspect_records
from tfod_tools.data.outliers import (
    FEATURES,
    MIN_BOXES,
    THRESHOLD,
    OutlierCollector,
    OutlierReport,
    modified_z,
)
from tfod_tools.data.records import read_image_records, write_image_records
from tfod_tools.data.synthetic import write_synthetic_dataset

NAMES = {1: "square", 2: "bar"}
SIZE = (400, 300)


def _square(rng: np.random.Generator) -> list[float]:
    """A square-ish box of 30-60 px, centred in the middle fifth of the image."""
    side = rng.uniform(30, 60)
    aspect = rng.uniform(0.9, 1.1)
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx, cy = rng.uniform(0.4, 0.6) * SIZE[0], rng.uniform(0.4, 0.6) * SIZE[1]
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _clean(collector: OutlierCollector, rng: np.random.Generator, images: int, start: int = 0) -> None:
    for k in range(start, start + images):
        n = int(rng.integers(1, 4))
        boxes = np.array([_square(rng) for _ in range(n)])
        collector.add("train.record", k, f"img{k}", f"img{k}.jpg", boxes, np.ones(n, np.int64), SIZE)


def _planted(seed: int = 0) -> OutlierReport:
    rng = np.random.default_rng(seed)
    c = OutlierCollector(NAMES)
    _clean(c, rng, 60)
    # about 7x the side (50x the area) of a typical 45 px square; 8:1; centred at the left edge
    c.add("train.record", 60, "big", "", np.array([[10.0, 10.0, 370.0, 280.0]]), np.array([1]), SIZE)
    c.add("train.record", 61, "long", "", np.array([[100.0, 140.0, 220.0, 155.0]]), np.array([1]), SIZE)
    c.add("train.record", 62, "edge", "", np.array([[0.0, 132.0, 36.0, 168.0]]), np.array([1]), SIZE)
    _clean(c, rng, 20, start=63)
    return c.report()


def test_planted_outliers_are_found_and_ranked_first() -> None:
    report = _planted()
    top = {o.source_id: o for o in report.top[:3]}
    assert set(top) == {"big", "long", "edge"}
    assert top["big"].feature == "size" and "larger than class median" in top["big"].reason
    assert top["long"].feature == "aspect" and top["long"].reason.startswith(
        "aspect 8.0:1 vs class median 1.0:1"
    )
    assert top["edge"].feature == "centre_x" and "left image edge" in top["edge"].reason
    assert all(abs(o.score) > THRESHOLD for o in report.top)
    scores = [abs(o.score) for o in report.top]
    assert scores == sorted(scores, reverse=True)
    assert top["big"].box == (10.0, 10.0, 370.0, 280.0) and top["big"].image_size == SIZE
    assert top["big"].value / top["big"].median > 5  # the side ratio, in plain units
    assert report.per_class["square"]["outliers"] == report.total >= 3
    assert report.per_class["square"]["per_feature"]["aspect"] >= 1
    assert report.per_class["bar"] == {"boxes": 0, "outliers": 0, "per_feature": {}, "skipped": {}}


def test_size_relative_to_the_other_boxes_in_the_image() -> None:
    """Sizes vary 8x between images (no size outlier), but one box is 8x its neighbours."""
    rng = np.random.default_rng(4)
    c = OutlierCollector(NAMES)
    for k in range(40):
        side = float(rng.uniform(10, 80))
        boxes = [[20.0 + 60 * j, 100.0, 20.0 + 60 * j + side, 100.0 + side] for j in range(3)]
        c.add("t.record", k, f"img{k}", "", np.array(boxes), np.ones(3, np.int64), SIZE)
    c.add(
        "t.record",
        40,
        "mixed",
        "",
        np.array([[20.0, 100.0, 30.0, 110.0], [80.0, 100.0, 90.0, 110.0], [140.0, 100.0, 220.0, 180.0]]),
        np.ones(3, np.int64),
        SIZE,
    )
    report = c.report()
    assert report.per_class["square"]["per_feature"]["size"] == 0
    first = report.top[0]
    assert (first.source_id, first.box_index, first.feature) == ("mixed", 2, "size_in_image")
    assert first.reason.startswith("box 8.0x larger than the other boxes in its image")


def test_a_clean_generated_set_gives_none_or_few() -> None:
    rng = np.random.default_rng(1)
    c = OutlierCollector(NAMES)
    _clean(c, rng, 300)
    report = c.report()
    assert report.boxes_scored > 500
    assert report.total <= 0.01 * report.boxes_scored


@pytest.mark.parametrize("kind", ["shapes", "xray-like"])
def test_the_synthetic_records_give_none_or_few(tmp_path: Path, kind: str) -> None:
    ds = write_synthetic_dataset(tmp_path, kind, train_images=80, eval_images=1, seed=5)
    report = inspect_records(ds.train_record, ds.label_map).outliers
    assert report is not None and report.boxes_scored > 100
    assert report.total <= 0.02 * report.boxes_scored


def test_small_classes_are_skipped_and_say_so() -> None:
    def report(bars: int) -> OutlierReport:
        rng = np.random.default_rng(2)
        c = OutlierCollector(NAMES)
        _clean(c, rng, 30)
        for k in range(bars - 1):
            c.add("t.record", 100 + k, f"bar{k}", "", np.array([_square(rng)]), np.array([2]), SIZE)
        c.add("t.record", 200, "odd-bar", "", np.array([[0.0, 0.0, 400.0, 10.0]]), np.array([2]), SIZE)
        return c.report()

    small = report(MIN_BOXES - 1)  # one box short: nothing of class "bar" is scored
    bar = small.per_class["bar"]
    assert bar["boxes"] == MIN_BOXES - 1 and bar["outliers"] == 0 and bar["per_feature"] == {}
    assert set(bar["skipped"]) == set(FEATURES)
    assert bar["skipped"]["size"] == f"{MIN_BOXES - 1} boxes < {MIN_BOXES}"
    assert bar["skipped"]["size_in_image"] == f"0 boxes in images with 2 or more boxes < {MIN_BOXES}"
    assert all(o.source_id != "odd-bar" for o in small.top)
    enough = report(MIN_BOXES)  # exactly MIN_BOXES: scored (size_in_image has no values)
    bar = enough.per_class["bar"]
    assert set(bar["skipped"]) == {"size_in_image"} and bar["outliers"] == 1
    assert enough.top[0].source_id == "odd-bar"


def test_unusable_and_unknown_boxes_are_left_out() -> None:
    c = OutlierCollector(NAMES)
    boxes = np.array(
        [[10, 10, 20, 20], [30, 30, 30, 40], [np.nan, 0, 1, 1], [5, 5, 1, 1], [0, 0, 9, 9]], float
    )
    c.add("t.record", 0, "a", "", boxes, np.array([1, 1, 1, 1, 7]), SIZE)
    c.add("t.record", 1, "b", "", boxes[:1], np.array([1]), (0, 0))  # unknown image size
    assert c.report().boxes_scored == 1


def test_the_report_is_deterministic() -> None:
    a, b = _planted(seed=3), _planted(seed=3)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert a.to_dict()["top"][0]["source_id"] in {"big", "long", "edge"}
    assert set(a.to_dict()) == {"threshold", "min_boxes", "boxes_scored", "outlier_boxes", "per_class", "top"}


def test_modified_z_matches_the_definition() -> None:
    x = np.array([2.0, 4.0, 4.0, 5.0, 7.0, 30.0])
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    assert np.allclose(modified_z(x), 0.6745 * (x - median) / mad)
    same = np.array([1.0] * 9 + [2.0])  # MAD 0: mean absolute deviation x 1.2533
    assert np.allclose(modified_z(same), (same - 1.0) / (1.2533 * np.mean(np.abs(same - 1.0))))
    assert np.allclose(modified_z(same, min_spread=1.0), same - 1.0)  # the floor


def test_inspect_json_lists_planted_outliers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_synthetic_dataset(tmp_path / "ds", "shapes", train_images=40, eval_images=1, seed=7)
    records = read_image_records(ds.train_record)
    first = records[0]
    w, h = first.width, first.height
    thin = replace(  # one box of the first image made 8:1, written as a 41st image
        first,
        source_id="planted-thin",
        xmin=(0.1,),
        ymin=(0.45,),
        xmax=(0.1 + 80 / w,),
        ymax=(0.45 + 10 / h,),
        class_label=(first.class_label[0],),
        class_text=(first.class_text[0],),
        area=(),
        is_crowd=(),
        difficult=(),
        group_of=(),
        weight=(),
    )
    path = write_image_records(tmp_path / "planted.record", [*records, thin])[0]
    assert main(["inspect", str(path), "-l", str(ds.label_map), "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    found = doc["outliers"]
    assert found["threshold"] == THRESHOLD and found["outlier_boxes"] >= 1
    top = found["top"][0]
    assert (top["source_id"], top["index"], top["feature"]) == ("planted-thin", 40, "aspect")
    assert top["reason"].startswith("aspect 8.0:1") and top["class"] == first.class_text[0]
    assert np.allclose(top["box"], [0.1 * w, 0.45 * h, 0.1 * w + 80, 0.45 * h + 10], atol=0.1)
    assert {"file", "index", "source_id", "filename", "box", "class_median", "score"} <= set(top)
    assert main(["inspect", str(path), "-l", str(ds.label_map)]) == 0
    text = capsys.readouterr().out
    assert "annotation outliers: " in text and "planted-thin" in text and "aspect 8.0:1" in text


def test_size_in_image_compares_with_the_median_of_the_other_boxes() -> None:
    from tfod_tools.data.outliers import MAX_PAIRWISE, _others_median

    rng = np.random.default_rng(6)
    counts = [1, 2, 3, 7, *([50] * 900), MAX_PAIRWISE + 1]  # 900 images of 50: more than one block
    image = np.repeat(np.arange(len(counts)), counts)
    side = rng.uniform(1, 100, image.size)
    got = _others_median(side, image, len(counts))
    start = 0
    for n in counts:
        mine = side[start : start + n]
        if n == 1:
            assert np.isnan(got[start])
        elif n > MAX_PAIRWISE:
            assert np.allclose(got[start : start + n], np.median(mine))
        else:
            naive = [np.median(np.delete(mine, i)) for i in range(n)]
            assert np.allclose(got[start : start + n], naive)
        start += n
