"""``tfod convert --beam``: the local run's shards, label map and summary, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.beam.convert import convert_beam
from tfod_tools.cli.app import main
from tfod_tools.data.convert import convert
from tfod_tools.data.tfrecord import count_records
from tfod_tools.errors import TfodError

from .conftest import MULTI_PROCESSING, SCHEME, as_remote, files_in, write_sources


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """7 synthetic shapes images (the third one damaged) as COCO and VOC."""
    return write_sources(tmp_path_factory.mktemp("sources"), 7, bad=True)


def _outputs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _both(
    sources: dict[str, Path], tmp: Path, fmt: str, shards: int, beam_args: list[str] | None = None
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, Any], dict[str, Any]]:
    """Local and Beam runs (``--on-bad-image skip``): their files and summaries."""
    kwargs = {
        "images": sources["images"] if fmt == "coco" else None,
        "num_shards": shards,
        "on_bad_image": "skip",
    }
    local = convert(fmt, sources[fmt], tmp / "local" / "train.record", **kwargs)  # type: ignore[arg-type]
    beam = convert_beam(
        fmt,
        sources[fmt],
        tmp / "beam" / "train.record",
        beam_args=beam_args or [],
        **kwargs,  # type: ignore[arg-type]
    )
    summaries = []
    for summary, root in ((local, tmp / "local"), (beam, tmp / "beam")):
        data = summary.to_dict()
        data["outputs"] = [str(Path(p).relative_to(root)) for p in data["outputs"]]
        data["label_map"] = str(Path(data["label_map"]).relative_to(root))
        summaries.append(data)
    return _outputs(tmp / "local"), _outputs(tmp / "beam"), summaries[0], summaries[1]


@pytest.mark.parametrize(("fmt", "shards"), [("coco", 1), ("coco", 3), ("voc", 3)])
def test_beam_writes_the_local_bytes_and_summary(
    sources: dict[str, Path], tmp_path: Path, fmt: str, shards: int
) -> None:
    local, beam, local_summary, beam_summary = _both(sources, tmp_path, fmt, shards)
    assert beam == local  # every shard and the label map, byte for byte (no scratch file left)
    assert beam_summary == local_summary
    assert beam_summary["images"] == 6 and beam_summary["skipped_images"] == 1
    assert [item["item"] for item in beam_summary["skipped"]] == [f"image {sources['images'] / '00002.jpg'}"]
    assert sum(count_records(tmp_path / "beam" / name) for name in beam if name != "label_map.pbtxt") == 6


@pytest.mark.slow  # two worker processes start
def test_two_worker_processes_write_the_local_bytes(sources: dict[str, Path], tmp_path: Path) -> None:
    local, beam, local_summary, beam_summary = _both(sources, tmp_path, "voc", 2, MULTI_PROCESSING)
    assert beam == local
    assert beam_summary == local_summary


def test_a_bad_image_fails_the_job_naming_it_and_writes_nothing(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(TfodError) as raised:
        convert_beam("voc", sources["voc"], tmp_path / "out" / "train.record", num_shards=3)
    assert str(raised.value).startswith(f"{sources['images'] / '00002.jpg'}: ")
    assert "--on-bad-image skip" in str(raised.value)
    assert files_in(tmp_path) == []  # no shard, no label map, no scratch, no output folder


def test_cli_beam_json_matches_the_local_json(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = []
    for name, extra in (("local", []), ("beam", ["--beam", "--", "--runner=DirectRunner"])):
        args = [
            "convert",
            "--from",
            "voc",
            "-a",
            str(sources["voc"]),
            "-o",
            str(tmp_path / name / "t.record"),
        ]
        assert main([*args, "--on-bad-image", "skip", "--json", "-q", *extra]) == 0
        document = json.loads(capsys.readouterr().out)
        document["outputs"] = [Path(p).name for p in document["outputs"]]
        document["label_map"] = Path(document["label_map"]).name
        documents.append(document)
    assert documents[0] == documents[1]
    assert _outputs(tmp_path / "local") == _outputs(tmp_path / "beam")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--beam", "--", "--runner=Nope"], "unknown Beam runner 'Nope'"),
        (["--", "--runner=DirectRunner"], "unexpected arguments --runner=DirectRunner"),
        (["--shardz", "3"], "unexpected arguments --shardz 3"),
        (["--beam", "--", "--shardz=3"], "Beam does not know the option(s) --shardz=3"),
        (
            ["--beam", "--label-map", "gs://b/lm.pbtxt"],
            "gs://b/lm.pbtxt: tfod convert --beam: Beam has no file system for gs:// here "
            "(fix: pip install 'apache-beam[gcp]' (on the driver and the workers))",
        ),
        (["--beam", "-o", "nosuch://b/t.record"], "Beam has no file system for nosuch:// here"),
    ],
)
def test_cli_bad_beam_options_exit_2_before_anything_runs(
    sources: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    args = ["convert", "--from", "voc", "-a", str(sources["voc"]), "-o", str(tmp_path / "o" / "t.record")]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert files_in(tmp_path) == []


@pytest.mark.slow
def test_beam_keeps_its_own_chatter_off_the_terminal(
    sources: dict[str, Path], tmp_path: Path, run_tfod: Any
) -> None:
    # The real CLI in a fresh process: apache-beam's import warnings (no GCP libraries) and the
    # worker processes' INFO logs must not reach stderr; only tfod's own lines do.
    args = ["convert", "--from", "voc", "-a", str(sources["voc"]), "-o", str(tmp_path / "t.record")]
    proc = run_tfod([*args, "--on-bad-image", "skip", "-q", "--beam", "--", *MULTI_PROCESSING], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Failed to import" not in proc.stderr and "apitools" not in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if "INFO" in line], proc.stderr[-3000:]
    assert (tmp_path / "t.record").exists()


def test_coco_inputs_and_outputs_through_a_beam_file_system(sources: dict[str, Path], tmp_path: Path) -> None:
    """COCO file, image folder and output all under ``tfodtest://`` (a registered FileSystem, as gs://
    would be): the local run's shards and label map byte for byte, the same summary."""
    kwargs: dict[str, Any] = {"num_shards": 2, "on_bad_image": "skip"}
    local = convert(
        "coco", sources["coco"], tmp_path / "local" / "t.record", images=sources["images"], **kwargs
    )
    out = as_remote(tmp_path / "beam" / "t.record")
    beam = convert_beam(
        "coco", as_remote(sources["coco"]), out, images=as_remote(sources["images"]), **kwargs
    )
    assert _outputs(tmp_path / "beam") == _outputs(tmp_path / "local")  # nothing else left there
    assert beam.outputs == [f"{out}-00000-of-00002", f"{out}-00001-of-00002"]
    assert str(beam.label_map) == as_remote(tmp_path / "beam" / "label_map.pbtxt")
    want = json.dumps(local.to_dict()).replace(str(tmp_path / "local"), str(tmp_path / "beam"))
    assert json.dumps(beam.to_dict()).replace(f"{SCHEME}://", "/") == want
    assert [item["item"] for item in beam.skipped] == [f"image {as_remote(sources['images'] / '00002.jpg')}"]


