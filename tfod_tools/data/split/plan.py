"""The parts of a split: fractions (``--fractions``) or K folds, their names and their file names.

>>> plan_parts([0.7, 0.3], None, ["fit", "holdout"])
([0.7, 0.3], ['fit', 'holdout'])
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from tfod_tools.errors import TfodError

__all__ = ["check_fractions", "default_names", "parse_fractions", "plan_parts", "split_paths"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_fractions(text: str) -> list[float]:
    """``"0.8,0.1,0.1"`` -> fractions; each > 0, at least two, summing to 1 (within 1e-6).

    >>> parse_fractions("0.8, 0.1,0.1")
    [0.8, 0.1, 0.1]
    >>> parse_fractions("0.7,0.2")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: --fractions 0.7,0.2 sum to 0.9, not 1 (fix: e.g. --fractions 0.8,0.1,0.1)
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise TfodError(
            f"--fractions {text} is not a comma-separated list of numbers", fix="e.g. 0.8,0.1,0.1"
        ) from None
    check_fractions(values, text)
    return values


def check_fractions(values: Sequence[float], text: str | None = None) -> None:
    """Refuse fewer than two fractions, one <= 0 (or not finite), or a sum other than 1."""
    shown = text if text is not None else ",".join(str(v) for v in values)
    fix = "e.g. --fractions 0.8,0.1,0.1"
    if len(values) < 2:
        raise TfodError(f"--fractions {shown}: a split needs at least two parts", fix=fix)
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise TfodError(f"--fractions {shown}: every fraction must be > 0", fix=fix)
    if abs(sum(values) - 1.0) > 1e-6:
        raise TfodError(f"--fractions {shown} sum to {sum(values):.6g}, not 1", fix=fix)


def default_names(parts: int) -> list[str]:
    """``train,val`` for 2 parts, ``train,val,test`` for 3, ``split0..`` otherwise.

    >>> default_names(3), default_names(4)[-1]
    (['train', 'val', 'test'], 'split3')
    """
    return {2: ["train", "val"], 3: ["train", "val", "test"]}.get(parts, [f"split{i}" for i in range(parts)])


def split_paths(out: str | Path, names: Sequence[str], folds: int | None = None) -> list[Path]:
    """The record file of each split, then the manifest.

    >>> [p.name for p in split_paths("data/x", ["train", "val"])]
    ['x-train.record', 'x-val.record', 'x-split.json']
    >>> [p.name for p in split_paths("x", ["fold0", "fold1"], folds=2)][:2]
    ['x-fold0-of-2.record', 'x-fold1-of-2.record']
    """
    if folds is None:
        records = [Path(f"{out}-{name}.record") for name in names]
    else:
        records = [Path(f"{out}-fold{i}-of-{folds}.record") for i in range(folds)]
    return [*records, Path(f"{out}-split.json")]


def plan_parts(
    fractions: Sequence[float] | None, folds: int | None, names: Sequence[str] | None
) -> tuple[list[float], list[str]]:
    """Fractions and names of the parts (``folds`` K: K equal parts ``fold0..``; default 0.8, 0.1, 0.1).

    >>> plan_parts(None, 3, None)[1], plan_parts([0.5, 0.5], None, None)[1]
    (['fold0', 'fold1', 'fold2'], ['train', 'val'])
    """
    if folds is not None and fractions is not None:
        raise TfodError("pass --fractions or --folds, not both", fix="drop one of them")
    if folds is not None:
        if folds < 2:
            raise TfodError(f"--folds {folds}: cross-validation needs at least 2 folds", fix="use --folds 5")
        parts, default = [1.0 / folds] * folds, [f"fold{i}" for i in range(folds)]
        if names:
            raise TfodError(
                "--names does not apply to --folds (files are PREFIX-foldI-of-K)", fix="drop --names"
            )
        return parts, default
    parts = list(fractions) if fractions is not None else [0.8, 0.1, 0.1]
    check_fractions(parts)
    chosen = list(names) if names else default_names(len(parts))
    if len(chosen) != len(parts):
        raise TfodError(
            f"--names has {len(chosen)} names for {len(parts)} fractions", fix="give one name per fraction"
        )
    bad = [n for n in chosen if not _NAME.match(n)]
    if bad or len(set(chosen)) != len(chosen):
        raise TfodError(
            f"--names {','.join(chosen)}: names must be distinct and of letters, digits, '_', '-', '.'",
            fix="e.g. --names train,val,test",
        )
    return parts, chosen
