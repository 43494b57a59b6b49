"""Training-health findings: NaN / Inf / diverged losses and learning-rate schedules, from real event
files (the project's writer, and TensorFlow's own tensor encoding), real pipeline configs, the API's
own learning-rate schedules, and ``tfod diagnose`` through the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from tfod_tools.cli.app import main
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.findings import training as T
from tfod_tools.diagnostics.findings.loss import loss_problem
from tfod_tools.diagnostics.health import DIVERGENCE_FACTOR, IMPLAUSIBLE_LOSS, LIKELY_CAUSES
from tfod_tools.diagnostics.report.html import render_report
from tfod_tools.diagnostics.schedule import Schedule, learning_rate
from tfod_tools.diagnostics.series import Scalars
from tfod_tools.odapi.pipeline import TEMPLATES, parse_pipeline_text, render_template, save_pipeline
from tfod_tools.tensorboard.reader import read_scalars
from tfod_tools.tensorboard.writer import EventWriter

LOC, CLS, REG, TOTAL = (
    f"Loss/{t}_loss" for t in ("localization", "classification", "regularization", "total")
)
NAN, INF = float("nan"), float("inf")
TRAINING_IDS = {
    "loss_nan",
    "loss_divergence",
    "learning_rate_never_decays",
    "learning_rate_ends_early",
    "warmup_exceeds_training",
    "learning_rate_schedule_invalid",
}


def _healthy_losses(step: int) -> dict[str, float]:
    """Losses of a detector that learns: falling from ~1.6 towards ~0.5."""
    decay = math.exp(-step / 2000)
    loc, cls, reg = 0.1 + 0.4 * decay, 0.25 + 0.6 * decay, 0.15
    return {LOC: loc, CLS: cls, REG: reg, TOTAL: loc + cls + reg}


def write_train_run(
    model_dir: Path,
    steps: Iterable[int],
    losses: Mapping[int, Mapping[str, float]] | None = None,
    rates: Mapping[int, float] | None = None,
) -> Path:
    """``MODEL_DIR/train`` as ``model_main_tf2`` writes it: every loss term, learning_rate and
    steps_per_sec at each logged step; ``losses`` overrides terms at some steps."""
    with EventWriter(model_dir / "train") as w:
        for step in steps:
            values = {**_healthy_losses(step), **(losses or {}).get(step, {})}
            for tag, value in values.items():
                w.add_scalar(tag, value, step=step)
            w.add_scalar("learning_rate", (rates or {}).get(step, 0.004), step=step)
            w.add_scalar("steps_per_sec", 10.5, step=step)
    return model_dir


def _tf_scalar_event(tag: str, value: float, step: int) -> event_pb2.Event:
    """A scalar the way TensorFlow's ``tf.summary.scalar`` writes it: float32 bytes in ``tensor_content``."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=np.float32(value).tobytes())
    tensor.tensor_shape.SetInParent()
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)])
    return event_pb2.Event(wall_time=1.0 + step, step=step, summary=summary)


def _cosine_rates(
    base: float, total: int, warmup: int, warmup_rate: float, steps: Iterable[int]
) -> dict[int, float]:
    schedule = Schedule("cosine_decay", base, total_steps=total, warmup_steps=warmup, warmup_rate=warmup_rate)
    return {s: learning_rate(schedule, s) for s in steps}


def _config(optimizer_body: str, num_steps: int) -> Any:
    return parse_pipeline_text(
        f"train_config {{ num_steps: {num_steps} optimizer {{ momentum_optimizer {{ learning_rate {{ "
        f"{optimizer_body} }} momentum_optimizer_value: 0.9 }} }} }}"
    )


def _training_ids(findings: Iterable[Any]) -> list[str]:
    return [f.id for f in findings if f.id in TRAINING_IDS]


# -- the reader keeps NaN and Inf --------------------------------------------------------------------


def test_non_finite_scalars_survive_the_reader(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "train") as w:
        w.add_scalar(TOTAL, NAN, step=100)
        w.add_scalar(TOTAL, INF, step=200)
        w.add_event(_tf_scalar_event(TOTAL, -INF, 300))
        w.add_event(_tf_scalar_event(TOTAL, NAN, 400))
        w.add_event(_tf_scalar_event(TOTAL, 3.5e8, 500))
    values = [(p.step, p.value) for p in read_scalars(tmp_path)]
    assert [s for s, _ in values] == [100, 200, 300, 400, 500]
    assert math.isnan(values[0][1]) and values[1][1] == INF and values[2][1] == -INF
    assert math.isnan(values[3][1]) and values[4][1] == pytest.approx(3.5e8)
    series = Scalars(read_scalars(tmp_path)).series("train", TOTAL)
    assert math.isnan(series[0][1]) and series[1][1] == INF


