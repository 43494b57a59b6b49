"""Which checkpoints ``tfod evaluate --checkpoints`` evaluates: ``all``, ``latest`` or steps.

:func:`parse_selection` reads the option; :func:`select_checkpoints` orders a model directory's
checkpoints by global step and picks the selected ones (a requested step with no checkpoint is
reported as skipped; ``latest`` warns when a newer checkpoint on disk cannot be restored);
:func:`check_has_checkpoints` refuses a model directory without any checkpoint file.

>>> parse_selection("all"), parse_selection("latest"), parse_selection("300, 100")
('all', 'latest', [100, 300])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tfod_tools.errors import TfodError
from tfod_tools.evaluation.results import Skipped
from tfod_tools.odapi.checkpoints import CheckpointFiles

__all__ = ["Selection", "check_has_checkpoints", "parse_selection", "select_checkpoints"]

Selection = str | list[int]
"""``"all"``, ``"latest"`` or the sorted global steps to evaluate."""


def parse_selection(text: str) -> Selection:
    """``all``, ``latest`` or a comma-separated list of global steps."""
    value = text.strip().lower()
    if value in ("all", "latest"):
        return value
    try:
        steps = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise TfodError(f"--checkpoints {text!r} is not all, latest or STEP,STEP,...") from None
    if not steps:
        raise TfodError("--checkpoints names no step", fix="use all, latest or e.g. 100,300")
    return steps


def check_has_checkpoints(model_dir: str | Path, found: Sequence[CheckpointFiles]) -> None:
    """:class:`TfodError` (exit 2) when ``model_dir`` holds no checkpoint file at all.

    A checkpoint the state file ``checkpoint`` lists but whose files are all gone counts as none.

    >>> try:
    ...     check_has_checkpoints("runs/m", [])
    ... except TfodError as exc:
    ...     print(exc.path, "|", exc.message)
    runs/m | no checkpoint (ckpt-N.index and ckpt-N.data-*) in this model directory
    """
    if any(ckpt.files for ckpt in found):
        return
    listed = [ckpt.name for ckpt in found]
    gone = f"; its checkpoint file lists {', '.join(listed)} but their files are gone" if listed else ""
    raise TfodError(
        f"no checkpoint (ckpt-N.index and ckpt-N.data-*) in this model directory{gone}",
        path=model_dir,
        fix="pass the --model-dir that training wrote its ckpt-N files to, "
        "or train first: tfod train --pipeline ... --model-dir ...",
    )


def select_checkpoints(
    found: list[CheckpointFiles], selection: Selection, read_step: Callable[[CheckpointFiles], int]
) -> tuple[list[tuple[int | None, CheckpointFiles]], list[Skipped], list[str]]:
    """Order the checkpoints by global step and pick the selected ones; also return warnings.

    ``read_step`` gives a checkpoint's global step (a :class:`TfodError` when it cannot). Returns
    ``(step, checkpoint)`` pairs in step order, the requested steps with no checkpoint, and warnings.
    """
    steps: dict[str, int | None] = {}
    problems: dict[str, str] = {}
    for ckpt in found:
        steps[ckpt.name] = None
        if ckpt.problem is not None:
            problems[ckpt.name] = ckpt.problem
            continue
        try:
            steps[ckpt.name] = read_step(ckpt)
        except TfodError as exc:
            problems[ckpt.name] = exc.message
    ordered = sorted(found, key=lambda c: (steps[c.name] if steps[c.name] is not None else -1, c.number))
    chosen = [(steps[c.name], c) for c in ordered]
    missing: list[Skipped] = []
    warnings: list[str] = []
    if selection == "latest":
        readable = [item for item in chosen if item[0] is not None]
        chosen = readable[-1:] if readable else chosen[-1:]
        if readable:
            step, picked = readable[-1]
            newer = [c for c in found if c.number > picked.number and c.name in problems]
            warnings += [
                f"--checkpoints latest: evaluating {picked.name} (step {step}); the newer {c.name} on disk "
                f"cannot be restored: {problems[c.name]}"
                for c in newer
            ]
    elif isinstance(selection, list):
        wanted = set(selection)
        chosen = [item for item in chosen if item[0] in wanted]
        present = {item[0] for item in chosen}
        on_disk = ", ".join(str(s) for s in sorted({s for s in steps.values() if s is not None})) or "none"
        unknown = "".join(f"; step unknown: {name}: {problem}" for name, problem in problems.items())
        missing = [
            Skipped(f"step {s}", f"no checkpoint at this step (steps on disk: {on_disk}{unknown})", s)
            for s in selection
            if s not in present
        ]
    return chosen, missing, warnings
