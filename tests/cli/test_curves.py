"""``tfod curves``: csv / json / md of every scalar, the plot, bad input, no TensorFlow."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main

SCRIPT = Path(__file__).resolve().parents[1] / "tensorboard" / "make_tf_events.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str, int], float]]:
    """train + eval (+ mixed) event files written by real TensorFlow, and the values in them."""
    root = tmp_path_factory.mktemp("curves_model")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, str(SCRIPT), str(root)], check=True, env=env, timeout=300)
    expected = json.loads((root / "expected.json").read_text())
    (root / "expected.json").unlink()
    return root, {(r, t, s): v for r, t, s, v in expected["scalars"]}


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["curves", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_csv_to_stdout_has_every_point(model_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    root, expected = model_dir
    code, out, err = _run(["--model-dir", str(root)], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["run", "tag", "step", "value", "wall_time"]
    got = {(r["run"], r["tag"], int(r["step"])): float(r["value"]) for r in rows}
    assert got == expected
    assert len(rows) == len(expected)  # one row per run, tag and step
    assert all(float(r["wall_time"]) > 1e9 for r in rows)
    assert "points" in err  # the summary line goes to stderr


def test_json_document(model_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    root, expected = model_dir
    code, out, _ = _run(["--model-dir", str(root), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"points"}
    assert {(p["run"], p["tag"], p["step"]): p["value"] for p in doc["points"]} == expected
    assert set(doc["points"][0]) == {"run", "tag", "step", "value", "wall_time"}
    # --format json without --json prints the same document
    code, out2, _ = _run(["--model-dir", str(root), "--format", "json"], capsys)
    assert code == 0 and json.loads(out2) == doc


def test_markdown_to_file_atomically(
    model_dir: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root, expected = model_dir
    target = tmp_path / "reports" / "curves.md"
    code, out, _ = _run(["--model-dir", str(root), "--format", "md", "--out", str(target)], capsys)
    assert code == 0
    assert f"wrote {len(expected)} points (md) to {target}" in out
    lines = target.read_text().splitlines()
    assert lines[0] == "| run | tag | step | value | wall_time |"
    assert len(lines) == 2 + len(expected)
    cells = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert {(c[0], c[1], int(c[2])): float(c[3]) for c in cells} == expected
    assert sorted(p.name for p in target.parent.iterdir()) == ["curves.md"]  # no temp file left


def test_plot_is_a_png_with_the_panels(
    model_dir: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root, _ = model_dir
    png = tmp_path / "curves.png"
    code, out, _ = _run(["--model-dir", str(root), "--json", "--plot", str(png)], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["plot"] == {"path": str(png), "panels": ["COCO mAP", "COCO AR", "Total loss: train vs eval"]}
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 300 and height > 600  # three panels stacked


def test_plot_skips_absent_panels(capsys: Capture, tmp_path: Path) -> None:
    from tfod_tools.tensorboard.writer import EventWriter

    with EventWriter(tmp_path / "model" / "train", marker=None) as writer:
        for step in (100, 200):
            writer.add_scalar("Loss/total_loss", 1.0 / step, step)
    png = tmp_path / "train_only.png"
    code, out, _ = _run(["--model-dir", str(tmp_path / "model"), "--json", "--plot", str(png)], capsys)
    assert code == 0
    assert json.loads(out)["plot"]["panels"] == ["Total loss: train vs eval"]
    assert png.read_bytes().startswith(PNG_MAGIC)
    # nothing plottable: a PNG that says so, and a warning
    with EventWriter(tmp_path / "other" / "train", marker=None) as writer:
        writer.add_scalar("steps_per_sec", 3.0, 1)
    code, out, err = _run(["--model-dir", str(tmp_path / "other"), "--json", "--plot", str(png)], capsys)
    assert code == 0 and json.loads(out)["plot"]["panels"] == []
    assert "no mAP, AR or Loss/total_loss" in err


@pytest.mark.parametrize("case", ["missing", "empty", "bad_format"])
def test_bad_input_exits_2_naming_the_dir(
    case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "model"
    args = ["--model-dir", str(target)]
    if case != "missing":
        (target / "train").mkdir(parents=True)
        (target / "train" / "notes.txt").write_text("no events here")
    if case == "bad_format":
        with_event = target / "train"
        from tfod_tools.tensorboard.writer import EventWriter

        EventWriter(with_event).close()
        args += ["--format", "xlsx"]
    code, out, err = _run(args, capsys)
    assert code == 2 and out == ""
    if case == "bad_format":  # a choice option: Typer's usage error names the value and the choices
        words = " ".join(err.replace("│", " ").split())  # the error panel wraps lines
        assert "'xlsx' is not one of 'csv', 'json', 'md'" in words
        return
    line = err.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert str(target) in line and "fix:" in line
    assert ("not found" in line) == (case == "missing")


def test_curves_never_imports_tensorflow(model_dir: Any, tmp_path: Path) -> None:
    root, _ = model_dir
    code = (
        "import sys\n"
        "from tfod_tools.cli.app import main\n"
        f"rc = main(['curves', '--model-dir', {str(root)!r}, '--out', {str(tmp_path / 'c.csv')!r},"
        f" '--plot', {str(tmp_path / 'c.png')!r}])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
        "print(rc, bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []"
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
def test_curves_of_a_real_training_run(trained_model_dir: Any, run_tfod: Any) -> None:
    """``tfod curves`` (the real CLI) on the tiny SSD trained by ``tfod train``."""
    proc = run_tfod(["curves", "--model-dir", str(trained_model_dir.model_dir), "--json"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout)["points"]
    steps = sorted(p["step"] for p in points if p["run"] == "train" and p["tag"] == "Loss/total_loss")
    assert steps == [100, 200, 300]
    assert {"Loss/classification_loss", "learning_rate"} <= {p["tag"] for p in points}


def test_a_truncated_event_file_is_read_up_to_the_cut_and_named(capsys: Capture, tmp_path: Path) -> None:
    """A file cut inside its last record (a run still writing, a copy cut short): a warning, exit 0."""
    from tfod_tools.tensorboard.writer import EventWriter

    with EventWriter(tmp_path / "model" / "train") as writer:
        for step in (100, 200, 300):
            writer.add_scalar("Loss/total_loss", 1.0 / step, step)
    (event_file,) = (tmp_path / "model" / "train").iterdir()
    event_file.write_bytes(event_file.read_bytes()[:-7])
    code, out, err = _run(["--model-dir", str(tmp_path / "model"), "--json"], capsys)
    assert code == 0
    assert [p["step"] for p in json.loads(out)["points"]] == [100, 200]
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(event_file) in warning[0] and "truncated" in warning[0]
