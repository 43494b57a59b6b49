"""Record findings: eval size, absent classes, imbalance, train/eval mismatch, annotation issues."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from tfod_tools.data.records import ImageRecord, read_annotated_set, write_image_records
from tfod_tools.data.synthetic import write_synthetic_dataset
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.odapi.label_map import write_label_map


def test_imbalance_and_small_eval_from_synthetic_records(tmp_path: Path, b: Any) -> None:
    ds = write_synthetic_dataset(
        tmp_path / "data", "xray-like", train_images=60, eval_images=20, seed=1, class_ratio="9:1"
    )
    b.write_events(tmp_path / "model")
    d = diagnose(
        tmp_path / "model",
        eval_records=ds.eval_record,
        train_records=ds.train_record,
        label_map=ds.label_map,
    )
    (imbalance,) = d.get("class_imbalance")
    rows = {r[0]: r for r in imbalance.evidence["classes"]["rows"]}
    assert rows["opacity"][1] == ds.class_counts["train"]["opacity"]
    assert rows["nodule"][1] == ds.class_counts["train"]["nodule"]
    train = ds.class_counts["train"]
    assert imbalance.evidence["ratio"] >= round(train["opacity"] / train["nodule"], 2) >= 5
    (small,) = d.get("eval_too_small")
    assert small.evidence["images"] == 20
    assert "20 eval images" in small.message
    assert d.get("class_absent_in_eval") == []
    assert d.get("annotation_issue") == []  # synthetic records are clean


def test_absent_class_and_mismatch(tmp_path: Path) -> None:
    train = write_synthetic_dataset(tmp_path / "train", "xray-like", train_images=30, eval_images=0, seed=2)
    # Eval: only opacities, larger images, no negatives.
    other = write_synthetic_dataset(
        tmp_path / "eval",
        "xray-like",
        train_images=0,
        eval_images=30,
        seed=3,
        class_ratio="1:0",
        negative_share=0.0,
        image_size=512,
    )
    (tmp_path / "model").mkdir()
    d = diagnose(
        tmp_path / "model",
        eval_records=other.eval_record,
        train_records=train.train_record,
        label_map=train.label_map,
    )
    (absent,) = d.get("class_absent_in_eval")
    assert absent.evidence["absent"] == ["nodule"]
    (mismatch,) = d.get("train_eval_mismatch")
    stats = {r[0]: r[1:] for r in mismatch.evidence["comparison"]["rows"]}
    assert stats["class share: nodule"][1] == 0.0 and stats["class share: nodule"][0] > 0
    assert stats["median image size (w x h)"] == ["256x256", "512x512"]
    assert "image sizes" in mismatch.message and "class shares differ" in mismatch.message


def test_annotation_issues_come_from_inspect(tmp_path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (100, 80), 0).save(buffer, format="PNG")
    labels = {1: "a", 2: "b"}
    good = ImageRecord.from_pixels(
        buffer.getvalue(),
        width=100,
        height=80,
        boxes=[[10, 10, 30, 30]],
        classes=[1],
        label_map=labels,
        format="png",
    )
    dup = ImageRecord.from_pixels(
        buffer.getvalue(),
        width=100,
        height=80,
        boxes=[[10, 10, 30, 30], [10, 10, 30, 31], [0, 0, 20, 20]],
        classes=[1, 1, 2],
        label_map=labels,
        format="png",
        source_id="dup-1",
    )
    (records,) = write_image_records(tmp_path / "eval.record", [good, dup])
    label_map = write_label_map(tmp_path / "label_map.pbtxt", labels)
    (tmp_path / "model").mkdir()
    d = diagnose(tmp_path / "model", eval_records=records, label_map=label_map)
    (issue,) = d.get("annotation_issue")
    rows = {r[0]: r for r in issue.evidence["issues"]["rows"]}
    assert rows["duplicate_box"][1] == 1
    assert "dup-1" in rows["duplicate_box"][3]
    assert issue.evidence["role"] == "eval"


def test_inspection_in_the_worker_equals_inline(tmp_path: Path, xray: Any, monkeypatch: Any) -> None:
    """The forked inspection worker and the in-process fallback give the same reports."""
    import multiprocessing

    (tmp_path / "model").mkdir()
    kwargs = {
        "eval_records": xray.eval_record,
        "train_records": xray.train_record,
        "label_map": xray.label_map,
    }
    forked = diagnose(tmp_path / "model", **kwargs).inputs.inspections
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    inline = diagnose(tmp_path / "model", **kwargs).inputs.inspections
    assert set(forked) == set(inline) == {"train", "eval"}
    for role in forked:
        assert forked[role].to_dict() == inline[role].to_dict()
        assert forked[role].images == len(read_annotated_set(getattr(xray, f"{role}_record")).images)
