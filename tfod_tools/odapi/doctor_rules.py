"""What ``tfod doctor`` says about a set of installed distributions: one decision, no I/O.

:func:`package_checks` maps the installed versions (distribution name -> version, None when absent;
:func:`read_installed` reads them from package metadata) to the doctor's package lines, each
missing or conflicting piece with the one ``pip`` command that fixes it in the user's own venv
(however it was made: ``pip install tensorflow tf-models-research-object-detection``, the API
``--no-deps``, ``scripts/setup.sh``). The rules, measured in such venvs (docs/compatibility.md,
"Your own environment"):

- TensorFlow 2.13-2.21; from 2.16 on ``tf-keras`` of TensorFlow's own minor version (Keras 2);
- ``tf-models-official`` of TensorFlow's minor version; for a TensorFlow newer than its newest
  release (:data:`NEWEST_MODEL_GARDEN`) that release ``--no-deps`` (its pins would downgrade
  TensorFlow), its import needs then named one by one;
- every distribution the API imports when it builds, trains and evaluates (:data:`API_NEEDS`);
- one OpenCV: the GUI ``opencv-python`` beside ``opencv-python-headless`` (the API's own metadata
  pulls it) share the ``cv2`` folder, and the GUI one needs ``libGL`` that servers lack;
- tfod_tools' own requirements (:func:`requirement_checks`).

>>> installed = {"tensorflow": "2.21.0", "tf-keras": "2.20.1"}
>>> [c.fix for c in package_checks(installed) if c.name == "tf-keras"]
["pip install 'tf-keras~=2.21.0'"]
>>> model_garden_fix("2.21.0")
"pip install --no-deps 'tf-models-official==2.20.0'"
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]

TESTED_TF = ((2, 13), (2, 21))
"""The TensorFlow minor versions tfod_tools runs on (both ends included)."""

NEWEST_MODEL_GARDEN = (2, 20)
"""The newest ``tf-models-official`` minor release (PyPI, Dec 2026); it pins ``tensorflow~=2.20.0``."""

OPENCV_PIN = "opencv-python-headless>=4.9,<4.13"
"""The headless OpenCV tfod_tools declares (pyproject.toml)."""


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: a name, ``ok`` / ``warn`` / ``fail``, a detail and the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Need:
    """A distribution the API imports (``module``) when it builds, trains or evaluates a model."""

    distribution: str
    module: str
    why: str
    install: str


API_NEEDS: tuple[Need, ...] = (
    Need("tf-slim", "tf_slim", "the API's input decoders import it", "pip install tf-slim"),
    Need(
        "tensorflow-io",
        "tensorflow_io",
        "imported when model_builder is (deepmac_meta_arch)",
        "pip install tensorflow-io",
    ),
    Need("keras", "keras", "the API's resnet_v1 imports keras.applications", "pip install keras"),
    Need("gin-config", "gin", "official.* imports it", "pip install gin-config"),
    Need("pyyaml", "yaml", "official.* imports it", "pip install pyyaml"),
    Need("lvis", "lvis", "the API's evaluation imports it", "pip install --no-deps lvis==0.5.3"),
    Need("pycocotools", "pycocotools", "COCO evaluation", "pip install pycocotools"),
    Need("scipy", "scipy", "the API's matchers import it", "pip install scipy"),
    Need("matplotlib", "matplotlib", "evaluation images, pycocotools", "pip install matplotlib"),
    Need("pillow", "PIL", "image drawing in evaluation", "pip install pillow"),
    Need("six", "six", "the API imports it everywhere", "pip install six"),
)
"""What the API imports beyond TensorFlow, Keras 2 and ``official`` (measured: the modules a real
model_builder + inputs + model_lib_v2 + evaluators import pulls in), each with its install line.
``lvis`` goes ``--no-deps``: its metadata pulls the GUI ``opencv-python``."""

_IMPORT_NAMES = {need.module: need for need in API_NEEDS}


def canonical(name: str) -> str:
    """A distribution name as pip compares them.

    >>> canonical("TF_Keras"), canonical("tf.models-official")
    ('tf-keras', 'tf-models-official')
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def minor(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string (``(0, 0)`` when it has none).

    >>> minor("2.16.0rc1"), minor("2.20")
    ((2, 16), (2, 20))
    """
    numbers = [int(part) for part in re.findall(r"^\d+|(?<=\.)\d+", version)[:2]]
    padded = [*numbers, 0, 0]
    return padded[0], padded[1]


def _dotted(major_minor: tuple[int, int]) -> str:
    return f"{major_minor[0]}.{major_minor[1]}"


TF_NAMES = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tensorflow-intel")


def _get(installed: Mapping[str, str | None], *names: str) -> str | None:
    table = {canonical(key): value for key, value in installed.items()}
    return next((table[canonical(n)] for n in names if table.get(canonical(n))), None)


def tensorflow_check(installed: Mapping[str, str | None]) -> Check:
    """TensorFlow present and inside :data:`TESTED_TF`.

    >>> tensorflow_check({"tensorflow": "2.12.1"}).fix
    "pip install 'tensorflow~=2.20.0'"
    """
    version = _get(installed, *TF_NAMES)
    if version is None:
        return Check("tensorflow", "fail", "not installed", "pip install 'tensorflow~=2.20.0'")
    low, high = TESTED_TF
    if low <= minor(version) <= high:
        return Check("tensorflow", "ok", version)
    return Check(
        "tensorflow",
        "warn",
        f"{version} is outside the tested {_dotted(low)}-{_dotted(high)}",
        "pip install 'tensorflow~=2.20.0'",
    )


def tf_keras_check(installed: Mapping[str, str | None]) -> Check:
    """tf-keras of TensorFlow's minor version on TensorFlow >= 2.16 (its ``tf.keras`` is Keras 3).

    A tf-keras of another minor version is a failure: its wheels require their own TensorFlow
    minor, and pip's next install moves TensorFlow to match (or the two disagree on ops).

    >>> tf_keras_check({"tensorflow": "2.20.0"}).fix
    "pip install 'tf-keras~=2.20.0'"
    >>> tf_keras_check({"tensorflow": "2.15.1"}).status
    'ok'
    """
    tf_version = _get(installed, *TF_NAMES)
    version = _get(installed, "tf-keras")
    if tf_version is None or minor(tf_version) < (2, 16):
        return Check("tf-keras", "ok", f"not needed with TensorFlow {tf_version} ({version or 'absent'})")
    wanted = _dotted(minor(tf_version))
    fix = f"pip install 'tf-keras~={wanted}.0'"
    if version is None:
        return Check("tf-keras", "fail", f"not installed; TensorFlow {tf_version} needs it (Keras 2)", fix)
    if minor(version) != minor(tf_version):
        return Check("tf-keras", "fail", f"{version} does not match TensorFlow {tf_version}", fix)
    return Check("tf-keras", "ok", version)


def model_garden_fix(tf_version: str | None) -> str:
    """The install line of ``tf-models-official`` for this TensorFlow (``official.*``).

    Its releases pin ``tensorflow~=`` their own minor version: the same minor for TensorFlow up to
    :data:`NEWEST_MODEL_GARDEN`, the newest release ``--no-deps`` beyond it.

    >>> model_garden_fix("2.19.1"), model_garden_fix(None)
    ("pip install 'tf-models-official~=2.19.0'", "pip install 'tf-models-official~=2.20.0'")
    """
    wanted = minor(tf_version) if tf_version else NEWEST_MODEL_GARDEN
    if wanted > NEWEST_MODEL_GARDEN:
        return f"pip install --no-deps 'tf-models-official=={_dotted(NEWEST_MODEL_GARDEN)}.0'"
    return f"pip install 'tf-models-official~={_dotted(wanted)}.0'"


def model_garden_check(installed: Mapping[str, str | None]) -> Check:
    """``tf-models-official`` present, of TensorFlow's minor version (or the newest release).

    >>> model_garden_check({"tensorflow": "2.21.0", "tf-models-official": "2.20.0"}).status
    'ok'
    >>> model_garden_check({"tensorflow": "2.19.1", "tf-models-official": "2.20.0"}).status
    'warn'
    """
    tf_version = _get(installed, *TF_NAMES)
    version = _get(installed, "tf-models-official", "tf-models-nightly")
    fix = model_garden_fix(tf_version)
    if version is None:
        return Check("tf-models-official", "fail", "not installed (model building imports official.*)", fix)
    if tf_version is None or minor(version) == minor(tf_version):
        return Check("tf-models-official", "ok", version)
    if minor(tf_version) > NEWEST_MODEL_GARDEN and minor(version) == NEWEST_MODEL_GARDEN:
        pinned = _dotted(NEWEST_MODEL_GARDEN)
        detail = f"{version}, the newest release (it pins tensorflow~={pinned}.0: pip check says so)"
        return Check("tf-models-official", "ok", detail)
    return Check(
        "tf-models-official",
        "warn",
        f"{version} pins tensorflow~={_dotted(minor(version))}.0, not TensorFlow {tf_version}",
        fix,
    )


def opencv_check(installed: Mapping[str, str | None]) -> Check:
    """One OpenCV, the headless one (the GUI wheel needs ``libGL``; both share ``cv2/``).

    >>> opencv_check({"opencv-python": "4.12.0.88", "opencv-python-headless": "4.12.0.88"}).status
    'fail'
    """
    gui = _get(installed, "opencv-python")
    headless = _get(installed, "opencv-python-headless")
    fix = f"pip uninstall -y opencv-python opencv-python-headless && pip install '{OPENCV_PIN}'"
    if gui is not None and headless is not None:
        detail = (
            f"opencv-python {gui} beside opencv-python-headless {headless}: both write cv2/, and the GUI "
            "one needs libGL"
        )
        return Check("opencv", "fail", detail, fix)
    if gui is not None:
        return Check("opencv", "warn", f"opencv-python {gui} (GUI: needs libGL, which servers lack)", fix)
    if headless is None:
        return Check(
            "opencv", "fail", "not installed (tfod synth, convert, balance)", f"pip install '{OPENCV_PIN}'"
        )
    from packaging.requirements import Requirement

    if not Requirement(OPENCV_PIN).specifier.contains(headless, prereleases=True):
        detail = f"opencv-python-headless {headless} is outside tfod_tools' {OPENCV_PIN}"
        return Check("opencv", "fail", detail, f"pip install '{OPENCV_PIN}'")
    return Check("opencv", "ok", f"opencv-python-headless {headless}")


def need_checks(installed: Mapping[str, str | None], python: tuple[int, int] = (3, 11)) -> list[Check]:
    """One line per :data:`API_NEEDS` entry: its version, or ``fail`` with the install line.

    ``tensorflow-io`` missing is a warning: the compatibility layer's stand-in lets the API import
    (only DeepMAC's colour loss uses it), and Python 3.13 has no wheel of it.

    >>> [c.fix for c in need_checks({"tf-slim": "1.1.0"}) if c.name == "lvis"]
    ['pip install --no-deps lvis==0.5.3']
    >>> [c.fix for c in need_checks({}, python=(3, 13)) if c.name == "tensorflow-io"]
    ['optional: tensorflow-io has no wheel for Python 3.13 (only DeepMAC needs it)']
    """
    checks = []
    for need in API_NEEDS:
        version = _get(installed, need.distribution)
        if version is None and need.distribution == "tensorflow-io":
            detail = (
                "not installed: the layer's stand-in lets the API import (only DeepMAC's colour loss uses it)"
            )
            fix = (
                need.install
                if python < (3, 13)
                else "optional: tensorflow-io has no wheel for Python 3.13 (only DeepMAC needs it)"
            )
            checks.append(Check(need.distribution, "warn", detail, fix))
        elif version is None:
            checks.append(Check(need.distribution, "fail", f"not installed ({need.why})", need.install))
        else:
            checks.append(Check(need.distribution, "ok", version))
    return checks


def requirement_checks(requirements: Iterable[str], installed: Mapping[str, str | None]) -> list[Check]:
    """tfod_tools' own requirements (its metadata's ``Requires-Dist`` without extras) that are missing
    or outside their bounds, one ``fail`` each with ``pip install 'SPEC'``.

    >>> requirement_checks(["numpy>=1.26,<2.3", "rich>=13"], {"numpy": "2.3.5", "rich": "14.1.0"})[0].fix
    "pip install 'numpy<2.3,>=1.26'"
    >>> requirement_checks(['pytest; extra == "test"'], {})
    []
    """
    from packaging.requirements import InvalidRequirement, Requirement

    checks = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonical(requirement.name)
        spec = f"{name}{requirement.specifier}"
        version = _get(installed, name)
        if version is None:
            checks.append(
                Check(name, "fail", "not installed (a tfod_tools requirement)", f"pip install '{spec}'")
            )
        elif not requirement.specifier.contains(version, prereleases=True):
            detail = f"{version} is outside tfod_tools' {requirement.specifier}"
            checks.append(Check(name, "fail", detail, f"pip install '{spec}'"))
    return checks


def package_checks(
    installed: Mapping[str, str | None],
    requirements: Iterable[str] = (),
    python: tuple[int, int] | None = None,
) -> list[Check]:
    """Every package line of the doctor, from the installed versions (and Python's) alone (see the
    module doc). TensorFlow < 2.18 requires protobuf < 5: there TensorFlow's bound wins over
    tfod_tools' ``protobuf>=5.28``.

    >>> [c.name for c in package_checks({"tensorflow": "2.15.1", "protobuf": "4.25.8"}, ["protobuf>=5.28"])
    ...  if c.status == "fail" and c.name == "protobuf"]
    []
    """
    tf_version = _get(installed, *TF_NAMES)
    checks = [
        tensorflow_check(installed),
        tf_keras_check(installed),
        model_garden_check(installed),
        *need_checks(installed, python or (sys.version_info[0], sys.version_info[1])),
        opencv_check(installed),
    ]
    named = {check.name for check in checks} | {"opencv-python", "opencv-python-headless"}
    if tf_version is not None and minor(tf_version) < (2, 18):
        named.add("protobuf")
    checks += [check for check in requirement_checks(requirements, installed) if check.name not in named]
    albumentations = _get(installed, "albumentations")
    if "albumentations" in {check.name for check in checks}:
        pass  # out of tfod_tools' bounds: its requirement line says so
    elif albumentations is not None:
        checks.append(Check("albumentations", "ok", albumentations))
    else:
        checks.append(
            Check(
                "albumentations",
                "warn",
                "not installed (tfod balance, augmentation previews)",
                "pip install albumentations",
            )
        )
    return checks


WATCHED = (
    *TF_NAMES,
    "tf-keras",
    "tf-models-official",
    "tf-models-nightly",
    "opencv-python",
    "opencv-python-headless",
    "albumentations",
    "protobuf",
    "numpy",
    *(need.distribution for need in API_NEEDS),
)
"""The distributions :func:`read_installed` always reads (plus the requirements it is given)."""


def read_installed(extra: Iterable[str] = ()) -> dict[str, str | None]:
    """The installed version of every :data:`WATCHED` distribution and of ``extra`` (None: absent).

    >>> read_installed(["tfod-tools-no-such-package"])["tfod-tools-no-such-package"]
    """
    versions: dict[str, str | None] = {}
    for name in (*WATCHED, *extra):
        try:
            versions[canonical(name)] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[canonical(name)] = None
    return versions


def requirement_names(requirements: Iterable[str]) -> list[str]:
    """The distribution names of requirement strings.

    >>> requirement_names(["numpy>=1.26,<2.3", 'pytest ; extra == "test"', "bad spec ("])
    ['numpy', 'pytest']
    """
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in requirements:
        try:
            names.append(canonical(Requirement(text).name))
        except InvalidRequirement:
            continue
    return names


def own_requirements(distribution: str = "tfod_tools") -> list[str]:
    """``Requires-Dist`` of tfod_tools' installed metadata (empty when it is not installed).

    >>> any(r.startswith("numpy") for r in own_requirements())
    True
    """
    try:
        return list(importlib.metadata.requires(distribution) or [])
    except importlib.metadata.PackageNotFoundError:
        return []


def import_fix(module: str, tf_version: str | None) -> str | None:
    """The install line for a module the API failed to import (``ModuleNotFoundError.name``).

    >>> import_fix("gin.config", "2.20.0"), import_fix("official.vision", "2.21.0")
    ('pip install gin-config', "pip install --no-deps 'tf-models-official==2.20.0'")
    """
    top = module.split(".", 1)[0]
    if top == "official":
        return model_garden_fix(tf_version)
    if top == "tf_keras" and tf_version:
        return f"pip install 'tf-keras~={_dotted(minor(tf_version))}.0'"
    if top == "cv2":
        return f"pip install '{OPENCV_PIN}'"
    need = _IMPORT_NAMES.get(top)
    return None if need is None else need.install
