"""Benchmark: likely label errors (``tfod_tools.diagnostics.label_errors``) on planted errors.

A synthetic ``shapes`` set (``--train-images`` / ``--eval-images``, seed 3) trains the tiny SSD
(``tiny-ssd`` template) with ``tfod train`` on the clean train split for ``--steps`` steps, unless
``--model-dir`` names an existing run (and ``--pipeline`` its config); ``tfod evaluate`` then stores
the detections of every checkpoint, and the step with the best COCO mAP is used. Its detections do
not depend on the ground truth, so for each seed errors are planted into the **eval** ground truth:

- ``missing``: ``--share`` (5 %) of the boxes are dropped;
- ``wrong_label``: another 5 % get another class (a random one of the other classes);
- ``loose_box``: another 5 % are shifted by half their width (horizontally) or half their height
  (vertically), axis and direction at random (the direction that keeps the box inside the image),
  so the shifted box has IoU 1/3 with the object.

The three sets are disjoint (non-crowd boxes only). For the first ``--cli-seeds`` seeds (default 1)
the planted ground truth goes the whole user path: eval records are written with the planted
annotations (same images), ``tfod evaluate --checkpoints STEP`` runs on a hard-linked copy of the
model directory with a pipeline reading them, the candidates are computed from what that run
stored (``load_detections``) and ``tfod diagnose --json`` is run on it (its
``likely_label_errors`` finding is checked against the direct call). The other seeds plant into the
loaded ``AnnotatedSet`` in memory and call ``find_label_errors`` directly (the output says which).

Scoring, per kind, at K = the number planted of that kind, over the kind's ranked list:

- ``missing``: a candidate is a hit when its box has IoU >= 0.5 with a dropped box of the same image
  (each dropped box found once, greedily in rank order);
- ``wrong_label`` / ``loose_box``: a hit when its ``gt_index`` is a planted row.

precision = hits in the top K / the number of candidates in the top K (fewer when the list is
shorter), recall = hits in the top K / K. Random baseline = the expected precision of a random
ranking of the candidate pool: for ``wrong_label`` / ``loose_box`` the pool is every non-crowd
ground-truth box of the planted set, so random = planted boxes of the kind / non-crowd boxes; for
``missing`` the pool is the confident detections (score >= ``--min-score``, by default the module's
``DEFAULT_MIN_SCORE``), so random =
dropped boxes covered by a confident detection (IoU >= 0.5) / confident detections. ratio = precision
/ random; target (issue 16): ratio >= 3 for every kind. Mean, std, min and max over the seeds.

Usage::

    .venv/bin/python scripts/bench_label_errors.py [--seeds 5] [--out bench.json]
    # or on an existing run: --model-dir M --pipeline P
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfod_tools.data.model import AnnotatedSet, GroundTruth  # noqa: E402
from tfod_tools.data.records import iter_image_records, write_image_records  # noqa: E402
from tfod_tools.data.store import load_detections  # noqa: E402
from tfod_tools.data.synthetic import write_synthetic_dataset  # noqa: E402
from tfod_tools.metrics.boxes import iou_matrix  # noqa: E402

MAP = "DetectionBoxes_Precision/mAP"


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1")


def _tfod(args: list[str], log: Path) -> str:
    """Run ``python -m tfod_tools ARGS``; stdout, or exit with the log's name on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "tfod_tools", *args], capture_output=True, text=True, env=_env(), check=False
    )
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"tfod {args[0]} failed ({proc.returncode}); see {log}")
    return proc.stdout


def _json(text: str) -> dict[str, Any]:
    return json.loads(text[text.index("{") :])


