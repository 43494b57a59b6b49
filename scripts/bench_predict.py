"""Benchmark ``tfod predict`` against a bare loop over the SavedModel's signature.

Both run in one process on the same images: ``--images`` JPEGs (the eval images of a synthetic
``shapes`` set, repeated), written to a folder for ``tfod predict`` (its library function
:func:`tfod_tools.predict.run.predict`: reading, decoding, inference, the COCO/CSV outputs and,
with ``--draw``, the annotated copies) and decoded once up front for the bare loop, which only calls
``serving_default`` and fetches its outputs. Both use one model, loaded and warmed up before timing.
Rounds alternate (bare, predict, bare, ...); reported: the median time per image of each and their
ratio (target, issue #12: predict <= 1.15x the bare loop), each round's ratio, and the 1-minute load
average before and after (on a shared machine the ratio moves with the load). With ``--draw`` a
third peer runs too: the bare loop plus what a hand-written script adds to draw (OpenCV boxes and
``putText`` labels, ``cv2.imencode`` JPEGs q90, serially), and ``ratio_vs_bare_drawing`` compares
predict with it (the annotated copies' encoding is work the bare loop does not do).

Usage::

    .venv/bin/python scripts/bench_predict.py --model EXPORT_DIR --records EVAL.record \\
        [--images 64] [--rounds 5] [--scale 1] [--no-draw] [--no-threads] [--json]

``--no-threads``: ``predict(..., threads=False)``, each image read, run and drawn in turn (what the
reader and drawing threads save).

``EXPORT_DIR``: ``tfod export``'s output (or any directory holding ``saved_model/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--records", required=True)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=int, default=1, help="Upscale the images N times (JPEG q92).")
    parser.add_argument("--draw", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np

    from tfod_tools.data.records import iter_image_records
    from tfod_tools.odapi import exported
    from tfod_tools.predict import run as predict_run

    encoded = [rec.encoded for _, _, rec in iter_image_records(args.records)]
    if args.scale > 1:
        import cv2

        def upscaled(data: bytes) -> bytes:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert pixels is not None
            big = cv2.resize(pixels, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_CUBIC)
            return bytes(cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())

        encoded = [upscaled(data) for data in encoded]
    chosen = [encoded[k % len(encoded)] for k in range(args.images)]
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    folder = work / "images"
    folder.mkdir()
    for k, data in enumerate(chosen):
        (folder / f"img-{k:05d}.jpg").write_bytes(data)

    model = exported.ExportedModel.load(args.model)
    decoded = [exported.decode_image(data) for data in chosen]
    import tensorflow as tf

    signature = model._keep.signatures["serving_default"]  # the bare loop: the signature alone

    def bare() -> float:
        started = time.perf_counter()
        for pixels in decoded:
            out = signature(input_tensor=tf.convert_to_tensor(pixels[np.newaxis]))
            _ = {k: v.numpy() for k, v in out.items()}
        return (time.perf_counter() - started) / len(decoded)

    def bare_drawing(k: int) -> float:
        """The bare loop plus what a hand-written script draws: cv2 boxes and labels, cv2 JPEGs, serially."""
        import cv2

        out_dir = work / f"bare-{k}"
        out_dir.mkdir()
        started = time.perf_counter()
        for n, pixels in enumerate(decoded):
            out = {
                key: v.numpy()
                for key, v in signature(input_tensor=tf.convert_to_tensor(pixels[np.newaxis])).items()
            }
            image = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
            height, width = image.shape[:2]
            for box, cls, score in zip(
                out["detection_boxes"][0],
                out["detection_classes"][0],
                out["detection_scores"][0],
                strict=True,
            ):
                if score < 0.5:
                    continue
                y1, x1, y2, x2 = (round(float(v)) for v in box * [height, width, height, width])
                cv2.rectangle(image, (x1, y1), (x2, y2), (0, 200, 0), 1)
                cv2.putText(image, f"{int(cls)} {score:.2f}", (x1, max(y1 - 2, 8)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 200, 0), 1)  # fmt: skip
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            (out_dir / f"img-{n:05d}.jpg").write_bytes(data.tobytes())
        return (time.perf_counter() - started) / len(decoded)

    def through_predict(k: int) -> float:
        options = predict_run.PredictOptions(
            model=args.model,
            out=work / f"out-{k}",
            images=str(folder),
            score_threshold=0.5,
            draw=args.draw,
        )
        started = time.perf_counter()
        result = predict_run.predict(options, model=model, threads=args.threads)  # loaded once: no load time
        elapsed = time.perf_counter() - started
        assert result.images == len(decoded)
        return elapsed / len(decoded)

    load_before = os.getloadavg()[0]
    bare()  # warm every path once
    through_predict(-1)
    if args.draw:
        bare_drawing(-1)
    bare_s: list[float] = []
    drawing_s: list[float] = []
    predict_s: list[float] = []
    for k in range(args.rounds):
        bare_s.append(bare())
        if args.draw:
            drawing_s.append(bare_drawing(k))
        predict_s.append(through_predict(k))
    b, p = statistics.median(bare_s), statistics.median(predict_s)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "images": len(decoded),
        "image_size": list(decoded[0].shape[:2]),
        "draw": args.draw,
        "threads": args.threads,
        "bare_ms_per_image": [round(v * 1e3, 2) for v in bare_s],
        "predict_ms_per_image": [round(v * 1e3, 2) for v in predict_s],
        "bare_images_per_s": round(1 / b, 1),
        "predict_images_per_s": round(1 / p, 1),
        "ratio": round(p / b, 3),
        "round_ratios": [round(q / r, 3) for q, r in zip(predict_s, bare_s, strict=True)],
        **(
            {
                "bare_drawing_ms_per_image": [round(v * 1e3, 2) for v in drawing_s],
                "ratio_vs_bare_drawing": round(p / statistics.median(drawing_s), 3),
            }
            if args.draw
            else {}
        ),
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # before, after
        "target": 1.15,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
