"""The old-style ``*_pb2`` import hook, on the real sdist module and on generated fixtures."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from google.protobuf import descriptor_pb2

from tfod_tools.odapi.compat import protos

REAL_MODULE = "object_detection.protos.string_int_label_map_pb2"


def _run(code: str, *, cwd: Path | None = None, env_extra: dict[str, str] | None = None) -> str:
    import os

    env = dict(os.environ, **(env_extra or {}))
    if cwd is not None:
        env["PYTHONPATH"] = str(cwd)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_sdist_module_is_old_style_and_refused_without_the_hook() -> None:
    assert protos.module_style(REAL_MODULE) == "old"
    out = _run(
        f"""
        try:
            import {REAL_MODULE}
        except TypeError as exc:
            print("refused:", "Descriptors cannot be created directly" in str(exc))
        else:
            print("imported")
        """
    )
    expected = "refused: True" if protos.protobuf_refuses_old_style() else "imported"
    assert out == expected


def test_sdist_module_imports_with_the_hook_and_keeps_its_descriptor() -> None:
    out = _run(
        f"""
        import sys
        from pathlib import Path
        from google.protobuf import text_format
        from tfod_tools.odapi.compat import protos
        finder = protos.install_proto_finder()
        from object_detection.protos import pipeline_pb2
        from {REAL_MODULE.rsplit(".", 1)[0]} import string_int_label_map_pb2 as m
        source = Path(m.__file__).read_text()
        assert m.DESCRIPTOR.serialized_pb == protos.extract_serialized_pb(source)
        text = "item {{ id: 1 name: 'cat' }} item {{ id: 2 name: 'dog' }}"
        lm = text_format.Parse(text, m.StringIntLabelMap())
        print([(i.id, i.name) for i in lm.item], m.LVISFrequency.Name(m.FREQUENT))
        # dependencies were imported first and modernized too
        print("{REAL_MODULE}" in finder.modernized, "object_detection.protos.model_pb2" in finder.modernized)
        config = pipeline_pb2.TrainEvalPipelineConfig()
        config.model.ssd.num_classes = 3
        print(type(config).FromString(config.SerializeToString()).model.ssd.num_classes)
        print("tensorflow" in sys.modules)
        """
    )
    assert out.splitlines() == ["[(1, 'cat'), (2, 'dog')] FREQUENT", "True True", "3", "False"]


def _file_proto(name: str, package: str, message: str, dependency: str | None = None) -> bytes:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto2")
    msg = proto.message_type.add(name=message)
    msg.field.add(name="value", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32, label=1)
    if dependency is not None:
        proto.dependency.append(dependency)
        field = msg.field.add(
            name="base", number=2, label=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        )
        field.type_name = ".tfodfake.Base"
    return proto.SerializeToString()


def _write_package(root: Path, top: str) -> Path:
    pkg = root / top / "protos"
    pkg.mkdir(parents=True)
    (root / top / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    return pkg


def test_old_style_dependencies_are_imported_first(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, "tfodfake_old")
    base = _file_proto("tfodfake_old/protos/base.proto", "tfodfake", "Base")
    child = _file_proto(
        "tfodfake_old/protos/child.proto", "tfodfake", "Child", "tfodfake_old/protos/base.proto"
    )
    old = (
        "from google.protobuf import descriptor as _descriptor\n{imports}\n"
        "DESCRIPTOR = _descriptor.FileDescriptor(\n  name='x', serialized_pb={pb!r}\n)\n"
    )
    (pkg / "base_pb2.py").write_text(old.format(imports="", pb=base))
    (pkg / "child_pb2.py").write_text(
        old.format(
            imports="from tfodfake_old.protos import base_pb2 as tfodfake__old_dot_base__pb2", pb=child
        )
    )
    assert protos.proto_style((pkg / "child_pb2.py").read_text()) == "old"
    out = _run(
        """
        from tfod_tools.odapi.compat import protos
        finder = protos.install_proto_finder(("tfodfake_old",))
        from tfodfake_old.protos import child_pb2
        msg = child_pb2.Child(value=4)
        msg.base.value = 5
        print(finder.modernized, child_pb2.Child.FromString(msg.SerializeToString()).base.value)
        """,
        cwd=tmp_path,
    )
    assert out == "['tfodfake_old.protos.child_pb2', 'tfodfake_old.protos.base_pb2'] 5"


def test_modern_style_modules_are_left_alone(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, "tfodfake_modern")
    pb = _file_proto("tfodfake_modern/protos/m.proto", "tfodfake_modern", "Modern")
    (pkg / "m_pb2.py").write_text(
        "from google.protobuf import descriptor_pool as _descriptor_pool\n"
        "from google.protobuf.internal import builder as _builder\n"
        f"DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile({pb!r})\n"
        "_globals = globals()\n"
        "_builder.BuildMessageAndEnumDescriptors(DESCRIPTOR, _globals)\n"
        "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'tfodfake_modern.protos.m_pb2', _globals)\n"
    )
    out = _run(
        """
        from tfod_tools.odapi.compat import protos
        finder = protos.install_proto_finder(("tfodfake_modern",))
        from tfodfake_modern.protos import m_pb2
        style = protos.module_style("tfodfake_modern.protos.m_pb2")
        print(style, finder.modernized, m_pb2.Modern(value=2).value)
        """,
        cwd=tmp_path,
    )
    assert out == "modern [] 2"


def test_proto_fix_not_applied_with_the_pure_python_backend() -> None:
    out = _run(
        """
        import sys
        from tfod_tools.odapi import compat
        status = compat.install_protos()
        from object_detection.protos import pipeline_pb2
        print(status.applied, any(type(f).__name__ == "ProtoModuleFinder" for f in sys.meta_path))
        """,
        env_extra={"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"},
    )
    assert out == "False False"


def test_source_helpers() -> None:
    source = "from object_detection.protos import a_pb2 as x\nfrom google.protobuf import descriptor as d\n"
    assert protos.imported_pb2_modules(source) == ["object_detection.protos.a_pb2"]
    assert protos.proto_style("DESCRIPTOR = _descriptor.FileDescriptor(name='a', serialized_pb=b'')") == "old"
