"""Run a patch right after a named module is imported, without importing it early.

Some fixes target a module of the API (for example ``object_detection.metrics.coco_tools``) that
should not be imported just to patch it. :func:`when_imported` registers a callback: it runs at
once when the module is already loaded, otherwise right after the module's code has executed.

>>> import sys, types
>>> seen = []
>>> when_imported("json", lambda module: seen.append(module.__name__))
>>> seen
['json']
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable, Sequence

Patch = Callable[[types.ModuleType], object]


class _PatchingLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the registered patches on the fresh module."""

    def __init__(self, inner: importlib.abc.Loader, patches: list[Patch]) -> None:
        self.inner = inner
        self.patches = patches

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.inner.exec_module(module)
        for patch in self.patches:
            patch(module)


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the loader of registered modules to run patches after import."""

    def __init__(self) -> None:
        self.patches: dict[str, list[Patch]] = {}
        self._busy: set[str] = set()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.patches or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, self.patches[fullname])
        return spec


def _finder() -> PostImportFinder:
    for finder in sys.meta_path:
        if isinstance(finder, PostImportFinder):
            return finder
    finder = PostImportFinder()
    sys.meta_path.insert(0, finder)
    return finder


def when_imported(module_name: str, patch: Patch) -> None:
    """Run ``patch(module)`` now if ``module_name`` is loaded, else right after it is imported."""
    module = sys.modules.get(module_name)
    if module is not None:
        patch(module)
        return
    _finder().patches.setdefault(module_name, []).append(patch)
