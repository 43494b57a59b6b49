"""``tfod balance``: rebalance a training record set (repeat counts + augmented copies).

Never imports TensorFlow. See :mod:`tfod_tools.data.balance`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import (
    BEAM_CONTEXT,
    BeamOption,
    JsonOption,
    QuietOption,
    beam_args,
    beam_run,
    choices_text,
    one_of,
)
from tfod_tools.cli.output import Output
from tfod_tools.data.balance.plan import STRATEGIES
from tfod_tools.data.balance.recipes import RECIPES
from tfod_tools.data.convert.core import ON_BAD_IMAGE
from tfod_tools.errors import TfodError


def _human(manifest: dict[str, Any]) -> Callable[[Console], None]:
    def show(console: Console) -> None:
        recipe = manifest["recipe"]
        plan = manifest["plan"]
        switches = ", ".join(k for k, v in recipe["switches"].items() if v) or "none"
        console.print(
            f"[bold]{manifest['strategy']}[/bold] with recipe [bold]{recipe['name']}[/bold] "
            f"(switches: {switches}), seed {manifest['seed']}: {plan['images']} images -> "
            f"{manifest['records']} records ({plan['copies']} augmented copies)"
        )
        if plan.get("no_copies"):
            console.print(f"[yellow]{plan['no_copies']['message']}[/yellow]", highlight=False)
        table = Table(
            "class", "images before", "images after", "boxes before", "boxes after", "boxes dropped"
        )
        before, after = manifest["counts_before"], manifest["counts_after"]
        for name in before:
            b, a = before[name], after.get(name, {"images": 0})
            table.add_row(
                name,
                str(b["images"]),
                str(a["images"]),
                str(b.get("boxes", "")),
                str(a.get("boxes", "")),
                str(manifest["boxes_dropped"].get(name, 0)) if name != "negative" else "",
            )
        console.print(table)
        skipped = manifest["skipped_images"]
        if skipped["count"]:
            console.print(f"skipped {skipped['count']} undecodable images: {', '.join(skipped['ids'])}")
        for shard in manifest["shards"]:
            console.print(f"{shard['path']}  {shard['records']} records  sha256 {shard['sha256'][:16]}")
        if manifest.get("sampling_config"):
            console.print(f"sampling config: {manifest['sampling_config']['path']}")

    return show


@app.command("balance", context_settings=BEAM_CONTEXT)
def balance_command(
    ctx: typer.Context,
    inputs: list[str] = typer.Option(
        ..., "--input", "-i", help="Training records: a file, a glob or PREFIX@N (repeatable)."
    ),
    label_map: Path = typer.Option(..., "--label-map", help="label_map.pbtxt of the records."),
    out: Path = typer.Option(..., "--out", help="Output prefix (PREFIX or PREFIX-0000k-of-0000N shards)."),
    recipe: str = typer.Option(
        "natural", "--recipe", help=f"Augmentation recipe: {choices_text(RECIPES)} | FILE.yaml."
    ),
    strategy: Annotated[
        one_of(lambda: STRATEGIES),  # type: ignore[valid-type]
        typer.Option(
            "--strategy", metavar="STRATEGY", help=f"How copies are planned: {choices_text(STRATEGIES)}."
        ),
    ] = "repeat-factor",
    threshold: float = typer.Option(
        0.3, "--threshold", help="Repeat-factor threshold t: r_c = max(1, sqrt(t / f_c))."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, metavar="SEED", help="Seed: the same seed gives byte-identical shards."
    ),
    shards: int = typer.Option(1, "--shards", min=1, metavar="N", help="Number of output shards."),
    workers: int = typer.Option(
        1, "--workers", min=1, metavar="N", help="Worker processes (output does not depend on it)."
    ),
    allow_hflip: bool = typer.Option(
        False, "--allow-hflip", help="Enable the recipe's 'hflip' switch (chest-xray: laterality!)."
    ),
    enable: list[str] = typer.Option([], "--enable", help="Enable a recipe switch by name (repeatable)."),
    emit_sampling_config: bool = typer.Option(
        False,
        "--emit-sampling-config",
        help="Also write per-class record groups and a train_input_reader with sample_from_datasets_weights.",
    ),
    allow_eval: bool = typer.Option(
        False, "--allow-eval", help="Allow inputs whose file name says eval/val/test."
    ),
    on_bad_image: Annotated[
        one_of(lambda: ON_BAD_IMAGE),  # type: ignore[valid-type]
        typer.Option(
            "--on-bad-image", help="An image that does not decode: fail, or skip it (listed in the manifest)."
        ),
    ] = "fail",
    beam: BeamOption = False,
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write the originals plus augmented copies so rare classes are seen more often.

    Writes PREFIX (or shards), PREFIX.manifest.json and, with --emit-sampling-config,
    PREFIX.group-CLASS files and PREFIX.sampling.config.

    --beam [-- BEAM OPTIONS]: the same outputs, byte for byte, from an Apache Beam pipeline.
    """
    from tfod_tools.data.balance import balance
    from tfod_tools.data.tfrecord import count_records, expand_record_paths

    output = Output(json_mode=json_mode, quiet=quiet)
    pipeline_args = beam_args(ctx, beam)
    switches = [*enable, *(["hflip"] if allow_hflip else [])]
    files = [f for item in inputs for f in expand_record_paths(item)]
    total = 0
    for f in files:
        if not f.is_file():
            raise TfodError("TFRecord file not found", path=f, fix="check the --input path")
        total += 0 if beam else count_records(f)
    if beam:
        if workers != 1:
            raise TfodError(
                "--workers is for the local run",
                fix="with --beam give -- --direct_num_workers=N (DirectRunner)",
            )
        output.info(f"balance on Apache Beam: {len(files)} input files")
        with beam_run(output, "balance"):
            from tfod_tools.beam.balance import balance_beam

            manifest = balance_beam(
                [str(f) for f in files],
                label_map,
                out,
                pipeline_args=pipeline_args,
                recipe=recipe,
                strategy=strategy,
                threshold=threshold,
                seed=seed,
                shards=shards,
                enable=switches,
                emit_sampling_config=emit_sampling_config,
                allow_eval=allow_eval,
                on_bad_image=on_bad_image,
            )
    else:
        with output.progress("balance (verify, write)", total=2 * total) as advance:
            manifest = balance(
                [str(f) for f in files],
                label_map,
                out,
                recipe=recipe,
                strategy=strategy,
                threshold=threshold,
                seed=seed,
                shards=shards,
                workers=workers,
                enable=switches,
                emit_sampling_config=emit_sampling_config,
                allow_eval=allow_eval,
                on_bad_image=on_bad_image,
                progress=advance,
            )
    if manifest["skipped_images"]["count"]:
        output.warn(
            f"skipped {manifest['skipped_images']['count']} images that do not decode: "
            + ", ".join(manifest["skipped_images"]["ids"])
        )
    output.result(manifest, human=_human(manifest))
