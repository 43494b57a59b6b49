"""``tfod demo``: the real CLI, end to end (``--quick --fine-tune``), then a resume without the
fine-tune; and its refusals."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.demo.run import STEPS, steps_for
from tfod_tools.demo.state import STATE_FILE

DemoRun = tuple[Path, dict[str, Any], str, float]


def _is_score(value: Any) -> bool:
    """A number from a real run: in [0, 1], or COCO's -1 (no ground truth)."""
    return isinstance(value, (int, float)) and math.isfinite(value) and (0.0 <= value <= 1.0 or value == -1.0)


def test_demo_refuses_a_directory_that_is_not_a_demo_workdir(tmp_path: Path, run_tfod: Any) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    proc = run_tfod(["demo", "--quick", "--workdir", str(tmp_path), "--force"], timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "not a tfod demo workdir" in proc.stderr and "--workdir" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory, run_tfod: Any) -> DemoRun:
    """``tfod demo --quick --fine-tune --json`` run once for this module (the fine-tune step adds one
    100-step training run; the resume test then runs the default demo, without it)."""
    work = tmp_path_factory.mktemp("demo") / "work"
    started = time.monotonic()
    proc = run_tfod(["demo", "--quick", "--fine-tune", "--workdir", str(work), "--json"], timeout=1800)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(f"tfod demo --quick failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return work, json.loads(proc.stdout), proc.stderr, elapsed


@pytest.mark.slow
def test_quick_demo_reports_per_class_ap_of_both_runs(quick_demo: DemoRun) -> None:
    work, summary, stderr, elapsed = quick_demo
    print(f"tfod demo --quick: {elapsed:.0f} s wall, steps {summary['steps']}")
    # One progress line per step on stderr, with the elapsed time.
    steps = steps_for(True)
    for index, name in enumerate(steps, start=1):
        assert f"{index}/{len(steps)} {name} (" in stderr
    # Both runs' per-class AP, from the real evaluations.
    classes = ["opacity", "nodule"]
    for run in ("before", "after"):
        assert sorted(summary["per_class_ap"][run]) == sorted(classes)
        assert all(_is_score(v) for v in summary["per_class_ap"][run].values()), summary["per_class_ap"]
        assert _is_score(summary["mAP"][run])
    rows = {row["class"]: row for row in summary["comparison"]}
    assert set(rows) == {*classes, "mAP (all classes)"}
    for row in rows.values():
        assert _is_score(row["ap_before"]) and _is_score(row["ap_after"])
        assert _is_score(row["ap50_before"]) and _is_score(row["ap50_after"])
    # Recall and precision at the operating threshold, counted on every eval box of each class.
    op = summary["operating_point"]
    assert op["threshold"] == 0.5
    for run in ("before", "after"):
        for name in classes:
            c = op[run][name]
            assert c["tp"] + c["fn"] == summary["eval_boxes"][name]
            assert c["recall"] == pytest.approx(c["tp"] / summary["eval_boxes"][name])
    # The balanced training split holds more minority-class images than the original.
    minority = summary["minority_class"]
    assert minority == "nodule"
    before, after = summary["counts"]["before"], summary["counts"]["after"]
    assert after[minority]["images"] > before[minority]["images"]
    # The diagnosis shows the imbalance and the -1 large-object metrics.
    assert {"class_imbalance", "undefined_area_metric"} <= set(summary["findings"]["before"])
    # The report files exist, carry both runs' numbers and link both diagnoses.
    report_html = Path(summary["report_html"])
    report_md = Path(summary["report_md"])
    assert report_html.is_file() and report_md.is_file()
    page = report_html.read_text()
    for run in ("before", "after"):
        rel = Path(summary["diagnose_html"][run]).relative_to(work).as_posix()
        assert f'href="{rel}"' in page
        assert (work / rel).is_file()
    md = report_md.read_text()
    ap_before = summary["per_class_ap"]["before"][minority]
    ap_after = summary["per_class_ap"]["after"][minority]
    fmt = "-1" if ap_before == -1 else f"{ap_before:.3f}"
    assert f"| **{minority}** (minority) | {fmt} | " in md
    assert ("-1" if ap_after == -1 else f"{ap_after:.3f}") in md
    recall = [op[run][minority]["recall"] for run in ("before", "after")]
    assert f"| **{minority}** (minority) | {recall[0]:.3f} | {recall[1]:.3f} | " in md
    # A curve, not a dot: every checkpoint of each run was evaluated by the continuous evaluator.
    state = json.loads((work / STATE_FILE).read_text())
    for run in ("before", "after"):
        steps = state["steps"][f"train-{run}"]["result"]["evaluated_steps"]
        assert len(steps) >= 3 and steps == sorted(steps)
        assert state["steps"][f"curves-{run}"]["result"]["eval_points"] == len(steps)
        # Each evaluation reached the demo as a typed event from the evaluator: one note per step.
        assert all(f"  evaluated step {step}: mAP " in stderr for step in steps), stderr[-3000:]
    assert summary["tensorboard"].startswith("tensorboard --logdir ")


@pytest.mark.slow
def test_fine_tune_restores_every_feature_extractor_variable(quick_demo: DemoRun) -> None:
    from tfod_tools.odapi.checkpoints import read_step
    from tfod_tools.odapi.label_map import read_label_map
    from tfod_tools.odapi.pipeline import load_pipeline, num_classes

    work, summary, stderr, _ = quick_demo
    fine = summary["fine_tune"]
    print(f"fine-tune step: {summary['steps']['fine-tune']} s; {fine}")
    # From the balanced run's best checkpoint, as a detection fine-tune, into a 3-class model.
    state = json.loads((work / STATE_FILE).read_text())
    best = state["steps"]["train-after"]["result"]["best_step"]
    assert fine["source_step"] == best and read_step(fine["source_checkpoint"]) == best
    assert Path(fine["source_checkpoint"]).resolve().is_relative_to((work / "runs" / "after").resolve())
    config = load_pipeline(fine["pipeline"])
    assert config.train_config.fine_tune_checkpoint == fine["source_checkpoint"]
    assert config.train_config.fine_tune_checkpoint_type == "detection" == fine["fine_tune_checkpoint_type"]
    assert num_classes(config) == fine["num_classes"] == 3
    assert len(read_label_map(config.train_input_reader.label_map_path)) == 3
    # Every feature-extractor variable of the step-0 checkpoint is the source's, bit for bit; the
    # 100 steps on the new set then moved them.
    assert fine["ok"] and fine["variables"] > 100 and fine["restored_exactly"] == fine["variables"]
    assert 0 < fine["moved_by_training"] <= fine["variables"]
    loss = fine["first_loss"]
    assert loss["step"] == 100 and math.isfinite(loss["total_loss"]) and loss["total_loss"] > 0
    assert f"{fine['restored_exactly']}/{fine['variables']} feature-extractor variables restored" in stderr
    # The report's section says the same (the resume test below makes the report again without it).
    md = Path(summary["report_md"]).read_text()
    assert "## Fine-tuning" in md
    assert f"restored exactly: **{fine['variables']}/{fine['variables']}** variables" in md
    assert "<h2>Fine-tuning</h2>" in Path(summary["report_html"]).read_text()


@pytest.mark.slow
def test_rerun_resumes_and_redoes_only_what_is_missing(quick_demo: DemoRun, run_tfod: Any) -> None:
    work, first, _, _ = quick_demo
    exported_at = json.loads(Path(first["export"]["export_json"]).read_text())["exported_at"]
    Path(first["report_html"]).unlink()
    proc = run_tfod(["demo", "--quick", "--workdir", str(work), "--json"], timeout=600)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["skipped_steps"] == list(STEPS[:-1])  # only the report is redone
    assert Path(again["report_html"]).is_file()
    # Without --fine-tune the report has no fine-tuning section; the step done earlier is kept.
    assert again["fine_tune"] is None and "## Fine-tuning" not in Path(again["report_md"]).read_text()
    assert (work / "runs" / "fine-tune" / "ckpt-1.index").is_file()
    assert again["per_class_ap"] == first["per_class_ap"]
    # The export step is kept, not redone: the same export, the same verdicts.
    assert "export" in again["skipped_steps"] and again["steps"]["export"] == first["steps"]["export"]
    assert json.loads(Path(again["export"]["export_json"]).read_text())["exported_at"] == exported_at
    assert again["export"]["models"] == first["export"]["models"]
    # Other settings in the same workdir are refused, with the way out.
    refused = run_tfod(["demo", "--workdir", str(work)], timeout=120)
    assert refused.returncode == 2 and "--force" in refused.stderr


@pytest.mark.slow
def test_quick_demo_ships_the_best_checkpoint_and_proves_the_export(quick_demo: DemoRun) -> None:
    from tfod_tools.metrics.coco import COCO_TAGS

    work, summary, stderr, _ = quick_demo
    export = summary["export"]
    state = json.loads((work / STATE_FILE).read_text())
    after = state["steps"]["train-after"]["result"]
    # The balanced run's best checkpoint, exported as the quick demo's formats (TFLite: full demo only).
    assert export["step"] == after["best_step"] and export["formats"] == ["saved_model"]
    assert export["note"] and "full demo only" in stderr
    manifest = json.loads(Path(export["export_json"]).read_text())
    assert manifest["source"]["step"] == export["step"]
    assert Path(manifest["source"]["model_dir"]).resolve() == (work / "runs" / "after").resolve()
    saved = export["models"]["saved_model"]
    assert (Path(saved["path"]) / "saved_model.pb").is_file()
    # Parity: the SavedModel's 12 COCO values equal the checkpoint's (its ledger row) within 1e-6.
    assert saved["verdict"] == "ok" and saved["findings"] == [] and saved["tolerance"] == 1e-6
    rows = {r["tag"]: r for r in state["steps"]["export"]["result"]["models"]["saved_model"]["rows"]}
    assert set(COCO_TAGS.values()) <= set(rows)
    for tag in COCO_TAGS.values():
        assert rows[tag]["checkpoint"] is not None and abs(rows[tag]["delta"]) <= 1e-6, rows[tag]
    assert saved["mAP"] == pytest.approx(saved["checkpoint_mAP"], abs=1e-6)
    assert saved["agreement"] is not None and 0.0 <= saved["agreement"] <= 1.0
    metrics = json.loads(Path(saved["metrics_json"]).read_text())
    assert metrics["metrics"]["DetectionBoxes_Precision/mAP"] == saved["mAP"]
    # Predictions on a few eval images, annotated copies kept, shown in the report.
    predicted = export["predict"]
    assert len(predicted["images"]) == 4 and all(Path(p).is_file() for p in predicted["images"])
    page = Path(summary["report_html"]).read_text()
    assert "The exported model" in page and 'class="parity"' in page
    for path in predicted["images"]:
        assert f'src="{Path(path).relative_to(work).as_posix()}"' in page
    md = Path(summary["report_md"]).read_text()
    assert f"| AP | {rows[COCO_TAGS['AP']]['checkpoint']:.4f} | {saved['mAP']:.4f} | " in md
