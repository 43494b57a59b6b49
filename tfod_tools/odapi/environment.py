"""Facts about the installed environment, read from package metadata and files (no TensorFlow import).

>>> package_version("tfod-tools-no-such-package") is None
True
>>> python_version_supported((3, 11)), python_version_supported((3, 9))
(True, False)
"""

from __future__ import annotations

import collections
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tfod_tools.odapi.compat.keras import TF_DISTRIBUTIONS, distribution_version
from tfod_tools.odapi.compat.protos import ProtoStyle, proto_style

PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorflow": TF_DISTRIBUTIONS,
    "tf-keras": ("tf-keras", "tf_keras"),
    "protobuf": ("protobuf",),
    "tf-slim": ("tf-slim", "tf_slim"),
    "pillow": ("pillow", "Pillow"),
    "tensorflow-io": ("tensorflow-io",),
    "tf-models-official": ("tf-models-official", "tf-models-nightly"),
    "pycocotools": ("pycocotools",),
    "albumentations": ("albumentations",),
    "numpy": ("numpy",),
}
"""Name shown by ``tfod doctor`` -> distribution names that provide it."""

ApiOrigin = Literal["pypi-sdist", "git-clone", "installed", "source-tree", "missing"]
SDIST_DISTRIBUTION = "tf-models-research-object-detection"


def package_version(name: str) -> str | None:
    """Installed version of a package known to :data:`PACKAGES` (or of a distribution name)."""
    return distribution_version(*PACKAGES.get(name, (name,)))


def python_version_supported(version: tuple[int, int] | None = None) -> bool:
    """True for the Python versions tfod_tools supports (3.10-3.13)."""
    major_minor = version or sys.version_info[:2]
    return (3, 10) <= tuple(major_minor) < (3, 14)


@dataclass
class ApiLocation:
    """Where ``object_detection`` comes from and how its protos were generated."""

    origin: ApiOrigin
    path: Path | None = None
    distribution: str | None = None
    version: str | None = None
    git_root: Path | None = None
    proto_styles: dict[str, int] = field(default_factory=dict)

    @property
    def proto_style(self) -> ProtoStyle | Literal["mixed", "none"]:
        """``old``, ``modern``, ``mixed`` or ``none`` (no compiled ``*_pb2.py``).

        >>> ApiLocation("installed", proto_styles={"old": 3}).proto_style
        'old'
        >>> ApiLocation("installed", proto_styles={"old": 1, "modern": 2}).proto_style
        'mixed'
        >>> ApiLocation("missing").proto_style
        'none'
        """
        styles = [style for style, count in self.proto_styles.items() if count]
        if not styles:
            return "none"
        if len(styles) == 1:
            return styles[0]  # type: ignore[return-value]
        return "mixed"

    def describe(self) -> str:
        """One line for people."""
        if self.origin == "missing":
            return "not importable"
        where = {
            "pypi-sdist": f"PyPI sdist {SDIST_DISTRIBUTION} {self.version}",
            "git-clone": f"git clone at {self.git_root}",
            "installed": f"installed distribution {self.distribution} {self.version}",
            "source-tree": "source tree on sys.path",
        }[self.origin]
        return f"{where} ({self.path})"


def _distribution_of(top_level: str) -> str | None:
    names = importlib.metadata.packages_distributions().get(top_level, [])
    return names[0] if names else None


def _git_root(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if (parent / ".git").exists():
            return parent
    return None


def scan_proto_styles(package_dir: Path) -> dict[str, int]:
    """Count the generator styles of ``package_dir/protos/*_pb2.py`` (read, not imported)."""
    counts: collections.Counter[str] = collections.Counter()
    for file in sorted((package_dir / "protos").glob("*_pb2.py")):
        counts[proto_style(file.read_text(encoding="utf-8", errors="replace"))] += 1
    return dict(counts)


def locate_object_detection() -> ApiLocation:
    """Find ``object_detection`` without importing it."""
    spec = importlib.util.find_spec("object_detection")
    if spec is None or not spec.submodule_search_locations:
        return ApiLocation("missing")
    package_dir = Path(next(iter(spec.submodule_search_locations))).resolve()
    distribution = _distribution_of("object_detection")
    version = None if distribution is None else distribution_version(distribution)
    installed = any(part in ("site-packages", "dist-packages") for part in package_dir.parts)
    git_root = None if installed else _git_root(package_dir)
    origin: ApiOrigin
    if git_root is not None:
        origin = "git-clone"
    elif distribution is not None and distribution.lower().replace("_", "-") == SDIST_DISTRIBUTION:
        origin = "pypi-sdist"
    elif distribution is not None:
        origin = "installed"
    else:
        origin = "source-tree"
    return ApiLocation(
        origin=origin,
        path=package_dir,
        distribution=distribution,
        version=version,
        git_root=git_root,
        proto_styles=scan_proto_styles(package_dir),
    )
