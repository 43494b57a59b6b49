"""``tfod evaluate``: evaluate checkpoints of a model directory in global-step order, in one process.

:class:`EvaluationSession` holds what is built once (the model and the eval input, lazily, through
:class:`tfod_tools.odapi.evaluator.CheckpointEvaluator`), the ledger and the image names, and
evaluates one checkpoint at a time (:meth:`EvaluationSession.process`):

1. a checkpoint with missing or truncated files, an unreadable step or a failed restore is
   reported as skipped, with the reason; the run goes on;
2. a checkpoint whose content hash the ledger already holds is skipped (``force`` re-evaluates);
3. otherwise the model runs over the eval input; the metrics engine scores the detections
   (:mod:`tfod_tools.evaluation.scoring`); detections go to the store
   (:mod:`tfod_tools.data.store`); the ledger records the step; ``MODEL_DIR/eval`` is
   rewritten from the ledger (:mod:`tfod_tools.evaluation.events`), so TensorBoard shows one
   point per step and tag; the best checkpoint (by mAP) is hard-linked under ``MODEL_DIR/eval/best``.

Checkpoints are evaluated from hard links under ``MODEL_DIR/eval/protected`` (made before the
evaluation starts, removed after it), so ``CheckpointManager`` cannot delete them mid-evaluation.
:func:`evaluate_model_dir` is the whole command; ``follow=True`` protects checkpoints as they
appear (:class:`tfod_tools.evaluation.follow.CheckpointGuard`) and evaluates them as training
writes them (:func:`tfod_tools.evaluation.follow.follow_training`). Which checkpoints a run without
``follow`` evaluates is :mod:`tfod_tools.evaluation.selection`; the reported types are
:mod:`tfod_tools.evaluation.results`. The names of both are importable from here too.

Before any inference, the pipeline's eval input is checked: its records exist and hold at least
one image, its label map parses and agrees with ``num_classes``, and (unless following a training)
the model directory holds checkpoint files (else :class:`TfodError`, exit 2).
:attr:`EvaluateResult.exit_code` is 1 when every requested checkpoint was skipped for a failure
(a checkpoint already in the ledger is not a failure). ``checkpoints="latest"`` evaluates the newest
checkpoint that can be restored and warns (:attr:`EvaluateResult.warnings`) when a newer one on
disk cannot be, with why.

>>> parse_selection("all"), parse_selection("latest"), parse_selection("300, 100")
('all', 'latest', [100, 300])
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from tfod_tools.data import store
from tfod_tools.data.areas import evaluated_areas
from tfod_tools.data.classes import category_names
from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.events import refresh_eval_run, rewrite_eval_run
from tfod_tools.evaluation.follow import CheckpointGuard, follow_training
from tfod_tools.evaluation.protocols.voc import VOC_MAP
from tfod_tools.evaluation.results import EvalEvents, EvaluateResult, Skipped
from tfod_tools.evaluation.scoring import checkpoint_metrics, pr_counts
from tfod_tools.evaluation.selection import (
    Selection,
    check_has_checkpoints,
    parse_selection,
    select_checkpoints,
)
from tfod_tools.ledger import DEFAULT_METRIC, Evaluation, Ledger, checkpoint_content_hash
from tfod_tools.odapi.checkpoints import CheckpointFiles, protect, read_step, release, scan_checkpoints
from tfod_tools.odapi.label_map import LabelMap

__all__ = [
    "EvalEvents",
    "EvaluateResult",
    "EvaluationSession",
    "Skipped",
    "check_has_checkpoints",
    "evaluate_log_path",
    "evaluate_model_dir",
    "follow_training",
    "in_key_order",
    "parse_selection",
]


def _count_records(files: Sequence[str]) -> int:
    from tfod_tools.data.tfrecord import iter_records

    total = 0
    for file in files:
        for _ in iter_records(file):
            total += 1
    return total


def _image_names(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(source_ids, display names)`` of every eval record, in file order."""
    from tfod_tools.data.records import iter_image_records

    source_ids: list[str] = []
    names: list[str] = []
    for _, _, record in iter_image_records(list(files)):
        source = str(record.source_id)
        source_ids.append(source)
        names.append(str(record.filename) or source)
    return source_ids, names


