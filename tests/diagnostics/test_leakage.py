"""tfod diagnose: train_eval_leak from planted copies in real records, its HTML thumbnails, no TF."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.diagnostics.engine import diagnose, load_inputs
from tfod_tools.diagnostics.model import Diagnosis
from tfod_tools.diagnostics.report.html import render_report
from tfod_tools.odapi.label_map import LabelMap, write_label_map
from tfod_tools.tensorboard.writer import EventWriter

LM = LabelMap.from_names(["cat", "dog"])


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(100 + seed)
    small = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
    return small.resize((160, 120), Image.Resampling.BICUBIC)


def _record(source_id: str, img: Image.Image, quality: int = 92) -> ImageRecord:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return ImageRecord.from_pixels(
        out.getvalue(),
        width=img.size[0],
        height=img.size[1],
        boxes=[[0.1, 0.1, 0.6, 0.5], [0.5, 0.5, 0.9, 0.9]],
        classes=[1, 2],
        label_map=LM,
        source_id=source_id,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("leak")
    imgs = [_image(k) for k in range(10)]
    train = [_record(f"t{k}", img) for k, img in enumerate(imgs[:7])]
    evals = [
        _record("e0-copy-of-t4", imgs[4]),  # exact
        _record("e1-q60-of-t5", imgs[5], quality=60),  # near
        _record("e2", imgs[7]),
        _record("e3", imgs[8]),
        _record("e4", imgs[9]),
    ]
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


def _diagnose(run: dict[str, Path]) -> Diagnosis:
    return diagnose(
        run["model"], train_records=run["train"], eval_records=run["eval"], label_map=run["label_map"]
    )


def test_train_eval_leak_lists_the_planted_pairs(run: dict[str, Path]) -> None:
    d = _diagnose(run)
    (leak,) = d.get("train_eval_leak")
    assert leak.severity == "error"
    assert leak.evidence["exact_pairs"] == 1 and leak.evidence["near_pairs"] == 1
    assert leak.evidence["eval_images_leaked"] == 2 and leak.evidence["eval_images"] == 5
    rows = leak.evidence["pairs"]["rows"]
    cols = leak.evidence["pairs"]["columns"]
    pairs = [(r[cols.index("train source_id")], r[cols.index("eval source_id")], r[0]) for r in rows]
    assert pairs == [("t4", "e0-copy-of-t4", "exact"), ("t5", "e1-q60-of-t5", "near")]
    assert rows[0][1] == 0 and 0 <= rows[1][1] <= leak.evidence["max_distance"]
    assert "tfod split --group-by" in leak.fix
    assert "2 of 5 eval images" in leak.message


def test_hashes_are_read_without_the_inspection_too(run: dict[str, Path]) -> None:
    inputs = load_inputs(
        run["model"], train_records=run["train"], eval_records=run["eval"], label_map=run["label_map"]
    )
    assert inputs.inspections["train"].hashes is not None  # from tfod inspect's pass
    inputs.inspections.clear()
    d = diagnose(run["model"], inputs=inputs)
    assert [f.evidence["exact_pairs"] for f in d.get("train_eval_leak")] == [1]


def test_no_leak_no_finding(run: dict[str, Path]) -> None:
    d = diagnose(
        run["model"], train_records=run["train"], eval_records=run["train"], label_map=run["label_map"]
    )
    assert d.get("train_eval_leak")  # the same records on both sides: every image leaks
    d = diagnose(run["model"], eval_records=run["eval"], label_map=run["label_map"])
    assert d.get("train_eval_leak") == []  # needs both splits


def test_report_shows_the_pairs_side_by_side(run: dict[str, Path]) -> None:
    page = render_report(_diagnose(run))
    start = page.index('id="finding-train_eval_leak"')
    block = page[start : page.index("</div>", page.index('class="gallery leak"', start))]
    assert block.count("<figure>") == 2 and block.count("data:image/png;base64,") == 4
    assert "e1-q60-of-t5" in block


def test_leak_finding_does_not_import_tensorflow(run: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "from tfod_tools.diagnostics.engine import diagnose\n"
        f"d = diagnose({str(run['model'])!r}, train_records={str(run['train'])!r}, "
        f"eval_records={str(run['eval'])!r}, label_map={str(run['label_map'])!r})\n"
        "assert d.get('train_eval_leak'), d.ids()\n"
        "print(sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_duplicates_within_one_split_are_listed(run: dict[str, Path]) -> None:
    d = diagnose(
        run["model"], train_records=run["train"], eval_records=[run["eval"]] * 2, label_map=run["label_map"]
    )
    (dup,) = d.get("duplicate_images")
    assert dup.evidence["role"] == "eval" and dup.evidence["exact_pairs"] == 5
    assert dup.severity == "info" and "tfod inspect" in dup.fix
