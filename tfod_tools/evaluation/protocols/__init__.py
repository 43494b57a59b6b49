"""The metric protocols of ``tfod metrics`` and ``tfod evaluate``: one module per protocol, each registered.

A protocol is a :class:`MetricProtocol`; ``register_protocol(MetricProtocol(...))`` in its module adds it
to :data:`PROTOCOL_REGISTRY`. :func:`protocols` lists every registered one, lowest ``order`` first
(the order ``--protocol`` choices and results are listed in): ``tfod metrics --protocol`` offers every
one, ``tfod evaluate --metrics`` (and :func:`tfod_tools.evaluation.scoring.checkpoint_metrics`) those
with checkpoint ``tags``. A new protocol is one new module here: :func:`load` imports every module of
this package, so nothing else is edited.

>>> protocol_names(), checkpoint_protocol_names()
(('coco', 'voc07', 'voc'), ('coco', 'voc'))
>>> all(p.description for p in protocols())
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.errors import TfodError
from tfod_tools.registry import ModuleLoader

__all__ = [
    "PROTOCOL_REGISTRY",
    "MetricOptions",
    "MetricProtocol",
    "ProtocolResult",
    "checkpoint_protocol_names",
    "get_protocol",
    "load",
    "parse_protocols",
    "protocol_names",
    "protocols",
    "register_protocol",
    "unregister_protocol",
]


@dataclass(frozen=True)
class MetricOptions:
    """The ``tfod metrics`` settings a protocol may read."""

    iou_type: str = "bbox"
    iou: float = 0.5
    pixel_convention: str = "continuous"


@dataclass
class ProtocolResult:
    """One protocol's result: the JSON document and the blocks printed for people."""

    document: dict[str, Any]
    human: list[Any]
    """Printed one after the other (``str`` or a rich renderable such as a table)."""


@dataclass(frozen=True)
class MetricProtocol:
    """A metric protocol: ``evaluate`` serves ``tfod metrics``; ``tags`` (optional) ``tfod evaluate``.

    ``masks``: the protocol reads masks when ``--iou-type segm`` (the COCO file's masks are loaded).
    ``order``: where it is listed (lowest first, then by name); the built-ins are 10, 20, 30.
    """

    name: str
    description: str
    evaluate: Callable[[AnnotatedSet, MetricOptions], ProtocolResult]
    tags: Callable[[AnnotatedSet], dict[str, float]] | None = None
    masks: bool = False
    order: int = 100


PROTOCOL_REGISTRY: dict[str, MetricProtocol] = {}
"""Every registered protocol by name (:func:`protocols` lists them in order)."""


def register_protocol(protocol: MetricProtocol) -> MetricProtocol:
    """Add ``protocol`` to :data:`PROTOCOL_REGISTRY` (a description is required); returns it.

    >>> toy = register_protocol(MetricProtocol("toy", "An example", lambda data, options: None))
    >>> protocol_names()
    ('coco', 'voc07', 'voc', 'toy')
    >>> unregister_protocol("toy")
    """
    if not protocol.description.strip():
        raise ValueError(f"metric protocol {protocol.name!r} needs a description")
    PROTOCOL_REGISTRY[protocol.name] = protocol
    return protocol


def unregister_protocol(name: str) -> None:
    """Remove a protocol (tests use it to undo a registration)."""
    PROTOCOL_REGISTRY.pop(name, None)


_modules = ModuleLoader(__name__)


def load() -> None:
    """Import every protocol module of this package, once."""
    _modules.load()


def protocols() -> list[MetricProtocol]:
    """Every protocol, in the order results are listed in (``order``, then name)."""
    load()
    return sorted(PROTOCOL_REGISTRY.values(), key=lambda p: (p.order, p.name))


def protocol_names() -> tuple[str, ...]:
    """Every registered protocol (``tfod metrics --protocol``)."""
    return tuple(p.name for p in protocols())


def checkpoint_protocol_names() -> tuple[str, ...]:
    """The protocols that give checkpoint tags (``tfod evaluate --metrics``)."""
    return tuple(p.name for p in protocols() if p.tags is not None)


def get_protocol(name: str) -> MetricProtocol:
    """The registered protocol ``name``; an unknown one is a :class:`TfodError`.

    >>> get_protocol("voc07").description
    'Pascal VOC 2007 AP: 11-point interpolation'
    """
    names = protocol_names()
    if name not in names:
        raise TfodError(f"unknown protocol {name!r}", fix=f"use one of {', '.join(names)}")
    return PROTOCOL_REGISTRY[name]


def parse_protocols(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"coco,voc"`` -> ``("coco", "voc")``; unknown names are a :class:`TfodError`.

    >>> parse_protocols("voc, coco")
    ('coco', 'voc')
    """
    known = checkpoint_protocol_names()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(names - set(known))
    if unknown or not names:
        raise TfodError(
            f"unknown metrics {', '.join(unknown) or '(none)'}", fix=f"use --metrics {','.join(known)}"
        )
    return tuple(p for p in known if p in names)
