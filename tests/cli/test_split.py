"""``tfod split`` on the command line: --json, folds, and every refusal exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.odapi.label_map import write_label_map


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 records of 20 patients, classes cat/dog, every third image negative."""
    d = tmp_path_factory.mktemp("split_cli")
    records = [
        ImageRecord.from_pixels(
            f"img{i}".encode(),
            width=8,
            height=8,
            boxes=[[1, 1, 4, 4]] * (i % 3 > 0),
            classes=[1 + i % 2] * (i % 3 > 0),
            label_map=["cat", "dog"],
            source_id=f"p{i % 20}_{i}",
            filename=f"img{i}.png",
        )
        for i in range(60)
    ]
    write_image_records(d / "all.record", records)
    write_label_map(d / "lm.pbtxt", ["cat", "dog"])
    return d


def base(data: Path, out: Path) -> list[str]:
    return ["split", "-i", str(data / "all.record"), "--label-map", str(data / "lm.pbtxt"), "--out", str(out)]


def test_json_prints_the_manifest(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*base(data, tmp_path / "s"), "--group-by", r"source_id_regex:^(p\d+)_", "--seed", "4", "--json"]
    code = main([*args, "--fractions", "0.6,0.2,0.2", "--names", "fit,tune,hold"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = json.loads(captured.out)
    assert manifest == json.loads((tmp_path / "s-split.json").read_text())
    assert [s["name"] for s in manifest["splits"]] == ["fit", "tune", "hold"]
    assert manifest["seed"] == 4 and manifest["groups"] == 20
    assert sum(s["images"] for s in manifest["splits"]) == 60
    assert (tmp_path / "s-hold.record").is_file()


def test_human_output_and_folds(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*base(data, tmp_path / "k"), "--folds", "3", "-q"]) == 0
    out = capsys.readouterr().out
    assert "60 images in 60 groups" in out and "k-fold2-of-3.record" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "k-fold0-of-3.record",
        "k-fold1-of-3.record",
        "k-fold2-of-3.record",
        "k-split.json",
    ]


@pytest.mark.parametrize(
    ("extra", "named", "says"),
    [
        (["--group-by", "source_id_regex:^q"], "all.record", "does not match"),
        (["--group-by", "csv:MISSING"], "MISSING", "cannot read the grouping CSV"),
        (["--group-by", "source_id_regex:^p"], "all.record", "cannot fill 3 splits"),
        (["--fractions", "0.5,0.6"], "--fractions", "sum to"),
        (["--fractions", "1.0,0"], "--fractions", "> 0"),
        (["--fractions", "a,b"], "--fractions", "comma-separated"),
        (["--names", "a,b"], "--names", "2 names for 3 fractions"),
        (["--folds", "3", "--fractions", "0.5,0.5"], "--folds", "not both"),
        (["--group-by", "bogus"], "--group-by", "KIND:VALUE"),
    ],
)
def test_refusals_exit_2_with_one_line_and_no_output(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str, says: str
) -> None:
    code = main(
        [*base(data, tmp_path / "o" / "r"), *[e.replace("MISSING", str(tmp_path / "g.csv")) for e in extra]]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("error:") == 1 and len(err.strip().splitlines()) == 1, err
    assert named.replace("MISSING", "g.csv") in err and says in err and "fix:" in err
    assert not (tmp_path / "o").exists()


def test_missing_csv_row_names_the_csv(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "groups.csv"
    table.write_text("filename,group\nimg0.png,a\n")
    assert main([*base(data, tmp_path / "o" / "r"), "--group-by", f"csv:{table}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {table}: record 1 (filename 'img1.png')") and "has no row" in err
    assert not (tmp_path / "o").exists()
