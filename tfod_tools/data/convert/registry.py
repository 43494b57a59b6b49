"""The annotation formats ``tfod convert --from`` reads: each reader registers itself here.

``@register_converter("name", accepts=(...))`` above a reader ``read(annotations, images, ...)``
adds it to :data:`CONVERTERS`; ``accepts`` names the optional arguments it takes (``image_list``,
``class_name``). The package (:mod:`tfod_tools.data.convert`) imports every one of its modules, so
a new format is one new module there.

>>> list(CONVERTERS), CONVERTERS["voc"].accepts
(['coco', 'voc', 'csv'], ('image_list',))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tfod_tools.data.convert.core import SourceSet

__all__ = ["CONVERTERS", "Converter", "converter_names", "register_converter", "unregister_converter"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Converter:
    """One annotation format: ``read(annotations, images, **options)`` gives a ``SourceSet``."""

    name: str
    description: str
    read: Callable[..., SourceSet]
    accepts: tuple[str, ...]
    order: int

    def read_source(self, annotations: str | Path, images: str | Path | None, **options: Any) -> SourceSet:
        """Read with the options this format accepts (the others are dropped)."""
        return self.read(annotations, images, **{k: v for k, v in options.items() if k in self.accepts})


CONVERTERS: dict[str, Converter] = {}
"""Every registered format by name, in ``order``."""


def register_converter(name: str, *, order: int, accepts: Iterable[str] = ()) -> Callable[[F], F]:
    """Register the decorated reader as format ``name`` (its docstring's first line is the description)."""

    def register(fn: F) -> F:
        description = (fn.__doc__ or "").strip().split("\n", 1)[0].strip()
        if not description:
            raise ValueError(f"converter {name!r} needs a docstring (its description)")
        CONVERTERS[name] = Converter(name, description, fn, tuple(accepts), order)
        ordered = sorted(CONVERTERS.values(), key=lambda c: (c.order, c.name))
        CONVERTERS.clear()
        CONVERTERS.update((c.name, c) for c in ordered)
        return fn

    return register


def unregister_converter(name: str) -> None:
    """Remove a format (tests use it to undo a registration)."""
    CONVERTERS.pop(name, None)


def converter_names() -> tuple[str, ...]:
    """Every registered format (``tfod convert --from``)."""
    return tuple(CONVERTERS)
