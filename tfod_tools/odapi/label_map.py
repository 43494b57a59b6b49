"""``label_map.pbtxt`` files of the TF OD API, read and written without TensorFlow or protobuf.

The format is protobuf text format of ``StringIntLabelMap``::

    # comments are allowed
    item {
      id: 1
      name: 'opacity'            # single or double quotes
      display_name: "Opacity"
    }

Other item fields (``keypoints``, ``frequency``, ...) are accepted and ignored. Validation: every item
has an ``id`` >= 1 and a ``name`` (or ``display_name``); ids are unique, and names too unless
each duplicate has a display name (as the API's ``mscoco_label_map.pbtxt``). Errors are
:class:`~tfod_tools.errors.TfodError` naming the file and line.

>>> text = "item { id: 2 name: 'b' }  # second\\n"
>>> text += "item { name: 'a' id: 1 display_name: \\"A\\" }"
>>> lm = parse_label_map(text)
>>> lm.categories()
{1: 'a', 2: 'b'}
>>> lm.categories(use_display_name=True)
{1: 'A', 2: 'b'}
>>> lm.id_of("b"), lm.name_of(1)
(2, 'a')
>>> print(LabelMap.from_names(["square"]).to_pbtxt(), end="")
item {
  id: 1
  name: 'square'
}
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfod_tools.errors import TfodError
from tfod_tools.fsutil import write_text_atomic

__all__ = [
    "LabelMap",
    "LabelMapItem",
    "as_label_map",
    "parse_label_map",
    "read_label_map",
    "write_label_map",
]


@dataclass(frozen=True)
class LabelMapItem:
    """One class: its id (>= 1), name and optional display name."""

    id: int
    name: str
    display_name: str | None = None


@dataclass(frozen=True)
class LabelMap:
    """The classes of a data set, sorted by id."""

    items: tuple[LabelMapItem, ...]
    path: str | None = None

    @classmethod
    def from_names(cls, names: Sequence[str]) -> LabelMap:
        """Ids 1..N for ``names`` in order.

        >>> LabelMap.from_names(["x", "y"]).categories()
        {1: 'x', 2: 'y'}
        """
        return cls.from_mapping({i: name for i, name in enumerate(names, start=1)})

    @classmethod
    def from_mapping(cls, categories: Mapping[int, str], path: str | None = None) -> LabelMap:
        """From ``{id: name}``; validated like a parsed file."""
        items = tuple(LabelMapItem(int(i), str(n)) for i, n in sorted(categories.items()))
        _validate(items, path, lines=None)
        return cls(items, path)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[LabelMapItem]:
        return iter(self.items)

    def categories(self, use_display_name: bool = False) -> dict[int, str]:
        """``{id: name}`` (or display names, falling back to names)."""
        if use_display_name:
            return {item.id: item.display_name or item.name for item in self.items}
        return {item.id: item.name for item in self.items}

    def id_of(self, name: str) -> int:
        """The id of a class name (or display name); :class:`TfodError` if unknown."""
        for item in self.items:
            if name in (item.name, item.display_name):
                return item.id
        raise TfodError(
            f"class {name!r} is not in the label map (classes: {', '.join(self.names)})",
            path=self.path,
            fix="add the class to the label map or fix the class name",
        )

    def name_of(self, class_id: int) -> str:
        """The name of a class id; :class:`TfodError` if unknown."""
        for item in self.items:
            if item.id == class_id:
                return item.name
        raise TfodError(f"class id {class_id} is not in the label map", path=self.path)

    @property
    def names(self) -> list[str]:
        """Class names in id order."""
        return [item.name for item in self.items]

    @property
    def ids(self) -> list[int]:
        """Class ids in order."""
        return [item.id for item in self.items]

    def to_pbtxt(self) -> str:
        """The label map as ``label_map.pbtxt`` text (single-quoted strings)."""
        blocks = []
        for item in self.items:
            lines = [f"  id: {item.id}", f"  name: {_quote(item.name)}"]
            if item.display_name is not None:
                lines.append(f"  display_name: {_quote(item.display_name)}")
            blocks.append("item {\n" + "\n".join(lines) + "\n}\n")
        return "".join(blocks)


def _quote(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n,;]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<punct>[{}<>:\[\]])
  | (?P<word>[A-Za-z0-9_.+\-]+)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "'": 39, '"': 34, "\\": 92, "?": 63}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", re.DOTALL)


def _unquote(token: str) -> str:
    """Undo protobuf text-format string escapes (``\\n``, ``\\'``, ``\\xHH``, octal ``\\ooo``)."""
    out = bytearray()
    pos = 0
    body = token[1:-1]
    for match in _ESCAPE.finditer(body):
        out += body[pos : match.start()].encode("utf-8")
        code = match.group(1)
        if code[0] == "x" and len(code) > 1:
            out.append(int(code[1:], 16))
        elif code[0] in "01234567":
            out.append(int(code, 8) & 0xFF)
        elif code in _ESCAPES:
            out.append(_ESCAPES[code])
        else:
            out += code.encode("utf-8")
        pos = match.end()
    out += body[pos:].encode("utf-8")
    return out.decode("utf-8", errors="replace")


def _tokens(text: str, path: str | None) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TfodError(
                f"line {line}: unexpected character {text[pos]!r}", path=path, fix="fix the label map syntax"
            )
        kind = match.lastgroup or ""
        value = match.group()
        if kind not in ("ws", "comment"):
            out.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str, path: str | None) -> None:
        self.path = path
        self.toks = _tokens(text, path)
        self.i = 0

    def error(self, message: str, line: int | None = None) -> TfodError:
        if line is None:
            line = self.toks[self.i][2] if self.i < len(self.toks) else (self.toks[-1][2] if self.toks else 1)
        return TfodError(f"line {line}: {message}", path=self.path, fix="fix the label map syntax")

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of file")
        self.i += 1
        return tok

    def block_end(self, opener: str) -> str:
        return "}" if opener == "{" else ">"

    def parse_fields(self, closer: str | None) -> list[tuple[str, object, int]]:
        """Parse ``name: value`` / ``name { ... }`` pairs until ``closer`` (or EOF at top level)."""
        fields: list[tuple[str, object, int]] = []
        while True:
            tok = self.peek()
            if tok is None:
                if closer is not None:
                    raise self.error(f"missing '{closer}'")
                return fields
            if tok[0] == "punct" and tok[1] == closer:
                self.i += 1
                return fields
            kind, name, line = self.take()
            if kind != "word":
                raise self.error(f"expected a field name, got {name!r}", line)
            nxt = self.peek()
            if nxt is not None and nxt[1] == ":":
                self.i += 1
                nxt = self.peek()
            if nxt is not None and nxt[1] in ("{", "<"):
                self.i += 1
                fields.append((name, self.parse_fields(self.block_end(nxt[1])), line))
            elif nxt is not None and nxt[1] == "[":
                self.i += 1
                values: list[str] = []
                while (t := self.take())[1] != "]":
                    values.append(t[1])
                fields.append((name, values, line))
            else:
                vkind, value, vline = self.take()
                if vkind == "string":
                    fields.append((name, _unquote(value), vline))
                elif vkind == "word":
                    fields.append((name, value, vline))
                else:
                    raise self.error(f"expected a value for {name!r}, got {value!r}", vline)


