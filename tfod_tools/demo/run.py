"""``tfod demo``: the whole loop on the embedded synthetic ``xray-like`` data set.

Steps (each calls the library, as the matching ``tfod`` command would):

1. ``data``: write the imbalanced synthetic set (:mod:`tfod_tools.demo.data`) and render the
   ``tiny-fpnlite`` pipeline (:mod:`tfod_tools.demo.pipeline`);
2. ``inspect``: count and check the records (:func:`~tfod_tools.data.inspect.inspect_records`);
3. ``train-before``: train with the continuous evaluator beside (:mod:`tfod_tools.demo.continuous`);
4. ``curves-before``: export and plot every scalar (:mod:`tfod_tools.curves`);
5. ``diagnose-before``: findings and the HTML report (:func:`~tfod_tools.diagnostics.engine.diagnose`);
6. ``balance``: rebalance the training split with the ``chest-xray`` recipe
   (:func:`~tfod_tools.data.balance.balance`);
7. ``train-after``, 8. ``curves-after``, 9. ``diagnose-after``: the same on the balanced records;
10. ``export``: ship the balanced run's best checkpoint (:mod:`tfod_tools.demo.ship`): ``tfod export``
    (the SavedModel; TFLite float too in the full demo), ``tfod evaluate --model`` of each export
    against the checkpoint (the parity table), ``tfod predict`` on a few eval images;
11. ``report``: per-class AP before/after (:mod:`tfod_tools.demo.report`) and the exports' parity
    as ``report.md`` and ``report.html``.

With ``--fine-tune`` (off by default) a ``fine-tune`` step runs between ``export`` and ``report``
(:mod:`tfod_tools.demo.fine_tune`): a short ``detection`` fine-tune of the balanced run's best
checkpoint on a second synthetic set with 3 classes, and the count of feature-extractor variables
its step-0 checkpoint restored exactly; the report gets a "Fine-tuning" section.

**Re-running into a workdir resumes.** ``WORKDIR/demo_state.json`` records the settings and each
completed step with the files it wrote. A re-run skips every completed step whose files still exist
and redoes the first step that is missing or incomplete (an interrupted training run is wiped and
trained again) and every step after it; a report made with the other ``--fine-tune`` choice is
made again (a ``fine-tune`` step done earlier is kept). A workdir made with other settings
(``--quick`` vs full) or a non-empty directory that is not a demo workdir is refused; ``--force``
starts a demo workdir over.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.demo.fine_tune import STEP as FINE_TUNE
from tfod_tools.demo.fine_tune import fine_tune_summary
from tfod_tools.demo.pipeline import write_pipeline
from tfod_tools.demo.settings import DemoSettings, settings_for
from tfod_tools.demo.ship import export_summary, ship_summary
from tfod_tools.demo.state import STATE_FILE, DemoState, prepare_workdir
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import write_text_atomic

__all__ = [
    "FINE_TUNE",
    "STATE_FILE",
    "STEPS",
    "DemoEvents",
    "DemoResult",
    "DemoState",
    "run_demo",
    "steps_for",
]

STEPS: tuple[str, ...] = (
    "data",
    "inspect",
    "train-before",
    "curves-before",
    "diagnose-before",
    "balance",
    "train-after",
    "curves-after",
    "diagnose-after",
    "export",
    "report",
)
RUNS = ("before", "after")


def steps_for(fine_tune: bool) -> tuple[str, ...]:
    """The steps a run takes: :data:`STEPS`, with ``fine-tune`` before the report when asked for.

    >>> steps_for(True)[-2:], steps_for(False) == STEPS
    (('fine-tune', 'report'), True)
    """
    return (*STEPS[:-1], FINE_TUNE, STEPS[-1]) if fine_tune else STEPS


@dataclass
class DemoEvents:
    """Callbacks: a step ends (index, name, seconds, one-line summary, skipped?), and free notes."""

    on_step: Callable[[int, str, float, str, bool], None] | None = None
    on_note: Callable[[str], None] | None = None

    def step(self, index: int, name: str, seconds: float, summary: str, skipped: bool) -> None:
        """Report the end of a step."""
        if self.on_step is not None:
            self.on_step(index, name, seconds, summary, skipped)

    def note(self, text: str) -> None:
        """A progress note inside a step."""
        if self.on_note is not None:
            self.on_note(text)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced (``summary`` is the ``--json`` document)."""

    workdir: Path
    summary: dict[str, Any]
    elapsed_s: float
    skipped_steps: list[str]


