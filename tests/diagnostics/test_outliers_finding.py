"""tfod diagnose: annotation_outliers from boxes planted in real records, and their HTML drawing. No TF."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.outliers import OutlierReport
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.findings.outliers import (
    OUTLIER_COLUMNS,
    WARN_MIN,
    WARN_SHARE,
    annotation_outliers,
)
from tfod_tools.diagnostics.model import Diagnosis
from tfod_tools.diagnostics.report.html import render_report
from tfod_tools.odapi.label_map import LabelMap, write_label_map
from tfod_tools.tensorboard.writer import EventWriter

LM = LabelMap.from_names(["cat", "dog"])
W, H = 160, 120


def _record(source_id: str, boxes: list[list[float]], classes: list[int], seed: int) -> ImageRecord:
    tone = 60 + seed % 120  # a plain grey image: any red pixel in a drawing is the box
    img = Image.new("RGB", (W, H), (tone, tone, tone))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return ImageRecord.from_pixels(
        out.getvalue(), width=W, height=H, boxes=boxes, classes=classes, label_map=LM, source_id=source_id
    )


def _usual(rng: np.random.Generator) -> list[float]:
    side = float(rng.uniform(18, 26))
    cx, cy = float(rng.uniform(70, 90)), float(rng.uniform(50, 70))
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("outliers")
    rng = np.random.default_rng(0)
    train = [_record(f"t{k}", [_usual(rng), _usual(rng)], [1, 2], k) for k in range(24)]
    train.append(_record("t-huge-cat", [[2.0, 2.0, 158.0, 118.0], _usual(rng)], [1, 2], 99))
    evals = [_record(f"e{k}", [_usual(rng), _usual(rng)], [1, 2], 100 + k) for k in range(14)]
    evals.insert(3, _record("e-thin-dog", [_usual(rng), [40.0, 60.0, 120.0, 70.0]], [1, 2], 200))
    write_image_records(out / "train.record", train)
    write_image_records(out / "eval.record", evals)
    with EventWriter(out / "model" / "eval") as w:
        w.add_scalar("DetectionBoxes_Precision/mAP", 0.5, step=100)
    return {
        "model": out / "model",
        "train": out / "train.record",
        "eval": out / "eval.record",
        "label_map": write_label_map(out / "label_map.pbtxt", LM),
    }


@pytest.fixture(scope="module")
def diagnosis(run: dict[str, Path]) -> Diagnosis:
    return diagnose(
        run["model"], train_records=run["train"], eval_records=run["eval"], label_map=run["label_map"]
    )


def test_the_planted_boxes_are_the_strongest_outliers(diagnosis: Diagnosis) -> None:
    (found,) = diagnosis.get("annotation_outliers")
    assert found.severity == "info"  # 3 outliers: fewer than WARN_MIN
    table = found.evidence["outliers"]
    assert table["columns"] == OUTLIER_COLUMNS
    col = {c: k for k, c in enumerate(OUTLIER_COLUMNS)}
    first_two = {(r[col["split"]], r[col["source_id"]], r[col["class"]]) for r in table["rows"][:2]}
    assert first_two == {("train", "t-huge-cat", "cat"), ("eval", "e-thin-dog", "dog")}
    thin = next(r for r in table["rows"] if r[col["source_id"]] == "e-thin-dog")
    assert thin[col["index"]] == 3 and thin[col["feature"]] == "aspect"
    assert thin[col["reason"]].startswith("aspect 8.0:1") and thin[col["box"]] == [40.0, 60.0, 120.0, 70.0]
    scores = [abs(r[col["score"]]) for r in table["rows"]]
    assert scores == sorted(scores, reverse=True)
    assert found.evidence["boxes_scored"] == 2 * 25 + 2 * 15
    assert found.evidence["outlier_boxes"] == len(table["rows"]) >= 2
    counts = found.evidence["counts"]
    assert {(r[0], r[1]) for r in counts["rows"]} == {
        (s, c) for s in ("train", "eval") for c in ("cat", "dog")
    }
    assert "check those annotations" in found.fix.lower()


def test_the_html_report_draws_each_listed_box(diagnosis: Diagnosis) -> None:
    page = render_report(diagnosis)
    start = page.index('id="finding-annotation_outliers"')
    gallery = page.index('class="gallery outliers"', start)
    block = page[gallery : page.index("</div>", gallery)]
    (found,) = diagnosis.get("annotation_outliers")
    listed = len(found.evidence["outliers"]["rows"])
    assert block.count("<figure>") == listed and block.count("data:image/png;base64,") == listed
    assert "e-thin-dog" in block and "t-huge-cat" in block
    pngs = re.findall(r'alt="([^"]*)" src="data:image/png;base64,([^"]+)"', block)
    thin = next(data for alt, data in pngs if "e-thin-dog" in alt)
    with Image.open(io.BytesIO(base64.b64decode(thin))) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 100  # the box is drawn in red on the grey image
    assert max(img.size) == 200


def test_no_outliers_no_finding(run: dict[str, Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = [_record(f"c{k}", [_usual(rng)], [1], k) for k in range(20)]
    path = write_image_records(tmp_path / "clean.record", records)[0]
    d = diagnose(run["model"], train_records=path, eval_records=path, label_map=run["label_map"])
    assert d.get("annotation_outliers") == []


def test_many_outliers_make_a_warning() -> None:
    few = OutlierReport(boxes_scored=1000, total=WARN_MIN)  # 0.5 %: a few slips
    many = OutlierReport(boxes_scored=100, total=WARN_MIN)  # 5 %
    assert annotation_outliers({"train": few}).severity == "info"  # type: ignore[union-attr]
    assert annotation_outliers({"train": few, "eval": many}).severity == "info"  # type: ignore[union-attr]
    assert annotation_outliers({"eval": many}).severity == "warning"  # type: ignore[union-attr]
    assert WARN_SHARE * 100 <= WARN_MIN
