"""The evaluation ledger: one SQLite row per evaluated checkpoint step, in ``MODEL_DIR/eval``.

The continuous evaluator records every checkpoint it evaluates (or skips, with the reason):
the checkpoint prefix name (``ckpt-12``), its global step, a content hash of its ``.index`` and
``.data-*`` files, the metrics (tag -> value, a table of their own), the stored detections file,
the protocols used, when, how long, and which checkpoints it protects from deletion (``kept``).

- Exactly one row per step: :meth:`Ledger.record` replaces the step's row (a ``--force``
  re-evaluation, or a checkpoint re-created at the same step) with its metrics.
- Crash-safe: each record is one transaction, so a process killed mid-record leaves the previous
  state whole; ``synchronous=FULL``.
- One writer and any number of concurrent readers (``tfod diagnose`` while the evaluator runs):
  WAL journal, readers open with ``readonly=True`` and read consistent snapshots.
- A ``schema_version`` table; a ledger written by a newer tfod_tools is refused with the fix.

>>> import tempfile, pathlib
>>> model_dir = pathlib.Path(tempfile.mkdtemp())
>>> with Ledger.open(model_dir) as ledger:
...     _ = ledger.record(Evaluation(100, "ckpt-2", "aa", {"DetectionBoxes_Precision/mAP": 0.25}))
...     _ = ledger.record(Evaluation(200, "ckpt-3", "bb", {"DetectionBoxes_Precision/mAP": 0.5}))
...     replaced = ledger.record(Evaluation(100, "ckpt-2", "aa", {"DetectionBoxes_Precision/mAP": 0.75}))
...     [(e.step, e.metrics["DetectionBoxes_Precision/mAP"]) for e in ledger.evaluations()]
[(100, 0.75), (200, 0.5)]
>>> replaced
True
>>> with Ledger.open(model_dir, readonly=True) as reader:
...     reader.best().checkpoint, reader.has("bb"), reader.has("bb", checkpoint="ckpt-2")
('ckpt-2', True, False)
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from tfod_tools.errors import TfodError
from tfod_tools.metrics.coco import COCO_TAGS

__all__ = [
    "DEFAULT_METRIC",
    "LEDGER_FILENAME",
    "SCHEMA_VERSION",
    "Evaluation",
    "KeptCheckpoint",
    "Ledger",
    "checkpoint_content_hash",
]

LEDGER_FILENAME = "tfod_ledger.sqlite"
SCHEMA_VERSION = 1
DEFAULT_METRIC = COCO_TAGS["AP"]
Status = Literal["ok", "skipped"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    step            INTEGER PRIMARY KEY,
    checkpoint      TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('ok', 'skipped')),
    reason          TEXT,
    detections_path TEXT,
    protocols       TEXT    NOT NULL DEFAULT '[]',
    evaluated_at    REAL    NOT NULL,
    duration_s      REAL
);
CREATE INDEX IF NOT EXISTS evaluations_by_hash ON evaluations (content_hash);
CREATE TABLE IF NOT EXISTS metrics (
    step  INTEGER NOT NULL REFERENCES evaluations (step),
    tag   TEXT    NOT NULL,
    value REAL,
    PRIMARY KEY (step, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kept (
    checkpoint TEXT PRIMARY KEY,
    step       INTEGER,
    reason     TEXT NOT NULL,
    kept_at    REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Evaluation:
    """One evaluated (or skipped) checkpoint. ``metrics`` maps tag to value (NaN: undefined)."""

    step: int
    checkpoint: str
    content_hash: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    status: Status = "ok"
    reason: str | None = None
    detections_path: str | None = None
    protocols: Sequence[str] = ()
    evaluated_at: float = field(default_factory=time.time)
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN metrics become ``None`` through the CLI's JSON helper)."""
        return {
            "step": self.step,
            "checkpoint": self.checkpoint,
            "content_hash": self.content_hash,
            "status": self.status,
            "reason": self.reason,
            "metrics": dict(self.metrics),
            "detections_path": self.detections_path,
            "protocols": list(self.protocols),
            "evaluated_at": self.evaluated_at,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class KeptCheckpoint:
    """A checkpoint the evaluator protects from ``CheckpointManager``'s deletion."""

    checkpoint: str
    step: int | None
    reason: str
    kept_at: float


def checkpoint_content_hash(prefix: str | Path) -> str:
    """SHA-256 over a checkpoint's ``PREFIX.index`` and ``PREFIX.data-*`` files (names and bytes).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ckpt-1.index").write_bytes(b"i")
    >>> _ = (d / "ckpt-1.data-00000-of-00001").write_bytes(b"d")
    >>> len(checkpoint_content_hash(d / "ckpt-1"))
    64
    """
    base = Path(prefix)
    index = base.with_name(base.name + ".index")
    shards = sorted(base.parent.glob(base.name + ".data-*"))
    if not index.is_file() or not shards:
        raise TfodError(
            "checkpoint is incomplete (needs .index and .data-* files)",
            path=base,
            fix="pass a checkpoint prefix such as MODEL_DIR/ckpt-3 whose files all exist",
        )
    digest = hashlib.sha256()
    for file in (index, *shards):
        digest.update(file.name[len(base.name) :].encode() + b"\0")
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _to_db_value(value: float) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


class Ledger:
    """The SQLite evaluation ledger of one model directory (see the module docstring)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._db = connection

    @staticmethod
    def path_for(model_dir: str | Path) -> Path:
        """Where the ledger of ``model_dir`` lives: ``MODEL_DIR/eval/tfod_ledger.sqlite``."""
        return Path(model_dir) / "eval" / LEDGER_FILENAME

    @classmethod
    def open(cls, model_dir: str | Path, *, readonly: bool = False, timeout_s: float = 30.0) -> Ledger:
        """Open (the writer creates) the ledger of ``model_dir``.

        Readers pass ``readonly=True``: they never lock out the writer and see committed records.
        """
        path = cls.path_for(model_dir)
        if readonly and not path.is_file():
            raise TfodError(
                "no evaluation ledger yet", path=path, fix="run `tfod evaluate` on this model directory"
            )
        try:
            if readonly:
                db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=timeout_s)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, timeout=timeout_s)
        except (sqlite3.Error, OSError) as exc:
            raise TfodError(f"cannot open the ledger: {exc}", path=path) from None
        db.isolation_level = None  # explicit transactions only
        ledger = cls(path, db, readonly)
        try:
            ledger._prepare()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise TfodError(
                f"not a usable tfod ledger ({exc})",
                path=path,
                fix="move the file away; it will be re-created",
            ) from None
        except BaseException:
            db.close()
            raise
        return ledger

    @classmethod
    def open_unchanged(cls, model_dir: str | Path, *, attempts: int = 5) -> Ledger:
        """A read-only ledger that leaves every file of ``model_dir`` as it was, ``-shm`` included.

        SQLite's read-only readers of a WAL database still create (and write) ``-shm`` and may
        create an empty ``-wal``. When neither exists (no connection is open: the writer, on
        closing, moved everything into the database file), the file alone is the whole ledger: it
        is read twice, and used when both reads agree and no ``-wal`` appeared meanwhile (a writer
        changes the file only while its ``-wal`` exists), from memory. Otherwise (a writer is
        active, the reads keep disagreeing, or Python 3.10 without ``Connection.deserialize``) this
        is :meth:`open` with ``readonly=True``: SQLite's own locking gives a consistent snapshot.

        >>> import tempfile, pathlib
        >>> model_dir = pathlib.Path(tempfile.mkdtemp())
        >>> with Ledger.open(model_dir) as ledger:
        ...     _ = ledger.record(Evaluation(100, "ckpt-2", "aa", {"DetectionBoxes_Precision/mAP": 0.25}))
        >>> before = sorted(p.name for p in (model_dir / "eval").iterdir())
        >>> with Ledger.open_unchanged(model_dir) as reader:
        ...     reader.best().step, reader.readonly
        (100, True)
        >>> sorted(p.name for p in (model_dir / "eval").iterdir()) == before == ["tfod_ledger.sqlite"]
        True
        """
        path = cls.path_for(model_dir)
        companions = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        for _ in range(attempts):
            if not path.is_file() or any(p.exists() for p in companions):
                break
            try:
                first, second = path.read_bytes(), path.read_bytes()
            except OSError:
                break
            if first != second or any(p.exists() for p in companions):
                continue
            if len(first) < 100 or not first.startswith(b"SQLite format 3\x00"):
                break  # not a database: open() says so
            image = bytearray(first)
            image[18:20] = b"\x01\x01"  # WAL -> rollback journal: an in-memory copy has no WAL
            db = sqlite3.connect(":memory:")
            deserialize = getattr(db, "deserialize", None)  # Python >= 3.11
            try:
                if deserialize is None:
                    raise sqlite3.NotSupportedError("no Connection.deserialize")
                deserialize(bytes(image))
            except sqlite3.Error:
                db.close()
                break
            db.isolation_level = None
            ledger = cls(path, db, readonly=True)
            try:
                ledger._prepare()
            except sqlite3.DatabaseError:
                db.close()
                break
            except BaseException:
                db.close()
                raise
            return ledger
        return cls.open(model_dir, readonly=True)

    def _prepare(self) -> None:
        db = self._db
        if not self.readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                if db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if version is None or version > SCHEMA_VERSION:
            raise TfodError(
                f"ledger schema version {version} is not supported (this tfod_tools reads {SCHEMA_VERSION})",
                path=self.path,
                fix="upgrade tfod_tools",
            )

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        self._db.execute(f"BEGIN {mode}")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _require_writer(self) -> None:
        if self.readonly:
            raise TfodError("the ledger was opened read-only", path=self.path, fix="open it without readonly")

    # -- writing ---------------------------------------------------------------------------------

    def record(self, evaluation: Evaluation) -> bool:
        """Insert or replace the row of ``evaluation.step`` and its metrics, in one transaction.

        Returns whether a row for that step existed (and was replaced).
        """
        self._require_writer()
        e = evaluation
        if e.status not in ("ok", "skipped"):
            raise ValueError(f"status must be 'ok' or 'skipped', not {e.status!r}")
        if e.status == "skipped" and not e.reason:
            raise ValueError("a skipped evaluation needs a reason")
        with self._transaction() as db:
            existed = db.execute("SELECT 1 FROM evaluations WHERE step = ?", (e.step,)).fetchone() is not None
            db.execute("DELETE FROM metrics WHERE step = ?", (e.step,))
            db.execute("DELETE FROM evaluations WHERE step = ?", (e.step,))
            db.execute(
                "INSERT INTO evaluations (step, checkpoint, content_hash, status, reason, detections_path,"
                " protocols, evaluated_at, duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(e.step),
                    e.checkpoint,
                    e.content_hash,
                    e.status,
                    e.reason,
                    e.detections_path,
                    json.dumps(list(e.protocols)),
                    float(e.evaluated_at),
                    None if e.duration_s is None else float(e.duration_s),
                ),
            )
            for tag, value in e.metrics.items():
                db.execute(
                    "INSERT INTO metrics (step, tag, value) VALUES (?, ?, ?)",
                    (int(e.step), str(tag), _to_db_value(value)),
                )
        return existed

    def mark_kept(self, checkpoint: str, *, reason: str, step: int | None = None) -> None:
        """Protect ``checkpoint`` (e.g. the best one so far) from deletion; updates the reason."""
        self._require_writer()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO kept (checkpoint, step, reason, kept_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (checkpoint) DO UPDATE SET step = excluded.step, reason = excluded.reason,"
                " kept_at = excluded.kept_at",
                (checkpoint, step, reason, time.time()),
            )

    def unmark_kept(self, checkpoint: str) -> bool:
        """Stop protecting ``checkpoint``; returns whether it was protected."""
        self._require_writer()
        with self._transaction() as db:
            return db.execute("DELETE FROM kept WHERE checkpoint = ?", (checkpoint,)).rowcount > 0

    # -- reading ---------------------------------------------------------------------------------

    def has(self, content_hash: str, *, checkpoint: str | None = None, status: Status | None = None) -> bool:
        """Whether a checkpoint with this content hash (and name, and status, when given) is recorded."""
        query = "SELECT 1 FROM evaluations WHERE content_hash = ?"
        params: list[Any] = [content_hash]
        if checkpoint is not None:
            query += " AND checkpoint = ?"
            params.append(checkpoint)
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        return self._db.execute(query + " LIMIT 1", params).fetchone() is not None

    def _load(self, where: str = "", params: Sequence[Any] = ()) -> list[Evaluation]:
        with self._transaction("DEFERRED") as db:  # one snapshot for both queries
            rows = db.execute(
                "SELECT step, checkpoint, content_hash, status, reason, detections_path, protocols,"
                f" evaluated_at, duration_s FROM evaluations {where} ORDER BY step",
                params,
            ).fetchall()
            metric_rows = db.execute(
                f"SELECT step, tag, value FROM metrics WHERE step IN (SELECT step FROM evaluations {where})"
                " ORDER BY step, tag",
                params,
            ).fetchall()
        metrics: dict[int, dict[str, float]] = {}
        for step, tag, value in metric_rows:
            metrics.setdefault(step, {})[tag] = math.nan if value is None else float(value)
        return [
            Evaluation(
                step=row[0],
                checkpoint=row[1],
                content_hash=row[2],
                metrics=metrics.get(row[0], {}),
                status=row[3],
                reason=row[4],
                detections_path=row[5],
                protocols=tuple(json.loads(row[6])),
                evaluated_at=row[7],
                duration_s=row[8],
            )
            for row in rows
        ]

    def evaluations(self, *, status: Status | None = None) -> list[Evaluation]:
        """Every recorded evaluation (of ``status``, when given), ordered by step."""
        if status is None:
            return self._load()
        return self._load("WHERE status = ?", (status,))

    def get(self, step: int) -> Evaluation | None:
        """The evaluation recorded for ``step``, if any."""
        found = self._load("WHERE step = ?", (int(step),))
        return found[0] if found else None

    def find(self, content_hash: str) -> Evaluation | None:
        """The evaluation of the checkpoint with this content hash, if any."""
        found = self._load("WHERE content_hash = ?", (content_hash,))
        return found[-1] if found else None

    def best(self, metric: str = DEFAULT_METRIC, *, higher_is_better: bool = True) -> Evaluation | None:
        """The ``ok`` evaluation with the best value of ``metric`` (ties: the earliest step).

        Undefined values (NaN) never win; ``-1`` (COCO's "no ground truth") is an ordinary number.
        """
        order = "DESC" if higher_is_better else "ASC"
        row = self._db.execute(
            "SELECT e.step FROM evaluations e JOIN metrics m ON m.step = e.step"
            f" WHERE e.status = 'ok' AND m.tag = ? AND m.value IS NOT NULL ORDER BY m.value {order}, e.step"
            " LIMIT 1",
            (metric,),
        ).fetchone()
        return None if row is None else self.get(row[0])

    def kept(self) -> list[KeptCheckpoint]:
        """The protected checkpoints, by name."""
        rows = self._db.execute("SELECT checkpoint, step, reason, kept_at FROM kept ORDER BY checkpoint")
        return [KeptCheckpoint(*row) for row in rows.fetchall()]

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
