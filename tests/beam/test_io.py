"""``WriteShards`` and the FileSystems helpers: the local writer's bytes, whatever order Beam uses."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
import pytest

from tfod_tools.beam import run_pipeline, worker_errors
from tfod_tools.beam.io import read_bytes, write_bytes_atomic
from tfod_tools.beam.options import new_pipeline, pipeline_options
from tfod_tools.beam.shards import WriteShards, final_names
from tfod_tools.data.tfrecord import write_records
from tfod_tools.errors import TfodError

from .conftest import files_in


def _records(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300))) for _ in range(n)]


def _local(tmp: Path, records: list[bytes], num_shards: int) -> list[bytes]:
    """What the local writer writes: round robin in record order."""
    out = []
    for shard, name in enumerate(final_names(str(tmp / "local.record"), num_shards)):
        write_records(name, records[shard::num_shards])
        out.append(Path(name).read_bytes())
    return out


def _run(items: list[tuple[int, tuple[int, bytes]]], prefix: Path, num_shards: int, args: list[str]) -> None:
    with new_pipeline(pipeline_options(args)) as pipeline:
        _ = pipeline | beam.Create(items, reshuffle=True) | WriteShards(str(prefix), num_shards)


@pytest.mark.parametrize("num_shards", [1, 9])
def test_shards_are_the_local_writers_bytes_in_any_input_order(tmp_path: Path, num_shards: int) -> None:
    records = _records(7, seed=num_shards)  # 9 shards: two of them get no record (empty files)
    want = _local(tmp_path, records, num_shards)
    items = [(k % num_shards, (k, data)) for k, data in enumerate(records)]
    for attempt, seed in enumerate((1, 2)):
        random.Random(seed).shuffle(items)
        out = tmp_path / f"beam{attempt}" / "train.record"
        _run(items, out, num_shards, [])
        got = [Path(name).read_bytes() for name in final_names(str(out), num_shards)]
        assert got == want
        assert files_in(out.parent) == sorted(Path(n).name for n in final_names(str(out), num_shards))


def test_the_writer_reports_each_shards_path_records_and_hash(tmp_path: Path) -> None:
    """The one output element: per shard, in shard order, its final path, record count and the
    SHA-256 of its bytes (an empty shard too), hashed as written: what a manifest needs."""
    records = _records(5, seed=4)
    prefix, report = tmp_path / "out" / "t.record", tmp_path / "written.json"
    with new_pipeline(pipeline_options([])) as pipeline:
        _ = (
            pipeline
            | beam.Create([(k % 3, (k, data)) for k, data in enumerate(records)], reshuffle=True)
            | WriteShards(str(prefix), 4)  # shard 3 gets no record
            | beam.Map(lambda written: report.write_text(json.dumps(written)))
        )
    names = final_names(str(prefix), 4)
    counts = [2, 2, 1, 0]
    digests = [hashlib.sha256(Path(n).read_bytes()).hexdigest() for n in names]
    want = [list(w) for w in zip(names, counts, digests, strict=True)]
    assert json.loads(report.read_text()) == want
    assert want[3][2] == hashlib.sha256(b"").hexdigest()


def _fail_on(key: int) -> Callable[[tuple[int, tuple[int, bytes]]], tuple[int, tuple[int, bytes]]]:
    def check(item: tuple[int, tuple[int, bytes]]) -> tuple[int, tuple[int, bytes]]:
        if item[1][0] == key:
            with worker_errors():
                raise TfodError(f"record {key}: data CRC mismatch", path="in.record", fix="re-create it")
        return item

    return check


def test_a_failing_stage_leaves_nothing_under_the_final_names(tmp_path: Path) -> None:
    records = _records(6, seed=9)
    out = tmp_path / "out" / "train.record"
    write_records(tmp_path / "out" / "keep.record", [b"x"])  # the folder holds something already
    transform = WriteShards(str(out), 3)
    pipeline = new_pipeline(pipeline_options([]))
    _ = (
        pipeline
        | beam.Create([(k % 3, (k, data)) for k, data in enumerate(records)])
        | beam.Map(_fail_on(4))
        | transform
    )
    with pytest.raises(TfodError) as raised:
        run_pipeline(pipeline)
    assert str(raised.value) == "in.record: record 4: data CRC mismatch (fix: re-create it)"
    transform.cleanup()
    assert files_in(out.parent) == ["keep.record"]


def test_a_bad_shard_index_fails_the_job(tmp_path: Path) -> None:
    pipeline = new_pipeline(pipeline_options([]))
    _ = pipeline | beam.Create([(0, (0, b"a")), (2, (1, b"b"))]) | WriteShards(str(tmp_path / "t.record"), 2)
    with pytest.raises(TfodError, match=r"shard index 2 is outside 0\.\.1"):
        run_pipeline(pipeline)
    assert not (tmp_path / "t.record-00000-of-00002").exists()


def test_bytes_are_written_whole_and_read_back(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "manifest.json"
    write_bytes_atomic(str(target), b'{"a": 1}')
    write_bytes_atomic(str(target), b'{"a": 2}')  # replaces
    assert read_bytes(str(target)) == b'{"a": 2}'
    assert files_in(tmp_path) == ["sub", "sub/manifest.json"]
    with pytest.raises(TfodError, match="file not found"):
        read_bytes(str(tmp_path / "missing.json"))


def test_a_tree_is_copied_to_and_published_on_a_remote_file_system(tmp_path: Path) -> None:
    """``tfodtest://`` (a Beam FileSystem of its own scheme): a folder copied down whole, and a local
    tree published onto a remote name, replacing the old tree there, no scratch sibling left."""
    from tfod_tools.beam.io import copy_tree_to_local, publish_tree, tree_files

    from .conftest import as_remote

    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "x.bin").write_bytes(bytes(range(256)) * 40_000)  # > one 8 MB read
    (src / "top.txt").write_text("top")
    assert tree_files(as_remote(src)) == ["a/b/x.bin", "top.txt"]
    down = copy_tree_to_local(as_remote(src), tmp_path / "down")
    assert files_in(down) == files_in(src)
    assert (down / "a" / "b" / "x.bin").read_bytes() == (src / "a" / "b" / "x.bin").read_bytes()

    out = tmp_path / "out"
    (out / "old").mkdir(parents=True)
    (out / "old" / "stale.txt").write_text("stale")
    publish_tree(src, as_remote(out))
    assert files_in(out) == files_in(src)
    assert (out / "top.txt").read_text() == "top"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["down", "out", "src"]
