"""tfod balance --beam: every shard, group file, sampling config and the manifest byte-identical to
the local ``tfod balance`` (same seed and shards, same prefix); a damaged record or an image that does
not decode fails the job naming the file and record index with nothing under the final names; the
up-front checks give the local messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.balance import balance, manifest_text
from tfod_tools.data.records import read_image_records, write_image_records
from tfod_tools.data.synthetic import SyntheticDataset, write_synthetic_dataset
from tfod_tools.errors import TfodError

from .conftest import MULTI_PROCESSING, SCHEME, as_remote, files_in

pytest.importorskip("apache_beam")

from tfod_tools.beam.balance import balance_beam


@pytest.fixture(scope="module")
def xray(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """12 grayscale 64 px xray-like images (two classes and negatives)."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("xray"), "xray-like", train_images=12, eval_images=2, seed=5, image_size=64
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by relative name, as bytes; then the directory is removed."""
    files = {name: (directory / name).read_bytes() for name in files_in(directory)}
    shutil.rmtree(directory)
    return files


def _local_then_beam(
    inputs: list[Path], label_map: Path, out: Path, pipeline_args: list[str] | None = None, **kw: Any
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, Any]]:
    """Run the local balance and the Beam one to the same prefix; both outputs as bytes."""
    local = balance(inputs, label_map, out, **kw)
    local_files = _snapshot(out.parent)
    manifest = balance_beam(inputs, label_map, out, pipeline_args=pipeline_args or [], **kw)
    assert manifest == json.loads(manifest_text(local))  # the same document (tuples read back as lists)
    return local_files, _snapshot(out.parent), manifest


@pytest.mark.slow  # a whole pipeline plus the local run (~15 s here)
@pytest.mark.parametrize(
    ("shards", "strategy", "sampling"),
    [(1, "repeat-factor", False), (3, "oversample", True)],
    ids=["1-shard", "3-shards-sampling-config"],
)
def test_outputs_are_byte_identical_to_the_local_run(
    xray: SyntheticDataset, tmp_path: Path, shards: int, strategy: str, sampling: bool
) -> None:
    inputs = [xray.train_record]
    if shards > 1:  # a second input file: the global order runs over files, then records
        inputs.append(tmp_path / "more.record")
        shutil.copy(xray.train_record, inputs[1])
    local, beam, manifest = _local_then_beam(
        inputs,
        xray.label_map,
        tmp_path / "out" / "bal.record",
        recipe="aerial",
        strategy=strategy,
        threshold=1.0,
        seed=3,
        shards=shards,
        emit_sampling_config=sampling,
    )
    assert list(beam) == list(local)  # the same files, no scratch folder or temporary left behind
    assert [name for name in local if beam[name] != local[name]] == []
    assert len(manifest["shards"]) == shards and manifest["plan"]["copies"] > 0
    assert ("bal.record.sampling.config" in local) == sampling
    if sampling:  # only the groups some image has as its rarest class get a file, as locally
        groups = set(manifest["plan"]["group_totals"])  # class names, and negative
        assert {n.split(".group-")[1] for n in local if ".group-" in n} == groups


def _with_bad_image(xray: SyntheticDataset, path: Path) -> None:
    records = read_image_records(xray.train_record)
    victim = next(i for i, r in enumerate(records) if r.class_label)
    records[victim] = replace(records[victim], encoded=b"\xff\xd8 not a JPEG", source_id="broken-1")
    write_image_records(path, records)


@pytest.mark.slow  # two worker processes start (~50 s on a loaded 2-core machine)
def test_two_worker_processes_skip_a_bad_image_like_the_local_run(
    xray: SyntheticDataset, tmp_path: Path
) -> None:
    src = tmp_path / "train_bad.record"
    _with_bad_image(xray, src)
    local, beam, manifest = _local_then_beam(
        [src],
        xray.label_map,
        tmp_path / "out" / "bal.record",
        MULTI_PROCESSING,
        recipe="chest-xray",
        strategy="oversample",
        seed=1,
        shards=2,
        on_bad_image="skip",
    )
    assert manifest["skipped_images"] == {"count": 1, "ids": ["broken-1"]}
    assert list(beam) == list(local)
    assert [name for name in local if beam[name] != local[name]] == []


def test_an_image_that_does_not_decode_fails_the_job_and_writes_nothing(
    xray: SyntheticDataset, tmp_path: Path
) -> None:
    src = tmp_path / "in" / "train_bad.record"
    src.parent.mkdir()
    _with_bad_image(xray, src)
    out = tmp_path / "out" / "new" / "bal.record"  # its folders are created, and removed again
    kw: dict[str, Any] = {"recipe": "chest-xray", "strategy": "oversample", "shards": 2}
    with pytest.raises(TfodError) as local:
        balance([src], xray.label_map, out, **kw)
    with pytest.raises(TfodError, match=r"train_bad\.record: record \d+ \(source id broken-1\): ") as beam:
        balance_beam([src], xray.label_map, out, **kw)
    assert str(beam.value) == str(local.value)
    assert not (tmp_path / "out").exists()  # no shard, scratch folder or temporary file left
    with pytest.raises(TfodError) as remote:  # group files and sampling config through FileSystems
        balance_beam([src], xray.label_map, as_remote(out), emit_sampling_config=True, **kw)
    assert str(remote.value) == str(local.value)
    assert files_in(tmp_path / "out") == []  # no group file, shard, scratch folder or temporary


@pytest.mark.slow  # a whole pipeline plus the local run (~15 s here)
def test_a_corrupt_record_fails_the_job_naming_file_and_record(
    xray: SyntheticDataset, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good, bad = inputs / "a.record", inputs / "b.record"
    shutil.copy(xray.train_record, good)
    data = bytearray(xray.train_record.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    out = tmp_path / "out" / "new" / "bal.record"  # its folders are created, and removed again
    with pytest.raises(TfodError, match=r"b\.record: record \d+: data CRC mismatch") as beam:
        balance_beam([good, bad], xray.label_map, out, shards=2, emit_sampling_config=True)
    with pytest.raises(TfodError) as local:
        balance([good, bad], xray.label_map, out, shards=2, emit_sampling_config=True)
    assert str(beam.value) == str(local.value)
    assert not (tmp_path / "out").exists()


def _bad_inputs(xray: SyntheticDataset, tmp_path: Path) -> dict[str, dict[str, Any]]:
    bad_recipe = tmp_path / "bad.yaml"
    bad_recipe.write_text("name: bad\nalbumentations: 3\n")
    base = {"inputs": [xray.train_record], "label_map": xray.label_map, "out": tmp_path / "o" / "b.record"}
    return {
        "eval split": {**base, "inputs": [xray.eval_record]},
        "recipe": {**base, "recipe": str(bad_recipe)},
        "label map": {**base, "label_map": tmp_path / "missing.pbtxt"},
        "output is an input": {**base, "out": xray.train_record},
        "strategy": {**base, "strategy": "nope"},
    }


@pytest.mark.parametrize("case", ["eval split", "recipe", "label map", "output is an input", "strategy"])
def test_bad_input_is_refused_up_front_with_the_local_message(
    xray: SyntheticDataset, tmp_path: Path, case: str
) -> None:
    kw = _bad_inputs(xray, tmp_path)[case]
    with pytest.raises(TfodError) as local:
        balance(**kw)
    with pytest.raises(TfodError) as beam:
        balance_beam(**kw, pipeline_args=["--no_such_option=1"])  # refused before the options are read
    assert str(beam.value) == str(local.value)
    assert not (tmp_path / "o").exists()


def test_an_unknown_scheme_is_refused_up_front(xray: SyntheticDataset, tmp_path: Path) -> None:
    with pytest.raises(TfodError) as raised:
        balance_beam([xray.train_record], xray.label_map, "gs://bucket/b.record")
    assert str(raised.value) == (
        "gs://bucket/b.record: tfod balance --beam: Beam has no file system for gs:// here "
        "(fix: pip install 'apache-beam[gcp]' (on the driver and the workers))"
    )
    assert files_in(tmp_path) == []


@pytest.mark.slow  # two runs (~8 s here)
def test_inputs_label_map_and_outputs_through_a_beam_file_system(
    xray: SyntheticDataset, tmp_path: Path
) -> None:
    """Records (a glob), label map and output under ``tfodtest://`` (a registered FileSystem, as gs://
    would be), with ``--emit-sampling-config``: the local run's shards and group files byte for byte,
    the same sampling config and manifest but for the paths."""
    shard_in = tmp_path / "in"
    write_image_records(shard_in / "train.record", read_image_records(xray.train_record), num_shards=2)
    kw: dict[str, Any] = {"recipe": "aerial", "strategy": "oversample", "seed": 3, "shards": 2}
    kw["emit_sampling_config"] = True
    local = balance([f"{shard_in}/train.record-*"], xray.label_map, tmp_path / "local" / "b.record", **kw)
    remote_out = as_remote(tmp_path / "beam" / "b.record")
    beam = balance_beam(
        [as_remote(f"{shard_in}/train.record-*")], as_remote(xray.label_map), remote_out, **kw
    )
    local_files, beam_files = _snapshot(tmp_path / "local"), _snapshot(tmp_path / "beam")
    assert local_files.keys() == beam_files.keys()  # no scratch folder or temporary file left
    assert sum(".group-" in k for k in local_files) == len(local["plan"]["group_totals"]) >= 2
    manifest, config = "b.record.manifest.json", "b.record.sampling.config"
    assert {k: v for k, v in beam_files.items() if k not in (manifest, config)} == {
        k: v for k, v in local_files.items() if k not in (manifest, config)
    }
    masked = beam_files[config].decode().replace(f"{SCHEME}://", "/").replace("/beam/", "/local/")
    assert masked == local_files[config].decode()
    assert f'input_path: "{remote_out}.group-negative"' in beam_files[config].decode()
    assert f'label_map_path: "{as_remote(xray.label_map)}"' in beam_files[config].decode()
    assert beam["sampling_config"]["path"] == f"{remote_out}.sampling.config"
    assert beam["shards"][0]["path"] == f"{remote_out}-00000-of-00002"
    assert beam["inputs"][1]["path"] == as_remote(shard_in / "train.record-00001-of-00002")
    want = json.loads(manifest_text(local).replace(str(tmp_path / "local"), str(tmp_path / "beam")))
    assert json.loads(json.dumps(beam).replace(f"{SCHEME}://", "/")) == want
    assert json.loads(beam_files[manifest]) == beam


@pytest.mark.slow  # a whole pipeline plus the local run (~15 s here)
def test_cli_beam_json_and_refusals(
    xray: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bal.record"
    args = ["balance", "--input", str(xray.train_record), "--label-map", str(xray.label_map)]
    args += ["--out", str(out), "--recipe", "aerial", "--seed", "2", "--shards", "2"]
    assert main([*args, "--json", "--beam", "--", "--runner=DirectRunner"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest == json.loads((tmp_path / "bal.record.manifest.json").read_text())
    assert [s["path"] for s in manifest["shards"]] == [f"{out}-0000{i}-of-00002" for i in range(2)]
    shutil.rmtree(tmp_path)
    assert main([*args, "--beam", "--", "--runner=NoSuchRunner"]) == 2
    assert "unknown Beam runner 'NoSuchRunner'" in capsys.readouterr().err
    assert main([*args, "--beam", "--workers", "2"]) == 2
    assert "--workers is for the local run" in capsys.readouterr().err
    assert main([*args, "--", "--direct_num_workers=2"]) == 2  # Beam options without --beam
    assert "unexpected arguments --direct_num_workers=2" in capsys.readouterr().err
    assert not tmp_path.exists()


_RUN_IN_A_FRESH_INTERPRETER = (
    "import sys\n"
    "from tfod_tools.beam.balance import balance_beam\n"
    "balance_beam(sys.argv[1], sys.argv[2], sys.argv[3], recipe='aerial', strategy='oversample', seed=3,\n"
    "             shards=2, emit_sampling_config=True)\n"
)


@pytest.mark.slow  # six pipelines, each in a fresh interpreter (~3 s each)
def test_the_pipeline_runs_and_writes_the_same_under_every_hash_seed(tmp_path: Path) -> None:
    """The FnApiRunner's stage order follows Python's hashing of strings that include paths (so
    PYTHONHASHSEED and the folder names). A layout with a cycle (a side input made from the input of
    the stage that reads it) once ran in some of these orders and failed in the others ('EmptySideInput'
    in a 'Starts' stage: about half of the runs of this very test). Every run works and writes the same
    shards and group files."""
    xray = write_synthetic_dataset(  # the data the failure was found with (the layout depends on it)
        tmp_path / "data", "xray-like", train_images=12, eval_images=1, seed=0, image_size=64
    )
    written = []
    for hash_seed in ("0", "1", "2", "5", "6", "7"):
        out = tmp_path / hash_seed / "b.record"
        args = [str(xray.train_record), str(xray.label_map), str(out)]
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_IN_A_FRESH_INTERPRETER, *args],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"PYTHONHASHSEED={hash_seed}: {proc.stderr[-3000:]}"
        files = _snapshot(out.parent)
        written.append(
            {k: v for k, v in files.items() if not k.endswith((".manifest.json", ".sampling.config"))}
        )
    assert len(written[0]) >= 4 and all(w == written[0] for w in written)  # 2 shards and the group files
