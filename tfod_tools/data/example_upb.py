"""A fast ``tf.train.Example`` decoder on protobuf's compiled (upb / C++) parser, without TensorFlow.

The message types are declared here, in a private descriptor pool (so they never meet TensorFlow's
own ``tensorflow.Example`` in the default pool), with the same field numbers and types as
``tensorflow/core/example/{example,feature}.proto``. Parsing a 200 KB record takes microseconds
instead of the pure-Python parser's ~0.3 ms; results are identical (cross-checked in the tests).

:func:`decoder` returns ``None`` when protobuf is missing or only its pure-Python implementation is
installed (slower than :mod:`tfod_tools.data.example`'s own parser); callers then use that parser.

>>> decode = decoder()
>>> from tfod_tools.data.example import encode_example, int64_feature
>>> decode is None or decode(encode_example({"n": int64_feature([7])}))["n"].values.tolist() == [7]
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["decoder"]

_PACKAGE = "tfod_tools.wire"


def _message_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="tfod_tools/wire/example.proto", package=_PACKAGE)
    proto.syntax = "proto3"

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> descriptor_pb2.DescriptorProto:
        msg = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            field = msg.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
        return msg

    rep, opt = f.LABEL_REPEATED, f.LABEL_OPTIONAL
    message("BytesList", ("value", 1, rep, f.TYPE_BYTES, ""))
    message("FloatList", ("value", 1, rep, f.TYPE_FLOAT, ""))
    message("Int64List", ("value", 1, rep, f.TYPE_INT64, ""))
    feature = message(
        "Feature",
        ("bytes_list", 1, opt, f.TYPE_MESSAGE, "BytesList"),
        ("float_list", 2, opt, f.TYPE_MESSAGE, "FloatList"),
        ("int64_list", 3, opt, f.TYPE_MESSAGE, "Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message("Features", ("feature", 1, rep, f.TYPE_MESSAGE, "Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=opt, type=f.TYPE_STRING)
    entry.field.add(name="value", number=2, label=opt, type=f.TYPE_MESSAGE, type_name=f".{_PACKAGE}.Feature")
    message("Example", ("features", 1, opt, f.TYPE_MESSAGE, "Features"))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Example"))


@functools.cache
def decoder() -> Callable[[bytes], dict[str, Any]] | None:
    """``decode(data) -> {key: Feature}`` on the compiled parser, or ``None`` where there is none."""
    try:
        from google.protobuf.internal import api_implementation
        from google.protobuf.message import DecodeError
    except ImportError:
        return None
    if api_implementation.Type() not in ("upb", "cpp"):
        return None
    example_class = _message_class()

    from tfod_tools.data.example import ExampleDecodeError, Feature

    def decode(data: bytes) -> dict[str, Any]:
        try:
            example = example_class.FromString(data)
        except DecodeError as exc:
            raise ExampleDecodeError(f"not a tf.train.Example ({exc})") from None
        out: dict[str, Feature] = {}
        for key, value in example.features.feature.items():
            kind = value.WhichOneof("kind")
            if kind == "float_list":
                out[key] = Feature("float", np.array(value.float_list.value, dtype=np.float32))
            elif kind == "int64_list":
                out[key] = Feature("int64", np.array(value.int64_list.value, dtype=np.int64))
            else:  # bytes, or no kind set (an empty Feature: TF treats it as empty)
                out[key] = Feature("bytes", list(value.bytes_list.value))
        return out

    return decode
