"""tfod inspect --beam: the JSON report equals the local one (duplicates, leaks, outliers, issues
planted); a damaged record fails the job naming the file and record index."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfod_tools.cli.app import main
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.data.tfrecord import iter_records
from tfod_tools.odapi.label_map import LabelMap, write_label_map

from .conftest import SCHEME, as_remote

pytest.importorskip("apache_beam")

LM = LabelMap.from_names(["cat", "dog"])


def _jpeg(seed: int, quality: int = 92, size: tuple[int, int] = (160, 120)) -> bytes:
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
    out = io.BytesIO()
    small.resize(size, Image.Resampling.BICUBIC).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _record(source_id: str, data: bytes, seed: int, box: list[float] | None = None) -> ImageRecord:
    w, h = Image.open(io.BytesIO(data)).size
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0.1, 0.5, 2)
    s = rng.uniform(0.18, 0.22)
    boxes = [[x * w, y * h, (x + s) * w, (y + s) * h], box or [0.6 * w, 0.6 * h, 0.8 * w, 0.8 * h]]
    return ImageRecord.from_pixels(
        data, width=w, height=h, boxes=boxes, classes=[1, 2], label_map=LM, source_id=source_id
    )


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two train files (24 images: an exact and a near copy, a wide box among squares, a repeated
    source id, a box outside its image) and an eval file with an exact and a near leak."""
    out = tmp_path_factory.mktemp("beam_inspect")
    train = [_record(f"t{k}", _jpeg(k), k) for k in range(20)]
    train.append(_record("t20-copy-of-t0", _jpeg(0), 20))  # exact duplicate
    train.append(_record("t21-q60-of-t1", _jpeg(1, 60), 21))  # near duplicate
    train.append(_record("t22-wide", _jpeg(22), 22, box=[4.0, 50.0, 156.0, 60.0]))  # outlier
    train.append(_record("t5", _jpeg(23), 23, box=[140.0, 100.0, 170.0, 130.0]))  # id again, outside
    evals = [
        _record("e0-same-as-t3", _jpeg(3), 30),
        _record("e1", _jpeg(31), 31),
        _record("e2-half-of-t4", _jpeg(4, size=(80, 60)), 32),
    ]
    write_image_records(out / "train.record", train, num_shards=2)
    write_image_records(out / "eval.record", evals)
    return {
        "train": out / "train.record@2",
        "eval": out / "eval.record",
        "label_map": write_label_map(out / "label_map.pbtxt", LM),
        "dir": out,
    }


def _inspect(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, object]:
    capsys.readouterr()
    code = main(["inspect", "--json", "--quiet", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    found: dict[str, object] = json.loads(captured.out)
    return found


@pytest.mark.slow
def test_beam_report_equals_local(records: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(records["train"]), "--label-map", str(records["label_map"])]
    local = _inspect(capsys, args)
    beam = _inspect(capsys, [*args, "--beam"])
    assert beam == local  # every field: the report has no timing
    dup = local["duplicate_images"]
    assert isinstance(dup, dict) and dup["exact_pairs"] == 1 and dup["near_pairs"] >= 1
    outliers = local["outliers"]
    assert isinstance(outliers, dict) and outliers["outlier_boxes"] >= 1
    assert {"t22-wide"} <= {o["source_id"] for o in outliers["top"]}
    issues = {i["id"] for i in local["issues"]}  # type: ignore[attr-defined]
    assert {"duplicate_source_id", "box_outside_image"} <= issues
    assert len(local["files"]) == 2  # type: ignore[arg-type]


@pytest.mark.slow
def test_beam_against_equals_local_on_two_workers(
    records: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        str(records["train"]),
        "--label-map",
        str(records["label_map"]),
        "--against",
        str(records["eval"]),
    ]
    local = _inspect(capsys, args)
    beam = _inspect(
        capsys, [*args, "--beam", "--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    )
    assert beam == local
    leak = local["train_eval_leak"]
    assert isinstance(leak, dict) and leak["exact_pairs"] == 1 and leak["near_pairs"] == 1


def test_damaged_record_fails_naming_file_and_index(
    records: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source = records["dir"] / "train.record-00001-of-00002"
    data = bytearray(source.read_bytes())
    offset = 0
    for index, payload in iter_records(source):  # the start of record 3's data
        if index == 3:
            break
        offset += 12 + len(payload) + 4
    data[offset + 12 + 40] ^= 0xFF
    bad = records["dir"] / "bad.record"
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    code = main(["inspect", str(bad), "--label-map", str(records["label_map"]), "--beam", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}: record 3: data CRC mismatch" in err and "Traceback" not in err


def test_beam_options_without_beam_are_refused(
    records: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["inspect", str(records["eval"]), "--label-map", str(records["label_map"]), "--", "--x=1"])
    assert code == 2 and "unexpected arguments --x=1" in capsys.readouterr().err


def test_unknown_schemes_are_refused_up_front(
    records: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["inspect", "nosuch://bucket/train.record", "--label-map", str(records["label_map"]), "--beam"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "nosuch://bucket/train.record: tfod inspect --beam: Beam has no file system for nosuch:// here "
        "(fix: use a local path or a scheme Beam has (gs://, s3://, ...), with its extra installed on the "
        "driver and the workers)"
    ), err


@pytest.mark.slow
def test_records_label_map_and_against_through_a_beam_file_system(
    records: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every input through ``tfodtest://`` (a registered FileSystem, as gs:// would be): the same report."""
    local_args = [
        str(records["train"]),
        "--label-map",
        str(records["label_map"]),
        "--against",
        str(records["eval"]),
    ]
    remote_args = [
        as_remote(records["train"]),
        "--label-map",
        as_remote(records["label_map"]),
        "--against",
        as_remote(records["eval"]),
    ]
    local = _inspect(capsys, local_args)
    remote = _inspect(capsys, [*remote_args, "--beam"])
    assert remote["files"] == [as_remote(f) for f in local["files"]]  # type: ignore[attr-defined]
    assert json.dumps(remote).replace(f"{SCHEME}://", "/") == json.dumps(local)
    assert local["train_eval_leak"]["exact_pairs"] == 1  # type: ignore[index]
