"""The compatibility layer: the TF Object Detection API on current TensorFlow, patched in-process.

:func:`install` applies, in this process and only when needed, one fix per known break
(see ``/work/shared/notes/odapi-findings.md``); nothing in site-packages is edited:

==================== ===========================================================================
``protos``           old-style ``*_pb2`` modules rebuilt in the modern form (protobuf >= 4)
``legacy-keras``     ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported (TF >= 2.16)
``estimator``        a ``tf.compat.v1.estimator`` stand-in with ``ModeKeys`` (TF >= 2.16)
``tf-slim``          ``control_flow_ops.case`` / ``.cond`` pointed at their new homes
``pillow``           ``FreeTypeFont.getsize`` from ``getbbox`` (Pillow >= 10)
``coco-category``    ``category_stats`` for per-category COCO metrics with stock pycocotools
``numpy-aliases``    ``np.float`` / ``np.int`` / ... restored as the builtins (numpy >= 1.24)
``tensorflow-io``    a ``tensorflow_io`` stand-in where it is missing (no wheel for Python 3.13)
==================== ===========================================================================

:func:`install` is idempotent and returns a :class:`CompatReport`. :func:`install_protos` applies
only the proto fix, which needs protobuf but not TensorFlow (enough to parse a pipeline.config).

>>> report = install_protos()
>>> report.name
'protos'
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi.compat import keras as _keras

SETUP_FIX = (
    "pip install 'tfod_tools[odapi]', then pip install --no-deps "
    "tf-models-research-object-detection==2.8.0.post1 lvis==0.5.3 (from a clone: bash scripts/setup.sh)"
)
"""How to install what train, evaluate, pipeline and doctor need (README "Installing"): the fix every
missing-install hint gives."""


@dataclass(frozen=True)
class FixStatus:
    """One fix of the layer: whether it was applied in this process, and why (not)."""

    name: str
    applied: bool
    detail: str


@dataclass
class CompatReport:
    """What :func:`install` did.

    >>> r = CompatReport([FixStatus("pillow", True, "added getsize"), FixStatus("tf-slim", False, "x")])
    >>> r.applied
    ['pillow']
    >>> r.to_dict()["applied"]
    ['pillow']
    """

    fixes: list[FixStatus] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def applied(self) -> list[str]:
        """Names of the fixes applied."""
        return [fix.name for fix in self.fixes if fix.applied]

    def get(self, name: str) -> FixStatus | None:
        """The status of the fix called ``name``."""
        return next((fix for fix in self.fixes if fix.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "applied": self.applied,
            "fixes": [asdict(fix) for fix in self.fixes],
            "versions": dict(self.versions),
        }


_PROTOS: FixStatus | None = None
_REPORT: CompatReport | None = None


def install_protos() -> FixStatus:
    """Apply the proto fix only (no TensorFlow import); idempotent."""
    global _PROTOS
    if _PROTOS is not None:
        return _PROTOS
    from tfod_tools.odapi.compat import protos

    try:
        import google.protobuf
    except ImportError as exc:
        raise TfodError("protobuf is not installed", fix=SETUP_FIX) from exc
    version = google.protobuf.__version__
    if protos.protobuf_refuses_old_style():
        protos.install_proto_finder()
        _PROTOS = FixStatus(
            "protos", True, f"protobuf {version}: old-style *_pb2 modules are rebuilt in the modern form"
        )
    else:
        _PROTOS = FixStatus("protos", False, f"protobuf {version} accepts old-style *_pb2 modules")
    return _PROTOS


def _install_legacy_keras() -> FixStatus:
    tf_version = _keras.tensorflow_version()
    if tf_version is None:
        raise TfodError("TensorFlow is not installed", fix=SETUP_FIX)
    if not _keras.needs_legacy_keras(tf_version):
        return FixStatus("legacy-keras", False, f"TensorFlow {tf_version} ships Keras 2")
    if not _keras.tf_keras_installed():
        raise TfodError(
            f"TensorFlow {tf_version} needs the tf-keras package (Keras 2) for the Object Detection API",
            fix=f"pip install 'tf-keras~={'.'.join(map(str, _keras.parse_version(tf_version)[:2]))}.0'",
        )
    previous = os.environ.get(_keras.ENV_VAR)
    os.environ[_keras.ENV_VAR] = "1"
    if "tensorflow" in sys.modules and _keras.active_keras_major() >= 3:
        raise TfodError(
            "TensorFlow was imported with Keras 3 before the tfod compatibility layer was installed",
            fix="call tfod_tools.odapi.compat.install() before importing tensorflow, "
            "or export TF_USE_LEGACY_KERAS=1",
        )
    was = "" if previous in (None, "1") else f" (was {previous!r})"
    return FixStatus(
        "legacy-keras", True, f"TensorFlow {tf_version}: TF_USE_LEGACY_KERAS=1{was}, tf.keras is tf-keras"
    )


def _install_estimator() -> FixStatus:
    import tensorflow as tf

    from tfod_tools.odapi.compat import estimator

    if estimator.has_estimator(tf.compat.v1):
        return FixStatus("estimator", False, "tf.compat.v1.estimator exists")
    estimator.install_stand_in(tf.compat.v1)
    return FixStatus("estimator", True, "tf.compat.v1.estimator stand-in with ModeKeys")


def _install_slim() -> FixStatus:
    from tfod_tools.odapi.compat import slim

    restored = slim.restore_moved_ops()
    if not restored:
        return FixStatus("tf-slim", False, "control_flow_ops.case/cond present")
    return FixStatus("tf-slim", True, "control_flow_ops." + "/".join(restored) + " restored for tf-slim")


def _install_pillow() -> FixStatus:
    from tfod_tools.odapi.compat import pillow

    try:
        added = pillow.add_getsize()
    except ImportError:
        return FixStatus("pillow", False, "Pillow not installed")
    if not added:
        return FixStatus("pillow", False, "font getsize present")
    return FixStatus("pillow", True, "getsize added to ImageFont." + ", ImageFont.".join(added))


def _install_coco() -> FixStatus:
    from tfod_tools.odapi.compat import coco, postimport

    try:
        needed = coco.stock_cocoeval_lacks_category_stats()
    except ImportError:
        return FixStatus("coco-category", False, "pycocotools not installed")
    if not needed:
        return FixStatus("coco-category", False, "pycocotools computes category_stats")
    postimport.when_imported("object_detection.metrics.coco_tools", coco.patch_coco_tools)
    return FixStatus("coco-category", True, "COCOEvalWrapper.summarize sets category_stats")


def _install_numpy_aliases() -> FixStatus:
    from tfod_tools.odapi.compat import numpy_aliases

    restored = numpy_aliases.restore_aliases()
    if not restored:
        return FixStatus("numpy-aliases", False, "numpy has the builtin-type aliases")
    return FixStatus("numpy-aliases", True, "np." + ", np.".join(restored) + " restored as the builtins")


def _install_tfio() -> FixStatus:
    from tfod_tools.odapi.compat import tfio

    if not tfio.install_stand_in_if_missing():
        return FixStatus("tensorflow-io", False, "tensorflow_io importable")
    return FixStatus("tensorflow-io", True, "tensorflow_io stand-in (only DeepMAC's colour loss uses it)")


def install() -> CompatReport:
    """Apply every fix this environment needs (once per process) and report what was applied.

    Sets ``TF_USE_LEGACY_KERAS=1`` before importing TensorFlow; raises :class:`TfodError` when
    TensorFlow is missing, when tf-keras is missing on TF >= 2.16, or when TensorFlow was already
    imported with Keras 3 behind ``tf.keras``.
    """
    global _REPORT
    if _REPORT is not None:
        return _REPORT
    fixes = [install_protos(), _install_legacy_keras()]
    # tensorflow-io's optional file-system plugins rarely match the installed TensorFlow's ABI; the
    # API never uses them, so their load failure is noise in every log.
    warnings.filterwarnings("ignore", message=r"(unable to load libtensorflow_io|file system plugins)")
    import tensorflow as tf

    fixes += [
        _install_estimator(),
        _install_slim(),
        _install_pillow(),
        _install_coco(),
        _install_numpy_aliases(),
        _install_tfio(),
    ]
    import google.protobuf

    versions: dict[str, str | None] = {
        "tensorflow": tf.__version__,
        "protobuf": google.protobuf.__version__,
        "tf-keras": _keras.distribution_version("tf-keras", "tf_keras"),
    }
    _REPORT = CompatReport(fixes=fixes, versions=versions)
    return _REPORT


def installed_report() -> CompatReport | None:
    """The report of :func:`install` if it already ran in this process."""
    return _REPORT
