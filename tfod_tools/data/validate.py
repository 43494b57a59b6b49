"""Issues in TF OD API records: stable ids, what each means for the API, and the fix.

:func:`tfod_tools.data.inspect.inspect_records` fills a :class:`RecordIssues` while it reads records;
other tools (``tfod diagnose``) reuse the ids and texts in :data:`ISSUE_CATALOG`. Each finding
keeps a count and up to ``max_examples`` examples (record file, record index, source id, detail).

>>> seen = RecordIssues()
>>> seen.add("label_zero", "train.record", 3, "img-3", "box 0 has label 0")
>>> seen.add("label_zero", "train.record", 9, "img-9", "box 2 has label 0")
>>> [(issue.id, issue.count) for issue in seen.issues()]
[('label_zero', 2)]
>>> seen.issues()[0].to_dict()["examples"][0]
{'file': 'train.record', 'index': 3, 'source_id': 'img-3', 'detail': 'box 0 has label 0'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ISSUE_CATALOG", "Example", "Issue", "RecordIssues"]

ISSUE_CATALOG: dict[str, tuple[str, str]] = {
    "undecodable_image": (
        "image/encoded is not an image the API can decode (JPEG, PNG or BMP), or it is truncated",
        "re-create the record from a good image file (tfod convert checks every image)",
    ),
    "size_mismatch": (
        "stored image/width, image/height differ from the encoded image's size",
        "re-create the record; boxes were probably normalised with the wrong size",
    ),
    "box_outside_image": (
        "normalised box coordinates outside [0, 1]",
        "clip boxes to the image (or fix boxes divided by the wrong size)",
    ),
    "degenerate_box": (
        "box with NaN/inf coordinates or zero width/height (the loss becomes NaN or the box is useless)",
        "drop or fix these boxes",
    ),
    "inverted_box": (
        "box with xmin > xmax or ymin > ymax (columns swapped?)",
        "store xmin <= xmax and ymin <= ymax (check the x/y and min/max column order)",
    ),
    "duplicate_box": (
        "two boxes of the same class with IoU > 0.9 in one image",
        "remove duplicated annotations",
    ),
    "class_text_mismatch": (
        "image/object/class/text and /label disagree; the API uses the text (looked up in the label map)",
        "write the label map id of each class text as its label",
    ),
    "unknown_label": (
        "class text or label not in the label map (the API turns an unknown text into class -1)",
        "add the class to the label map or fix the records' classes",
    ),
    "label_zero": (
        "class label 0 (background in the API; ids start at 1)",
        "use label map ids (1..N) as labels",
    ),
    "too_many_boxes": (
        "more boxes than max_number_of_boxes; the API silently drops the extra boxes",
        "raise max_number_of_boxes in train_config / eval_input_reader, or split the image",
    ),
    "duplicate_source_id": (
        "the same image/source_id in several records (COCO evaluation keys images by it)",
        "give every image a unique source id",
    ),
    "missing_source_id": (
        "empty image/source_id (COCO evaluation keys images by it)",
        "write a unique image/source_id per record",
    ),
    "num_classes_mismatch": (
        "the label map's largest id differs from the pipeline's num_classes",
        "set num_classes to the number of label map classes (ids 1..N)",
    ),
}
"""``id -> (what it means, how to fix it)`` for every finding."""


@dataclass(frozen=True)
class Example:
    """Where a finding was seen: record file, record index, source id, and a short detail."""

    file: str
    index: int
    source_id: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready example."""
        return {"file": self.file, "index": self.index, "source_id": self.source_id, "detail": self.detail}


@dataclass
class Issue:
    """One kind of finding: stable ``id``, how many times it occurred, examples, message and fix."""

    id: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)

    @property
    def message(self) -> str:
        """What the finding means."""
        return ISSUE_CATALOG[self.id][0]

    @property
    def fix(self) -> str:
        """How to fix it."""
        return ISSUE_CATALOG[self.id][1]

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "count", "message", "fix", "examples"}``."""
        return {
            "id": self.id,
            "count": self.count,
            "message": self.message,
            "fix": self.fix,
            "examples": [e.to_dict() for e in self.examples],
        }


class RecordIssues:
    """Collects the issues (:class:`Issue`) seen in records, in catalog order, with up to
    ``max_examples`` examples each (a diagnosis of a run is :class:`tfod_tools.diagnostics.model.Finding`)."""

    def __init__(self, max_examples: int = 5) -> None:
        self.max_examples = max_examples
        self._issues: dict[str, Issue] = {}

    def add(
        self, issue_id: str, file: str | Path, index: int, source_id: str, detail: str = "", count: int = 1
    ) -> None:
        """Count ``count`` occurrences of ``issue_id`` and keep the example while there is room."""
        if issue_id not in ISSUE_CATALOG:
            raise KeyError(f"unknown finding id {issue_id!r}")
        issue = self._issues.setdefault(issue_id, Issue(issue_id))
        issue.count += count
        if len(issue.examples) < self.max_examples:
            issue.examples.append(Example(str(file), int(index), source_id, detail))

    def issues(self) -> list[Issue]:
        """The issues seen, in :data:`ISSUE_CATALOG` order."""
        return [self._issues[key] for key in ISSUE_CATALOG if key in self._issues]
