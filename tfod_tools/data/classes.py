"""The class of a box, as the TF OD API reads it from a record (one rule for inspect, diagnose, balance).

The API's ``TfExampleDecoder``, given a label map (every input reader has ``label_map_path``), reads
``groundtruth_classes`` through a ``BackupHandler``: the boxes' ``image/object/class/text`` looked
up in the label map, and only when a record has *no* class text at all the stored
``image/object/class/label``. The lookup is ``max(name -> id, display_name -> id)`` with ``-1`` for
a text found under neither, so:

- text present: the text decides, whatever the label says; a text the label map does not know is
  class ``-1`` (the API drops such boxes), even when a valid label is stored beside it;
- text absent: the label is the class;
- without a label map the decoder reads the labels only (texts are ignored).

One divergence on purpose: an *empty* text is ``-1`` here. In the API's display-name table every item
without a ``display_name`` sits under the key ``""`` (the proto default), so an empty text becomes the
last such item in file order: a silent accident, not a class anyone wrote.

>>> from tfod_tools.odapi.label_map import parse_label_map
>>> lm = parse_label_map("item { id: 1 name: '/m/01g317' display_name: 'person' } item { id: 2 name: 'dog' }")
>>> lookup = ClassLookup(lm)
>>> lookup.ids(["person", "dog", "cat"], [2, 2, 2])  # text wins; unknown text is -1
[1, 2, -1]
>>> lookup.ids([], [2, 1]), lookup.ids([], [], num_boxes=2)  # no text: the labels
([2, 1], [-1, -1])
>>> class_keys(["person"], [2]), class_keys([], [2])
(['person'], [2])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap

__all__ = ["UNKNOWN", "ClassKey", "ClassLookup", "category_names", "class_keys"]

ClassKey = int | str
"""What a box's class is read from: its class text (str) or, for records without texts, its label."""

UNKNOWN = -1
"""The class of a text the label map does not know (the API's lookup default)."""


def category_names(label_map: LabelMap) -> dict[int, str]:
    """``{id: name}`` as the API names categories: the ``display_name`` when an item has one.

    The API's evaluation builds its category index with ``create_category_index_from_labelmap``
    (``use_display_name=True``), so per-category metric tags and every per-class table use it.

    >>> from tfod_tools.odapi.label_map import parse_label_map
    >>> category_names(parse_label_map("item { id: 1 name: '/m/01g317' display_name: 'person' }"))
    {1: 'person'}
    """
    return label_map.categories(use_display_name=True)


def class_keys(class_text: Sequence[str], class_label: Sequence[int]) -> list[ClassKey]:
    """Each box's class key: its text when the record has texts, else its label (see the module doc)."""
    if class_text:
        return list(class_text)
    return [int(v) for v in class_label]


class ClassLookup:
    """A label map's text -> id lookup, as the API's decoder builds it (name and display name)."""

    def __init__(self, label_map: LabelMap) -> None:
        self.label_map = label_map
        self._by_name = {item.name: item.id for item in label_map}
        self._by_display = {item.display_name: item.id for item in label_map if item.display_name}

    def text_id(self, text: str) -> int:
        """The id of a class text (name or display name; the larger id when both match), or ``-1``."""
        return max(self._by_name.get(text, UNKNOWN), self._by_display.get(text, UNKNOWN))

    def resolve(self, key: ClassKey) -> int:
        """The id of a :func:`class_keys` key: a text looked up, a label as stored."""
        return self.text_id(key) if isinstance(key, str) else int(key)

    def ids(self, class_text: Sequence[str], class_label: Sequence[int], num_boxes: int = 0) -> list[int]:
        """Each box's class id; ``-1`` for an unknown text, and for every box when neither is stored."""
        keys = class_keys(class_text, class_label)
        if not keys:
            return [UNKNOWN] * num_boxes
        return [self.resolve(key) for key in keys]

    def checked_ids(
        self,
        class_text: Sequence[str],
        class_label: Sequence[int],
        num_boxes: int,
        *,
        file: str | Path,
        index: int,
    ) -> list[int]:
        """:meth:`ids`, refusing a box whose class is not in the label map (naming file and record).

        >>> from tfod_tools.odapi.label_map import LabelMap
        >>> ClassLookup(LabelMap.from_names(["cat"])).checked_ids(["bird"], [3], 1, file="x.record", index=0)
        Traceback (most recent call last):
        ...
        tfod_tools.errors.TfodError: x.record: record 0: class texts ['bird'] (labels [3]) are not in \
the label map (classes: cat) (fix: add the classes to the label map or fix the class texts)
        """
        ids = self.ids(class_text, class_label, num_boxes)
        known = set(self.label_map.ids)
        bad = [k for k, cid in enumerate(ids) if cid not in known]
        if not bad:
            return ids
        where = f"record {index}: "
        if class_text:
            texts = sorted({class_text[k] for k in bad})
            labels = f" (labels {sorted({class_label[k] for k in bad})})" if class_label else ""
            raise TfodError(
                f"{where}class texts {texts}{labels} are not in the label map "
                f"(classes: {', '.join(self.label_map.names)})",
                path=file,
                fix="add the classes to the label map or fix the class texts",
            )
        if class_label:
            raise TfodError(
                f"{where}class ids {sorted({ids[k] for k in bad})} are not in the label map",
                path=file,
                fix=f"use the label map these records were written with (it has ids {self.label_map.ids})",
            )
        raise TfodError(
            f"{where}boxes have neither class text nor class label",
            path=file,
            fix="store image/object/class/text (and/or label) for every box",
        )
