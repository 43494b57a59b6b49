"""TFRecord framing: CRC32C, round trips, corruption, shards, the batched reader of files still being
written, and TensorFlow interoperability."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools import crc32c as crc32c_module
from tfod_tools.data.tfrecord import (
    TFRecordWriter,
    batch_masked_crc32c,
    begins_like_tfrecord,
    count_records,
    crc32c,
    expand_record_paths,
    frame_record,
    iter_records,
    masked_crc32c,
    read_complete_records,
    read_records,
    shard_names,
    write_records,
)
from tfod_tools.errors import TfodError


def _crc_reference(data: bytes) -> int:
    """Bit-by-bit CRC-32C, independent of the table-driven implementations."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors() -> None:
    # RFC 3720 (iSCSI) appendix B.4 test vectors.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=5000))
def test_crc32c_paths_agree_with_reference(data: bytes) -> None:
    expected = _crc_reference(data) if len(data) < 600 else crc32c(data)
    assert crc32c_module._crc_small(data, 0xFFFFFFFF) ^ 0xFFFFFFFF == expected
    if len(data) >= 4:
        assert crc32c_module._crc_numpy(data) == expected


def test_crc32c_numpy_large_inputs_match_reference() -> None:
    for n in (4, 5, 17, 1023, 4096, 20_001, 300_000):
        data = os.urandom(n)
        assert crc32c_module._crc_numpy(data) == crc32c_module._crc_small(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def test_masked_crc_definition() -> None:
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=12))
def test_write_read_round_trip(tmp_path_factory: pytest.TempPathFactory, records: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("rt") / "x.record"
    assert write_records(path, records) == len(records)
    assert list(read_records(path)) == records
    assert count_records(path) == len(records)
    assert [i for i, _ in iter_records(path)] == list(range(len(records)))


def _three_records(path: Path) -> list[bytes]:
    records = [b"first" * 10, b"second" * 200, b"third" * 5]
    write_records(path, records)
    return records


def test_data_crc_mismatch_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.record"
    records = _three_records(path)
    raw = bytearray(path.read_bytes())
    offset = (12 + len(records[0]) + 4) + 12 + 7  # a data byte of record 1
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))
    reader = iter_records(path)
    assert next(reader)[1] == records[0]
    with pytest.raises(TfodError) as info:
        next(reader)
    assert str(path) in str(info.value)
    assert "record 1" in str(info.value) and "CRC" in str(info.value)
    # Without verification the damaged bytes come through.
    assert len(list(read_records(path, verify=False))) == 3


def test_length_crc_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "len.record"
    _three_records(path)
    raw = bytearray(path.read_bytes())
    raw[9] ^= 0xFF  # the length CRC of record 0
    path.write_bytes(bytes(raw))
    with pytest.raises(TfodError, match=r"record 0: length CRC mismatch"):
        list(read_records(path))


@pytest.mark.parametrize("cut", [3, 12 + 5, -2])
def test_truncation_names_file_and_record(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "trunc.record"
    records = _three_records(path)
    raw = path.read_bytes()
    last_start = len(raw) - (12 + len(records[2]) + 4)
    end = last_start + cut if cut > 0 else len(raw) + cut
    path.write_bytes(raw[:end])
    with pytest.raises(TfodError) as info:
        list(read_records(path))
    message = str(info.value)
    assert str(path) in message and "record 2" in message and "truncated" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TfodError, match="not found"):
        list(read_records(tmp_path / "nope.record"))


def test_writer_is_atomic_on_error(tmp_path: Path) -> None:
    path = tmp_path / "atomic.record"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), TFRecordWriter(path) as writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.record"]


def test_shards_and_patterns(tmp_path: Path) -> None:
    names = shard_names(tmp_path / "t.record", 10)
    assert Path(names[3]).name == "t.record-00003-of-00010"
    for name in names[:2]:
        write_records(name, [b"x"])
    assert [p.name for p in expand_record_paths(tmp_path / "t.record-0000*")] == [
        "t.record-00000-of-00010",
        "t.record-00001-of-00010",
    ]
    assert len(expand_record_paths(f"{tmp_path}/t.record@10")) == 10
    with pytest.raises(TfodError):
        expand_record_paths(tmp_path / "nothing-*")
    with pytest.raises(TfodError):
        shard_names("x", 0)


