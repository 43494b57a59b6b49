"""Train/eval leakage: the same picture (exact bytes, or re-saved: pHash within
:data:`tfod_tools.data.dedup.DEFAULT_MAX_DISTANCE`) in the train and the eval records.

The hashes come from ``tfod inspect``'s pass over the records (:attr:`DiagnosisInputs.inspections`)
when it ran, else the records are read here (TF-free). Runs only when both record sets were read.

>>> from tfod_tools.data.dedup import ImageHashes, ImageRef
>>> train = ImageHashes([ImageRef("train.record", 0, "a"), ImageRef("train.record", 1, "b")],
...                     [0, 2**64 - 1], [b"x", b"y"])
>>> other = ImageHashes([ImageRef("eval.record", 0, "c")], [0b111], [b"z"])
>>> f = train_eval_leak(train, other)
>>> f.id, f.severity, f.evidence["near_pairs"], f.evidence["pairs"]["rows"][0][:2]
('train_eval_leak', 'error', 1, ['near', 3])
>>> train_eval_leak(train, ImageHashes()) is None
True
"""

from __future__ import annotations

from typing import Any

from tfod_tools.data.dedup import (
    DEFAULT_MAX_DISTANCE,
    ImageHashes,
    calibrated_distance,
    find_leaks,
    hash_records,
)
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, Severity, table

__all__ = ["PAIR_COLUMNS", "duplicate_images", "train_eval_leak"]

MAX_ROWS = 50
"""Pairs listed in the evidence (all are counted)."""
PAIR_COLUMNS = [
    "kind",
    "distance",
    "train file",
    "train index",
    "train source_id",
    "eval file",
    "eval index",
    "eval source_id",
]
"""Columns of the ``pairs`` evidence table (the HTML report draws each pair's thumbnails from them)."""


def _hashes(inputs: Any, role: str) -> ImageHashes:
    report = inputs.inspections.get(role)
    found = None if report is None else getattr(report, "hashes", None)
    if found is not None:
        return found
    return hash_records(getattr(inputs, f"{role}_records"))


@finding_rule(
    135,
    needs=("train_set", "eval_set"),
    call=lambda fn, d: fn(_hashes(d, "train"), _hashes(d, "eval")),
)
def train_eval_leak(
    train: ImageHashes, other: ImageHashes, max_distance: int | None = None
) -> Finding | None:
    """The same image in train and eval (identical bytes, or re-encoded / resized / cropped: perceptual
    hash within the threshold): eval then measures memory, not generalisation."""
    p1: float | None = None
    confirm = False
    if max_distance is None:  # the default, confirmed by a finer hash where the images look alike
        max_distance, p1, confirm = calibrated_distance(train, other)
    pairs = find_leaks(train, other, max_distance, confirm)
    if not pairs:
        return None
    exact = sum(p.exact for p in pairs)
    near = len(pairs) - exact
    leaked = len({(p.b.file, p.b.index) for p in pairs})
    share = leaked / max(len(other), 1)
    rows = [
        [
            "exact" if p.exact else "near",
            p.distance,
            p.a.file,
            p.a.index,
            p.a.source_id,
            p.b.file,
            p.b.index,
            p.b.source_id,
        ]
        for p in pairs[:MAX_ROWS]
    ]
    message = (
        f"{leaked} of {len(other)} eval images ({share:.1%}) also appear in train: {exact} identical "
        f"pair(s), {near} near-duplicate pair(s) (pHash Hamming distance <= {max_distance} of 64 bits). "
        "The model has seen these images, so eval metrics on them are inflated"
    )
    fix = (
        "Split again so that copies and related images (same patient, scene or source) stay in one split: "
        "`tfod split --group-by source_id_regex:...|filename_regex:...|csv:FILE`; or drop the listed eval "
        "images. Check the split with `tfod inspect TRAIN --against EVAL`."
    )
    severity: Severity = "error" if exact or share >= 0.05 else "warning"
    evidence: dict[str, Any] = {
        "eval_images_leaked": leaked,
        "eval_images": len(other),
        "exact_pairs": exact,
        "near_pairs": near,
        "max_distance": max_distance,
        "default_max_distance": DEFAULT_MAX_DISTANCE,
        "unrelated_pair_distance_p1": p1,
        "fine_hash_confirmed": confirm,
        "pairs": table(PAIR_COLUMNS, rows),
    }
    return Finding("train_eval_leak", severity, message, evidence, fix)


@finding_rule(
    136,
    call=lambda fn, d: [
        fn(r.duplicates, role=k) for k, r in d.inspections.items() if getattr(r, "duplicates", None)
    ],
)
def duplicate_images(duplicates: dict[str, Any], *, role: str) -> Finding | None:
    """Exact or near duplicate images within one record set (``tfod inspect``'s ``duplicate_images``):
    copies weigh their image more in training, or in the eval metrics.

    >>> found = {"exact_pairs": 1, "near_pairs": 0, "max_distance": 10, "images_hashed": 5, "near": [],
    ...          "exact": [{"a": {"file": "t.record", "index": 0, "source_id": "a"},
    ...                     "b": {"file": "t.record", "index": 3, "source_id": "b"}, "distance": 0}]}
    >>> f = duplicate_images(found, role="eval")
    >>> f.id, f.severity, f.evidence["pairs"]["rows"]
    ('duplicate_images', 'info', [['exact', 0, 't.record', 0, 'a', 't.record', 3, 'b']])
    """
    exact, near = int(duplicates["exact_pairs"]), int(duplicates["near_pairs"])
    if not exact and not near:
        return None
    rows = [
        [
            kind,
            p["distance"],
            p["a"]["file"],
            p["a"]["index"],
            p["a"]["source_id"],
            p["b"]["file"],
            p["b"]["index"],
            p["b"]["source_id"],
        ]
        for kind in ("exact", "near")
        for p in duplicates[kind]
    ]
    message = (
        f"the {role} records hold {exact} identical and {near} near-duplicate image pair(s) among "
        f"{duplicates['images_hashed']} images: each copy counts its image again"
        + (" in the eval metrics" if role == "eval" else " in training")
    )
    fix = (
        "Remove the copies unless they are meant as oversampling (`tfod balance` writes its own); "
        f"list them with `tfod inspect` on the {role} records."
    )
    evidence: dict[str, Any] = {
        "role": role,
        "exact_pairs": exact,
        "near_pairs": near,
        "max_distance": duplicates["max_distance"],
        "pairs": table(
            ["kind", "distance", "file", "index", "source_id", "copy index", "copy source_id"], rows
        ),
    }
    return Finding("duplicate_images", "info", message, evidence, fix)
