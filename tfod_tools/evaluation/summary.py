"""The end-of-run table: step -> mAP, AP50, AR@100, eval loss (one row per evaluated checkpoint).

>>> from tfod_tools.ledger import Evaluation
>>> rows = summary_rows([Evaluation(300, "ckpt-4", "h", {"DetectionBoxes_Precision/mAP": 0.5,
...                                                      "Loss/total_loss": 1.25})])
>>> rows
[{'step': 300, 'checkpoint': 'ckpt-4', 'mAP': 0.5, 'AP50': None, 'AR@100': None, 'eval loss': 1.25}]
>>> summary_table(rows).row_count
1
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table

from tfod_tools.ledger import Evaluation
from tfod_tools.metrics.coco import COCO_TAGS

__all__ = ["COLUMNS", "summary_rows", "summary_table"]

COLUMNS: dict[str, str] = {
    "mAP": COCO_TAGS["AP"],
    "AP50": COCO_TAGS["AP50"],
    "AR@100": COCO_TAGS["AR100"],
    "eval loss": "Loss/total_loss",
}
"""Table column -> metric tag."""


def _value(metrics: Mapping[str, float], tag: str) -> float | None:
    value = metrics.get(tag)
    return None if value is None or not math.isfinite(value) else float(value)


def summary_rows(evaluations: Iterable[Evaluation]) -> list[dict[str, Any]]:
    """One dict per evaluation, by step."""
    rows = []
    for e in sorted(evaluations, key=lambda e: e.step):
        row: dict[str, Any] = {"step": e.step, "checkpoint": e.checkpoint}
        row.update({column: _value(e.metrics, tag) for column, tag in COLUMNS.items()})
        rows.append(row)
    return rows


def summary_table(
    rows: list[dict[str, Any]], best_step: int | None = None, title: str | None = None
) -> Table:
    """A rich table of :func:`summary_rows`; the best step is marked with ``*``."""
    table = Table(title=title)
    table.add_column("step", justify="right")
    table.add_column("checkpoint")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for row in rows:
        cells = ["n/a" if row[c] is None else f"{row[c]:.4f}" for c in COLUMNS]
        mark = " *" if best_step is not None and row["step"] == best_step else ""
        table.add_row(f"{row['step']}{mark}", row["checkpoint"], *cells)
    return table
