"""label_map.pbtxt parsing, validation and writing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import (
    LabelMap,
    LabelMapItem,
    as_label_map,
    parse_label_map,
    read_label_map,
    write_label_map,
)

API_STYLE = """
# A label map as the TF OD API ships them.
item {
  name: "/m/01g317"
  id: 1
  display_name: "person"
}
item <
  name: '/m/0199g'  # single quotes, angle brackets
  id: 2
  display_name: 'bicycle'
  keypoints { id: 0 label: "nose" }
  frequency: FREQUENT
>
item: { id: 3; name: "it\\'s \\"quoted\\"" ancestor_ids: [1, 2] }
"""


def test_parses_api_style_file(tmp_path: Path) -> None:
    path = tmp_path / "label_map.pbtxt"
    path.write_text(API_STYLE)
    lm = read_label_map(path)
    assert lm.items == (
        LabelMapItem(1, "/m/01g317", "person"),
        LabelMapItem(2, "/m/0199g", "bicycle"),
        LabelMapItem(3, 'it\'s "quoted"', None),
    )
    assert lm.categories(use_display_name=True) == {1: "person", 2: "bicycle", 3: 'it\'s "quoted"'}
    assert lm.id_of("bicycle") == 2 and lm.id_of("/m/0199g") == 2
    assert lm.path == str(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("item { id: 0 name: 'background' }", "id 0"),
        ("item { id: -1 name: 'x' }", "id -1"),
        ("item { id: 1 name: 'a' }\nitem { id: 1 name: 'b' }", "line 2: duplicate id 1"),
        ("item { id: 1 name: 'a' }\nitem { id: 2 name: 'a' }", "duplicate name"),
        ("item { id: 1 name: 'a' ", "missing '}'"),
        ("item { id: 1 name: 'unterminated }", "unexpected character"),
        ("item { name: 'a' }", "without an id"),
        ("item { id: one name: 'a' }", "not an integer"),
        ("item { id: 1 }", "without a name"),
        ("thing { id: 1 name: 'a' }", "unexpected top-level field"),
        ("", "no items"),
        ("# only a comment\n", "no items"),
        ("item { id: 1 name: 'a' } }", "expected a field name"),
    ],
)
def test_bad_label_maps_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(TfodError) as info:
        read_label_map(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert needle in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TfodError, match="not found"):
        read_label_map(tmp_path / "none.pbtxt")


_name = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.integers(1, 10_000), _name, min_size=1, max_size=8).filter(
        lambda d: len(set(d.values())) == len(d)
    )
)
def test_write_read_round_trip(tmp_path_factory: pytest.TempPathFactory, categories: dict[int, str]) -> None:
    path = write_label_map(tmp_path_factory.mktemp("lm") / "label_map.pbtxt", categories)
    assert read_label_map(path).categories() == dict(sorted(categories.items()))


def test_as_label_map_forms(tmp_path: Path) -> None:
    lm = LabelMap.from_names(["a", "b"])
    path = write_label_map(tmp_path / "lm.pbtxt", lm)
    assert as_label_map(path) == LabelMap(lm.items, str(path))
    assert as_label_map({1: "a", 2: "b"}).items == lm.items
    assert as_label_map(["a", "b"]).items == lm.items
    with pytest.raises(TfodError, match="not in the label map"):
        lm.id_of("c")
    with pytest.raises(TfodError, match="ids start at 1"):
        LabelMap.from_mapping({0: "bg"})


def test_object_detection_label_map_util_agrees(tmp_path: Path) -> None:
    """The TF OD API's own parser reads our output the same way."""
    pytest.importorskip("google.protobuf")
    try:
        from tfod_tools.odapi import compat

        compat.install_protos()
        from object_detection.utils import label_map_util
    except Exception as exc:  # pragma: no cover - environment without the API
        pytest.skip(f"object_detection not importable: {exc}")
    path = write_label_map(tmp_path / "lm.pbtxt", {1: "opacity", 2: "it's", 5: 'say "hi"'})
    assert label_map_util.get_label_map_dict(str(path)) == {"opacity": 1, "it's": 2, 'say "hi"': 5}
    api = tmp_path / "api.pbtxt"
    api.write_text(
        API_STYLE.replace('keypoints { id: 0 label: "nose" }', "").replace("frequency: FREQUENT", "")
    )
    ours = read_label_map(api).categories()
    assert label_map_util.get_label_map_dict(str(api)) == {v: k for k, v in ours.items()}


def test_parse_text_without_a_file() -> None:
    lm = parse_label_map("item{id:2 name:'b'} item{id:1 name:'a'}")
    assert lm.ids == [1, 2] and lm.names == ["a", "b"] and lm.path is None
    with pytest.raises(TfodError, match=r"^line 1: duplicate id 1"):
        parse_label_map("item{id:1 name:'a'} item{id:1 name:'b'}")
