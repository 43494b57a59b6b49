"""The demo's ``data`` step: the imbalanced synthetic ``xray-like`` set it trains and evaluates on.

:func:`write_data` writes ``WORKDIR/data/{train,eval}.record`` and ``label_map.pbtxt``
(:func:`~tfod_tools.data.synthetic.write_synthetic_dataset`) with the settings' sizes: the training
split with the imbalanced ``class_ratio``, the eval split drawn apart with its own balanced
``eval_class_ratio`` (with the training ratio a small eval set would hold a handful of minority
boxes, and their AP would be mostly noise). :mod:`tfod_tools.demo.run` then renders the ``before``
pipeline on it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tfod_tools.demo.settings import DemoSettings

__all__ = ["write_data"]


def _rel(workdir: Path, path: str | Path) -> str:
    return Path(path).resolve().relative_to(workdir.resolve()).as_posix()


def write_data(workdir: Path, s: DemoSettings) -> tuple[dict[str, Any], list[str], str]:
    """Write the data set into ``workdir/data``; returns the step's result, outputs and summary line."""
    from tfod_tools.data.synthetic import write_synthetic_dataset

    common: dict[str, Any] = {
        "seed": s.seed,
        "image_size": s.image_size,
        "negative_share": s.negative_share,
        "min_size": s.min_size,
        "max_size": s.max_size,
    }
    ds = write_synthetic_dataset(
        workdir / "data",
        "xray-like",
        train_images=s.train_images,
        eval_images=0,
        class_ratio=s.class_ratio,
        **common,
    )
    scratch = workdir / "data" / ".eval"
    ev = write_synthetic_dataset(
        scratch,
        "xray-like",
        train_images=0,
        eval_images=s.eval_images,
        class_ratio=s.eval_class_ratio,
        **common,
    )
    os.replace(ev.eval_record, ds.eval_record)
    shutil.rmtree(scratch)
    result = ds.to_dict()
    for key in ("images", "negative_images", "class_counts", "area_buckets"):
        result[key]["eval"] = getattr(ev, key)["eval"]
    result["options"]["eval_class_ratio"] = s.eval_class_ratio
    outputs = [_rel(workdir, ds.train_record), _rel(workdir, ds.eval_record), _rel(workdir, ds.label_map)]
    train_counts, eval_counts = ds.class_counts["train"], ev.class_counts["eval"]
    summary = (
        f"{s.train_images} train images (boxes: "
        + ", ".join(f"{k} {v}" for k, v in train_counts.items())
        + f"; {ds.negative_images['train']} negative), {s.eval_images} eval images (boxes: "
        + ", ".join(f"{k} {v}" for k, v in eval_counts.items())
        + ")"
    )
    return result, outputs, summary
