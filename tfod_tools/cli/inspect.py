"""``tfod inspect``: statistics and validation findings of TF OD API records.

Never imports TensorFlow (``--pipeline`` parses the config with the API's protos only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import BEAM_CONTEXT, BeamOption, JsonOption, QuietOption, beam_args, beam_run
from tfod_tools.cli.output import Output
from tfod_tools.data.inspect import InspectionReport, inspect_records
from tfod_tools.diagnostics.model import Finding

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _show_config_findings(console: Console, findings: Sequence[Finding]) -> None:
    console.print(
        f"config checks: [bold]{len(findings)}[/bold] finding(s)" if findings else "config checks: ok"
    )
    for finding in findings:
        style = _STYLE[finding.severity]
        console.print(
            f"[{style}]{finding.severity} {finding.id}[/{style}]: {finding.message}", highlight=False
        )
        console.print(f"  [bold]fix:[/bold] {finding.fix}", highlight=False)


def _show_duplicates(console: Console, title: str, found: dict[str, Any]) -> None:
    exact, near = found["exact_pairs"], found["near_pairs"]
    against = f" against {', '.join(found['against'])}" if found.get("against") else ""
    line = f"{title}{against}: {exact} exact, {near} near (pHash distance <= {found['max_distance']})"
    console.print(line if exact or near else f"{line}: none", highlight=False)
    if not exact and not near:
        return
    table = Table("kind", "image", "duplicate of", "distance", title=title)
    for kind in ("exact", "near"):
        for pair in found[kind]:
            a, b = pair["a"], pair["b"]
            table.add_row(
                kind,
                f"{Path(a['file']).name}#{a['index']} {a['source_id']}",
                f"{Path(b['file']).name}#{b['index']} {b['source_id']}",
                str(pair["distance"]),
            )
    console.print(table)
    if found.get("against"):
        console.print(
            "  [bold]fix:[/bold] split again so that copies stay on one side: `tfod split --group-by`",
            highlight=False,
        )


def _show_outliers(console: Console, report: InspectionReport, count: int = 10) -> None:
    found = report.outliers
    if found is None:
        return
    line = (
        f"annotation outliers: {found.total} of {found.boxes_scored} boxes "
        f"(|modified z| > {found.threshold:g} on size, aspect, position or size in image, per class)"
    )
    console.print(line if found.total else f"{line}: none", highlight=False)
    skipped = [f"{c} {f} ({why})" for c, v in found.per_class.items() for f, why in v["skipped"].items()]
    if skipped:
        console.print(f"  not scored: {'; '.join(skipped)}", highlight=False)
    if not found.top:
        return
    table = Table("class", "image", "box (px)", "reason", "score", title="annotation outliers")
    for o in found.top[:count]:
        table.add_row(
            o.class_name,
            f"{Path(o.file).name}#{o.index} {o.source_id}",
            f"{o.box_index}: " + ",".join(f"{v:.0f}" for v in o.box),
            o.reason,
            f"{o.score:.1f}",
        )
    console.print(table)
    console.print(
        f"  [bold]fix:[/bold] check those annotations (--json lists the {len(found.top)} strongest)",
        highlight=False,
    )


def _human(report: InspectionReport, config_findings: Sequence[Finding] | None) -> Callable[[Console], None]:
    def show(console: Console) -> None:
        _records(console)
        if config_findings is not None:
            _show_config_findings(console, config_findings)

    def _records(console: Console) -> None:
        console.print(
            f"[bold]{report.images}[/bold] images, [bold]{report.boxes}[/bold] boxes, "
            f"{report.negative_images} negative images, in {len(report.files)} file(s)"
        )
        bpi = report.boxes_per_image
        console.print(
            f"boxes per image: min {bpi['min']:g}, mean {bpi['mean']:.2f}, p95 {bpi['p95']:g}, "
            f"max {bpi['max']:g} (max_number_of_boxes {report.max_boxes}: {report.max_boxes_source})"
        )
        table = Table("class", "images", "boxes", title="classes")
        for name, counts in report.per_class.items():
            table.add_row(name, str(counts["images"]), str(counts["boxes"]))
        console.print(table)
        areas = Table("pixels", "small (≤32²)", "medium", "large (≥96²)", title="COCO area buckets")
        areas.add_row("original", *(str(report.area_buckets[k]) for k in ("small", "medium", "large")))
        if report.model_area_buckets is not None and report.model_input is not None:
            label = ", ".join(f"{k} {v}" for k, v in report.model_input.to_dict().items())
            areas.add_row(
                f"model input ({label})",
                *(str(report.model_area_buckets[k]) for k in ("small", "medium", "large")),
            )
        console.print(areas)
        ratios = {k: v for k, v in report.aspect_ratios.items() if k != "quantiles"}
        aspect = Table(*ratios, title="box aspect ratios (width / height)")
        aspect.add_row(*(str(v) for v in ratios.values()))
        console.print(aspect)
        if report.image_sizes:
            sizes = ", ".join(f"{size} ({n})" for size, n in report.image_sizes.items())
            console.print(f"image sizes: {sizes}", highlight=False)
        for title, found in (("duplicate images", report.duplicates), ("train/eval leak", report.leaks)):
            if found is not None:
                _show_duplicates(console, title, found)
        _show_outliers(console, report)
        if not report.issues:
            console.print("[green]no issues found[/green]")
            return
        issues = Table("issue", "count", "meaning", "fix", "first example", title="issues")
        for issue in report.issues:
            first = issue.examples[0] if issue.examples else None
            where = (
                ""
                if first is None
                else f"{Path(first.file).name}#{first.index} {first.source_id} {first.detail}"
            )
            issues.add_row(f"[red]{issue.id}[/red]", str(issue.count), issue.message, issue.fix, where)
        console.print(issues)

    return show


@app.command("inspect", context_settings=BEAM_CONTEXT)
def inspect_command(
    ctx: typer.Context,
    records: list[str] = typer.Argument(
        ..., help="TFRecord files, globs ('train.record-*') or shard specs ('train.record@10')."
    ),
    label_map: Path = typer.Option(..., "--label-map", "-l", help="The label_map.pbtxt the records use."),
    pipeline: Path | None = typer.Option(
        None,
        "--pipeline",
        "-p",
        help="pipeline.config: adds area buckets at the model input size, its max_number_of_boxes, "
        "a num_classes check and the config checks (learning rate vs batch size, "
        "fine_tune_checkpoint_type, augmentation vs the balance recipe, max detections, eval batch size, "
        "learning-rate schedule).",
    ),
    no_decode: bool = typer.Option(
        False, "--no-decode", help="Do not read image headers (trust stored sizes; faster on huge images)."
    ),
    against: list[str] | None = typer.Option(
        None,
        "--against",
        help="Records of another split (repeatable): list the exact and near duplicate images between "
        "them and RECORDS (train_eval_leak).",
    ),
    fail_on_issues: bool = typer.Option(
        False,
        "--fail-on-issues",
        help="Exit 1 when any issue (or, with --against, a train/eval leak) is found.",
    ),
    beam: BeamOption = False,
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Count images, boxes, classes, sizes and aspect ratios of TF OD API records; list problems and fixes."""
    # After `--` Click hands every word to the RECORDS list: the Beam options start at the first "-..."
    cut = next((k for k, item in enumerate(records) if item.startswith("-")), len(records))
    records, ctx.args = records[:cut], [*records[cut:], *ctx.args]
    options = beam_args(ctx, beam)
    output = Output(json_mode=json_mode, quiet=quiet)
    output.info(f"inspecting {', '.join(records)}")
    if beam:
        with beam_run(output, "inspect"):
            from tfod_tools.beam.inspect import inspect_beam

            report = inspect_beam(
                records, label_map, pipeline, not no_decode, against or (), beam_args=options
            )
    else:
        report = inspect_records(
            records, label_map, pipeline=pipeline, decode_images=not no_decode, against=against or ()
        )
    data = report.to_dict()
    found: list[Finding] | None = None
    if pipeline is not None:
        from tfod_tools.diagnostics.findings.config import config_findings
        from tfod_tools.odapi.pipeline import load_pipeline

        most = int(report.boxes_per_image["max"])  # the inspected records stand in for the eval set
        found = config_findings(load_pipeline(pipeline), str(pipeline), eval_max_boxes=most)
        data["config_findings"] = [f.to_dict() for f in found]
    output.result(data, human=_human(report, found))
    leaked = report.leaks is not None and (report.leaks["exact_pairs"] or report.leaks["near_pairs"])
    if fail_on_issues and (report.issues or leaked):
        raise typer.Exit(1)
