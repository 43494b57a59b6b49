"""``tfod split``: stratified, group-aware train/val/test (or K-fold) record splits.

Never imports TensorFlow. See :mod:`tfod_tools.data.split`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, QuietOption
from tfod_tools.cli.output import Output


def _human(manifest: dict[str, Any]) -> Callable[[Console], None]:
    def show(console: Console) -> None:
        grouping = manifest["group_by"]
        by = f"{grouping['kind']} '{grouping['value']}'" if grouping else "image (no --group-by)"
        console.print(
            f"{manifest['images']} images in {manifest['groups']} groups (by {by}), seed {manifest['seed']}: "
            f"largest class-distribution TVD from the whole set {manifest['max_tvd']:.3f}",
            highlight=False,
        )
        splits = manifest["splits"]
        table = Table("", *(s["name"] for s in splits))
        for key, fmt in (("fraction", "{:.3f}"), ("groups", "{}"), ("images", "{}"), ("boxes", "{}")):
            table.add_row(key, *(fmt.format(s[key]) for s in splits))
        table.add_row("TVD", *(f"{s['tvd']:.3f}" for s in splits), end_section=True)
        for label in manifest["classes"]:
            cells = (s["classes"][label] for s in splits)
            table.add_row(label, *(f"{c['images']} ({c['image_share']:.0%})" for c in cells))
        console.print(table)
        for s in manifest["splits"]:
            console.print(f"{s['path']}  {s['images']} records  sha256 {s['sha256'][:16]}", highlight=False)
        console.print(f"manifest: {manifest['manifest']}", highlight=False)

    return show


@app.command("split")
def split_command(
    inputs: list[str] = typer.Option(
        ..., "--input", "-i", help="Records to split: a file, a glob or PREFIX@N (repeatable)."
    ),
    label_map: Path = typer.Option(..., "--label-map", help="label_map.pbtxt of the records."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output prefix: PREFIX-NAME.record per split (PREFIX-foldI-of-K.record), PREFIX-split.json.",
    ),
    fractions: str | None = typer.Option(
        None, "--fractions", help="Comma-separated split fractions summing to 1 (default 0.8,0.1,0.1)."
    ),
    folds: int | None = typer.Option(
        None, "--folds", min=2, help="K-fold instead: K equal parts, one file each (train on the other K-1)."
    ),
    names: str | None = typer.Option(
        None, "--names", help="Comma-separated split names (default train,val or train,val,test)."
    ),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        help="Keep groups whole: source_id_regex:REGEX | filename_regex:REGEX (first capture group, "
        "or the match) | csv:FILE (columns source_id or filename, and group).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed: the same seed gives byte-identical outputs."),
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Split records into stratified parts (classes and negatives), never cutting a group.

    Copies every record's bytes unchanged into one split file and writes PREFIX-split.json
    (groups, images, per-class counts and shares per split, TVD from the whole set).
    """
    from tfod_tools.data.split import input_files, parse_fractions, split_records
    from tfod_tools.data.tfrecord import count_records

    output = Output(json_mode=json_mode, quiet=quiet)
    files = input_files(inputs)
    total = sum(count_records(f) for f in files)
    with output.progress("split (verify, write)", total=2 * total) as advance:
        manifest = split_records(
            files,
            label_map,
            out,
            fractions=None if fractions is None else parse_fractions(fractions),
            folds=folds,
            names=None if names is None else [n.strip() for n in names.split(",")],
            group_by=group_by,
            seed=seed,
            progress=advance,
        )
    output.result(manifest, human=_human(manifest))
