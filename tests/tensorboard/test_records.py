"""The batched CRC framing reader against the record-by-record TFRecord code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools.data.tfrecord import frame_record, masked_crc32c
from tfod_tools.tensorboard._records import batch_masked_crc32c, read_records


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=1500), min_size=1, max_size=40))
def test_batch_crc_equals_one_by_one(chunks: list[bytes]) -> None:
    buffer = np.frombuffer(b"".join(chunks) or b"\0", dtype=np.uint8)
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    assert batch_masked_crc32c(buffer, starts, lengths).tolist() == [masked_crc32c(c) for c in chunks]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=30), st.data())
def test_reading_stops_at_the_first_bad_record(
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
    records, complete = read_records(path, verify=True)
    assert records == payloads[:damaged] and not complete
    if where == "data":  # without data CRCs the damaged payload comes through
        unverified, complete = read_records(path, verify=False)
        assert len(unverified) == len(payloads) and complete


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert read_records(tmp_path / "empty", verify=True) == ([], True)
    assert read_records(tmp_path / "missing", verify=True) == ([], True)
    (tmp_path / "short").write_bytes(b"\x01\x02")
    assert read_records(tmp_path / "short", verify=True) == ([], False)
