"""``tfod predict``'s reader and drawing threads: the same outputs as one image at a time, errors as before.

The threaded run (the default) against ``predict(..., threads=False)`` (read, run and draw each image
in turn, no threads) on the same model and folder: every output file byte for byte. Then the errors:
a reader's error comes out of the run unchanged, ``--on-bad-image fail`` writes nothing, and no
thread of the run is left behind.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFont

from tfod_tools.data.records import iter_image_records
from tfod_tools.errors import TfodError
from tfod_tools.predict import draw
from tfod_tools.predict.run import PredictOptions, _prefetched, predict

_OURS = ("tfod-predict-reader", "tfod-predict-draw")


def _our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(_OURS)]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_threaded_run_writes_what_a_sequential_run_writes(
    tmp_path: Path, exported_model: Path, trained_model_dir: Any
) -> None:
    from tfod_tools.odapi.exported import ExportedModel

    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    encoded = [rec.encoded for _, _, rec in iter_image_records(str(trained_model_dir.eval_record))]
    for k in range(12):  # more than the read-ahead (8) and drawing (8) queues hold
        (images / f"img-{k:02d}.jpg").write_bytes(encoded[k % len(encoded)])
    first = np.asarray(Image.open(images / "img-00.jpg").convert("RGB"))
    Image.fromarray(first).save(images / "sub" / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(first, 1))).save(images / "sub" / "turned.jpg", exif=exif)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    model = ExportedModel.load(exported_model)

    outputs = {}
    for threads in (True, False):
        out = tmp_path / f"out-{threads}"
        options = PredictOptions(model=exported_model, out=out, images=str(images), score_threshold=0.3)
        result = predict(options, model=model, threads=threads)
        assert result.images == 14 and [s["image"] for s in result.skipped] == ["broken.jpg"]
        outputs[threads] = _files(out)
        assert _our_threads() == []
    threaded, sequential = outputs[True], outputs[False]
    assert sorted(threaded) == sorted(sequential)
    assert len([name for name in threaded if name.startswith("images/")]) == 14
    assert json.loads(threaded["detections.json"])["annotations"], "the model finds shapes"
    for name in threaded:
        if name == "predict.json":  # its timings (and its out) differ
            timeless = {"seconds": 0, "images_per_second": 0, "out": 0}
            ours, theirs = (json.loads(side[name]) | timeless for side in (threaded, sequential))
            assert ours == theirs
        else:
            assert threaded[name] == sequential[name], name

    failed = tmp_path / "failed"
    options = PredictOptions(model=exported_model, out=failed, images=str(images), on_bad_image="fail")
    with pytest.raises(TfodError, match="image does not decode") as raised:
        predict(options, model=model)
    assert raised.value.path == "broken.jpg"
    assert not failed.exists() and not list(tmp_path.glob(".failed.*"))  # nothing half-written
    assert _our_threads() == []


def test_a_reader_error_comes_out_as_raised_and_the_reader_ends() -> None:
    problem = TfodError("cannot read", path="x.jpg", fix="fix it")

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise problem

    reader = _prefetched(items(), depth=1)
    assert [next(reader), next(reader)] == [1, 2]
    with pytest.raises(TfodError) as raised:
        next(reader)
    assert raised.value is problem
    assert _our_threads() == []


def test_a_closed_reader_stops_reading_ahead() -> None:
    read: list[int] = []

    def items() -> Iterator[int]:
        for k in range(1000):
            read.append(k)
            yield k

    reader = _prefetched(items(), depth=2)
    assert next(reader) == 0
    reader.close()  # what a failed or interrupted run does
    assert _our_threads() == []
    assert len(read) <= 5  # the one taken, the queue's two, one waiting to be put, and no more


def test_drawing_in_threads_with_cached_labels_draws_what_a_fresh_font_draws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    names = {1: "square", 2: "triangle", 3: "a longer class name"}
    cases = []
    for _ in range(60):
        height, width = (int(v) for v in rng.integers(24, 300, 2))
        n = int(rng.integers(0, 5))
        x1, y1 = rng.uniform(-5, width, n), rng.uniform(-5, height, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(1, width, n), y1 + rng.uniform(1, height, n)], 1)
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        cases.append((pixels, boxes.reshape(-1, 4), rng.integers(1, 4, n), rng.uniform(0.3, 1, n)))

    def drawn(case: tuple[Any, ...]) -> bytes:
        pixels, boxes, classes, scores = case
        return bytes(np.asarray(draw.draw_detections(pixels, boxes, classes, scores, names)).tobytes())

    threaded: list[bytes] = [b""] * len(cases)

    def work(start: int) -> None:
        for i in range(start, len(cases), 3):
            threaded[i] = drawn(cases[i])

    workers = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # The old way: a fresh face for every label, nothing cached.
    monkeypatch.setattr(draw, "_font", ImageFont.load_default)
    monkeypatch.setattr(draw, "_label_patch", draw._label_patch.__wrapped__)
    assert threaded == [drawn(case) for case in cases]


def test_a_pasted_label_is_the_text_pillow_draws_there_and_the_input_is_untouched() -> None:
    from PIL import Image, ImageDraw

    pixels = np.full((80, 120, 3), 40, np.uint8)
    before = pixels.copy()
    out = draw.draw_detections(
        pixels, np.array([[30.4, 50.0, 90.0, 75.0], [2.0, 1.0, 40.0, 30.0]]), np.array([2, 1]),
        np.array([0.91, 0.42]), {1: "square", 2: "triangle"},
    )  # fmt: skip
    assert np.array_equal(pixels, before)
    font = ImageFont.load_default()
    for (x, y), text, colour in (
        ((30, 50), "triangle 0.91", draw.PALETTE[2]),
        ((2, 1), "square 0.42", draw.PALETTE[1]),
    ):
        left, top, right, bottom = font.getbbox(text)
        w, h = int(right - left) + 3, int(bottom - top) + 3
        y = y - h if y - h >= 0 else y  # above the box, or inside it at the top edge
        reference = Image.new("RGB", (w, h), colour)
        ImageDraw.Draw(reference).text((1 - left, 1 - top), text, fill=(0, 0, 0), font=font)
        assert np.array_equal(out[y : y + h, x : x + w], np.asarray(reference))