def _rel(workdir: Path, path: str | Path) -> str:
    return Path(path).resolve().relative_to(workdir.resolve()).as_posix()


class _Demo:
    """The steps, sharing the workdir, the state and the callbacks."""

    def __init__(self, state: DemoState, settings: DemoSettings, events: DemoEvents) -> None:
        self.state = state
        self.s = settings
        self.events = events
        self.w = state.workdir

    # -- paths -----------------------------------------------------------------------------------
    def p(self, *parts: str) -> Path:
        return self.w.joinpath(*parts)

    def run_dir(self, run: str) -> Path:
        return self.p("runs", run)

    def pipeline(self, run: str) -> Path:
        return self.p("pipelines", f"{run}.config")

    # -- steps -----------------------------------------------------------------------------------
    def data(self) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.demo.data import write_data

        result, outputs, summary = write_data(self.w, self.s)
        self._write_pipeline("before", self.p("data", "train.record"))
        return result, [*outputs, _rel(self.w, self.pipeline("before"))], summary

    def _write_pipeline(self, run: str, train_records: str | Path) -> Path:
        return write_pipeline(
            self.s,
            self.pipeline(run),
            label_map=self.p("data", "label_map.pbtxt"),
            train_records=train_records,
            eval_records=self.p("data", "eval.record"),
            num_steps=self.s.steps,
        )

    def inspect(self) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.data.inspect import inspect_records

        result: dict[str, Any] = {}
        outputs = []
        for split in ("train", "eval"):
            report = inspect_records(
                self.p("data", f"{split}.record"),
                self.p("data", "label_map.pbtxt"),
                pipeline=self.pipeline("before"),
            )
            doc = report.to_dict()
            path = write_text_atomic(
                self.p("reports", "inspect", f"{split}.json"), json.dumps(doc, indent=2) + "\n"
            )
            outputs.append(_rel(self.w, path))
            result[split] = {
                "images": doc["images"],
                "boxes": doc["boxes"],
                "negative_images": doc["negative_images"],
                "per_class": doc["per_class"],
                "area_buckets": doc["area_buckets"],
                "issues": [i["id"] for i in doc["issues"]],
                "report": _rel(self.w, path),
            }
        train = result["train"]
        summary = (
            f"train: {train['images']} images, {train['boxes']} boxes, {train['negative_images']} negative, "
            f"area buckets {train['area_buckets']}; issues: {', '.join(train['issues']) or 'none'}"
        )
        return result, outputs, summary

    def train(self, run: str) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.demo.continuous import train_and_evaluate
        from tfod_tools.ledger import Ledger

        model_dir = self.run_dir(run)
        if model_dir.exists():  # an interrupted earlier attempt: start this run over
            shutil.rmtree(model_dir)

        rel = _rel(self.w, model_dir)
        self.events.note(
            f"  training {self.s.steps} steps -> {rel} with the continuous evaluator beside "
            f"(logs: {rel}/logs/train.log, eval.log)"
        )
        outcome = train_and_evaluate(
            self.pipeline(run),
            model_dir,
            num_steps=self.s.steps,
            checkpoint_every=self.s.checkpoint_every,
            on_note=self.events.note,
            what=f"training the {run} model",
        )
        trained = outcome.train
        eval_log = model_dir / "logs" / "eval.log"
        if not Ledger.path_for(model_dir).is_file():
            raise TfodError(
                f"the continuous evaluator of the {run} run evaluated no checkpoint",
                path=eval_log,
                fix="read the evaluator's log; run `tfod doctor`",
            )
        with Ledger.open(model_dir, readonly=True) as ledger:
            evaluations = sorted(ledger.evaluations(status="ok"), key=lambda e: e.step)
            best = ledger.best()
        if not evaluations or evaluations[-1].step < (trained.progress.step if trained.progress else 0):
            raise TfodError(
                f"the continuous evaluator of the {run} run did not evaluate the final checkpoint",
                path=eval_log,
                fix="read the evaluator's log; rerun tfod demo (it resumes)",
            )
        final = evaluations[-1]
        result: dict[str, Any] = {
            "operating_point": self._operating_point(model_dir, final.step),
            "model_dir": rel,
            "pipeline": _rel(self.w, self.pipeline(run)),
            "train_seconds": round(trained.elapsed_s, 1),
            "evaluated_steps": [e.step for e in evaluations],
            "final_step": final.step,
            "final_metrics": dict(final.metrics),
            "best_step": None if best is None else best.step,
        }
        m = final.metrics.get("DetectionBoxes_Precision/mAP", float("nan"))
        summary = (
            f"{final.step} steps in {trained.elapsed_s:.0f} s; {len(evaluations)} checkpoints evaluated "
            f"(steps {', '.join(str(e.step) for e in evaluations)}); final mAP {m:.3f}"
        )
        return result, [rel], summary

    def _operating_point(self, model_dir: Path, step: int) -> dict[str, Any]:
        """Recall and precision per class of the checkpoint at ``step`` at the operating threshold."""
        from tfod_tools.data.store import load_detections
        from tfod_tools.demo.report import operating_point
        from tfod_tools.metrics.counts import per_image_counts

        data = load_detections(model_dir, step)
        totals = per_image_counts(data, score_threshold=self.s.operating_threshold).totals()
        return operating_point(totals, list(data.categories.values()))

    def curves(self, run: str) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.curves import collect_points, plot_curves, write_points

        points = collect_points(self.run_dir(run))
        csv_path = write_points(points, "csv", self.p("reports", run, "curves.csv"))
        png = self.p("reports", run, "curves.png")
        panels = plot_curves(points, png)
        eval_steps = sorted(
            {p.step for p in points if p.run == "eval" and p.tag == "DetectionBoxes_Precision/mAP"}
        )
        result: dict[str, Any] = {
            "csv": _rel(self.w, csv_path),
            "png": _rel(self.w, png),
            "panels": panels,
            "eval_points": len(eval_steps),
        }
        summary = f"{len(points)} scalar points, {len(eval_steps)} eval mAP points; plot {result['png']}"
        return result, [result["csv"], result["png"]], summary

    def diagnose(self, run: str) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.diagnostics.engine import diagnose
        from tfod_tools.diagnostics.report.html import write_report

        diagnosis = diagnose(self.run_dir(run), pipeline=self.pipeline(run))
        html = write_report(diagnosis, self.p("reports", run, "diagnose.html"))
        doc = diagnosis.to_dict()
        js = write_text_atomic(
            self.p("reports", run, "diagnose.json"), json.dumps(doc, indent=2, default=str) + "\n"
        )
        undefined = diagnosis.get("undefined_area_metric")
        result: dict[str, Any] = {
            "html": _rel(self.w, html),
            "json": _rel(self.w, js),
            "findings": diagnosis.ids(),
            "messages": {f.id: f.message for f in diagnosis.findings},
            "undefined_area_metric": None if not undefined else undefined[0].message,
        }
        summary = "findings: " + (", ".join(diagnosis.ids()) or "none") + f"; report {result['html']}"
        return result, [result["html"], result["json"]], summary

    def balance(self) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.data.balance import balance, manifest_path

        out = self.p("data", "train_balanced.record")
        manifest = balance(
            [self.p("data", "train.record")],
            self.p("data", "label_map.pbtxt"),
            out,
            recipe=self.s.recipe,
            strategy=self.s.balance_strategy,
            threshold=self.s.balance_threshold,
            seed=self.s.seed,
        )
        self._write_pipeline("after", out)
        result: dict[str, Any] = {
            "records": _rel(self.w, out),
            "manifest": _rel(self.w, manifest_path(out)),
            "recipe": manifest["recipe"]["name"],
            "strategy": manifest["strategy"],
            "counts_before": manifest["counts_before"],
            "counts_after": manifest["counts_after"],
            "boxes_dropped": manifest["boxes_dropped"],
            "records_written": manifest["records"],
        }
        minority = self.s.minority_class
        b = manifest["counts_before"].get(minority, {}).get("images", 0)
        a = manifest["counts_after"].get(minority, {}).get("images", 0)
        summary = (
            f"{manifest['plan']['images']} -> {manifest['records']} training images "
            f"({minority}: {b} -> {a} images), recipe {result['recipe']}, {result['strategy']}"
        )
        outputs = [result["records"], result["manifest"], _rel(self.w, self.pipeline("after"))]
        return result, outputs, summary

    def export(self) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.demo.ship import ShipInputs, ship

        result, outputs = ship(
            ShipInputs(
                workdir=self.w,
                pipeline=self.pipeline("after"),
                model_dir=self.run_dir("after"),
                eval_record=self.p("data", "eval.record"),
                label_map=self.p("data", "label_map.pbtxt"),
                formats=tuple(self.s.export_formats.split(",")),
                predict_images=self.s.predict_images,
                score_threshold=self.s.operating_threshold,
            ),
            self.events.note,
        )
        return result, outputs, ship_summary(result)

    def fine_tune(self) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.demo.fine_tune import fine_tune

        best = self.state.result("train-after")["best_step"]
        return fine_tune(self.w, self.s, self.run_dir("after"), best, self.events.note)

    def report(self, fine_tune: bool) -> tuple[dict[str, Any], list[str], str]:
        from tfod_tools.demo.report import comparison_rows, per_class, render_html, render_markdown

        st = self.state
        data = st.result("data")
        classes = list(data["class_counts"]["train"])
        runs: dict[str, Any] = {}
        for run in RUNS:
            trained, curves, diag = (
                st.result(f"train-{run}"),
                st.result(f"curves-{run}"),
                st.result(f"diagnose-{run}"),
            )
            runs[run] = {
                "model_dir": trained["model_dir"],
                "step": trained["final_step"],
                "best_step": trained["best_step"],
                "evaluated_steps": trained["evaluated_steps"],
                "mAP": trained["final_metrics"].get("DetectionBoxes_Precision/mAP"),
                "per_class_ap": per_class(trained["final_metrics"], classes),
                "metrics": trained["final_metrics"],
                "findings": diag["findings"],
                "diagnose_html": diag["html"],
                "curves_png": curves["png"],
                "train_seconds": trained["train_seconds"],
            }
        bal = st.result("balance")
        rows = comparison_rows(runs["before"]["metrics"], runs["after"]["metrics"], classes)
        report: dict[str, Any] = {
            "settings": self.s.to_dict(),
            "classes": classes,
            "minority_class": self.s.minority_class,
            "eval_boxes": dict(data["class_counts"]["eval"]),
            "comparison": [r.to_dict() for r in rows],
            "balance": {
                k: bal[k] for k in ("recipe", "strategy", "counts_before", "counts_after", "records")
            },
            "runs": runs,
            "tensorboard": f"tensorboard --logdir {self.p('runs')}",
            "operating_point": {
                "threshold": self.s.operating_threshold,
                **{run: st.result(f"train-{run}")["operating_point"] for run in RUNS},
            },
            "export": st.result("export"),
            "fine_tune": st.result(FINE_TUNE) if fine_tune else None,
        }
        md = write_text_atomic(self.p("report.md"), render_markdown(report))
        page = write_text_atomic(self.p("report.html"), render_html(report))
        report["report_md"] = _rel(self.w, md)
        report["report_html"] = _rel(self.w, page)
        minority = next(r for r in rows if r.name == self.s.minority_class)
        recall = [report["operating_point"][run][self.s.minority_class]["recall"] for run in RUNS]
        summary = (
            f"{self.s.minority_class} AP {minority.before:.3f} -> {minority.after:.3f}, recall at score >= "
            f"{self.s.operating_threshold:g} {recall[0]:.3f} -> {recall[1]:.3f}; "
            f"mAP {rows[-1].before:.3f} -> {rows[-1].after:.3f}; report {report['report_html']}"
        )
        return report, [report["report_md"], report["report_html"]], summary