class _Keyed(Protocol):
    @property
    def key(self) -> int: ...


_K = TypeVar("_K", bound=_Keyed)


def in_key_order(images: Sequence[_K]) -> list[_K]:
    """The eval images in the order stock evaluation numbers them: by their ``hash`` key.

    ``model_main_tf2`` gives its COCO evaluator each image's int32 hash key (``inputs.HASH_KEY``)
    as the image id, and pycocotools breaks score ties across images by image id (it sorts the
    ids); numbering the images 1..N in key order (eval order among equal keys) gives tied scores
    stock's order.

    >>> from types import SimpleNamespace as K
    >>> [im.key for im in in_key_order([K(key=30), K(key=2), K(key=7), K(key=2)])]
    [2, 2, 7, 30]
    """
    return sorted(images, key=lambda im: im.key)


class EvaluationSession:
    """Evaluate checkpoints of one model directory one by one (see the module docstring)."""

    def __init__(
        self,
        pipeline: str | Path,
        model_dir: str | Path,
        *,
        protocols: Sequence[str] = ("coco",),
        force: bool = False,
        events: EvalEvents | None = None,
        must_exist: bool = True,
    ) -> None:
        from tfod_tools.odapi.checks import check_inputs, check_model_dir

        self.pipeline = Path(pipeline)
        checked = check_inputs(self.pipeline, None, roles=("eval",))
        self.model_dir = check_model_dir(model_dir)
        self.eval_files = checked.records.get("eval", [])
        self.label_map: LabelMap = checked.label_map
        self.num_images = _count_records(self.eval_files)
        if self.num_images == 0:
            raise TfodError(
                "the eval records hold no image",
                path=", ".join(self.eval_files) or self.pipeline,
                fix="write eval records with at least one image (tfod synth / tfod convert)",
            )
        if must_exist and not self.model_dir.is_dir():
            raise TfodError(
                "model directory does not exist", path=self.model_dir, fix="pass the --model_dir of training"
            )
        self.protocols = tuple(protocols)
        self.force = force
        self.events = events or EvalEvents()
        self.protected_dir = self.model_dir / "eval" / "protected"
        self.best_dir = self.model_dir / "eval" / "best"
        self.ledger = Ledger.open(self.model_dir)
        self._evaluator: Any = None
        self._names: dict[int, str] | None = None
        self.best_metric = DEFAULT_METRIC if "coco" in self.protocols else VOC_MAP

    # -- pieces built once --------------------------------------------------------------------

    @property
    def evaluator(self) -> Any:
        """The :class:`~tfod_tools.odapi.evaluator.CheckpointEvaluator` (built on first use)."""
        if self._evaluator is None:
            from tfod_tools.odapi.evaluator import CheckpointEvaluator

            self._evaluator = CheckpointEvaluator(self.pipeline)
        return self._evaluator

    def _names_by_key(self) -> dict[int, str]:
        if self._names is None:
            source_ids, names = _image_names(self.eval_files)
            keys = self.evaluator.source_keys(source_ids)
            counts: dict[int, int] = {}
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
            self._names = {k: n for k, n in zip(keys, names, strict=True) if counts[k] == 1}
        return self._names

    def read_step(self, checkpoint: CheckpointFiles) -> int:
        """The checkpoint's global step (no TensorFlow); :class:`TfodError` when unreadable."""
        return read_step(checkpoint.prefix)

    # -- one checkpoint ---------------------------------------------------------------------------

    def _annotated(self, output: Any) -> tuple[AnnotatedSet, list[int]]:
        names = self._names_by_key()
        images = in_key_order(output.images)
        ids = np.arange(1, len(images) + 1, dtype=np.int64)
        keys = [im.key for im in images]
        table = ImageTable.from_sizes(
            ids,
            [im.width for im in images],
            [im.height for im in images],
            [names.get(im.key, str(im.key)) for im in images],
        )

        def rows(attr: str) -> Any:
            return [np.full(getattr(im, attr).shape[0], i) for i, im in zip(ids, images, strict=True)]

        def cat(attr: str, shape: tuple[int, ...] = (0,)) -> Any:
            parts = [getattr(im, attr) for im in images]
            return np.concatenate(parts) if parts else np.zeros(shape)

        # The area the API's COCO evaluation uses: groundtruth_area when > 0, else the box area.
        areas = [evaluated_areas(im.gt_boxes, 1, 1, im.gt_area) for im in images]
        gt = GroundTruth.from_arrays(
            np.concatenate(rows("gt_classes")) if images else [],
            cat("gt_boxes", (0, 4)),
            cat("gt_classes"),
            area=np.concatenate(areas) if images else None,
            iscrowd=cat("gt_crowd"),
            difficult=cat("gt_difficult"),
        )
        dt = Detections.from_arrays(
            np.concatenate(rows("det_classes")) if images else [],
            cat("det_boxes", (0, 4)),
            cat("det_classes"),
            cat("det_scores"),
        )
        categories = category_names(self.label_map)  # the API's per-category tag names (display names)
        return AnnotatedSet(images=table, categories=categories, ground_truth=gt, detections=dt), keys

    def process(self, checkpoint: CheckpointFiles, *, step: int | None = None) -> Evaluation | Skipped:
        """Evaluate one (protected) checkpoint; return its ledger row, or why it was skipped."""
        skipped = self._check(checkpoint, step)
        if isinstance(skipped, Skipped):
            self._emit_skip(skipped)
            return skipped
        content_hash, step = skipped
        if not self.force and self.ledger.has(content_hash, checkpoint=checkpoint.name, status="ok"):
            done = Skipped(
                checkpoint.name, f"already evaluated at step {step} (--force re-evaluates)", step, True
            )
            self._emit_skip(done)
            return done
        if self.events.on_start is not None:
            self.events.on_start(checkpoint.name, step, self.num_images)
        started = time.time()
        try:
            output = self.evaluator.evaluate(checkpoint.prefix, on_batch=self.events.on_batch)
        except TfodError as exc:
            failed = Skipped(checkpoint.name, exc.message, step)
            self._emit_skip(failed)
            return failed
        if self.evaluator.last_restore_note and self.events.on_note is not None:
            self.events.on_note(f"{checkpoint.name}: {self.evaluator.last_restore_note}")
        data, keys = self._annotated(output)
        metrics = checkpoint_metrics(data, self.protocols, output.losses)
        gt_file = store.save_ground_truth(self.model_dir, data, keys)
        assert data.detections is not None
        det_path = store.save_detections(
            self.model_dir, output.step, data.detections, gt_file, pr_counts(data)
        )
        evaluation = Evaluation(
            step=output.step,
            checkpoint=checkpoint.name,
            content_hash=content_hash,
            metrics=metrics,
            detections_path=str(det_path.relative_to(self.model_dir / "eval")),
            protocols=self.protocols,
            evaluated_at=started,
            duration_s=time.time() - started,
        )
        self.ledger.record(evaluation)
        rewrite_eval_run(self.model_dir, self.ledger.evaluations(status="ok"))
        self._keep_best(checkpoint)
        if self.events.on_done is not None:
            self.events.on_done(evaluation)
        return evaluation

    def _check(self, checkpoint: CheckpointFiles, step: int | None) -> Skipped | tuple[str, int]:
        if checkpoint.problem:
            return Skipped(checkpoint.name, checkpoint.problem, step)
        try:
            content_hash = checkpoint_content_hash(checkpoint.prefix)
            if step is None:
                step = self.read_step(checkpoint)
        except TfodError as exc:
            return Skipped(checkpoint.name, exc.message, step)
        return content_hash, step

    def _emit_skip(self, skipped: Skipped) -> None:
        if self.events.on_skip is not None:
            self.events.on_skip(skipped)

    def _keep_best(self, checkpoint: CheckpointFiles) -> None:
        """Hard-link the best checkpoint under ``eval/best`` and mark it kept in the ledger."""
        best = self.ledger.best(self.best_metric)
        if best is None or best.checkpoint != checkpoint.name:
            return
        previous = [
            k for k in self.ledger.kept() if k.reason.startswith("best") and k.checkpoint != best.checkpoint
        ]
        if self.best_dir.is_dir():
            for old in self.best_dir.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        try:
            protect(checkpoint, self.best_dir)
        except TfodError:
            return
        for old_kept in previous:
            self.ledger.unmark_kept(old_kept.checkpoint)
        self.ledger.mark_kept(best.checkpoint, reason=f"best {self.best_metric}", step=best.step)

    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()