# -- loss_nan / loss_divergence ----------------------------------------------------------------------


def test_nan_in_one_term_names_that_term(tmp_path: Path) -> None:
    steps = range(100, 701, 100)
    nan_at = {s: {CLS: NAN, TOTAL: NAN} for s in (400, 500, 600, 700)}
    write_train_run(tmp_path, steps, nan_at, rates=dict.fromkeys(steps, 0.08))
    f = loss_problem(Scalars(read_scalars(tmp_path)))
    assert f is not None and (f.id, f.severity) == ("loss_nan", "error")
    ev = f.evidence
    assert (ev["step"], ev["term"], ev["value"], ev["last_good_step"]) == (400, CLS, "nan", 300)
    assert "loss is NaN at step 400 (Loss/classification_loss)" in f.message and "300" in f.message
    curves = ev["loss_curves"]
    assert curves["columns"] == ["step", CLS, LOC, REG, TOTAL]
    # all logged points before the problem, the problem and three after it
    assert [r[0] for r in curves["rows"]] == [100, 200, 300, 400, 500, 600, 700]
    assert curves["rows"][3][1] == "nan" and curves["rows"][3][4] == "nan"
    assert curves["rows"][0][4] == pytest.approx(_healthy_losses(100)[TOTAL], rel=1e-3)
    assert [r[0] for r in ev["learning_rate_curve"]["rows"]] == [100, 200, 300, 400, 500, 600, 700]
    assert ev["learning_rate"] == 0.08
    assert ev["likely_causes"]["rows"] == [list(c) for c in LIKELY_CAUSES]
    assert "learning_rate_base" in f.fix and "box_out_of_range" in f.fix and "step 300" in f.fix
    json.dumps(f.to_dict(), allow_nan=False)  # non-finite values travel as strings


def test_inf_total_with_finite_terms_names_the_total(tmp_path: Path) -> None:
    write_train_run(tmp_path, range(100, 301, 100), {200: {TOTAL: INF}})
    f = loss_problem(Scalars(read_scalars(tmp_path)))
    assert f is not None and f.id == "loss_nan"
    assert (f.evidence["step"], f.evidence["term"], f.evidence["value"]) == (200, TOTAL, "inf")
    assert "infinite" in f.message


def test_growth_by_the_divergence_factor(tmp_path: Path) -> None:
    steps = range(100, 1001, 100)
    grown = {s: {LOC: 400.0 * (s - 500), TOTAL: 400.0 * (s - 500) + 1.0} for s in range(600, 1001, 100)}
    write_train_run(tmp_path, steps, grown)
    f = loss_problem(Scalars(read_scalars(tmp_path)))
    assert f is not None and (f.id, f.severity) == ("loss_divergence", "error")
    ev = f.evidence
    low_step = 500
    low = _healthy_losses(low_step)[TOTAL]
    # 40001 at step 600 is past IMPLAUSIBLE_LOSS as well as DIVERGENCE_FACTOR times the lowest total
    assert max(IMPLAUSIBLE_LOSS, DIVERGENCE_FACTOR * low) < 40001.0
    assert (ev["step"], ev["term"], ev["last_good_step"]) == (600, LOC, low_step)
    assert ev["value"] == pytest.approx(40000.0)
    assert "diverged at step 600" in f.message


def test_implausible_first_loss_like_the_real_blown_up_run(tmp_path: Path) -> None:
    """The tiny template at learning rate x1e7: total loss 3.55e8 at the first logged step."""
    real = {
        100: {CLS: 1287458.6, LOC: 812986.3, REG: 352976928.0, TOTAL: 355077376.0},
        200: {CLS: 969259.25, LOC: 539841.56, REG: 3650373632.0, TOTAL: 3651882752.0},
        300: {CLS: 2762427.2, LOC: 898637.6, REG: 6657483264.0, TOTAL: 6661144576.0},
    }
    write_train_run(tmp_path, real, real, rates=dict.fromkeys(real, 10000.0))
    f = loss_problem(Scalars(read_scalars(tmp_path)))
    assert f is not None and f.id == "loss_divergence"
    assert (f.evidence["step"], f.evidence["last_good_step"], f.evidence["learning_rate"]) == (
        100,
        None,
        10000.0,
    )
    # No history at the first logged step: the largest component is named (the L2 term exploded).
    assert f.evidence["term"] == REG and f.evidence["value"] == pytest.approx(3.530e8, rel=1e-3)
    assert "above 10000" in f.message and "from scratch" in f.fix