def run_demo(
    workdir: str | Path = "workspace/demo",
    *,
    quick: bool = False,
    force: bool = False,
    fine_tune: bool = False,
    events: DemoEvents | None = None,
) -> DemoResult:
    """Run (or resume) the demo in ``workdir`` (with the ``fine-tune`` step when ``fine_tune``); see
    the module docstring."""
    started = time.monotonic()
    settings = settings_for(quick=quick)
    events = events or DemoEvents()
    state = prepare_workdir(Path(workdir), settings, force)
    demo = _Demo(state, settings, events)
    actions: dict[str, Callable[[], tuple[dict[str, Any], list[str], str]]] = {
        "data": demo.data,
        "inspect": demo.inspect,
        "train-before": lambda: demo.train("before"),
        "curves-before": lambda: demo.curves("before"),
        "diagnose-before": lambda: demo.diagnose("before"),
        "balance": demo.balance,
        "train-after": lambda: demo.train("after"),
        "curves-after": lambda: demo.curves("after"),
        "diagnose-after": lambda: demo.diagnose("after"),
        "export": demo.export,
        FINE_TUNE: demo.fine_tune,
        "report": lambda: demo.report(fine_tune),
    }
    steps = steps_for(fine_tune)
    made = state.steps.get("report")
    if made is not None and bool(made["result"].get("fine_tune")) != fine_tune:
        state.steps.pop("report")  # made with the other --fine-tune choice: make it again
    skipped: list[str] = []
    redo = False
    for index, name in enumerate(steps, start=1):
        if not redo and state.done(name):
            skipped.append(name)
            events.step(index, name, 0.0, "done earlier (kept)", True)
            continue
        redo = True  # everything after a redone step is redone too
        for later in steps[index - 1 :]:
            state.steps.pop(later, None)
        state.save()
        step_started = time.monotonic()
        result, outputs, line = actions[name]()
        state.steps[name] = {
            "result": result,
            "outputs": outputs,
            "seconds": round(time.monotonic() - step_started, 1),
        }
        state.save()
        events.step(index, name, time.monotonic() - step_started, line, False)
    report = state.result("report")
    summary = {
        "workdir": str(state.workdir),
        "mode": settings.mode,
        "report_html": str(state.workdir / report["report_html"]),
        "report_md": str(state.workdir / report["report_md"]),
        "tensorboard": report["tensorboard"],
        "minority_class": report["minority_class"],
        "eval_boxes": report["eval_boxes"],
        "per_class_ap": {run: report["runs"][run]["per_class_ap"] for run in RUNS},
        "mAP": {run: report["runs"][run]["mAP"] for run in RUNS},
        "comparison": report["comparison"],
        "operating_point": report["operating_point"],
        "counts": {"before": report["balance"]["counts_before"], "after": report["balance"]["counts_after"]},
        "findings": {run: report["runs"][run]["findings"] for run in RUNS},
        "diagnose_html": {run: str(state.workdir / report["runs"][run]["diagnose_html"]) for run in RUNS},
        "export": export_summary(state.workdir, report["export"]),
        "fine_tune": None if not fine_tune else fine_tune_summary(state.workdir, report["fine_tune"]),
        "steps": {name: state.steps[name]["seconds"] for name in steps},
        "skipped_steps": skipped,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    return DemoResult(state.workdir, summary, time.monotonic() - started, skipped)
