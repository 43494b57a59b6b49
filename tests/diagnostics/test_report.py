"""The HTML report: every section present (or saying what is missing), opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.report.html import SECTIONS, render_report, write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no headless Chromium on PATH: run `bash scripts/setup_browser.sh` (apt-get install chromium)"
    )


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run(
        [_browser(), *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_full_report_in_chromium(model_dir: Path, pipeline_file: Path, tmp_path: Path) -> None:
    d = diagnose(model_dir, pipeline=pipeline_file)
    page = write_report(d, tmp_path / "report.html")
    text = page.read_text()
    # Self-contained: every image is inline, nothing is fetched.
    assert 'src="http' not in text and "<link" not in text and "<script" not in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    # curves, per-class AP, PR curves, confusion matrix, error breakdown, and gallery images
    assert len(images) >= 6
    for finding in d.findings:
        assert f'id="finding-{finding.id}"' in text

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in SECTIONS:
        assert f'id="{section}"' in dom.stdout, section
    assert dom.stdout.count("<figure>") >= 1 and "true positive" in dom.stdout

    shot = tmp_path / "report.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1200, 3000)
        colours = image.convert("RGB").resize((60, 150)).getcolors(maxcolors=100000)
    assert colours is not None and len(colours) > 50  # text, tables and plots drawn, not a blank page


def test_sections_without_data_say_so(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    page = render_report(diagnose(tmp_path))
    for section in SECTIONS:
        assert f'id="{section}"' in page
    sections = dict(re.findall(r'<section id="([\w-]+)">(.*?)</section>', page))
    for name in ("per-class-ap", "pr-curves", "confusion-matrix", "error-breakdown", "gallery"):
        assert 'class="missing"' in sections[name] and "No stored detections" in sections[name], name
    assert "Needs the eval ground truth" in sections["area-buckets"]
    assert "<img" in sections["curves"] and "overfitting" in sections["findings"]


def test_gallery_needs_the_records(model_dir: Path, xray: SyntheticDataset) -> None:
    without = render_report(diagnose(model_dir))
    assert "Needs the eval records to draw images" in without
    with_records = render_report(diagnose(model_dir, eval_records=xray.eval_record, label_map=xray.label_map))
    gallery = with_records[with_records.index('id="gallery"') :]
    assert gallery.count("<figure>") >= 1 and "TP," in gallery and "missed" in gallery


def test_report_is_written_atomically(tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    target = tmp_path / "out" / "report.html"
    write_report(diagnose(tmp_path), target)
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]
