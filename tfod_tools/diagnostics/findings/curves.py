"""Findings read from the event files alone: ``-1`` metrics, single eval points, overfitting, best step.

>>> from tfod_tools.tensorboard.reader import ScalarPoint as P
>>> from tfod_tools.diagnostics.series import MAP_TAG, Scalars
>>> large = "DetectionBoxes_Precision/mAP (large)"
>>> s = Scalars([P("eval", MAP_TAG, 5000, 0.8, 0), P("eval", large, 5000, -1.0, 0)])
>>> f = single_eval_point(s, model_dir="m", pipeline="p.config")
>>> f.id, f.evidence["step"], "--checkpoints all" in f.fix
('single_eval_point', 5000, True)
>>> u = undefined_area_metric(s, {"small": 3, "medium": 9, "large": 0})
>>> u.message.split(":")[0], u.evidence["metrics"]["rows"][0][:3]
('1 evaluation metric is -1 (undefined)', ['mAP (large)', 'large', 0])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tfod_tools.data.areas import AREA_BUCKETS, AREA_RULES
from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.diagnostics.noise import (
    ALPHA,
    MetricChange,
    binomial_change,
    bootstrap_change,
    evaluated_boxes,
    trend_test,
    unknown_change,
)
from tfod_tools.diagnostics.series import LOSS_TAG, Scalars
from tfod_tools.errors import TfodError

__all__ = [
    "best_step",
    "overfitting",
    "single_eval_point",
    "undefined_area_metric",
]

_MIN_TREND_POINTS = 4  # the fewest points with which Mann-Kendall can reach p < 0.05 (p = 1/24)
_AREA_WORDS = {name: f"({name})" for name in AREA_BUCKETS}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _short(tag: str) -> str:
    return tag.split("/", 1)[1] if "/" in tag else tag


def _area_of(tag: str) -> str | None:
    return next((name for name, word in _AREA_WORDS.items() if tag.endswith(word)), None)


@finding_rule(10, call=lambda fn, d: fn(d.scalars, d.area_buckets, eval_source=d.eval_source))
def undefined_area_metric(
    scalars: Scalars, bucket_counts: Mapping[str, int] | None, *, eval_source: str | None = None
) -> Finding | None:
    """Every eval metric whose latest value is ``-1``, with the eval set's boxes per COCO area bucket.

    ``bucket_counts`` is :func:`tfod_tools.diagnostics.datasets.area_bucket_counts` of the eval set
    (None when the eval records could not be read): the boxes COCOeval evaluates in each range, by the
    area the API's evaluation gave them (:mod:`tfod_tools.data.areas`), so the counts explain these -1.
    """
    run = scalars.eval_run
    rows: list[list[object]] = []
    names_list: list[str] = []
    area_set: set[str] = set()
    for tag in scalars.tags(run):
        step, value = scalars.series(run, tag)[-1]
        if -1.001 <= value <= -0.999:
            area = _area_of(tag)
            count = None if bucket_counts is None or area is None else int(bucket_counts.get(area, 0))
            rows.append([_short(tag), area or "-", count, step])
            names_list.append(_short(tag))
            if area is not None:
                area_set.add(area)
    if not rows:
        return None
    names = ", ".join(names_list)
    areas = sorted(area_set, key=list(_AREA_WORDS).index)
    n = len(rows)
    message = f"{n} evaluation metric{'s are' if n > 1 else ' is'} -1 (undefined): {names}"
    if bucket_counts is not None and areas:
        counts = ", ".join(f"{a}: {int(bucket_counts.get(a, 0))}" for a in areas)
        message += (
            f". -1 is not a score: COCO gives -1 when no ground-truth box falls in the setting; the eval set"
            f" has these ground-truth boxes per area bucket ({counts})"
        )
    else:
        message += ". -1 is not a score: COCO gives -1 when no ground-truth box falls in the setting"
    evidence: dict[str, object] = {
        "metrics": table(["metric", "area", "eval boxes in area", "step"], rows),
    }
    if bucket_counts is not None:
        evidence["area_buckets"] = table(
            ["bucket", "rule (original pixels)", "eval boxes"],
            [[a, AREA_RULES[a], int(bucket_counts.get(a, 0))] for a in AREA_BUCKETS],
        )
    if eval_source:
        evidence["eval_records"] = eval_source
    if bucket_counts is None:
        fix = (
            "Pass --eval-records (and --label-map) or --pipeline to count the eval boxes per area bucket. "
            "-1 cells are left out of every average, so mAP itself is unaffected."
        )
    else:
        fix = (
            "Nothing to fix if your objects really are never that size: ignore these lines (they are left "
            "out of every average). If you expected boxes there, check that the records store normalised "
            "boxes ([0, 1]) and the right image/width and image/height, or add eval images with such objects."
        )
    return Finding("undefined_area_metric", "info", message, evidence, fix)


@finding_rule(20, call=lambda fn, d: fn(d.scalars, model_dir=str(d.model_dir), pipeline=d.pipeline_path))
def single_eval_point(scalars: Scalars, *, model_dir: str, pipeline: str | None) -> Finding | None:
    """The eval run has exactly one step for every tag (TensorBoard shows "just a dot")."""
    run = scalars.eval_run
    tags = scalars.tags(run)
    if not tags:
        return None
    steps = {tag: [s for s, _ in scalars.series(run, tag)] for tag in tags}
    if any(len(v) > 1 for v in steps.values()):
        return None
    step = max(v[0] for v in steps.values())
    train_steps = [s for s, _ in scalars.series(scalars.train_run, LOSS_TAG)]
    rows = [[_short(t), v[0]] for t, v in list(steps.items())[:6]]
    evidence: dict[str, object] = {
        "step": step,
        "tags": len(tags),
        "points": table(["tag", "step"], rows),
        "train_steps_logged": len(train_steps),
        "last_train_step": train_steps[-1] if train_steps else None,
    }
    pipe = pipeline or "pipeline.config"
    message = (
        f"the evaluation has one point per tag (step {step}), so every eval curve is a single dot. "
        "model_main_tf2 --checkpoint_dir evaluates only the newest checkpoint and skips those written "
        "while it was busy; run after training, it evaluates one checkpoint"
    )
    fix = (
        f"tfod evaluate --pipeline {pipe} --model-dir {model_dir} --checkpoints all "
        "(evaluates every checkpoint still on disk and fills the curves; CheckpointManager's max_to_keep "
        "(7 in model_main_tf2) may already have deleted the older ones - evaluate during training with "
        "`tfod train --eval continuous` to catch each checkpoint)"
    )
    return Finding("single_eval_point", "warning", message, evidence, fix)


def best_step(scalars: Scalars, metric: str | None = None) -> tuple[int, str, float] | None:
    """``(step, metric, value)`` with the highest value of the headline metric (earliest on ties).

    ``-1`` values (undefined) never win.
    """
    tag = metric or scalars.headline_metric()
    if tag is None:
        return None
    values = [(s, v) for s, v in scalars.series(scalars.eval_run, tag) if v > -0.999]
    if not values:
        return None
    step, value = max(values, key=lambda sv: (sv[1], -sv[0]))
    return step, tag, value


@finding_rule(30, call=lambda fn, d: fn(d.scalars, model_dir=d.model_dir, ground_truth=d.ground_truth_set))
def overfitting(
    scalars: Scalars,
    *,
    window: int = 3,
    loss_rise: float = 0.05,
    train_flat: float = 0.02,
    metric_drop: float = 0.02,
    trend_window: int = 5,
    model_dir: str | Path | None = None,
    ground_truth: AnnotatedSet | None = None,
    resamples: int = 200,
    seed: int = 0,
) -> Finding | None:
    """Eval loss rising while train loss falls or stays flat, and/or the headline metric past its
    peak - a warning only when the change is larger than its noise (:mod:`tfod_tools.diagnostics.noise`).

    Candidates (the size rules): eval loss "rises" when its last value exceeds the lowest of the
    last ``window`` evaluations by more than ``loss_rise`` (relative) and the last step is above the
    one before; train loss is "flat or falling" when its value at the last eval step is at most
    ``1 + train_flat`` times its value at the step of that lowest eval loss. The metric is "past its
    peak" when its last value is lower than its best by more than ``metric_drop`` (relative) and at
    least 0.005.

    Noise (the confidence, stated in the message and in ``evidence["confidence"]``): the eval loss
    rise counts when the Mann-Kendall test over the last ``trend_window`` evaluations finds a rising
    trend (one-sided p < 0.05; 3 evaluations can never show one); the metric drop counts when the
    95 % interval of the drop lies above 0 - by paired bootstrap over eval images when the stored
    detections of both steps are under ``model_dir`` (``resamples`` draws, ``seed``), else by the
    binomial approximation from the boxes of ``ground_truth``, else against
    :data:`~tfod_tools.diagnostics.noise.MIN_PLAUSIBLE_BOXES` boxes. A candidate none of whose
    changes counts is reported as ``info`` ("within noise"); None when there is no candidate.

    >>> from tfod_tools.tensorboard.reader import ScalarPoint as P
    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> from tfod_tools.diagnostics.series import MAP_TAG
    >>> s = Scalars([P("eval", MAP_TAG, 3000, 0.20, 0), P("eval", MAP_TAG, 4000, 0.206, 0),
    ...              P("eval", MAP_TAG, 5000, 0.20, 0)])
    >>> boxes = GroundTruth.from_arrays([1 + k // 2 for k in range(76)], [[0, 0, 9, 9]] * 76, [1] * 76)
    >>> gt = AnnotatedSet(ImageTable.from_sizes(range(1, 39), [64] * 38, [64] * 38), {1: "a"}, boxes)
    >>> f = overfitting(s, ground_truth=gt)  # a 0.006 drop measured on 76 boxes
    >>> f.severity, f.message.endswith("within noise")
    ('info', True)
    >>> s = Scalars([P("eval", MAP_TAG, 3000, 0.60, 0), P("eval", MAP_TAG, 4000, 0.62, 0),
    ...              P("eval", MAP_TAG, 5000, 0.30, 0)])
    >>> f = overfitting(s, ground_truth=gt)
    >>> f.severity, f.evidence["confidence"]["rows"][0][-1]
    ('warning', 'likely real')
    """
    eval_run, train_run = scalars.eval_run, scalars.train_run
    eval_loss = scalars.series(eval_run, LOSS_TAG)
    best = best_step(scalars)
    metric_tag = best[1] if best else None
    metric = scalars.series(eval_run, metric_tag) if metric_tag else []
    reasons: list[str] = []
    confidence: list[list[object]] = []
    real: list[bool] = []
    notes: list[str] = []
    evidence: dict[str, object] = {}
    last_step: int | None = None

    if len(eval_loss) >= 2:
        recent = eval_loss[-window:]
        low_step, low = min(recent[:-1], key=lambda sv: sv[1])
        last_step, last = recent[-1]
        rising = last > low * (1 + loss_rise) and last > recent[-2][1]
        t_low = scalars.value_at(train_run, LOSS_TAG, low_step)
        t_last = scalars.value_at(train_run, LOSS_TAG, last_step)
        train_ok = t_low is not None and t_last is not None and t_last <= t_low * (1 + train_flat)
        if rising and train_ok:
            tail = eval_loss[-trend_window:]
            trend = trend_test([st for st, _ in tail], [v for _, v in tail])
            likely = trend.significant("rising")
            if trend.n < _MIN_TREND_POINTS:
                noise = (
                    f"only {trend.n} evaluations: too few for a trend test "
                    f"(Mann-Kendall needs {_MIN_TREND_POINTS} to reach p < {ALPHA:g})"
                )
            else:
                noise = trend.describe("rising")
            verdict = "likely real" if likely else "within noise"
            reasons.append(
                f"eval total loss rose from {low:.3f} (step {low_step}) to {last:.3f} (step {last_step}, "
                f"+{(last / low - 1) * 100:.0f}%) while train total loss went from {t_low:.3f} "
                f"to {t_last:.3f} ({noise}: {verdict})"
            )
            confidence.append(
                ["eval total loss rising", "Mann-Kendall trend test (one-sided)", noise, verdict]
            )
            real.append(likely)
            evidence["loss_trend"] = _key_values(trend.to_dict())
    if best is not None and len(metric) >= 2:
        peak_step, _, peak = best
        m_step, m_last = metric[-1]
        if m_step > peak_step and peak - m_last > max(metric_drop * peak, 0.005):
            change = _metric_change(
                metric_tag or "",
                (peak_step, peak),
                (m_step, m_last),
                model_dir=model_dir,
                ground_truth=ground_truth,
                resamples=resamples,
                seed=seed,
                notes=notes,
            )
            recomputed = ""
            if change.method == "bootstrap" and (
                abs(change.before - peak) > 0.001 or abs(change.after - m_last) > 0.001
            ):
                recomputed = (
                    f" (recomputed from the stored detections: {change.before:.3f} -> {change.after:.3f})"
                )
            reasons.append(
                f"{_short(metric_tag or '')} peaked at {peak:.3f} (step {peak_step}) and is {m_last:.3f} "
                f"at step {m_step}, a drop of {peak - m_last:.3f}{recomputed}; {change.describe()}"
            )
            confidence.append(
                [f"{_short(metric_tag or '')} drop", change.method, change.describe(), change.verdict]
            )
            real.append(change.significant)
            evidence["metric_change"] = _key_values(change.to_dict())
            last_step = max(last_step or 0, m_step)
    if not reasons:
        return None

    span = max(window, trend_window) + 2
    steps = sorted({s for s, _ in eval_loss[-span:]} | {s for s, _ in metric[-(window + 2) :]})
    eval_loss_at = dict(eval_loss)
    metric_at = dict(metric)
    rows = [
        [
            s,
            _round(scalars.value_at(train_run, LOSS_TAG, s)),
            _round(eval_loss_at.get(s)),
            _round(metric_at.get(s)),
        ]
        for s in steps
    ]
    use = best[0] if best else min(eval_loss, key=lambda sv: sv[1])[0]
    basis = f"best {_short(metric_tag)}" if best and metric_tag else "lowest eval loss"
    likely_real = any(real)
    evidence = {
        "at_step": last_step,
        "use_step": use,
        "likely_real": likely_real,
        "confidence": table(["signal", "noise model", "test", "verdict"], confidence),
        **evidence,
        "history": table(["step", "train total loss", "eval total loss", _short(metric_tag or "mAP")], rows),
    }
    if notes:
        evidence["noise_notes"] = "; ".join(notes)
    message = "; ".join(reasons)
    if likely_real:
        fix = (
            f"Use the checkpoint of step {use} ({basis}), not the last one. Stop training earlier or add "
            "data augmentation / more training data / stronger regularisation; keep every evaluated "
            "checkpoint with `tfod train --eval continuous` so the best one is not deleted by max_to_keep."
        )
        return Finding("overfitting", "warning", message, evidence, fix)
    fix = (
        f"Nothing to change on this evidence: the change is within the noise of the eval set, so step {use} "
        "and the last checkpoint are as good as it can tell. To tell them apart, evaluate more checkpoints "
        "(`tfod train --eval continuous`, or `tfod evaluate --checkpoints all`, which also stores the "
        "detections the bootstrap needs) and/or enlarge the eval set."
    )
    return Finding("overfitting", "info", message, evidence, fix)


def _key_values(values: Mapping[str, object]) -> dict[str, object]:
    """A ``quantity | value`` evidence table (how the terminal and the report show a test's numbers)."""
    return table(["quantity", "value"], [[k, v] for k, v in values.items()])


def _metric_change(
    metric: str,
    peak: tuple[int, float],
    last: tuple[int, float],
    *,
    model_dir: str | Path | None,
    ground_truth: AnnotatedSet | None,
    resamples: int,
    seed: int,
    notes: list[str],
) -> MetricChange:
    """The noise model of a metric drop: bootstrap on the stored detections of both steps, else the
    binomial approximation from the ground-truth boxes, else :func:`unknown_change`."""
    (peak_step, peak_value), (last_step, last_value) = peak, last
    if model_dir is not None:
        from tfod_tools.data.store import detections_path, load_detections

        paths = [detections_path(model_dir, st) for st in (peak_step, last_step)]
        if all(p.is_file() for p in paths):
            try:
                before = load_detections(model_dir, peak_step)
                after = load_detections(model_dir, last_step)
            except TfodError as exc:
                notes.append(f"stored detections not read for the bootstrap: {exc.one_line()}")
            else:
                change = bootstrap_change(before, after, metric=metric, resamples=resamples, seed=seed)
                if change is not None:
                    return change
                notes.append(
                    f"the stored detections of steps {peak_step} and {last_step} were made on different "
                    "eval sets: no paired bootstrap"
                )
        else:
            missing = [
                str(st) for st, p in zip((peak_step, last_step), paths, strict=True) if not p.is_file()
            ]
            notes.append(
                f"no stored detections for step {', '.join(missing)}: the metric drop is judged by an "
                "approximation (`tfod evaluate` stores them)"
            )
    if ground_truth is not None and evaluated_boxes(ground_truth) > 0:
        return binomial_change(peak_value, last_value, boxes=evaluated_boxes(ground_truth))
    return unknown_change(peak_value, last_value)