def _train(work: Path, steps: int, train_images: int, eval_images: int) -> tuple[Path, Path, float]:
    from tfod_tools.odapi.pipeline import render_template, save_pipeline

    data = write_synthetic_dataset(
        work / "data", "shapes", train_images=train_images, eval_images=eval_images, seed=3
    )
    pipeline = save_pipeline(
        render_template(
            "tiny-ssd",
            label_map=data.label_map,
            train_records=data.train_record,
            eval_records=data.eval_record,
            num_steps=steps,
        ),
        work / "pipeline.config",
    )
    model_dir = work / "model"
    every = max(100, steps // 2)
    started = time.perf_counter()
    _tfod(
        [
            *("train", "--pipeline", str(pipeline), "--model-dir", str(model_dir)),
            *("--num-steps", str(steps), "--checkpoint-every", str(every), "--json"),
        ],
        work / "train.out",
    )
    seconds = time.perf_counter() - started
    print(f"trained {steps} steps in {seconds:.0f} s", file=sys.stderr)
    return pipeline, model_dir, seconds


def _best_step(model_dir: Path) -> tuple[int, float, dict[int, float]]:
    """The evaluated step with the best COCO mAP, its mAP, and every step's mAP."""
    from tfod_tools.ledger import Ledger

    with Ledger.open(model_dir, readonly=True) as ledger:
        maps = {int(e.step): float(e.metrics.get(MAP, -1.0)) for e in ledger.evaluations(status="ok")}
    if not maps:
        raise SystemExit(f"{model_dir}: no evaluated checkpoint")
    step = max(maps, key=lambda s: (maps[s], s))
    return step, maps[step], maps


@dataclass(frozen=True)
class Planted:
    """A planted ground truth and where its errors are."""

    ground_truth: GroundTruth
    dropped: list[tuple[int, np.ndarray]]  # (image id, box) of each dropped box
    wrong_label: np.ndarray  # rows of ``ground_truth`` whose class was changed
    loose_box: np.ndarray  # rows of ``ground_truth`` that were shifted

    def planted(self, kind: str) -> int:
        return len(self.dropped) if kind == "missing" else len(getattr(self, kind))


def _shift(box: np.ndarray, width: float, height: float, rng: np.random.Generator) -> np.ndarray:
    """``box`` moved by half its width or height, towards the side where it stays inside the image."""
    axis = int(rng.integers(2))
    side = box[2] - box[0] if axis == 0 else box[3] - box[1]
    limit = width if axis == 0 else height
    lo, hi = box[axis], box[axis + 2]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if hi + sign * side / 2 > limit or lo + sign * side / 2 < 0:
        sign = -sign
    delta = float(np.clip(sign * side / 2, -lo, limit - hi))
    out = box.copy()
    out[axis] += delta
    out[axis + 2] += delta
    return out


def plant(data: AnnotatedSet, seed: int, share: float) -> Planted:
    """Drop, relabel and shift disjoint ``share``-sized random subsets of the non-crowd boxes."""
    rng = np.random.default_rng(seed)
    gt = data.ground_truth
    eligible = np.flatnonzero(~gt.iscrowd & ~gt.ignore & ~gt.difficult)
    n = max(1, round(share * len(gt)))
    picked = rng.permutation(eligible)
    drop, relabel, shift = picked[:n], picked[n : 2 * n], picked[2 * n : 3 * n]
    classes = gt.classes.copy()
    category_ids = sorted(data.categories)
    for row in relabel:
        others = [c for c in category_ids if c != classes[row]]
        classes[row] = others[int(rng.integers(len(others)))]
    boxes = gt.boxes.copy()
    index = data.images.index_of()
    for row in shift:
        k = index[int(gt.image_ids[row])]
        boxes[row] = _shift(boxes[row], float(data.images.widths[k]), float(data.images.heights[k]), rng)
    keep = np.setdiff1d(np.arange(len(gt)), drop)
    new_row = {int(old): new for new, old in enumerate(keep)}
    changed = replace(
        gt,
        classes=classes,
        boxes=boxes,
        area=(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
        wh=None,
    )
    return Planted(
        ground_truth=changed.select(keep),
        dropped=[(int(gt.image_ids[r]), gt.boxes[r].copy()) for r in drop],
        wrong_label=np.asarray(sorted(new_row[int(r)] for r in relabel), dtype=np.int64),
        loose_box=np.asarray(sorted(new_row[int(r)] for r in shift), dtype=np.int64),
    )


def _missing_hits(candidates: list[Any], dropped: list[tuple[int, np.ndarray]]) -> int:
    """Candidates (in rank order) whose box has IoU >= 0.5 with a not yet found dropped box."""
    left: dict[int, list[np.ndarray]] = {}
    for image_id, box in dropped:
        left.setdefault(image_id, []).append(box)
    hits = 0
    for cand in candidates:
        boxes = left.get(int(cand.image_id), [])
        if not boxes:
            continue
        ious = iou_matrix(np.asarray([cand.box], dtype=np.float64), np.asarray(boxes))[0]
        best = int(np.argmax(ious))
        if ious[best] >= 0.5:
            boxes.pop(best)
            hits += 1
    return hits


def _random_missing(data: AnnotatedSet, dropped: list[tuple[int, np.ndarray]], min_score: float) -> float:
    """Dropped boxes covered by a confident detection (IoU >= 0.5) / confident detections."""
    dt = data.detections
    assert dt is not None
    confident = dt.select(dt.scores >= min_score)
    if len(confident) == 0:
        return 0.0
    covered = 0
    for image_id, box in dropped:
        boxes = confident.boxes[confident.image_ids == image_id]
        if len(boxes) and float(iou_matrix(boxes, box[None, :]).max()) >= 0.5:
            covered += 1
    return covered / len(confident)


def score(
    candidates: dict[str, list[Any]], planted: Planted, data: AnnotatedSet, min_score: float
) -> dict[str, dict[str, Any]]:
    """Precision / recall at K = planted, the random baseline and the ratio, per kind."""
    gt = planted.ground_truth
    pool = int(np.count_nonzero(~gt.iscrowd & ~gt.ignore & ~gt.difficult))
    out: dict[str, dict[str, Any]] = {}
    for kind in ("missing", "wrong_label", "loose_box"):
        ranked = candidates.get(kind, [])
        k = planted.planted(kind)
        top = ranked[:k]
        if kind == "missing":
            hits = _missing_hits(top, planted.dropped)
            hits_all = _missing_hits(ranked, planted.dropped)
            random = _random_missing(data, planted.dropped, min_score)
        else:
            rows = set(getattr(planted, kind).tolist())
            hits = sum(c.gt_index in rows for c in top)
            hits_all = sum(c.gt_index in rows for c in ranked)
            random = k / pool if pool else 0.0
        precision = hits / len(top) if top else 0.0
        out[kind] = {
            "planted": k,
            "candidates": len(ranked),
            "hits_at_k": hits,
            "precision_at_k": precision,
            "recall_at_k": hits / k if k else 0.0,
            "recall_all": hits_all / k if k else 0.0,
            "random_precision": random,
            "ratio": precision / random if random > 0 else None,  # no ranking can find any
        }
    return out


def write_planted_records(source: Path, target: Path, clean: AnnotatedSet, planted: Planted) -> Path:
    """The eval records of ``source`` with ``planted``'s boxes and classes (images unchanged)."""
    from tfod_tools.data.records import ImageRecord
    from tfod_tools.odapi.label_map import LabelMap

    by_name = {name: int(i) for i, name in zip(clean.images.ids, clean.images.file_names, strict=True)}
    label_map = LabelMap.from_names([clean.categories[c] for c in sorted(clean.categories)])
    gt = planted.ground_truth
    records = []
    for _, _, record in iter_image_records(source):
        name = record.filename if record.filename in by_name else record.source_id
        image_id = by_name[name]  # the evaluator names images by file name, else source id
        rows = gt.image_ids == image_id
        width, height = record.image_size()
        new = ImageRecord.from_pixels(
            record.encoded,
            width=width,
            height=height,
            boxes=gt.boxes[rows],
            classes=gt.classes[rows],
            label_map=label_map,
            format=record.format,
            filename=record.filename,
            source_id=record.source_id,
        )
        records.append(new)
    (path,) = write_image_records(target, records)
    return path


def _stored_rows(
    stored: GroundTruth, stored_names: tuple[str, ...], stored_ids: Any, planted: Planted, clean: AnnotatedSet
) -> np.ndarray:
    """For each row of ``planted.ground_truth``, its row in what ``tfod evaluate`` stored."""
    name_of = dict(zip(clean.images.ids.tolist(), clean.images.file_names, strict=True))
    stored_id = {name: int(i) for i, name in zip(stored_ids, stored_names, strict=True)}
    gt = planted.ground_truth
    rows = np.full(len(gt), -1, dtype=np.int64)
    for r in range(len(gt)):
        image = stored_id[name_of[int(gt.image_ids[r])]]
        cand = np.flatnonzero((stored.image_ids == image) & (stored.classes == gt.classes[r]))
        if len(cand):
            ious = iou_matrix(stored.boxes[cand], gt.boxes[r][None, :])[:, 0]
            if ious.max() > 0.99:
                rows[r] = cand[int(np.argmax(ious))]
    if (rows < 0).any() or len(set(rows.tolist())) != len(rows) or len(stored) != len(gt):
        raise SystemExit("the stored ground truth of the planted records does not match the planted set")
    return rows


def _in_store(planted: Planted, clean: AnnotatedSet, stored: AnnotatedSet) -> Planted:
    """``planted`` in the rows and image ids of what ``tfod evaluate`` stored for the planted records."""
    rows = _stored_rows(stored.ground_truth, stored.images.file_names, stored.images.ids, planted, clean)
    name_of = dict(zip(clean.images.ids.tolist(), clean.images.file_names, strict=True))
    stored_id = {name: int(i) for i, name in zip(stored.images.ids, stored.images.file_names, strict=True)}
    return Planted(
        ground_truth=stored.ground_truth,
        dropped=[(stored_id[name_of[i]], box) for i, box in planted.dropped],
        wrong_label=np.sort(rows[planted.wrong_label]),
        loose_box=np.sort(rows[planted.loose_box]),
    )


def _diagnose_finding(text: str) -> dict[str, Any] | None:
    """The ``likely_label_errors`` finding of a ``tfod diagnose --json`` document, if any."""
    doc = _json(text)
    for finding in doc.get("findings", []):
        if finding.get("id") == "likely_label_errors":
            return dict(finding)
    return None


def diagnose_agrees(
    finding: dict[str, Any] | None, candidates: dict[str, list[Any]], data: AnnotatedSet
) -> bool:
    """Whether ``tfod diagnose``'s finding counts and lists the direct call's candidates (boxes rounded)."""
    if finding is None:
        return False
    evidence = finding.get("evidence", {})
    name_of = dict(zip(data.images.ids.tolist(), data.images.file_names, strict=True))
    for kind, ranked in candidates.items():
        if evidence.get("counts", {}).get(kind) != len(ranked):
            return False
        table = evidence.get(kind, {"columns": ["image", "box"], "rows": []})
        image, box = table["columns"].index("image"), table["columns"].index("box")
        for row, cand in zip(table["rows"], ranked, strict=False):
            if row[image] != name_of[int(cand.image_id)] or not np.allclose(row[box], cand.box, atol=0.051):
                return False
    return True


def through_cli(
    pipeline: Path, model_dir: Path, step: int, clean: AnnotatedSet, planted: Planted, work: Path
) -> tuple[AnnotatedSet, Planted, dict[str, Any]]:
    """Planted eval records -> ``tfod evaluate --checkpoints STEP`` -> stored set -> ``tfod diagnose``."""
    from tfod_tools.odapi.pipeline import load_pipeline, save_pipeline

    work.mkdir(parents=True, exist_ok=True)
    config = load_pipeline(pipeline)
    reader = config.eval_input_reader[0].tf_record_input_reader
    source = Path(reader.input_path[0])
    records = write_planted_records(source, work / "eval-planted.record", clean, planted)
    del reader.input_path[:]
    reader.input_path.append(str(records))
    seed_pipeline = save_pipeline(config, work / "pipeline.config")
    copy = work / "model"
    shutil.copytree(model_dir, copy, copy_function=os.link, ignore=shutil.ignore_patterns("eval", "logs"))
    started = time.perf_counter()
    _tfod(
        [
            *("evaluate", "--pipeline", str(seed_pipeline), "--model-dir", str(copy)),
            *("--checkpoints", str(step), "--json"),
        ],
        work / "evaluate.out",
    )
    evaluate_s = time.perf_counter() - started
    stored = load_detections(copy, step)
    in_store = _in_store(planted, clean, stored)
    started = time.perf_counter()
    text = _tfod(
        [
            "diagnose",
            "--model-dir",
            str(copy),
            "--pipeline",
            str(seed_pipeline),
            "--step",
            str(step),
            "--json",
        ],
        work / "diagnose.out",
    )
    info = {
        "evaluate_s": round(evaluate_s, 1),
        "diagnose_s": round(time.perf_counter() - started, 1),
        "finding": _diagnose_finding(text),
        "work": str(work),
    }
    return stored, in_store, info


def _summary(values: list[float | None]) -> dict[str, float]:
    """Mean, std, min and max over the seeds where the value is defined (``n`` of them)."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def _evaluated(pipeline: Path, model_dir: Path, work: Path) -> tuple[Path, float | None]:
    """A model directory with stored detections: ``model_dir`` itself, or an evaluated copy."""
    if any((model_dir / "eval" / "detections").glob("step-*.npz")):
        return model_dir, None
    copy = work / "clean" / "model"
    shutil.copytree(model_dir, copy, copy_function=os.link, ignore=shutil.ignore_patterns("eval", "logs"))
    started = time.perf_counter()
    _tfod(
        ["evaluate", "--pipeline", str(pipeline), "--model-dir", str(copy), "--json"], work / "evaluate.out"
    )
    return copy, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch directory [a new temp dir]")
    parser.add_argument("--model-dir", type=Path, default=None, help="an existing trained model_dir")
    parser.add_argument("--pipeline", type=Path, default=None, help="its pipeline.config")
    parser.add_argument("--steps", type=int, default=1000, help="training steps")
    parser.add_argument("--train-images", type=int, default=128)
    parser.add_argument("--eval-images", type=int, default=160)
    parser.add_argument("--seeds", type=int, default=5, help="planting seeds 0..N-1")
    parser.add_argument("--cli-seeds", type=int, default=1, help="seeds planted through records + CLI")
    parser.add_argument("--share", type=float, default=0.05, help="share of boxes planted per kind")
    parser.add_argument("--min-score", type=float, default=None, help="find_label_errors' min_score")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    from tfod_tools.diagnostics.label_errors import DEFAULT_MIN_SCORE, KINDS, find_label_errors

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_label_errors_"))
    work.mkdir(parents=True, exist_ok=True)
    train_s = None
    if args.model_dir is not None:
        if args.pipeline is None:
            parser.error("--model-dir needs --pipeline")
        pipeline, model_dir = args.pipeline, args.model_dir
    else:
        pipeline, model_dir, train_s = _train(work, args.steps, args.train_images, args.eval_images)
    evaluated, evaluate_s = _evaluated(pipeline, model_dir, work)
    step, best_map, maps = _best_step(evaluated)
    clean = load_detections(evaluated, step)
    assert clean.detections is not None
    print(f"step {step}: mAP {best_map:.3f} ({len(clean.ground_truth)} eval boxes)", file=sys.stderr)
    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    on_clean = find_label_errors(clean, min_score=min_score)
    runs = []
    for seed in range(args.seeds):
        planted = plant(clean, seed, args.share)
        memory = AnnotatedSet(
            images=clean.images,
            categories=clean.categories,
            ground_truth=planted.ground_truth,
            detections=clean.detections,
        )
        started = time.perf_counter()
        candidates: dict[str, list[Any]] = {
            k: list(v) for k, v in find_label_errors(memory, min_score=min_score).items()
        }
        find_s = time.perf_counter() - started
        scores = score(candidates, planted, memory, min_score)
        run: dict[str, Any] = {"seed": seed, "path": "in memory", "find_s": round(find_s, 3), "kinds": scores}
        if seed < args.cli_seeds:
            data, in_store, info = through_cli(
                pipeline, evaluated, step, clean, planted, work / f"seed-{seed}"
            )
            from_store: dict[str, list[Any]] = {
                k: list(v) for k, v in find_label_errors(data, min_score=min_score).items()
            }
            scores = score(from_store, in_store, data, min_score)
            run.update(
                path="records + tfod evaluate + tfod diagnose",
                kinds=scores,
                same_as_in_memory=scores == run["kinds"],
                diagnose_agrees=diagnose_agrees(info["finding"], from_store, data),
                **info,
            )
        path = run["path"]
        runs.append(run)
        line = ", ".join(
            f"{k} P {s['precision_at_k']:.2f} / random {s['random_precision']:.3f}" for k, s in scores.items()
        )
        print(f"seed {seed} ({path}): {line}", file=sys.stderr)
    summary: dict[str, dict[str, Any]] = {
        kind: {
            metric: _summary([r["kinds"][kind][metric] for r in runs])
            for metric in ("precision_at_k", "recall_at_k", "random_precision", "ratio")
        }
        | {"planted": _summary([r["kinds"][kind]["planted"] for r in runs])}
        | {
            "ratio_of_means": float(
                np.mean([r["kinds"][kind]["precision_at_k"] for r in runs])
                / max(np.mean([r["kinds"][kind]["random_precision"] for r in runs]), 1e-12)
            )
        }
        for kind in KINDS
    }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model_dir": str(model_dir),
        "train_s": None if train_s is None else round(train_s, 1),
        "evaluate_s": None if evaluate_s is None else round(evaluate_s, 1),
        "step": step,
        "map": best_map,
        "map_per_step": maps,
        "eval_images": len(clean.images),
        "eval_boxes": len(clean.ground_truth),
        "min_score": min_score,
        "share": args.share,
        "candidates_on_clean": {k: len(v) for k, v in on_clean.items()},
        "runs": runs,
        "summary": summary,
    }
    print(
        f"step {step}, mAP {best_map:.3f}, {len(clean.images)} eval images, {len(clean.ground_truth)} boxes"
    )
    print(f"{args.seeds} seeds ({min(args.cli_seeds, args.seeds)} through records + CLI)")
    print(
        "| kind | planted (K) | precision@K mean +- std (min-max) | recall@K mean (min-max) | random"
        " precision mean | ratio mean (min-max) | seeds >= 3x |"
    )
    print("|---|---:|---|---|---:|---|---:|")
    for kind in KINDS:
        s = summary[kind]
        p, r, rnd, q = s["precision_at_k"], s["recall_at_k"], s["random_precision"], s["ratio"]
        met = sum((run["kinds"][kind]["ratio"] or 0.0) >= 3.0 for run in runs)
        print(
            f"| {kind} | {s['planted']['mean']:.1f} | {p['mean']:.2f} +- {p['std']:.2f}"
            f" ({p['min']:.2f}-{p['max']:.2f}) | {r['mean']:.2f} ({r['min']:.2f}-{r['max']:.2f})"
            f" | {rnd['mean']:.3f} | {q['mean']:.1f}x ({q['min']:.1f}-{q['max']:.1f}x) | {met}/{len(runs)} |"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
