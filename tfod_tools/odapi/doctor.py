"""``tfod doctor``: can the TF Object Detection API train and evaluate here, under the layer?

Each :class:`Check` has a status (``ok``, ``warn``, ``fail``), a detail and a one-line fix. The
report is ``ok`` when no check failed. Package checks read metadata only; the ``object_detection
import`` check installs the compatibility layer and imports the API (and so TensorFlow), and the
``gpus`` check asks TensorFlow for visible GPUs.

>>> c = Check("tensorflow", "ok", "2.20.0")
>>> DoctorReport([c, Check("gpus", "warn", "none", "optional")]).ok
True
>>> DoctorReport([Check("pycocotools", "fail", "missing", "pip install pycocotools")]).to_dict()["ok"]
False
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tfod_tools.errors import TfodError
from tfod_tools.odapi import environment as env
from tfod_tools.odapi.compat import SETUP_FIX
from tfod_tools.odapi.compat import keras as keras_env

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    """All checks, plus the versions found."""

    checks: list[Check]
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(check.status != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "checks": [{"name", "status", "detail", "fix"}], "versions"}``."""
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], "versions": dict(self.versions)}


def _required(name: str, version: str | None, fix: str, why: str) -> Check:
    if version is None:
        return Check(name, "fail", f"not installed ({why})", fix)
    return Check(name, "ok", version)


def check_python() -> Check:
    """Python 3.10-3.13."""
    version = platform.python_version()
    if env.python_version_supported():
        return Check("python", "ok", f"{version} ({sys.executable})")
    return Check("python", "warn", f"{version} is outside 3.10-3.13", "use Python 3.10-3.13")


def check_tensorflow() -> Check:
    """TensorFlow 2.13-2.21."""
    version = keras_env.tensorflow_version()
    if version is None:
        return Check("tensorflow", "fail", "not installed", SETUP_FIX)
    if (2, 13) <= keras_env.parse_version(version)[:2] < (2, 22):
        return Check("tensorflow", "ok", version)
    return Check(
        "tensorflow", "warn", f"{version} is outside the tested 2.13-2.21", "pip install 'tensorflow~=2.20.0'"
    )


def check_tf_keras() -> Check:
    """tf-keras on TensorFlow >= 2.16, matching TensorFlow's minor version."""
    tf_version = keras_env.tensorflow_version()
    version = env.package_version("tf-keras")
    if not keras_env.needs_legacy_keras(tf_version):
        return Check("tf-keras", "ok", f"not needed with TensorFlow {tf_version} ({version or 'absent'})")
    assert tf_version is not None
    minor = ".".join(map(str, keras_env.parse_version(tf_version)[:2]))
    fix = f"pip install 'tf-keras~={minor}.0'"
    if version is None:
        return Check("tf-keras", "fail", f"not installed; TensorFlow {tf_version} needs it (Keras 2)", fix)
    if keras_env.parse_version(version)[:2] != keras_env.parse_version(tf_version)[:2]:
        return Check("tf-keras", "warn", f"{version} does not match TensorFlow {tf_version}", fix)
    return Check("tf-keras", "ok", version)


def check_legacy_switch() -> Check:
    """``TF_USE_LEGACY_KERAS``: the layer sets it; a TensorFlow imported with Keras 3 is fatal."""
    tf_version = keras_env.tensorflow_version()
    if not keras_env.needs_legacy_keras(tf_version):
        return Check("legacy-keras switch", "ok", f"not needed with TensorFlow {tf_version}")
    value = os.environ.get(keras_env.ENV_VAR)
    if "tensorflow" in sys.modules and keras_env.active_keras_major() >= 3:
        return Check(
            "legacy-keras switch",
            "fail",
            "TensorFlow is already imported with Keras 3 behind tf.keras in this process",
            "install the layer (tfod_tools.odapi.compat.install()) before importing tensorflow",
        )
    if value is not None and not keras_env.legacy_switch_on():
        return Check(
            "legacy-keras switch",
            "warn",
            f"{keras_env.ENV_VAR}={value!r} in your shell: a bare model_main_tf2.py would use Keras 3",
            "run python -m tfod_tools.odapi.model_main (it sets the switch) or export TF_USE_LEGACY_KERAS=1",
        )
    where = "set in this shell" if value else "unset in this shell"
    return Check(
        "legacy-keras switch", "ok", f"{keras_env.ENV_VAR} {where}; the layer sets it to 1 in tfod processes"
    )


