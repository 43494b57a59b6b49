"""tfod evaluate --model EXPORTED --beam: the same metrics.json (every value but the timings and the
output paths) and the same stored detections as the local ``tfod evaluate --model``, on the session's
SavedModel export and the eval records split over two files (the DirectRunner)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.records import read_image_records, write_image_records

pytest.importorskip("apache_beam")

SKIPPED = {
    "latency_ms_per_image",
    "elapsed_s",
    "parity.latency_ms_per_image.export",
    "out",
    "detections_path",
}
"""The fields that legitimately differ: this run's wall-clock timings and the output paths (two --out)."""


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.0": value}`` of every leaf of a JSON document."""
    if isinstance(doc, dict):
        return {k: v for key, value in doc.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    if isinstance(doc, list):
        return {k: v for i, value in enumerate(doc) for k, v in _flat(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): doc}


@pytest.mark.slow
def test_beam_scores_like_the_local_path(tmp_path: Path, exported: Any, run_tfod: Callable[..., Any]) -> None:
    records = read_image_records(exported.model.eval_record)
    shards = write_image_records(tmp_path / "eval.record", records, num_shards=2)
    args = ["evaluate", "--model", str(exported.out), "--records", ",".join(str(s) for s in shards), "--json"]
    local = run_tfod([*args, "--out", str(tmp_path / "local")])
    assert local.returncode == 0, local.stderr[-3000:]
    beam = run_tfod([*args, "--out", str(tmp_path / "beam"), "--beam", "--", "--direct_num_workers=2"])
    assert beam.returncode == 0, beam.stderr[-3000:]

    a = _flat(json.loads((tmp_path / "local" / "metrics.json").read_text()))
    b = _flat(json.loads((tmp_path / "beam" / "metrics.json").read_text()))
    assert a.keys() == b.keys() and a.keys() >= SKIPPED
    for key in sorted(set(a) - SKIPPED):
        if isinstance(a[key], float) and isinstance(b[key], float):
            assert b[key] == pytest.approx(a[key], abs=1e-12, rel=0), key
        else:
            assert b[key] == a[key], key
    doc = json.loads(beam.stdout)
    assert (
        doc["images"] == 16 and doc["detections"] > 0 and doc["metrics"]["DetectionBoxes_Precision/mAP"] > 0
    )

    stored = sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local" / "detections").rglob("*.npz")
    )
    assert stored and stored == sorted(
        p.relative_to(tmp_path / "beam") for p in (tmp_path / "beam" / "detections").rglob("*.npz")
    )
    for name in stored:
        with np.load(tmp_path / "local" / name) as x, np.load(tmp_path / "beam" / name) as y:
            assert sorted(x.files) == sorted(y.files), name
            for column in x.files:
                assert np.array_equal(x[column], y[column]), (name, column)


def test_bad_beam_options_and_beam_without_an_export_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--beam", "--", "--runner=NoSuchRunner"]) == 2
    assert "unknown Beam runner 'NoSuchRunner'" in capsys.readouterr().err
    assert main(["evaluate", "--model-dir", str(tmp_path), "--pipeline", str(tmp_path / "p"), "--beam"]) == 2
    assert "--beam scores an exported model" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        (False, "Beam has no file system for nosuch:// here"),
        (True, "no exported model here"),
    ],
)
def test_remote_paths_are_checked_up_front(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    remote: bool,
    message: str,
) -> None:
    """An unknown scheme is refused before anything loads; a known one is read through FileSystems
    (a missing remote export: the local error, naming the url). One line, nothing written, no
    temporary folder left."""
    import tempfile

    from .conftest import as_remote

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    path = as_remote(tmp_path / "export") if remote else "nosuch://b/export"
    capsys.readouterr()
    assert main(["evaluate", "--model", path, "--out", as_remote(tmp_path / "o"), "--beam"]) == 2
    err = capsys.readouterr().err
    assert message in err and path in err and err.count("\n") == 1, err
    assert [p.name for p in tmp_path.iterdir()] == ["temp"] and not list(temp.iterdir())