def test_long_run_evidence_is_capped(tmp_path: Path) -> None:
    steps = range(100, 20001, 100)
    write_train_run(tmp_path, steps, {s: {TOTAL: NAN} for s in range(15000, 20001, 100)})
    f = loss_problem(Scalars(read_scalars(tmp_path)))
    assert f is not None and f.evidence["step"] == 15000
    logged = [r[0] for r in f.evidence["loss_curves"]["rows"]]
    assert logged == [100, *range(14000, 15000, 100), 15000, 15100, 15200, 15300]


def test_healthy_runs_stay_silent(tmp_path: Path, b: Any) -> None:
    fixture = tmp_path / "fixture"
    b.write_events(fixture)
    assert _training_ids(diagnose(fixture).findings) == []
    # a full model_main_tf2-like run of tiny-fpnlite: cosine total_steps = num_steps, rate 0 at the end
    steps = range(100, 1001, 100)
    run = write_train_run(tmp_path / "run", steps, rates=_cosine_rates(0.004, 1000, 100, 0.0004, steps))
    d = diagnose(run)
    assert _training_ids(d.findings) == [], d.ids()


# -- the learning-rate schedule, static ---------------------------------------------------------------


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("num_steps", [None, 300, 50000])
def test_shipped_templates_are_silent(template: str, num_steps: int | None) -> None:
    config = render_template(
        template, label_map={1: "a"}, train_records="t", eval_records="e", num_steps=num_steps
    )
    assert T.schedule_findings(config, "pipeline.config") == []


COSINE = (
    "cosine_decay_learning_rate {{ learning_rate_base: 0.08 total_steps: {total} "
    "warmup_steps: {warmup} warmup_learning_rate: 0.026 }}"
)
EXP = "exponential_decay_learning_rate { initial_learning_rate: 0.01 "
MANUAL = "manual_step_learning_rate { initial_learning_rate: 0.01 "


@pytest.mark.parametrize(
    ("body", "num_steps", "expected", "in_message", "in_fix"),
    [
        (
            COSINE.format(total=50000, warmup=1000),
            4000,
            "learning_rate_never_decays",
            "12.5x",
            "total_steps: 4000",
        ),
        (
            "exponential_decay_learning_rate { initial_learning_rate: 0.01 }",  # decay_steps default 4000000
            25000,
            "learning_rate_never_decays",
            "decay_steps 4000000",
            "decay_steps: 6250",
        ),
        (
            MANUAL + "schedule { step: 90000 learning_rate: 0.001 } }",
            20000,
            "learning_rate_never_decays",
            "[90000]",
            "schedule steps below num_steps 20000",
        ),
        (
            COSINE.format(total=25000, warmup=500),
            50000,
            "learning_rate_ends_early",
            "returns 0.0",
            "total_steps: 50000",
        ),
        (
            EXP + "decay_steps: 1000 decay_factor: 0.1 }",
            10000,
            "learning_rate_ends_early",
            "decay_steps 1000",
            "min_learning_rate",
        ),
        (
            COSINE.format(total=4000, warmup=5000),
            4000,
            "learning_rate_schedule_invalid",
            "raises ValueError",
            "",
        ),
        (
            COSINE.format(total=2000, warmup=1000),
            800,
            "warmup_exceeds_training",
            "warmup_steps 1000 >= num_steps 800",
            "(80)",
        ),
        (
            "cosine_decay_learning_rate { learning_rate_base: 0.01 warmup_learning_rate: 0.02 "
            "total_steps: 100 warmup_steps: 10 }",
            100,
            "learning_rate_schedule_invalid",
            "warmup_learning_rate 0.02 > learning_rate_base 0.01",
            "",
        ),
        (
            MANUAL + "schedule { step: 0 learning_rate: 0.001 } }",
            100,
            "learning_rate_schedule_invalid",
            "strictly increasing",
            "",
        ),
        (
            "manual_step_learning_rate { initial_learning_rate: 0.001 warmup: true "
            "schedule { step: 500 learning_rate: 0.01 } }",
            300,
            "warmup_exceeds_training",
            "first schedule step",
            "",
        ),
    ],
)
def test_schedule_findings_fire(
    body: str, num_steps: int, expected: str, in_message: str, in_fix: str
) -> None:
    findings = T.schedule_findings(_config(body, num_steps), "/cfg/pipeline.config")
    assert [f.id for f in findings] == [expected]
    f = findings[0]
    assert in_message in f.message and in_fix in f.fix and "/cfg/pipeline.config" in f.fix
    assert f.evidence["num_steps"] == num_steps
    assert ["optimizer", "momentum_optimizer"] in f.evidence["schedule"]["rows"]
    if expected != "learning_rate_schedule_invalid":
        schedule = Schedule.from_config(_config(body, num_steps))
        assert schedule is not None
        assert f.evidence["rate_at_num_steps"] == pytest.approx(learning_rate(schedule, num_steps), rel=1e-3)
        plan = f.evidence["planned_learning_rate_curve"]["rows"]
        assert num_steps in [r[0] for r in plan]