def test_reader_does_not_import_tensorflow(tmp_path: Path) -> None:
    path = tmp_path / "x.record"
    write_records(path, [b"abc"])
    code = (
        "import sys; from tfod_tools.data.records import read_image_records; "
        "from tfod_tools.data.tfrecord import read_records; "
        f"assert list(read_records({str(path)!r})) == [b'abc']; "
        "import tfod_tools.data.synthetic, tfod_tools.odapi.label_map; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- TensorFlow interoperability (TensorFlow is imported only here) ----------------------------


@pytest.fixture(scope="module")
def tf():  # type: ignore[no-untyped-def]
    try:
        from tfod_tools.odapi import compat

        compat.install()
    except ImportError:
        pass
    return pytest.importorskip("tensorflow")


def test_tensorflow_reads_our_records(tf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [os.urandom(n) for n in (0, 1, 100, 20_000)]
    path = tmp_path / "ours.record"
    write_records(path, records)
    got = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert got == records


def test_we_read_tensorflow_records(tf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [os.urandom(n) for n in (0, 7, 5000)]
    path = tmp_path / "tf.record"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    assert list(read_records(path)) == records
    ours = tmp_path / "ours.record"
    write_records(ours, records)
    assert ours.read_bytes() == path.read_bytes()  # byte-identical framing
    # A flipped data byte: TensorFlow's reader and ours both refuse the file.
    raw = bytearray(path.read_bytes())
    assert struct.unpack("<Q", bytes(raw[:8]))[0] == 0
    raw[-6] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(TfodError, match="record 2"):
        list(read_records(path))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))


def test_garbage_file_is_reported_not_allocated(tmp_path: Path) -> None:
    path = tmp_path / "garbage.record"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(TfodError, match="record 0: length CRC mismatch"):
        list(read_records(path))
    with pytest.raises(TfodError, match="record 0: truncated data"):
        count_records(path)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=1500), min_size=1, max_size=40))
def test_batch_crc_equals_one_by_one(chunks: list[bytes]) -> None:
    buffer = np.frombuffer(b"".join(chunks) or b"\0", dtype=np.uint8)
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    assert batch_masked_crc32c(buffer, starts, lengths).tolist() == [masked_crc32c(c) for c in chunks]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=30), st.data())
def test_complete_records_stop_at_the_first_bad_record(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes], data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("rec") / "events.out.tfevents.1.h"
    framed = [frame_record(p) for p in payloads]
    blob = bytearray(b"".join(framed))
    damaged = data.draw(st.integers(min_value=0, max_value=len(payloads) - 1))
    offset = sum(len(f) for f in framed[:damaged])
    # damage the length CRC or (when there is data) a data byte of record `damaged`
    where = data.draw(st.sampled_from(["length_crc", "data"] if payloads[damaged] else ["length_crc"]))
    position = offset + 8 if where == "length_crc" else offset + 12
    blob[position] ^= 0x01
    path.write_bytes(bytes(blob))
    records, complete = read_complete_records(path, verify=True)
    assert records == payloads[:damaged] and not complete
    with pytest.raises(TfodError, match=f"record {damaged}: (length|data) CRC mismatch"):
        list(iter_records(path))  # the streaming reader refuses the same record
    if where == "data":  # without data CRCs the damaged payload comes through
        unverified, complete = read_complete_records(path, verify=False)
        assert len(unverified) == len(payloads) and complete


def test_complete_records_of_empty_missing_and_short_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert read_complete_records(tmp_path / "empty", verify=True) == ([], True)
    assert read_complete_records(tmp_path / "missing", verify=True) == ([], True)
    (tmp_path / "short").write_bytes(b"\x01\x02")
    assert read_complete_records(tmp_path / "short", verify=True) == ([], False)
    assert begins_like_tfrecord(tmp_path / "short") and begins_like_tfrecord(tmp_path / "missing")
    (tmp_path / "text").write_bytes(b"x" * 40)
    assert not begins_like_tfrecord(tmp_path / "text")
