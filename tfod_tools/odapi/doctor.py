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
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi import doctor_rules as rules
from tfod_tools.odapi import environment as env
from tfod_tools.odapi.compat import SETUP_FIX
from tfod_tools.odapi.compat import keras as keras_env
from tfod_tools.odapi.doctor_rules import Check

FIX_HEADER = {
    False: "to fix, run (one line each, then tfod doctor again):",
    True: "warnings left; to clear them, run (one line each):",
}
"""What precedes the fix lines: failures (not ok), or only warnings (ok)."""

API_FIX = "pip install --no-deps tf-models-research-object-detection==2.8.0.post1"
"""The API itself: the PyPI sdist without its dependencies (its metadata pins pyparsing==2.4.7 and
pulls Keras 3, tensorflow_io and the GUI opencv-python; the doctor names what it really needs)."""


@dataclass
class DoctorReport:
    """All checks, plus the versions found."""

    checks: list[Check]
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(check.status != "fail" for check in self.checks)

    def fixes(self) -> list[str]:
        """The fix of every check that is not ok, once each, in order; optional ones left out.

        >>> DoctorReport([Check("a", "fail", "x", "pip install a"), Check("b", "fail", "y", "pip install a"),
        ...               Check("gpus", "warn", "none", "optional: pip install c")]).fixes()
        ['pip install a']
        """
        wanted = [
            c.fix for c in self.checks if c.status != "ok" and c.fix and not c.fix.startswith("optional")
        ]
        return list(dict.fromkeys(wanted))

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "checks": [{"name", "status", "detail", "fix"}], "versions"}``."""
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], "versions": dict(self.versions)}


def check_python() -> Check:
    """Python 3.10-3.13."""
    version = platform.python_version()
    if env.python_version_supported():
        return Check("python", "ok", f"{version} ({sys.executable})")
    return Check("python", "warn", f"{version} is outside 3.10-3.13", "use Python 3.10-3.13")


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
            "not importable (a clone's models/research on PYTHONPATH works too)",
            API_FIX,
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
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        fix = rules.import_fix(missing, keras_env.tensorflow_version()) if missing else None
        return Check(name, "fail", f"{type(exc).__name__}: {exc}".splitlines()[0], fix or SETUP_FIX)
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


def run_doctor(progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Run every check (imports TensorFlow and the API for the last two)."""
    location = env.locate_object_detection()
    requirements = rules.own_requirements()
    installed = rules.read_installed(rules.requirement_names(requirements))
    package = rules.package_checks(installed, requirements)
    checks = [
        check_python(),
        *package[:2],
        check_legacy_switch(),
        check_protobuf(location),
        check_api_source(location),
        *package[2:],
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


def format_report(report: DoctorReport) -> list[str]:
    """The report as plain lines: one per check, then every fix on its own line.

    >>> for line in format_report(DoctorReport([Check("lvis", "fail", "not installed", "pip install lvis")])):
    ...     print(line)
    fail  lvis: not installed
    not ok; to fix, run (one line each, then tfod doctor again):
      pip install lvis
    """
    lines = [f"{check.status:<5} {check.name}: {check.detail}" for check in report.checks]
    fixes = report.fixes()
    verdict = "ok: the API can train and evaluate here" if report.ok else "not ok"
    if fixes:
        verdict += "; " + FIX_HEADER[report.ok]
    return [*lines, verdict, *(f"  {fix}" for fix in fixes)]


def main() -> int:
    """``python -m tfod_tools.odapi.doctor``: the doctor without the CLI's own dependencies (Typer,
    PyYAML, ...), for a venv where ``tfod`` itself does not start yet; exit 0 when ok, else 1."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = run_doctor()
    print("\n".join(format_report(report)))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
