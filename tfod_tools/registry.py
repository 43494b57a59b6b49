"""Plug-in packages: a package whose every module registers something when imported.

The finding rules of ``tfod diagnose`` (:mod:`tfod_tools.diagnostics.findings`) and the metric
protocols (:mod:`tfod_tools.evaluation.protocols`) are such packages: a new rule or protocol is one
new module there. The package's ``load()`` imports every one of its modules once, through a
:class:`ModuleLoader`, so the registry lists them all and nothing else is edited.

>>> import sys, tempfile, pathlib, types
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b_second", "a_first"):
...     _ = (folder / f"{name}.py").write_text(f"import demo_plugins; demo_plugins.SEEN.append({name!r})")
>>> package = types.ModuleType("demo_plugins")
>>> package.__path__, package.SEEN = [str(folder)], []
>>> sys.modules["demo_plugins"] = package
>>> loader = ModuleLoader("demo_plugins")
>>> loader.load()
['demo_plugins.a_first', 'demo_plugins.b_second']
>>> package.SEEN, loader.load(), package.SEEN
(['a_first', 'b_second'], [], ['a_first', 'b_second'])
>>> _ = [sys.modules.pop(name) for name in list(sys.modules) if name.startswith("demo_plugins")]
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["ModuleLoader"]


class ModuleLoader:
    """Imports every module of the package ``package``, in name order, the first time it loads.

    The modules are those found on the package's ``__path__`` when :meth:`load` first runs (a
    folder added to it before then counts). A failed import is raised and the next call tries
    again; after a complete pass :attr:`loaded` is True and further calls import nothing.
    """

    def __init__(self, package: str) -> None:
        self.package = package
        self.loaded = False

    def load(self) -> list[str]:
        """Import the package's modules unless done already; their names (none when done already)."""
        if self.loaded:
            return []
        path = importlib.import_module(self.package).__path__
        found = sorted(info.name for info in pkgutil.iter_modules(path))
        names = [f"{self.package}.{name}" for name in found]
        for name in names:
            importlib.import_module(name)
        self.loaded = True
        return names
