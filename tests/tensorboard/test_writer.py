"""Our event files as TensorBoard's own loaders see them, and the atomic run rewrite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as cs_metadata
from tensorboard.util import tensor_util

from tfod_tools.tensorboard.layout import matching_tags, odapi_layout
from tfod_tools.tensorboard.pr_curves import compute_pr_curve
from tfod_tools.tensorboard.reader import (
    PRCurvePoint,
    ScalarPoint,
    find_event_files,
    iter_events,
    read_pr_curves,
    read_scalars,
)
from tfod_tools.tensorboard.writer import (
    FILE_VERSION,
    EventWriter,
    owned_event_files,
    scalar_event,
    write_event_file,
    write_scalars_file,
)

MAP = "DetectionBoxes_Precision/mAP"
TfEvents = tuple[Path, dict[str, Any]]


def _accumulator(path: Path) -> plugin_event_accumulator.EventAccumulator:
    acc = plugin_event_accumulator.EventAccumulator(str(path), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def _tensor_values(acc: plugin_event_accumulator.EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_file_name_first_event_and_metadata_once_per_tag(tmp_path: Path) -> None:
    reused = scalar_event("b", 2.0, 1)
    with EventWriter(tmp_path) as writer:
        for step in (1, 2, 3):
            writer.add_scalar("a", 1.0, step)
            writer.add_event(reused)
    name = writer.path.name
    assert name.startswith("events.out.tfevents.") and name.endswith(".tfod.v2")
    assert f".{os.getpid()}." in name
    events = list(iter_events(writer.path))
    assert events[0].file_version == FILE_VERSION
    described = [v.tag for e in events[1:] for v in e.summary.value if v.HasField("metadata")]
    assert described == ["a", "b"]  # as tf.summary writes: with the first value of each tag
    assert reused.summary.value[0].HasField("metadata")  # the caller's event is not modified
    assert len(read_scalars(tmp_path)) == 4


def test_tensorboard_accumulators_read_scalars_pr_curves_and_layout(tmp_path: Path) -> None:
    labels = np.array([True, False, True, True, False])
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.1])
    with EventWriter(tmp_path) as writer:
        writer.add_custom_scalars_layout(odapi_layout())
        for step, value in [(100, 0.125), (200, 0.25), (300, 0.5)]:
            writer.add_scalar(MAP, value, step, wall_time=1000.0 + step)
        writer.add_pr_curve("pr/all", labels, scores, step=300, num_thresholds=11)

    acc = _accumulator(tmp_path)
    assert _tensor_values(acc, MAP) == [(100, 0.125), (200, 0.25), (300, 0.5)]
    assert acc.SummaryMetadata(MAP).plugin_data.plugin_name == "scalars"
    assert acc.PluginTagToContent("pr_curves").keys() == {"pr/all"}
    (pr_event,) = acc.Tensors("pr/all")
    pr_array = tensor_util.make_ndarray(pr_event.tensor_proto)
    assert pr_array.shape == (6, 11)
    np.testing.assert_array_equal(pr_array, compute_pr_curve(labels, scores, 11).to_array())
    (layout_event,) = acc.Tensors(cs_metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(layout_event.tensor_proto).item())
    assert layout == odapi_layout()

    # The legacy accumulator (the TF1-compatible API) sees the same tensors.
    legacy = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    legacy.Reload()
    assert [e.step for e in legacy.Tensors(MAP)] == [100, 200, 300]

    # And our reader.
    assert [(p.step, p.value) for p in read_scalars(tmp_path)] == [(100, 0.125), (200, 0.25), (300, 0.5)]
    assert [c.tag for c in read_pr_curves(tmp_path)] == ["pr/all"]


def test_layout_groups_the_odapi_tags(tf_events: TfEvents) -> None:
    root, _ = tf_events
    tags = {p.tag for p in read_scalars(root)}
    groups = matching_tags(odapi_layout(), tags)
    assert groups["Loss"] == ["Loss/classification_loss", "Loss/total_loss", "learning_rate"]
    assert all(t.startswith("DetectionBoxes_Precision/") for t in groups["COCO precision (mAP)"])
    assert len(groups["COCO precision (mAP)"]) == 4
    assert groups["COCO recall (AR)"] == ["DetectionBoxes_Recall/AR@1", "DetectionBoxes_Recall/AR@100"]


def _points(values: dict[int, float], wall: float) -> list[ScalarPoint]:
    return [ScalarPoint("eval", MAP, step, value, wall + step) for step, value in values.items()]


def test_rewrite_replaces_only_our_files(tf_events: TfEvents, tmp_path: Path) -> None:
    root, _ = tf_events
    run = tmp_path / "eval"
    shutil.copytree(root / "eval", run)  # a stock (TF-written) eval file
    (stock,) = find_event_files(run)["."]
    stock_bytes, stock_mtime = stock.read_bytes(), stock.stat().st_mtime_ns

    first = write_scalars_file(run, _points({100: 0.1, 200: 0.2}, 1000.0))
    second = write_scalars_file(run, _points({100: 0.1, 200: 0.25, 300: 0.3}, 2000.0))
    assert not first.exists() and second.exists()
    assert owned_event_files(run) == [second]
    assert sorted([first.name, second.name]) == [first.name, second.name]  # the new file sorts last
    assert stock.read_bytes() == stock_bytes and stock.stat().st_mtime_ns == stock_mtime
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temp file left

    ours = [(p.step, p.value) for p in read_scalars(run) if p.tag == MAP]
    # The stock file has mAP at 500 and 1000; ours replaced nothing of it.
    assert ours[:3] == [(100, np.float32(0.1)), (200, 0.25), (300, np.float32(0.3))]
    assert [s for s, _ in ours[3:]] == [500, 1000]


def test_failed_rewrite_keeps_the_previous_file(tmp_path: Path) -> None:
    kept = write_scalars_file(tmp_path, _points({1: 0.5}, 0.0))

    def broken() -> Any:
        yield scalar_event(MAP, 0.75, 2)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_event_file(tmp_path, broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]
    assert [(p.step, p.value) for p in read_scalars(tmp_path)] == [(1, 0.5)]


def test_python_loader_keeps_one_point_per_step_across_rewrites(tmp_path: Path) -> None:
    """TensorBoard's legacy loader, reloading as a running server does between rewrites."""
    run = tmp_path / "eval"
    write_scalars_file(run, _points({100: 0.1, 200: 0.2, 300: 0.3}, 1000.0))
    acc = plugin_event_accumulator.EventAccumulator(str(run), size_guidance={"tensors": 0})
    acc.Reload()
    assert [s for s, _ in _tensor_values(acc, MAP)] == [100, 200, 300]
    # --force re-evaluation of step 200, then a new checkpoint at 400.
    curve = PRCurvePoint("eval", "pr/all", 400, 4000.0, compute_pr_curve([True, False], [0.7, 0.2], 5))
    write_scalars_file(run, _points({100: 0.1, 200: 0.875, 300: 0.3, 400: 0.4}, 3000.0), pr_curves=[curve])
    acc.Reload()
    values = _tensor_values(acc, MAP)
    assert [s for s, _ in values] == [100, 200, 300, 400]
    assert values[1] == (200, 0.875)
    assert [e.step for e in acc.Tensors("pr/all")] == [400]