def parse_label_map(text: str, path: str | Path | None = None) -> LabelMap:
    """Parse label map text; :class:`TfodError` naming ``path`` and the line on bad input.

    >>> parse_label_map("item { id: 0 name: 'bg' }", path="lm.pbtxt")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: lm.pbtxt: line 1: item 'bg' has id 0; ids start at 1 (fix: ...)
    """
    source = None if path is None else str(path)
    parser = _Parser(text, source)
    items: list[LabelMapItem] = []
    lines: list[int] = []
    for name, value, line in parser.parse_fields(None):
        if name != "item":
            raise TfodError(
                f"line {line}: unexpected top-level field {name!r}",
                path=source,
                fix="a label map is a list of item { id: N name: '...' } blocks",
            )
        if not isinstance(value, list) or (value and not isinstance(value[0], tuple)):
            raise TfodError(f"line {line}: 'item' must be a {{...}} block", path=source)
        item_fields = {field: v for field, v, _ in value}
        raw_id = item_fields.get("id")
        item_name = item_fields.get("name", item_fields.get("display_name"))
        display = item_fields.get("display_name")
        if raw_id is None:
            raise TfodError(f"line {line}: item without an id", path=source, fix="give every item an id: N")
        if not isinstance(raw_id, str) or not re.fullmatch(r"[+-]?\d+", raw_id):
            raise TfodError(f"line {line}: item id {raw_id!r} is not an integer", path=source)
        if not isinstance(item_name, str) or not item_name:
            raise TfodError(
                f"line {line}: item without a name", path=source, fix="give every item name: '...'"
            )
        items.append(LabelMapItem(int(raw_id), item_name, display if isinstance(display, str) else None))
        lines.append(line)
    _validate(tuple(items), source, lines)
    order = sorted(range(len(items)), key=lambda k: items[k].id)
    return LabelMap(tuple(items[k] for k in order), source)


