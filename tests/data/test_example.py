"""tf.train.Example wire format: round trips and cross-checks against TensorFlow's protobuf."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
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

    from tfod_tools.data.example_upb import decoder

    assert (decoder() is not None) == (api_implementation.Type() in ("upb", "cpp"))


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


def _outcomes(data: bytes) -> list[object]:
    """What each decoder makes of ``data``: its features, or ``"error"``."""
    outcomes: list[object] = []
    for decode in _DECODERS:
        try:
            outcomes.append(decode(data))
        except ExampleDecodeError:
            outcomes.append("error")
    return outcomes


@pytest.mark.parametrize(
    "data", [b"\x0b\x0c", b"\x08\x01\x0b\x10\x01\x0c", b"\x0b\x13\x14\x0c", b"\x0b", b"\x0c", b"\x0b\x14"]
)
def test_groups_are_skipped_or_refused_alike(data: bytes) -> None:
    outcomes = _outcomes(data)
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=None)
@given(_features, _wire_noise, st.binary(max_size=30))
def test_compiled_and_pure_parsers_agree(
    features: dict[str, Feature], noise: list[tuple[int, int, bytes]], garbage: bytes
) -> None:
    """Same features from both parsers, with unknown fields mixed in; same verdict on garbage."""
    data = _unknown_fields(noise) + encode_example(features) + _unknown_fields(noise)
    assert decode_example(data) == decode_example_pure(data) == features
    outcomes = _outcomes(garbage)
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