def test_never_decays_numbers_match_the_issue() -> None:
    """num_steps 4000, total_steps 50000: a cosine schedule is still at 98% of its base at the end."""
    cfg = _config(
        "cosine_decay_learning_rate { learning_rate_base: 0.08 total_steps: 50000 warmup_steps: 0 }", 4000
    )
    (f,) = T.schedule_findings(cfg)
    assert f.evidence["percent_of_peak"] == pytest.approx(98.4, abs=0.05)
    assert f.evidence["rate_at_num_steps"] == pytest.approx(
        0.08 * 0.5 * (1 + math.cos(math.pi * 4000 / 50000)), rel=1e-3
    )


@pytest.mark.parametrize(
    "body",
    [
        # 10x drops at 60% and 80%: the last fifth at 1% of the peak is a deliberate floor
        "manual_step_learning_rate { initial_learning_rate: 0.1 schedule { step: 6000 learning_rate: 0.01 } "
        "schedule { step: 8000 learning_rate: 0.001 } }",
        # decays fast but stops at a 1% floor
        "exponential_decay_learning_rate { initial_learning_rate: 0.01 decay_steps: 500 decay_factor: 0.5 "
        "min_learning_rate: 0.0001 }",
        COSINE.format(total=10000, warmup=500),  # cosine as long as the run
        COSINE.format(total=12000, warmup=500),  # a little longer: ends at 6% of its peak
        "constant_learning_rate { learning_rate: 0.5 }",
    ],
)
def test_schedules_that_fit_are_silent(body: str) -> None:
    assert T.schedule_findings(_config(body, 10000)) == []


def test_train_forever_and_no_config_are_silent() -> None:
    assert T.schedule_findings(_config(COSINE.format(total=50000, warmup=100), 0)) == []
    assert T.schedule_findings(None) == []
    assert T.schedule_findings(parse_pipeline_text("model { ssd { num_classes: 2 } }")) == []


_API_PROBE = r"""
import json, sys
from tfod_tools.odapi import compat
compat.install_protos()
import tensorflow as tf
from object_detection.builders import optimizer_builder
from tfod_tools.odapi.pipeline import parse_pipeline_text
out = []
for text, steps in json.loads(sys.stdin.read()):
    config = parse_pipeline_text(text)
    optimizer = config.train_config.optimizer
    message = getattr(optimizer, optimizer.WhichOneof("optimizer")).learning_rate
    step = tf.Variable(0, dtype=tf.int64)
    rate = optimizer_builder._create_learning_rate(message, global_step=step)
    values = []
    for s in steps:
        step.assign(s)
        values.append(float(rate() if callable(rate) else rate))
    out.append(values)
print("RATES:" + json.dumps(out))
"""


