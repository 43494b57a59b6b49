"""``tfod doctor``: JSON shape, ok here, failures exit 1, API source detection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.odapi import doctor
from tfod_tools.odapi import doctor_rules as rules
from tfod_tools.odapi import environment as env

REQUIRED = {
    "python",
    "tensorflow",
    "tf-keras",
    "legacy-keras switch",
    "protobuf",
    "object_detection",
    "tf-slim",
    "pillow",
    "tensorflow-io",
    "tf-models-official",
    "pycocotools",
    "albumentations",
    "keras",
    "gin-config",
    "pyyaml",
    "lvis",
    "scipy",
    "matplotlib",
    "six",
    "opencv",
    "object_detection import",
    "gpus",
}


def test_doctor_json_is_ok_here(run_tfod: Any) -> None:
    proc = run_tfod(["doctor", "--json"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert set(report) == {"ok", "checks", "versions"} and report["ok"] is True
    assert {c["name"] for c in report["checks"]} == REQUIRED
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "warn", "fail") and check["detail"]
        assert check["status"] == "ok" or check["fix"]
    # Nothing to fix here: every line is ok but the optional GPU one.
    assert all(c["status"] == "ok" or c["fix"].startswith("optional: ") for c in report["checks"])
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["object_detection import"]["status"] == "ok"
    assert report["versions"]["tensorflow"] == env.package_version("tensorflow")
    assert report["versions"]["protobuf"] == env.package_version("protobuf")
    assert report["versions"]["object_detection"] == env.locate_object_detection().version


@pytest.mark.slow
def test_doctor_keeps_tensorflows_output_in_its_log(tmp_path: Path) -> None:
    import re

    cpp_log = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ")  # TF's C++ logging
    environ = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    environ.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it: every C++ line printed
    runs = {}
    for flag in ([], ["--verbose"]):
        runs[bool(flag)] = subprocess.run(
            [sys.executable, "-m", "tfod_tools", "doctor", *flag],
            capture_output=True,
            text=True,
            env=environ,
            timeout=600,
            check=False,
        )
    quiet, verbose = runs[False], runs[True]
    assert quiet.returncode == 0 and verbose.returncode == 0, quiet.stderr[-2000:]
    log = tmp_path / "tfod_tools" / "doctor.log"
    assert f"TensorFlow's own output: {log}" in quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if cpp_log.match(line)], quiet.stderr
    assert [line for line in log.read_text().splitlines() if cpp_log.match(line)]
    assert [
        line for line in verbose.stderr.splitlines() if cpp_log.match(line)
    ]  # --verbose lets them through


def test_a_failed_check_makes_doctor_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_read = rules.read_installed
    monkeypatch.setattr(rules, "read_installed", lambda extra=(): {**real_read(extra), "pycocotools": None})
    monkeypatch.setattr(
        doctor, "check_api_import", lambda: doctor.Check("object_detection import", "ok", "stub")
    )
    monkeypatch.setattr(doctor, "check_gpus", lambda: doctor.Check("gpus", "ok", "stub"))
    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ok"] is False
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["pycocotools"] and failed[0]["fix"] == "pip install pycocotools"


def test_sdist_is_recognised() -> None:
    location = env.locate_object_detection()
    assert location.origin == "pypi-sdist" and location.proto_style == "old"
    check = doctor.check_protobuf(location)
    assert check.status == "ok" and "rebuilt in the modern form" in check.detail


def test_git_clone_with_modern_protos_is_recognised_and_left_alone(tmp_path: Path) -> None:
    research = tmp_path / "models" / "research"
    protos = research / "object_detection" / "protos"
    protos.mkdir(parents=True)
    (tmp_path / "models" / ".git").mkdir()
    (research / "object_detection" / "__init__.py").write_text("")
    (protos / "__init__.py").write_text("")
    from google.protobuf import descriptor_pb2

    pb = descriptor_pb2.FileDescriptorProto(name="object_detection/protos/tiny.proto", package="odclone")
    pb.message_type.add(name="Tiny")
    (protos / "tiny_pb2.py").write_text(
        "from google.protobuf import descriptor_pool as _descriptor_pool\n"
        "from google.protobuf.internal import builder as _builder\n"
        f"DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile({pb.SerializeToString()!r})\n"
        "_builder.BuildMessageAndEnumDescriptors(DESCRIPTOR, globals())\n"
        "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'object_detection.protos.tiny_pb2', globals())\n"
    )
    code = (
        "from tfod_tools.odapi import environment as env, compat\n"
        "from tfod_tools.odapi.compat import protos\n"
        "loc = env.locate_object_detection()\n"
        "compat.install_protos()\n"
        "from object_detection.protos import tiny_pb2\n"
        "finder = protos.installed_finder()\n"
        "print(loc.origin, loc.proto_style, loc.git_root.name, finder.modernized, tiny_pb2.Tiny())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(research)),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["git-clone", "modern", "models", "[]"]


def test_uncompiled_clone_fails_the_protobuf_check() -> None:
    location = env.ApiLocation("git-clone", path=Path("/x"), proto_styles={})
    check = doctor.check_protobuf(location)
    assert check.status == "fail" and "protoc" in check.fix


def test_install_hint_names_the_pip_extra_and_the_clone_setup() -> None:
    """The one install hint (doctor, compat, pipeline) matches pyproject.toml and scripts/setup.sh."""
    from tfod_tools.odapi.compat import SETUP_FIX

    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "pyproject.toml").read_text()  # tomllib is 3.11+: the two lines by pattern
    (name,) = re.findall(r'^name = "([^"]+)"$', pyproject, re.M)
    optional = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"^odapi = \[", optional, re.M)
    assert f"pip install '{name}[odapi]'" in SETUP_FIX
    pins = re.findall(r'^(?:odapi|lvis)_pin="([^"]+)"$', (root / "scripts" / "setup.sh").read_text(), re.M)
    assert len(pins) == 2 and all(f" {pin}" in SETUP_FIX for pin in pins)
    assert "(from a clone: bash scripts/setup.sh)" in SETUP_FIX
    # In the user's own venv the doctor names the API alone, --no-deps, at the pin setup.sh installs.
    check = doctor.check_api_source(env.ApiLocation("missing"))
    assert check.status == "fail" and check.fix == f"pip install --no-deps {pins[0]}"