def evaluate_log_path(model_dir: str | Path, *, follow: bool = False) -> Path | None:
    """Where TensorFlow's own output of ``tfod evaluate`` goes: ``MODEL_DIR/logs/evaluate.log``.

    None while ``model_dir`` does not exist and the run does not follow a training: such a run
    fails before TensorFlow loads, and nothing is created for it.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> evaluate_log_path(d).relative_to(d).as_posix(), evaluate_log_path(d + "/new")
    ('logs/evaluate.log', None)
    >>> evaluate_log_path(d + "/new", follow=True).name
    'evaluate.log'
    """
    model = Path(model_dir)
    if not follow and not model.is_dir():
        return None
    return model / "logs" / "evaluate.log"


def evaluate_model_dir(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    checkpoints: Selection = "all",
    protocols: Sequence[str] = ("coco",),
    force: bool = False,
    follow: bool = False,
    final_step: int | None = None,
    until_pid: int | None = None,
    events: EvalEvents | None = None,
    library_output: contextlib.AbstractContextManager[Any] | None = None,
) -> EvaluateResult:
    """Evaluate the selected checkpoints of ``model_dir`` (see the module docstring).

    ``library_output`` is entered once the input checks have passed, before TensorFlow loads, and
    exited at the end (the CLI's sends TensorFlow's own output to the run's log file).
    """
    started = time.monotonic()
    model = Path(model_dir)
    result = EvaluateResult(model_dir=model)
    if not follow and model.is_dir():  # following a training, an empty model_dir is normal: it waits
        check_has_checkpoints(model, scan_checkpoints(model))
    guard = None
    if follow:  # protect checkpoints from the start, before TensorFlow is even imported
        guard = CheckpointGuard(model, model / "eval" / "protected").start()
    try:
        session = EvaluationSession(
            pipeline, model, protocols=protocols, force=force, events=events, must_exist=not follow
        )
    except BaseException:
        if guard is not None:
            guard.stop()
        raise
    stack = contextlib.ExitStack()
    try:
        if library_output is not None:
            stack.enter_context(library_output)
        refresh_eval_run(model, session.ledger.evaluations(status="ok"))
        if follow:
            assert guard is not None
            follow_training(session, guard, result, final_step=final_step, until_pid=until_pid)
        else:
            chosen, missing, warnings = select_checkpoints(
                scan_checkpoints(model), checkpoints, session.read_step
            )
            result.skipped.extend(missing)
            for warning in warnings:
                result.warnings.append(warning)
                if session.events.on_warn is not None:
                    session.events.on_warn(warning)
            for skipped in missing:
                session._emit_skip(skipped)
            protected: list[tuple[int | None, CheckpointFiles]] = []
            for step, ckpt in chosen:
                if ckpt.problem is None:
                    try:
                        ckpt = protect(ckpt, session.protected_dir)
                    except TfodError as exc:
                        result.skipped.append(Skipped(ckpt.name, exc.message, step))
                        continue
                protected.append((step, ckpt))
            try:
                for step, ckpt in protected:
                    outcome = session.process(ckpt, step=step)
                    if isinstance(outcome, Skipped):
                        result.skipped.append(outcome)
                    else:
                        result.evaluated.append(outcome)
            finally:
                for _, ckpt in protected:
                    if ckpt.prefix.parent == session.protected_dir:
                        release(ckpt)
        result.all_evaluations = session.ledger.evaluations(status="ok")
        result.best = session.ledger.best(session.best_metric)
    finally:
        if guard is not None:
            guard.stop()
        session.close()
        stack.close()
    result.elapsed_s = time.monotonic() - started
    return result