def check_protobuf(location: env.ApiLocation) -> Check:
    """protobuf, and the style of the API's generated ``*_pb2`` modules."""
    version = env.package_version("protobuf")
    if version is None:
        return Check("protobuf", "fail", "not installed", SETUP_FIX)
    style = location.proto_style
    counts = ", ".join(f"{n} {s}" for s, n in sorted(location.proto_styles.items()))
    if location.origin != "missing" and style == "none":
        return Check(
            "protobuf",
            "fail",
            f"{version}; object_detection/protos has no compiled *_pb2.py",
            "cd models/research && protoc object_detection/protos/*.proto --python_out=.",
        )
    if style in ("old", "mixed") and keras_env.parse_version(version)[0] >= 4:
        detail = f"{version}; protos: {counts} (old-style ones are rebuilt in the modern form by the layer)"
    else:
        detail = f"{version}; protos: {counts or 'n/a'}"
    return Check("protobuf", "ok", detail)


def check_api_source(location: env.ApiLocation) -> Check:
    """Where ``object_detection`` comes from."""
    if location.origin == "missing":
        return Check(
            "object_detection",
            "fail",
            "not importable",
            f"{SETUP_FIX}, or put a clone's models/research on PYTHONPATH",
        )
    return Check("object_detection", "ok", location.describe())


def check_api_import() -> Check:
    """The API imports under the layer: model builder, inputs, model_lib_v2, COCO and OD evaluators."""
    from tfod_tools.odapi import compat

    name = "object_detection import"
    try:
        report = compat.install()
    except TfodError as exc:
        return Check(name, "fail", exc.message, exc.fix or SETUP_FIX)
    try:
        import object_detection  # noqa: F401
        from object_detection import inputs, model_lib_v2  # noqa: F401
        from object_detection.builders import model_builder  # noqa: F401
        from object_detection.metrics import coco_evaluation  # noqa: F401
        from object_detection.utils import object_detection_evaluation  # noqa: F401
    except Exception as exc:  # any import-time failure is the finding this check reports
        return Check(
            name, "fail", f"{type(exc).__name__}: {exc}".splitlines()[0], f"{SETUP_FIX}, then tfod doctor"
        )
    applied = ", ".join(report.applied) or "nothing"
    return Check(name, "ok", f"imports under the layer (applied: {applied})")


def check_gpus() -> Check:
    """GPUs TensorFlow can see (none is a warning: CPU training works, slowly)."""
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    except ImportError as exc:
        return Check("gpus", "fail", f"TensorFlow does not import: {exc}", SETUP_FIX)
    if not gpus:
        return Check(
            "gpus",
            "warn",
            "none visible; training runs on the CPU",
            "optional: pip install 'tensorflow[and-cuda]'",
        )
    return Check("gpus", "ok", f"{len(gpus)} visible: " + ", ".join(gpu.name for gpu in gpus))


def _package_checks() -> list[Check]:
    tf_version = keras_env.tensorflow_version() or "2.20"
    minor = ".".join(map(str, keras_env.parse_version(tf_version)[:2]))
    checks = [
        _required("tf-slim", env.package_version("tf-slim"), "pip install tf-slim", "the API imports it"),
        _required(
            "pillow", env.package_version("pillow"), "pip install pillow", "image drawing in evaluation"
        ),
        _required(
            "tensorflow-io",
            env.package_version("tensorflow-io"),
            "pip install tensorflow-io",
            "imported when model_builder is",
        ),
        _required(
            "tf-models-official",
            env.package_version("tf-models-official"),
            f"pip install 'tf-models-official~={minor}.0'",
            "model building imports official.*",
        ),
        _required(
            "pycocotools", env.package_version("pycocotools"), "pip install pycocotools", "COCO evaluation"
        ),
    ]
    albumentations = env.package_version("albumentations")
    if albumentations is None:
        checks.append(
            Check(
                "albumentations",
                "warn",
                "not installed (tfod augmentation previews)",
                "pip install albumentations",
            )
        )
    else:
        checks.append(Check("albumentations", "ok", albumentations))
    return checks


def run_doctor(progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Run every check (imports TensorFlow and the API for the last two)."""
    location = env.locate_object_detection()
    checks = [
        check_python(),
        check_tensorflow(),
        check_tf_keras(),
        check_legacy_switch(),
        check_protobuf(location),
        check_api_source(location),
        *_package_checks(),
    ]
    if progress is not None:
        progress("importing the Object Detection API under the layer ...")
    if all(c.status != "fail" for c in checks if c.name in ("tensorflow", "protobuf", "object_detection")):
        checks.append(check_api_import())
        checks.append(check_gpus())
    else:
        checks.append(
            Check("object_detection import", "fail", "skipped: fix the failures above first", SETUP_FIX)
        )
    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions.update({name: env.package_version(name) for name in env.PACKAGES})
    versions["object_detection"] = location.version
    return DoctorReport(checks=checks, versions=versions)
