"""The TF-free reader against event files written by real TensorFlow."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import tensor_pb2, types_pb2

from tfod_tools.errors import TfodError
from tfod_tools.tensorboard.pr_curves import PRCurveSummary, compute_pr_curve
from tfod_tools.tensorboard.reader import (
    ReadStats,
    ScalarPoint,
    find_event_files,
    iter_events,
    read_pr_curves,
    read_scalars,
    scalar_series,
    tensor_to_array,
)
from tfod_tools.tensorboard.writer import EventWriter

TfEvents = tuple[Path, dict[str, Any]]


def _as_dict(points: list[ScalarPoint]) -> dict[tuple[str, str, int], float]:
    return {(p.run, p.tag, p.step): p.value for p in points}


def test_reads_tf2_tf1_and_typed_tensors_exactly(tf_events: TfEvents) -> None:
    root, expected = tf_events
    points = read_scalars(root)
    want = {(run, tag, step): value for run, tag, step, value in expected["scalars"]}
    assert _as_dict(points) == want
    assert {p.run for p in points} == {"train", "eval", "mixed"}
    assert all(p.wall_time > 1e9 for p in points)
    assert points == sorted(points, key=lambda p: (p.run, p.tag, p.step))


def test_reads_every_file_of_a_run_in_order(tf_events: TfEvents) -> None:
    root, _ = tf_events
    runs = find_event_files(root)
    assert len(runs["train"]) == 2
    steps, values = scalar_series(read_scalars(root), "train", "Loss/total_loss")
    assert steps.tolist() == list(range(100, 1100, 100))
    assert np.all(values > 0)


def test_run_directory_itself_is_run_dot(tf_events: TfEvents) -> None:
    root, _ = tf_events
    points = read_scalars(root / "eval")
    assert {p.run for p in points} == {"."}
    assert len(points) == len([p for p in read_scalars(root) if p.run == "eval"])


def _record_ends(path: Path) -> list[int]:
    data = path.read_bytes()
    ends, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offset += 12 + length + 4
        ends.append(offset)
    return ends


def test_truncated_last_record_yields_the_points_before_it(tf_events: TfEvents, tmp_path: Path) -> None:
    root, _ = tf_events
    run = tmp_path / "train"
    shutil.copytree(root / "train", run)
    last_file = find_event_files(run)["."][-1]
    complete = read_scalars(run)
    ends = _record_ends(last_file)
    whole = last_file.read_bytes()
    # The points of the file without its last record, read from a clean cut.
    last_file.write_bytes(whole[: ends[-2]])
    without_last = read_scalars(run)
    assert len(without_last) == len(complete) - 1
    for cut in (ends[-2] + 3, ends[-2] + 12, ends[-2] + 20, ends[-1] - 1):
        last_file.write_bytes(whole[:cut])
        stats = ReadStats()
        assert read_scalars(run, stats=stats) == without_last
        assert stats.ended_early == [last_file]


def test_damaged_record_stops_that_file_only(tf_events: TfEvents, tmp_path: Path) -> None:
    root, _ = tf_events
    run = tmp_path / "train"
    shutil.copytree(root / "train", run)
    first, _second = find_event_files(run)["."]
    ends = _record_ends(first)
    data = bytearray(first.read_bytes())
    data[ends[-2] - 6] ^= 0xFF  # a byte inside the data of the second-to-last record
    first.write_bytes(bytes(data))
    stats = ReadStats()
    points = read_scalars(run, stats=stats)
    assert stats.ended_early == [first]
    steps, _ = scalar_series(points, ".", "learning_rate")
    assert 1000 in steps.tolist()  # the second file was still read
    # Without data CRCs the damaged record's payload is parsed (or rejected by protobuf).
    unverified = read_scalars(run, verify=False)
    assert len(unverified) >= len(points)


def test_reads_a_pr_curve_written_by_tensorboards_summary(tf_events: TfEvents) -> None:
    root, expected = tf_events
    pr = expected["pr_curve"]
    curves = read_pr_curves(root)
    assert [(c.run, c.tag, c.step) for c in curves] == [("eval", pr["tag"], 1000)]
    assert np.array_equal(curves[0].curve.to_array(), np.asarray(pr["tensor"], dtype=np.float32))
    ours = compute_pr_curve(pr["labels"], pr["predictions"], num_thresholds=pr["num_thresholds"])
    np.testing.assert_allclose(ours.to_array(), curves[0].curve.to_array(), rtol=1e-6)
    # and no PR curve leaks into the scalars
    assert not [p for p in read_scalars(root) if "pr_curves" in p.tag]


def test_duplicate_steps_keep_the_latest_wall_time(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "eval") as first:
        first.add_scalar("m", 0.25, step=1, wall_time=100.0)
        first.add_scalar("m", 0.5, step=2, wall_time=100.0)
    with EventWriter(tmp_path / "eval") as second:
        second.add_scalar("m", 0.75, step=1, wall_time=200.0)  # re-evaluated later
        second.add_scalar("m", 0.125, step=2, wall_time=50.0)  # older than what is on disk
    points = read_scalars(tmp_path)
    assert [(p.step, p.value, p.wall_time) for p in points] == [(1, 0.75, 200.0), (2, 0.5, 100.0)]


def test_missing_directory_is_a_tfod_error(tmp_path: Path) -> None:
    with pytest.raises(TfodError) as info:
        read_scalars(tmp_path / "nope")
    assert "nope" in str(info.value) and "fix:" in str(info.value)
    assert read_scalars(tmp_path) == []


def test_file_removed_while_listing_is_skipped(tmp_path: Path) -> None:
    assert list(iter_events(tmp_path / "events.out.tfevents.1.gone")) == []


def _tensor(dtype: int, shape: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(dtype=dtype, **fields)
    tensor.tensor_shape.SetInParent()
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    return tensor


def test_tensor_decoding_of_each_encoding() -> None:
    half = np.array([1.5, -2.0], dtype=np.float16)
    half_tensor = _tensor(types_pb2.DT_HALF, [2], half_val=half.view(np.uint16).tolist())
    assert tensor_to_array(half_tensor).tolist() == [1.5, -2.0]
    bf16_bits = (np.array([3.0], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    bf16 = tensor_to_array(_tensor(types_pb2.DT_BFLOAT16, [], half_val=bf16_bits.tolist()))
    assert bf16.tolist() == 3.0
    content = np.array([[1, 2], [3, 4]], dtype="<i8").tobytes()
    assert tensor_to_array(_tensor(types_pb2.DT_INT64, [2, 2], tensor_content=content)).tolist() == [
        [1, 2],
        [3, 4],
    ]
    assert tensor_to_array(_tensor(types_pb2.DT_INT32, [3], int_val=[4])).tolist() == [4, 4, 4]
    assert tensor_to_array(_tensor(types_pb2.DT_BOOL, [], bool_val=[True])).tolist() is True
    with pytest.raises(ValueError):
        tensor_to_array(_tensor(types_pb2.DT_STRING, [], string_val=[b"x"]))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Loss/total_loss", "DetectionBoxes_Precision/mAP", "a b/c"]),
            st.integers(min_value=0, max_value=2**40),
            st.floats(width=32, allow_nan=False),
        ),
        max_size=30,
    )
)
def test_writer_reader_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list[Any]) -> None:
    logdir = tmp_path_factory.mktemp("rt")
    expected: dict[tuple[str, int], float] = {}
    with EventWriter(logdir) as writer:
        for i, (tag, step, value) in enumerate(rows):
            writer.add_scalar(tag, value, step, wall_time=float(i))
            expected[(tag, step)] = value  # the last written has the latest wall time
    got = {(p.tag, p.step): p.value for p in read_scalars(logdir)}
    assert got == expected


def test_pr_curve_from_counts_round_trips_through_a_file(tmp_path: Path) -> None:
    curve = PRCurveSummary.from_counts(tp=[5, 3, 1], fp=[5, 1, 0], tn=[0, 4, 5], fn=[0, 2, 4])
    with EventWriter(tmp_path) as writer:
        writer.add_pr_curve_data("pr/cat", curve, step=7, wall_time=3.0)
    (read,) = read_pr_curves(tmp_path)
    assert (read.run, read.tag, read.step, read.wall_time) == (".", "pr/cat", 7, 3.0)
    np.testing.assert_array_equal(read.curve.to_array(), curve.to_array())


def test_reader_and_writer_never_import_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tfod_tools.tensorboard import reader, writer, layout, pr_curves\n"
        f"w = writer.EventWriter({str(tmp_path)!r})\n"
        "w.add_scalar('a', 1.0, 1); w.add_pr_curve('p', [True], [0.5], 1)\n"
        "w.add_custom_scalars_layout(layout.odapi_layout()); w.close()\n"
        f"assert len(reader.read_scalars({str(tmp_path)!r})) == 1\n"
        f"assert len(reader.read_pr_curves({str(tmp_path)!r})) == 1\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
