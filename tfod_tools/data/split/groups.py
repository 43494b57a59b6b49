"""Which group each image belongs to (``tfod split --group-by``): a regex or a CSV, or one per image.

- ``source_id_regex:REGEX`` / ``filename_regex:REGEX``: :func:`re.search` on the record's
  ``image/source_id`` / ``image/filename``; the group is the first capturing group, or the whole
  match when the regex has none. A record it does not match is refused, by name.
- ``csv:FILE``: columns ``group`` and ``source_id`` (or, without it, ``filename``); every image needs
  a row, and a key may not be given two groups.

>>> keys = GroupKeys(parse_group_by(r"source_id_regex:^(patient[0-9]+)_"))
>>> keys.key(source_id="patient07_img3.png", filename="", file="x.record", index=0)
'patient07'
>>> keys.key(source_id="scan.png", filename="", file="x.record", index=4)
Traceback (most recent call last):
...
tfod_tools.errors.TfodError: x.record: record 4 (source_id 'scan.png'): --group-by source_id_regex \
'^(patient[0-9]+)_' does not match it (fix: change the regex so it matches every record's source_id)
>>> GroupKeys(None).key(source_id="a", filename="", file="x.record", index=2)
'x.record#2'
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError

__all__ = ["GROUP_KINDS", "GroupBy", "GroupKeys", "parse_group_by"]

GROUP_KINDS: tuple[str, ...] = ("source_id_regex", "filename_regex", "csv")
"""The ``--group-by`` kinds, written ``KIND:VALUE``."""


@dataclass(frozen=True)
class GroupBy:
    """A parsed ``--group-by``: its kind and its regex or CSV path."""

    kind: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "value": self.value}


def parse_group_by(text: str) -> GroupBy:
    """Parse ``KIND:VALUE`` (see the module doc); a bad kind or regex is a :class:`TfodError`.

    >>> parse_group_by("csv:groups.csv")
    GroupBy(kind='csv', value='groups.csv')
    >>> parse_group_by("site:x")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: --group-by 'site:x' is not KIND:VALUE with KIND one of source_id_regex, \
filename_regex, csv (fix: e.g. --group-by 'source_id_regex:^([^_]+)_' or --group-by csv:groups.csv)
    """
    kind, sep, value = text.partition(":")
    if not sep or kind not in GROUP_KINDS or not value:
        raise TfodError(
            f"--group-by {text!r} is not KIND:VALUE with KIND one of {', '.join(GROUP_KINDS)}",
            fix="e.g. --group-by 'source_id_regex:^([^_]+)_' or --group-by csv:groups.csv",
        )
    if kind != "csv":
        try:
            re.compile(value)
        except re.error as exc:
            raise TfodError(
                f"--group-by {kind} {value!r} is not a regular expression ({exc})",
                fix="fix the regex (Python re syntax)",
            ) from None
    return GroupBy(kind, value)


class GroupKeys:
    """Maps a record to its group key (one group per record when ``group_by`` is None)."""

    def __init__(self, group_by: GroupBy | None) -> None:
        self.group_by = group_by
        self._regex = None if group_by is None or group_by.kind == "csv" else re.compile(group_by.value)
        self._column = ""
        self._table: dict[str, str] = {}
        if group_by is not None and group_by.kind == "csv":
            self._column, self._table = _read_csv(Path(group_by.value))

    def key(self, *, source_id: str, filename: str, file: str | Path, index: int) -> str:
        """The group of record ``index`` of ``file``; refuses a record the grouping cannot place."""
        gb = self.group_by
        if gb is None:
            return f"{file}#{index}"
        field = "filename" if gb.kind == "filename_regex" or self._column == "filename" else "source_id"
        value = filename if field == "filename" else source_id
        where = f"record {index} ({field} {value!r})"
        if self._regex is not None:
            match = self._regex.search(value)
            if match is None:
                raise TfodError(
                    f"{where}: --group-by {gb.kind} {gb.value!r} does not match it",
                    path=file,
                    fix=f"change the regex so it matches every record's {field}",
                )
            captured = match.group(1) if self._regex.groups else None
            return match.group(0) if captured is None else captured
        if value not in self._table:
            raise TfodError(
                f"{where} of {file} has no row (column {field})",
                path=gb.value,
                fix=f"add a row with its {field} and group for every image",
            )
        return self._table[value]


def _read_csv(path: Path) -> tuple[str, dict[str, str]]:
    """The key column (``source_id`` or ``filename``) and ``{key: group}`` of a grouping CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TfodError(
            f"cannot read the grouping CSV ({exc})", path=path, fix="pass --group-by csv:FILE"
        ) from None
    column = "source_id" if "source_id" in header else "filename"
    if "group" not in header or column not in header:
        raise TfodError(
            f"the grouping CSV has columns {header}; it needs 'group' and 'source_id' or 'filename'",
            path=path,
            fix="write a header line: source_id,group (or filename,group)",
        )
    table: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        key, group = (row.get(column) or "").strip(), (row.get("group") or "").strip()
        if not key or not group:
            raise TfodError(f"line {line}: empty {column} or group", path=path, fix="fill in every row")
        if table.setdefault(key, group) != group:
            raise TfodError(
                f"line {line}: {column} {key!r} is in groups {table[key]!r} and {group!r}",
                path=path,
                fix="give every image one group",
            )
    return column, table