@pytest.mark.slow
def test_remote_export_records_label_map_and_out_score_like_the_local_path(
    tmp_path: Path, exported: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every path through the test's own ``tfodtest://`` file system (in-process DirectRunner): the
    same metrics.json but for the timings, and the paths, which name the remote places; the same
    stored detections; no temporary folder, local or beside the remote output, left behind."""
    import tempfile

    from .conftest import as_remote

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    records = read_image_records(exported.model.eval_record)
    write_image_records(tmp_path / "eval.record", records, num_shards=2)
    label_map = exported.out / "label_map.pbtxt"
    common = ["evaluate", "--json", "--records"]
    local = [
        *common,
        f"{tmp_path}/eval.record@2",
        "--label-map",
        str(label_map),
        "--model",
        str(exported.out),
    ]
    assert main([*local, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    remote = [
        *common,
        as_remote(tmp_path) + "/eval.record-*",
        "--label-map",
        as_remote(label_map),
        "--model",
        as_remote(exported.out),
    ]
    assert main([*remote, "--out", as_remote(tmp_path / "remote"), "--beam"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["out"] == as_remote(tmp_path / "remote") and doc["tf_log"] == as_remote(
        tmp_path / "remote.log"
    )

    a = _flat(json.loads((tmp_path / "local" / "metrics.json").read_text()))
    b = _flat(json.loads((tmp_path / "remote" / "metrics.json").read_text()))
    assert a.keys() == b.keys() and a.keys() >= SKIPPED and a["images"] == 16
    assert b["model"] == as_remote(a["model"]) and b["out"] == doc["out"]
    assert b["detections_path"] == as_remote(a["detections_path"]).replace("/local/", "/remote/")
    for key in sorted(set(a) - SKIPPED - {"model"}):
        if isinstance(a[key], float) and isinstance(b[key], float):
            assert b[key] == pytest.approx(a[key], abs=1e-12, rel=0), key
        else:
            assert b[key] == a[key], key
    stored = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.npz"))
    assert stored and stored == sorted(
        p.relative_to(tmp_path / "remote") for p in (tmp_path / "remote").rglob("*.npz")
    )
    for name in stored:
        with np.load(tmp_path / "local" / name) as x, np.load(tmp_path / "remote" / name) as y:
            assert sorted(x.files) == sorted(y.files), name
            for column in x.files:
                assert np.array_equal(x[column], y[column]), (name, column)

    # no --records / --label-map: what the export's pipeline.config names, a remote glob and label
    # map read as the options are, a local file as it is: the same metrics
    import shutil

    from tfod_tools.odapi.pipeline import load_pipeline, save_pipeline

    def config_naming(*inputs: str, to: Path) -> Path:
        config = load_pipeline(exported.out / "pipeline.config")
        reader = config.eval_input_reader[0]
        del reader.tf_record_input_reader.input_path[:]
        reader.tf_record_input_reader.input_path.extend(inputs)
        reader.label_map_path = as_remote(label_map)
        return save_pipeline(config, to)

    configured = shutil.copytree(
        exported.out, tmp_path / "configured" / "export", ignore=shutil.ignore_patterns("eval")
    )
    first = as_remote(tmp_path) + "/eval.record-00000-*"
    config_naming(first, str(tmp_path / "eval.record-00001-of-00002"), to=configured / "pipeline.config")
    out = tmp_path / "configured-out"
    assert main(["evaluate", "--json", "--model", as_remote(configured), "--out", str(out), "--beam"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 16
    c = _flat(json.loads((out / "metrics.json").read_text()))
    assert c.keys() == a.keys() and c["model"] == as_remote(configured / Path(a["model"]).name)
    for key in sorted(set(a) - SKIPPED - {"model"}):
        if isinstance(a[key], float) and isinstance(c[key], float):
            assert c[key] == pytest.approx(a[key], abs=1e-12, rel=0), key
        else:
            assert c[key] == a[key], key
    # a remote record file the (remote) --pipeline names that is not there, a local glob of it that
    # matches nothing: one line naming the remote file, the remote pipeline (not its stand-in)
    missing = as_remote(tmp_path / "missing.record")
    bad = as_remote(tmp_path / "bad.config")
    for inputs, named in [((missing,), f"{missing}: TFRecord file not found"), ((first, "none-*"), bad)]:
        config_naming(*inputs, to=tmp_path / "bad.config")
        run = ["evaluate", "--model", as_remote(configured), "--pipeline", bad, "--beam"]
        assert main([*run, "--out", as_remote(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert named in err and err.count("\n") == 1 and "tfod-beam" not in err, err

    # a model trained and exported on the remote file system: its output may not go into the source
    # model directory there either (refused before the pipeline, nothing written)
    moved = shutil.copytree(exported.out, tmp_path / "moved" / "export")
    manifest = json.loads((moved / "export.json").read_text())
    manifest["source"]["model_dir"] = as_remote(exported.model.model_dir)
    (moved / "export.json").write_text(json.dumps(manifest))
    inside = as_remote(exported.model.model_dir / "eval-here")
    assert main([*remote[:-1], as_remote(moved), "--out", inside, "--beam"]) == 2
    err = capsys.readouterr().err
    assert "inside the source model directory" in err and inside in err and err.count("\n") == 1, err
    assert not list(exported.model.model_dir.glob("eval-here*"))
    # a local reader's error about a stand-in names the remote file, not the temporary copy
    wrong = tmp_path / "wrong.pbtxt"
    wrong.write_text("item { id: 1 name: 'square' }\nitem { id: 2 name: 'circle' }\n")
    wrong_run = [
        *remote[:4],
        "--label-map",
        as_remote(wrong),
        *remote[6:],
        "--out",
        as_remote(tmp_path / "o"),
    ]
    assert main([*wrong_run, "--beam"]) == 2
    err = capsys.readouterr().err
    assert as_remote(wrong) in err and as_remote(label_map) in err and "tfod-beam" not in err, err
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not left and not (tmp_path / "o").exists()
    assert not [p.name for p in temp.iterdir() if p.name.startswith("tfod-")]