@pytest.mark.slow  # three runs
def test_cli_voc_folder_and_output_through_a_beam_file_system(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """VOC (a folder: listed through FileSystems.match) by the CLI, in and out through ``tfodtest://``;
    a bad image fails the job naming its real path, and nothing is written."""
    args = ["convert", "--from", "voc", "--shards", "3", "--json", "-q"]
    local_args = [*args, "-a", str(sources["voc"]), "-o", str(tmp_path / "local" / "t.record")]
    assert main([*local_args, "--on-bad-image", "skip"]) == 0
    local = json.loads(capsys.readouterr().out)
    remote_out = as_remote(tmp_path / "beam" / "t.record")
    args = [*args, "-a", as_remote(sources["voc"])]
    assert main([*args, "-o", remote_out, "--on-bad-image", "skip", "--beam"]) == 0
    beam = json.loads(capsys.readouterr().out)
    assert _outputs(tmp_path / "beam") == _outputs(tmp_path / "local")
    assert beam["outputs"][0] == f"{remote_out}-00000-of-00003"
    assert beam["images"] == local["images"] == 6 and beam["per_class"] == local["per_class"]
    assert main([*args, "-o", as_remote(tmp_path / "failed" / "t.record"), "--beam"]) == 2
    err = capsys.readouterr().err
    assert f"{as_remote(sources['images'] / '00002.jpg')}: " in err and err.count("\n") == 1
    assert not (tmp_path / "failed").exists() or files_in(tmp_path / "failed") == []