def test_learning_rate_matches_the_api_schedules() -> None:
    """``learning_rate`` against the API's optimizer_builder + learning_schedules, run in TensorFlow."""
    bodies = [
        "constant_learning_rate { learning_rate: 0.003 }",
        "exponential_decay_learning_rate { initial_learning_rate: 0.01 decay_steps: 300 decay_factor: 0.5 "
        "min_learning_rate: 0.0008 }",
        "exponential_decay_learning_rate { initial_learning_rate: 0.01 decay_steps: 300 decay_factor: 0.7 "
        "staircase: false burnin_learning_rate: 0.002 burnin_steps: 200 }",
        "manual_step_learning_rate { initial_learning_rate: 0.01 schedule { step: 300 learning_rate: 0.004 } "
        "schedule { step: 700 learning_rate: 0.0005 } }",
        "manual_step_learning_rate { initial_learning_rate: 0.001 warmup: true "
        "schedule { step: 200 learning_rate: 0.01 } schedule { step: 600 learning_rate: 0.002 } }",
        "cosine_decay_learning_rate { learning_rate_base: 0.04 total_steps: 1000 warmup_learning_rate: 0.004 "
        "warmup_steps: 100 }",
        "cosine_decay_learning_rate { learning_rate_base: 0.04 total_steps: 1000 warmup_learning_rate: 0.004 "
        "warmup_steps: 100 hold_base_rate_steps: 200 }",
        "cosine_decay_learning_rate { learning_rate_base: 0.02 total_steps: 600 warmup_steps: 0 }",
    ]
    steps = [0, 1, 50, 99, 100, 101, 199, 200, 201, 299, 300, 301, 450, 599, 600, 601, 699, 700, 999]
    steps += [1000, 1001, 1500]
    texts = [
        f"train_config {{ num_steps: 1000 optimizer {{ adam_optimizer {{ learning_rate {{ {b} }} }} }} }}"
        for b in bodies
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", _API_PROBE],
        input=json.dumps([[t, steps] for t in texts]),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = json.loads(proc.stdout.split("RATES:", 1)[1])
    for text, expected in zip(texts, api, strict=True):
        schedule = Schedule.from_config(parse_pipeline_text(text))
        assert schedule is not None
        ours = [learning_rate(schedule, s) for s in steps]
        np.testing.assert_allclose(ours, expected, rtol=2e-6, atol=1e-9, err_msg=text)


# -- the learning rate the run logged -------------------------------------------------------------------


def test_rate_that_ran_out_is_reported_without_a_pipeline(tmp_path: Path) -> None:
    steps = range(100, 2001, 100)
    write_train_run(tmp_path, steps, rates=_cosine_rates(0.004, 1000, 100, 0.0004, steps))
    d = diagnose(tmp_path)
    (f,) = d.get("learning_rate_ends_early")
    assert f.severity == "warning"
    # the cosine reaches 0 at step 1000 (total_steps); steps 1000-2000 train nothing
    assert (f.evidence["stopped_from_step"], f.evidence["last_step"], f.evidence["wasted_steps"]) == (
        1000,
        2000,
        1000,
    )
    curve = f.evidence["learning_rate_curve"]
    assert curve["columns"] == ["step", "learning rate", "% of peak"]
    assert [r[0] for r in curve["rows"]] == list(steps)
    assert curve["rows"][-1][1:] == [0.0, 0.0] and max(r[2] for r in curve["rows"]) == 100.0
    assert "total_steps = train_config.num_steps" in f.fix
    assert d.get("learning_rate_never_decays") == []


def test_static_and_observed_agree_and_merge(tmp_path: Path) -> None:
    """A config with total_steps 50000 and num_steps 4000, run to the end: one finding, both evidences."""
    body = COSINE.format(total=50000, warmup=200)
    config = _config(body, 4000)
    schedule = Schedule.from_config(config)
    assert schedule is not None
    steps = range(100, 4001, 100)
    write_train_run(tmp_path, steps, rates={s: learning_rate(schedule, s) for s in steps})
    pipeline = save_pipeline(config, tmp_path / "pipeline.config")
    scalars = Scalars(read_scalars(tmp_path))
    static = T.schedule_findings(config, str(pipeline))
    observed = T.learning_rate_never_decays(scalars, config, str(pipeline))
    assert [f.id for f in static] == ["learning_rate_never_decays"] and observed is not None
    assert observed.evidence["percent_of_peak"] == static[0].evidence["percent_of_peak"]
    assert "learning_rate_curve" in observed.evidence and "schedule" in observed.evidence
    assert T.learning_rate_ends_early(scalars, config) is None
    merged = T.prefer_observed([*static, observed])
    assert merged == [observed]

    d = diagnose(tmp_path, pipeline=pipeline)
    (f,) = d.get("learning_rate_never_decays")
    assert f.severity == "warning" and {"learning_rate_curve", "planned_learning_rate_curve"} <= set(
        f.evidence
    )


def test_unfinished_run_gets_the_static_finding_with_the_curve_so_far(tmp_path: Path) -> None:
    config = _config(COSINE.format(total=50000, warmup=200), 4000)
    schedule = Schedule.from_config(config)
    assert schedule is not None
    steps = range(100, 1001, 100)
    write_train_run(tmp_path, steps, rates={s: learning_rate(schedule, s) for s in steps})
    f = T.learning_rate_never_decays(Scalars(read_scalars(tmp_path)), config)
    assert f is not None and f.severity == "warning"
    assert "logged so far: step 1000" in f.message
    assert f.evidence["num_steps"] == 4000 and f.evidence["learning_rate_curve"]["rows"][-1][0] == 1000


def test_never_decays_without_a_pipeline_is_info(tmp_path: Path) -> None:
    """The logged rate warmed up then stayed near its peak: a schedule is in effect but never decayed."""
    schedule = Schedule("cosine_decay", 0.08, total_steps=50000, warmup_steps=200, warmup_rate=0.026)
    steps = range(100, 4001, 100)
    write_train_run(tmp_path, steps, rates={s: learning_rate(schedule, s) for s in steps})
    (f,) = diagnose(tmp_path).get("learning_rate_never_decays")
    assert f.severity == "info" and "--pipeline" in f.fix
    expected = 100 * learning_rate(schedule, 4000) / 0.08  # the peak, logged at step 200
    assert f.evidence["last_step"] == 4000 and f.evidence["percent_of_peak"] == pytest.approx(
        expected, abs=0.05
    )


def test_constant_rate_and_decayed_rate_are_silent(tmp_path: Path) -> None:
    steps = range(100, 4001, 100)
    constant = write_train_run(tmp_path / "constant", steps, rates=dict.fromkeys(steps, 0.001))
    assert _training_ids(diagnose(constant).findings) == []
    tiny_ssd = render_template(
        "tiny-ssd", label_map={1: "a"}, train_records="t", eval_records="e", num_steps=4000
    )
    scalars = Scalars(read_scalars(constant))
    assert T.learning_rate_never_decays(scalars, tiny_ssd) is None
    assert T.learning_rate_ends_early(scalars, tiny_ssd) is None
    fitted = write_train_run(tmp_path / "fitted", steps, rates=_cosine_rates(0.02, 4000, 400, 0.005, steps))
    assert _training_ids(diagnose(fitted).findings) == []


# -- tfod diagnose and the report -------------------------------------------------------------------


def test_cli_json_shows_loss_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = range(100, 501, 100)
    write_train_run(tmp_path, steps, {s: {LOC: NAN, TOTAL: NAN} for s in (300, 400, 500)})
    code = main(["diagnose", "--model-dir", str(tmp_path), "--json", "--quiet"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (f,) = [f for f in doc["findings"] if f["id"] == "loss_nan"]
    assert f["severity"] == "error" and doc["findings"][0]["id"] == "loss_nan"
    ev = f["evidence"]
    assert (ev["step"], ev["term"], ev["value"], ev["last_good_step"]) == (300, LOC, "nan", 200)
    assert [r[0] for r in ev["loss_curves"]["rows"]] == [100, 200, 300, 400, 500]
    assert ev["loss_curves"]["rows"][2][2] == "nan"
    assert "loss is NaN at step 300 (Loss/localization_loss)" in f["message"]

    assert main(["diagnose", "--model-dir", str(tmp_path), "--quiet"]) == 0
    human = capsys.readouterr().out
    assert "loss_nan" in human and "likely cause" in human and "loss curves" in human


def test_report_draws_the_curves(tmp_path: Path) -> None:
    steps = range(100, 801, 100)
    write_train_run(tmp_path, steps, {s: {CLS: NAN, TOTAL: NAN} for s in (600, 700, 800)},
                    rates=_cosine_rates(0.004, 800, 100, 0.0004, steps))  # fmt: skip
    page = render_report(diagnose(tmp_path))
    start = page.index('id="finding-loss_nan"')
    block = page[start : page.index("</div>", start)]
    assert block.count('src="data:image/png;base64,') == 2  # loss curves, learning-rate curve
    assert block.count("<details>") == 2 and "likely cause" in block
    rate_700 = _cosine_rates(0.004, 800, 100, 0.0004, [700])[700]
    assert 0 < rate_700 < 1e-3 and f"<td>{rate_700:.3g}</td>" in block  # a small rate is not shown as 0.000
