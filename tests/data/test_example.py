"""tf.train.Example wire format: round trips and cross-checks against TensorFlow's protobuf.

The pure-Python parser is checked against protobuf's own compiled parser (upb, what
``decode_example`` uses; TensorFlow's C++ parser reads the wire format the same way): on valid
examples, on unknown fields, on repeated fields protobuf merges, and on garbage, where both must
give the same verdict. The hand-picked cases below are inputs on which they once disagreed.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tfod_tools.data.example import (
    ExampleDecodeError,
    Feature,
    bytes_feature,
    decode_example,
    decode_example_pure,
    encode_example,
    float_feature,
    int64_feature,
    to_python,
)

_floats = st.floats(width=32, allow_nan=False)
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_feature = st.one_of(
    st.lists(st.binary(max_size=40), max_size=5).map(bytes_feature),
    st.lists(_floats, max_size=8).map(float_feature),
    st.lists(_ints, max_size=8).map(int64_feature),
)
_features = st.dictionaries(st.text(min_size=1, max_size=20), _feature, max_size=6)


@settings(max_examples=150, deadline=None)
@given(_features)
def test_round_trip(features: dict[str, Feature]) -> None:
    decoded = decode_example(encode_example(features))
    assert decoded == features
    assert all(decoded[k].kind == f.kind for k, f in features.items())


def test_encoding_is_deterministic_and_order_free() -> None:
    a = {"b": int64_feature([1]), "a": float_feature([0.5])}
    b = {"a": float_feature([0.5]), "b": int64_feature([1])}
    assert encode_example(a) == encode_example(b)


def test_unpacked_and_empty_forms_decode() -> None:
    # Example{features{feature{key:"n" value{int64_list{value:5 value:-1 (unpacked)}}}}}
    varint_neg1 = b"\xff" * 9 + b"\x01"
    int_list = b"\x08\x05" + b"\x08" + varint_neg1
    feature = b"\x1a" + bytes([len(int_list)]) + int_list
    entry = b"\x0a\x01n" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    example = b"\x0a" + bytes([len(features)]) + features
    assert to_python(decode_example(example)) == {"n": [5, -1]}
    # Unpacked float (wire type 5) and an empty Feature with no kind.
    float_list = b"\x0d" + np.float32(2.5).tobytes()
    feature = b"\x12" + bytes([len(float_list)]) + float_list
    entry = b"\x0a\x01f" + b"\x12" + bytes([len(feature)]) + feature + b""
    empty_entry = b"\x0a\x01e\x12\x00"
    features = b"\x0a" + bytes([len(entry)]) + entry + b"\x0a" + bytes([len(empty_entry)]) + empty_entry
    example = b"\x0a" + bytes([len(features)]) + features
    decoded = decode_example(example)
    assert decoded["f"].values.tolist() == [2.5]
    assert len(decoded["e"]) == 0


_DECODERS = [decode_example, decode_example_pure]


@pytest.mark.parametrize("decode", _DECODERS, ids=["default", "pure"])
@pytest.mark.parametrize(
    "data", [b"\x0a\x05ab", b"\x0a\x80", b"\x0f", b"\x0a\x03\x0a\x09x", b"\x0a\x04\x0a\x02\x0a\x80"]
)
def test_malformed_bytes_raise(decode, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExampleDecodeError):
        decode(data)


def test_the_compiled_parser_is_used_where_installed() -> None:
    from google.protobuf.internal import api_implementation

    from tfod_tools.data.example import compiled_decoder

    assert (compiled_decoder() is not None) == (api_implementation.Type() in ("upb", "cpp"))


_wire_noise = st.lists(
    st.tuples(st.integers(1, 5), st.sampled_from([0, 1, 2, 5]), st.binary(max_size=12)), max_size=3
)


def _unknown_fields(noise: list[tuple[int, int, bytes]]) -> bytes:
    """Fields a parser must skip: numbers the Example does not use, every wire type."""
    out = b""
    for number, wire, payload in noise:
        key = bytes([((number + 10) << 3) | wire])
        if wire == 0:
            out += key + b"\x05"
        elif wire == 1:
            out += key + payload.ljust(8, b"\0")[:8]
        elif wire == 5:
            out += key + payload.ljust(4, b"\0")[:4]
        else:
            out += key + bytes([len(payload)]) + payload
    return out


def _canonical(features: dict[str, Feature]) -> dict[str, tuple[str, object]]:
    """Features by kind and exact values (float bits compared, so NaN equals NaN)."""
    return {
        key: (f.kind, list(f.values) if f.kind == "bytes" else np.asarray(f.values).tobytes())
        for key, f in features.items()
    }


def _outcomes(data: bytes) -> list[object]:
    """What each decoder makes of ``data``: its features, or ``"error"``."""
    outcomes: list[object] = []
    for decode in _DECODERS:
        try:
            outcomes.append(_canonical(decode(data)))
        except ExampleDecodeError:
            outcomes.append("error")
    return outcomes


def _field(number: int, payload: bytes) -> bytes:
    assert number < 16 and len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


def _example(*entries: bytes) -> bytes:
    return _field(1, b"".join(_field(1, entry) for entry in entries))


_LENGTH_IN_6 = b"\x12\x80\x80\x80\x80\x80\x00"  # field 2, a zero length written in 6 bytes
_PROTOBUF_MAJOR = int(importlib.metadata.version("protobuf").split(".")[0])

_FLOAT_1 = _field(2, _field(1, np.float32(1.0).tobytes()))  # Feature{float_list{value: 1.0}}
_FLOAT_2 = _field(2, _field(1, np.float32(2.0).tobytes()))
_BYTES_X = _field(1, _field(1, b"x"))  # Feature{bytes_list{value: "x"}}
_BYTES_Y = _field(1, _field(1, b"y"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # A field key is a 32-bit varint. 80 80 80 80 10 is 2**32: field 2**29, one past the largest
        # field number (2**29 - 1), wire type 0; protobuf refuses it (the pure parser skipped it).
        pytest.param(b"\x80\x80\x80\x80\x10\x00", "error", id="key-2**32"),
        pytest.param(b"\xf8\xff\xff\xff\x0f\x00", {}, id="largest-field-number"),  # an unknown field
        pytest.param(b"\x90\x80\x80\x80\x80\x00\x00", "error", id="key-in-6-bytes"),
        pytest.param(b"\x90\x80\x80\x80\x00\x00", {}, id="key-in-5-bytes"),
        # A length varint is at most 5 bytes: the pure parser and protobuf >= 7 refuse a 6th; protobuf 6's
        # upb still reads this overlong zero length (checked apart below).
        pytest.param(_LENGTH_IN_6, "error", id="length-in-6-bytes"),
        pytest.param(b"\x0b\x80\x80\x80\x80\x10\x00\x0c", "error", id="key-2**32-in-a-group"),
        pytest.param(b"\x00\x00", "error", id="field-number-0"),
        # A value varint's bits above 64 are dropped: 10 bytes ending in 0x7f are -1 in an int64 list.
        pytest.param(
            _example(_field(1, b"n") + _field(2, _field(3, b"\x08" + b"\xff" * 9 + b"\x7f"))),
            {"n": ("int64", np.array([-1], np.int64).tobytes())},
            id="varint-bits-above-64",
        ),
        # A message field seen twice is merged: the values of both float lists, of both Features.
        pytest.param(
            _example(_field(1, b"f") + _field(2, _FLOAT_1 + _FLOAT_2)),
            {"f": ("float", np.float32([1, 2]).tobytes())},
            id="float-list-twice",
        ),
        pytest.param(
            _example(_field(1, b"f") + _field(2, _FLOAT_1) + _field(2, _FLOAT_2)),
            {"f": ("float", np.float32([1, 2]).tobytes())},
            id="feature-twice",
        ),
        # Another member of the oneof replaces the current one; the same one again is merged.
        pytest.param(
            _example(_field(1, b"b") + _field(2, _BYTES_X + _FLOAT_1 + _BYTES_Y)),
            {"b": ("bytes", [b"y"])},
            id="oneof-replaced",
        ),
        pytest.param(
            _example(_field(1, b"b") + _field(2, _BYTES_X + _BYTES_Y)),
            {"b": ("bytes", [b"x", b"y"])},
            id="bytes-list-twice",
        ),
        pytest.param(_example(_field(1, b"\x80") + _field(1, b"k")), "error", id="earlier-key-not-utf8"),
    ],
)
def test_edge_cases_decode_as_protobuf_decodes_them(data: bytes, expected: object) -> None:
    if data == _LENGTH_IN_6 and _PROTOBUF_MAJOR < 7:
        assert _outcomes(data) == [{}, expected]  # protobuf 6 (Apache Beam bounds it < 7) accepts it
        return
    assert _outcomes(data) == [expected, expected]
    from google.protobuf.internal import api_implementation

    if api_implementation.Type() in ("upb", "cpp"):  # protobuf's own parser, directly
        from google.protobuf.message import DecodeError

        from tfod_tools.data.example import _message_class

        try:
            _message_class().FromString(data)
            verdict = "parsed"
        except DecodeError:
            verdict = "error"
        assert verdict == ("error" if expected == "error" else "parsed")


@pytest.mark.parametrize(
    "data", [b"\x0b\x0c", b"\x08\x01\x0b\x10\x01\x0c", b"\x0b\x13\x14\x0c", b"\x0b", b"\x0c", b"\x0b\x14"]
)
def test_groups_are_skipped_or_refused_alike(data: bytes) -> None:
    outcomes = _outcomes(data)
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=None)
@given(_features, _wire_noise, st.binary(max_size=30))
@example(features={}, noise=[], garbage=b"\x80\x80\x80\x80\x10\x00")  # a key over 32 bits (issue 14)
def test_compiled_and_pure_parsers_agree(
    features: dict[str, Feature], noise: list[tuple[int, int, bytes]], garbage: bytes
) -> None:
    """Same features from both parsers, with unknown fields mixed in; same verdict on garbage."""
    data = _unknown_fields(noise) + encode_example(features) + _unknown_fields(noise)
    assert decode_example(data) == decode_example_pure(data) == features
    outcomes = _outcomes(garbage)
    assert outcomes[0] == outcomes[1]


def _member(kind: int, values: list[bytes]) -> bytes:
    """One Feature oneof member (1 bytes, 2 float, 3 int64 list) holding ``values`` unpacked."""
    tag = {1: b"\x0a", 2: b"\x0d", 3: b"\x08"}[kind]
    if kind == 1:
        return _field(1, b"".join(_field(1, v) for v in values))
    items = [v.ljust(4, b"\0")[:4] if kind == 2 else bytes([v[0] & 0x7F]) if v else b"\x00" for v in values]
    return _field(kind, b"".join(tag + item for item in items))


_members = st.lists(
    st.tuples(st.integers(1, 3), st.lists(st.binary(max_size=4), max_size=2)).map(lambda t: _member(*t)),
    max_size=3,
)
_entry_parts = st.lists(
    st.one_of(
        st.sampled_from([b"a", b"b", b"\xff"]).map(lambda k: _field(1, k)),
        _members.map(lambda ms: _field(2, b"".join(ms))),
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_entry_parts.map(b"".join), max_size=3))
def test_parsers_agree_on_repeated_keys_values_and_oneof_members(entries: list[bytes]) -> None:
    """Entries with repeated keys (some not UTF-8), repeated values, several oneof members."""
    outcomes = _outcomes(_example(*entries))
    assert outcomes[0] == outcomes[1]


@pytest.fixture(scope="module")
def tf():  # type: ignore[no-untyped-def]
    try:
        from tfod_tools.odapi import compat

        compat.install()
    except ImportError:
        pass
    return pytest.importorskip("tensorflow")


@settings(max_examples=40, deadline=None)
@given(_features)
def test_tensorflow_parses_ours_and_we_parse_tensorflows(tf, features: dict[str, Feature]) -> None:  # type: ignore[no-untyped-def]
    parsed = tf.train.Example.FromString(encode_example(features))
    for key, feature in features.items():
        proto = parsed.features.feature[key]
        if feature.kind == "bytes":
            assert list(proto.bytes_list.value) == feature.values
        elif feature.kind == "float":
            assert proto.WhichOneof("kind") == "float_list"
            np.testing.assert_array_equal(np.asarray(proto.float_list.value, np.float32), feature.values)
        else:
            assert proto.WhichOneof("kind") == "int64_list"
            assert list(proto.int64_list.value) == feature.values.tolist()
    assert decode_example(parsed.SerializeToString()) == features
