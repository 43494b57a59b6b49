"""Which checkpoint ``tfod export`` exports: ``best`` (the ledger's), ``latest``, or a global step.

Read without TensorFlow, from the model directory's files (:func:`~tfod_tools.odapi.checkpoints.
list_checkpoints`: top-level ``ckpt-N`` and the evaluator's kept copies under ``eval/``) and its
evaluation ledger. ``best`` is the ledger's best step by the stock COCO mAP (by VOC mAP when the
ledger holds no COCO values); its files are the original ``ckpt-N`` while it exists, else the kept
copy under ``eval/best``. Among several files of one step, those whose content hash is the ledger's
win, then the original over a kept copy.

>>> parse_checkpoint_spec("best"), parse_checkpoint_spec("latest"), parse_checkpoint_spec("300")
('best', 'latest', 300)
>>> parse_checkpoint_spec("ckpt-4")
Traceback (most recent call last):
...
tfod_tools.errors.TfodError: --checkpoint must be best, latest or a global step, not 'ckpt-4' \
(fix: pass e.g. --checkpoint best or --checkpoint 300)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfod_tools.errors import TfodError
from tfod_tools.evaluation.protocols.voc import VOC_MAP
from tfod_tools.ledger import DEFAULT_METRIC, Evaluation, Ledger, checkpoint_content_hash
from tfod_tools.odapi.checkpoints import CheckpointFiles, list_checkpoints

__all__ = ["ChosenCheckpoint", "choose_checkpoint", "parse_checkpoint_spec"]

CheckpointSpec = str | int


def parse_checkpoint_spec(text: str) -> CheckpointSpec:
    """``best``, ``latest`` or a global step (int >= 0)."""
    value = text.strip().lower()
    if value in ("best", "latest"):
        return value
    if value.isdigit():
        return int(value)
    raise TfodError(
        f"--checkpoint must be best, latest or a global step, not {text!r}",
        fix="pass e.g. --checkpoint best or --checkpoint 300",
    )


@dataclass(frozen=True)
class ChosenCheckpoint:
    """The checkpoint to export: its files, step, content hash and ledger row (None: not evaluated)."""

    checkpoint: CheckpointFiles
    step: int
    content_hash: str
    evaluation: Evaluation | None
    spec: CheckpointSpec
    metric: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``source`` of ``export.json``)."""
        return {
            "checkpoint": self.checkpoint.name,
            "prefix": str(self.checkpoint.prefix),
            "kept_copy": self.checkpoint.kept,
            "step": self.step,
            "content_hash": self.content_hash,
            "chosen_by": self.spec if isinstance(self.spec, str) else "step",
            "best_metric": self.metric,
        }


def _usable(model_dir: Path) -> list[CheckpointFiles]:
    return [c for c in list_checkpoints(model_dir) if c.problem is None and c.step is not None]


def _steps_text(found: list[CheckpointFiles]) -> str:
    steps = sorted({c.step for c in found if c.step is not None})
    return ", ".join(map(str, steps)) or "none"


def _pick(candidates: list[CheckpointFiles], wanted_hash: str | None) -> tuple[CheckpointFiles, str]:
    hashed = [(c, checkpoint_content_hash(c.prefix)) for c in candidates]
    hashed.sort(
        key=lambda ch: (wanted_hash is not None and ch[1] != wanted_hash, ch[0].kept, str(ch[0].prefix))
    )
    return hashed[0]


def _ledger(model_dir: Path, required: bool) -> Ledger | None:
    if not Ledger.path_for(model_dir).is_file():
        if required:
            raise TfodError(
                "--checkpoint best needs the evaluation ledger, and there is none",
                path=Ledger.path_for(model_dir),
                fix=f"run `tfod evaluate --model-dir {model_dir}` first, or pass --checkpoint latest or STEP",
            )
        return None
    return Ledger.open_unchanged(model_dir)  # not even SQLite's -shm is created in the model dir


def choose_checkpoint(model_dir: str | Path, spec: CheckpointSpec) -> ChosenCheckpoint:
    """The checkpoint of ``model_dir`` that ``spec`` names; :class:`TfodError` when there is none."""
    base = Path(model_dir)
    if not base.is_dir():
        raise TfodError("model directory does not exist", path=base, fix="pass the --model-dir of training")
    found = _usable(base)
    ledger = _ledger(base, required=spec == "best")
    try:
        metric: str | None = None
        evaluation: Evaluation | None = None
        if spec == "best":
            assert ledger is not None
            for metric in (DEFAULT_METRIC, VOC_MAP):
                evaluation = ledger.best(metric)
                if evaluation is not None:
                    break
            if evaluation is None:
                raise TfodError(
                    "the evaluation ledger holds no scored checkpoint",
                    path=ledger.path,
                    fix="run `tfod evaluate` on this model directory",
                )
            step = evaluation.step
            wanted: str | None = evaluation.content_hash
            candidates = [c for c in found if c.step == step]
            if not candidates:
                raise TfodError(
                    f"the best checkpoint (step {step}, {evaluation.checkpoint}) no longer exists and no "
                    f"kept copy is left (steps on disk: {_steps_text(found)})",
                    path=base,
                    fix="pass --checkpoint latest or one of those steps",
                )
        else:
            if not found:
                raise TfodError(
                    "no readable checkpoint in the model directory",
                    path=base,
                    fix="pass the --model-dir that training wrote ckpt-N files to",
                )
            step = max(c.step for c in found if c.step is not None) if spec == "latest" else int(spec)
            candidates = [c for c in found if c.step == step]
            if not candidates:
                raise TfodError(
                    f"no checkpoint at step {step} (steps on disk: {_steps_text(found)})",
                    path=base,
                    fix="pass --checkpoint best, latest or one of those steps",
                )
            evaluation = None if ledger is None else ledger.get(step)
            if evaluation is not None and evaluation.status != "ok":
                evaluation = None
            wanted = None if evaluation is None else evaluation.content_hash
        checkpoint, content_hash = _pick(candidates, wanted)
        if evaluation is not None and content_hash != evaluation.content_hash:
            evaluation = None  # another checkpoint at that step than the one evaluated: no metrics
        return ChosenCheckpoint(checkpoint, step, content_hash, evaluation, spec, metric)
    finally:
        if ledger is not None:
            ledger.close()
