"""The findings of ``tfod diagnose``: one module per topic, each finding registered as a rule.

A finding function returns a :class:`~tfod_tools.diagnostics.model.Finding` or None. The line
``@finding_rule(order, needs=..., call=...)`` above it registers it in :data:`RULES`;
:func:`~tfod_tools.diagnostics.engine.diagnose` runs every rule of :func:`rules`, lowest ``order``
first (the order findings are listed in). A rule runs only when every input named in ``needs``
(an attribute of :class:`~tfod_tools.diagnostics.engine.DiagnosisInputs`) is not None; ``call``
maps the inputs onto the function's own arguments (default: the inputs themselves). A new finding is
one new module here: :func:`load` imports every module of this package, so nothing else is edited.

>>> names = [rule.name for rule in rules()]
>>> names[:3], "best_checkpoint" in names
(['undefined_area_metric', 'single_eval_point', 'overfitting'], True)
>>> all(rule.description for rule in rules())
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tfod_tools.registry import ModuleLoader

if TYPE_CHECKING:
    from tfod_tools.diagnostics.model import Finding

DiagnosisInputs = Any
"""What a rule reads: :class:`tfod_tools.diagnostics.engine.DiagnosisInputs` (not imported: the
engine imports this package)."""

__all__ = ["RULES", "FindingRule", "finding_rule", "load", "rules", "unregister"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class FindingRule:
    """One registered finding: ``run(inputs)`` gives a Finding, several, or None."""

    name: str
    order: int
    description: str
    needs: tuple[str, ...]
    run: Callable[[DiagnosisInputs], Any]
    module: str

    def applies(self, inputs: DiagnosisInputs) -> bool:
        """Whether every input the rule ``needs`` is there."""
        return all(getattr(inputs, name) is not None for name in self.needs)

    def findings(self, inputs: DiagnosisInputs) -> list[Finding]:
        """The rule's findings on ``inputs`` (none when an input it needs is missing)."""
        if not self.applies(inputs):
            return []
        found = self.run(inputs)
        if found is None:
            return []
        if isinstance(found, (list, tuple)):
            return [f for f in found if f is not None]
        return [found]


RULES: dict[str, FindingRule] = {}
"""Every registered rule by name (see :func:`finding_rule`)."""


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n", 1)[0].replace("\n", " ").strip()


def finding_rule(
    order: int,
    *,
    needs: Iterable[str] = (),
    call: Callable[[Any, DiagnosisInputs], Any] | None = None,
    name: str | None = None,
) -> Callable[[F], F]:
    """Register the decorated finding function as a rule (returned unchanged).

    ``call(fn, inputs)`` calls it (default ``fn(inputs)``); ``name`` defaults to the function's name,
    the description to its docstring's first paragraph (a rule without one is refused).

    >>> @finding_rule(999, needs=("config",))
    ... def demo_rule(inputs):
    ...     '''An example.'''
    ...     return None
    >>> RULES["demo_rule"].order, RULES["demo_rule"].description
    (999, 'An example.')
    >>> unregister("demo_rule")
    """

    def register(fn: F) -> F:
        key = name or fn.__name__
        description = _first_line(fn.__doc__)
        if not description:
            raise ValueError(f"finding rule {key!r} needs a docstring (its description)")
        invoke = call

        def run(inputs: DiagnosisInputs) -> Any:
            return fn(inputs) if invoke is None else invoke(fn, inputs)

        RULES[key] = FindingRule(key, order, description, tuple(needs), run, fn.__module__)
        return fn

    return register


def unregister(name: str) -> None:
    """Remove a rule (tests use it to undo a registration)."""
    RULES.pop(name, None)


_modules = ModuleLoader(__name__)


def load() -> None:
    """Import every finding module of this package, once."""
    _modules.load()


def rules() -> list[FindingRule]:
    """Every rule, in the order its findings are listed (``order``, then name)."""
    load()
    return sorted(RULES.values(), key=lambda rule: (rule.order, rule.name))