def _validate(items: tuple[LabelMapItem, ...], path: str | None, lines: list[int] | None) -> None:
    def where(k: int) -> str:
        return "" if lines is None else f"line {lines[k]}: "

    if not items:
        raise TfodError("the label map has no items", path=path, fix="add item { id: 1 name: '...' } blocks")
    seen_ids: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    for k, item in enumerate(items):
        if item.id < 1:
            raise TfodError(
                f"{where(k)}item {item.name!r} has id {item.id}; ids start at 1",
                path=path,
                fix="number classes from 1 (0 is the background)",
            )
        if item.id in seen_ids:
            raise TfodError(
                f"{where(k)}duplicate id {item.id} ({items[seen_ids[item.id]].name!r} and {item.name!r})",
                path=path,
                fix="give every class its own id",
            )
        # The API's own mscoco_label_map.pbtxt repeats name "NA" under distinct display names.
        if item.name in seen_names and not (item.display_name and items[seen_names[item.name]].display_name):
            raise TfodError(
                f"{where(k)}duplicate name {item.name!r}", path=path, fix="give every class its own name"
            )
        seen_ids[item.id] = k
        seen_names[item.name] = k


def read_label_map(path: str | Path) -> LabelMap:
    """Read and validate a ``label_map.pbtxt`` file."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise TfodError("label map not found", path=file, fix="check the path") from None
    except UnicodeDecodeError:
        raise TfodError("label map is not UTF-8 text", path=file) from None
    return parse_label_map(text, file)


def as_label_map(value: LabelMap | Mapping[int, str] | Sequence[str] | str | Path) -> LabelMap:
    """Accept a :class:`LabelMap`, ``{id: name}``, a list of names (ids 1..N) or a file path."""
    if isinstance(value, LabelMap):
        return value
    if isinstance(value, (str, Path)):
        return read_label_map(value)
    if isinstance(value, Mapping):
        return LabelMap.from_mapping(value)
    return LabelMap.from_names(list(value))


def write_label_map(path: str | Path, label_map: LabelMap | Mapping[int, str] | Sequence[str]) -> Path:
    """Write a ``label_map.pbtxt`` atomically and return its path.

    >>> import tempfile, pathlib
    >>> p = write_label_map(pathlib.Path(tempfile.mkdtemp()) / "lm.pbtxt", {1: "it's"})
    >>> read_label_map(p).categories()
    {1: "it's"}
    """
    lm = label_map if isinstance(label_map, LabelMap) else as_label_map(label_map)
    return write_text_atomic(path, lm.to_pbtxt())
