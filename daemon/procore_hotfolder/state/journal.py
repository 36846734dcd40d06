"""The durable journal: one SQLite row per settled file version, moved through ``FileState``.

SQLite in WAL mode with ``synchronous=FULL``: a committed move survives a power cut. Every
move is a guarded ``UPDATE ... WHERE id = ? AND state = ?`` checked against the table of
allowed moves in ``model``. At most one active row exists per path (a partial unique index),
so a file can never be queued twice. Paths are stored as bytes, exactly as the filesystem
has them (names need not be UTF-8). The tables and their numbered upgrades are
``schema``'s.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procore_hotfolder.errors import JournalError
from procore_hotfolder.model import FileState, Observation, check_move
from procore_hotfolder.state import schema
from procore_hotfolder.state.schema import ACTIVE_SQL

JOURNAL_NAME = "journal.sqlite3"

_UNFINISHED_SQL = ("SELECT id, folder, path, next_attempt_at FROM files "  # noqa: S608 - constant
                   f"WHERE state IN ({ACTIVE_SQL}) ORDER BY id")

_COLUMNS = (
    "sha256", "uuid", "ticket", "segments", "association", "resource_id", "archive_path",
    "final_path", "attempts", "next_attempt_at", "last_error", "route",
)


def _b(path: Path | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _p(raw: bytes | None) -> Path | None:
    return None if raw is None else Path(os.fsdecode(raw))


@dataclass(frozen=True)
class FileRecord:
    """One row of the journal."""

    id: int
    folder: Path
    path: Path
    state: FileState
    observation: Observation
    sha256: str | None
    uuid: str | None
    ticket: str | None
    segments: str | None
    association: dict[str, Any] | None
    resource_id: int | None
    archive_path: Path | None
    final_path: Path | None
    attempts: int
    next_attempt_at: float
    last_error: dict[str, Any] | None
    created_at: float
    updated_at: float
    #: Where the file goes (``upload.routing.Route`` as versioned JSON), kept from the
    #: creation of its Upload on; None before that, and in rows of older releases.
    route: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FileRecord:
        folder = _p(row["folder"])
        path = _p(row["path"])
        assert folder is not None and path is not None
        return cls(
            id=row["id"], folder=folder, path=path, state=FileState(row["state"]),
            observation=Observation(size=row["size"], mtime_ns=row["mtime_ns"],
                                    ino=row["ino"], dev=row["dev"]),
            sha256=row["sha256"], uuid=row["uuid"], ticket=row["ticket"],
            segments=row["segments"],
            association=json.loads(row["association"]) if row["association"] else None,
            resource_id=row["resource_id"], archive_path=_p(row["archive_path"]),
            final_path=_p(row["final_path"]), attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=json.loads(row["last_error"]) if row["last_error"] else None,
            created_at=row["created_at"], updated_at=row["updated_at"],
            route=json.loads(row["route"]) if row["route"] else None,
        )


class Journal:
    """Thread-safe access to the journal database (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._upgrade()

    def _upgrade(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION`` (see ``schema``)."""
        with self._lock:
            schema.upgrade(self._db)

    def schema_version(self) -> int:
        with self._lock:
            return schema.schema_version(self._db)

    @classmethod
    def open(cls, state_dir: Path) -> Journal:
        """Open (creating) the journal in ``state_dir``."""
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        return cls(state_dir / JOURNAL_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- queries ---------------------------------------------------------------------------

    def get(self, file_id: int) -> FileRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise JournalError(f"no journal row {file_id}")
        return FileRecord.from_row(row)

    def active(self) -> list[FileRecord]:
        """Every unfinished row, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM files WHERE state IN ({ACTIVE_SQL}) ORDER BY id"  # noqa: S608 - constant
            ).fetchall()
        return [FileRecord.from_row(r) for r in rows]

    def unfinished(self) -> list[tuple[int, Path, str, float]]:
        """``(id, folder, path, next_attempt_at)`` of every unfinished row, oldest first:
        what a restart needs to queue them, without loading whole rows."""
        folders: dict[bytes, Path] = {}
        with self._lock:
            rows = self._db.execute(_UNFINISHED_SQL).fetchall()
        return [(r[0], folders.setdefault(r[1], Path(os.fsdecode(r[1]))), os.fsdecode(r[2]),
                 r[3]) for r in rows]

    def history(self, path: Path) -> list[FileRecord]:
        """Every row for ``path`` (as source, archive or failed location), newest first."""
        raw = _b(path)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE path = ? OR final_path = ? OR archive_path = ? "
                "ORDER BY id DESC", (raw, raw, raw)).fetchall()
        return [FileRecord.from_row(r) for r in rows]

    def failed_version(self, path: Path, observation: Observation) -> FileRecord | None:
        """A failed row for this very version of ``path`` (same size, mtime and inode).

        ``Observation.version`` less the device, on purpose: a failed file left in place
        must not be tried again because a remount gave its share another device number."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM files WHERE path = ? AND state = 'failed' AND size = ? "
                "AND mtime_ns = ? AND ino = ? ORDER BY id DESC LIMIT 1",
                (_b(path), observation.size, observation.mtime_ns, observation.ino),
            ).fetchone()
        return FileRecord.from_row(row) if row else None

    def failed(self) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE state = 'failed' ORDER BY id").fetchall()
        return [FileRecord.from_row(r) for r in rows]

    def counts(self) -> dict[Path, dict[str, int]]:
        """Rows per folder and state."""
        out: dict[Path, dict[str, int]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT folder, state, COUNT(*) AS n FROM files GROUP BY folder, state"
            ).fetchall()
        for row in rows:
            folder = _p(row["folder"])
            assert folder is not None
            out.setdefault(folder, {})[row["state"]] = row["n"]
        return out

    def queue_summary(self) -> dict[Path, dict[str, tuple[int, float]]]:
        """Per folder and unfinished or failed state: how many rows, and when the oldest of
        them was queued. Reads only those rows (the state index), not the whole history."""
        out: dict[Path, dict[str, tuple[int, float]]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT folder, state, COUNT(*) AS n, MIN(created_at) AS oldest "  # noqa: S608 - constant
                f"FROM files WHERE state IN ({ACTIVE_SQL}, 'failed') GROUP BY folder, state"
            ).fetchall()
        for row in rows:
            folder = _p(row["folder"])
            assert folder is not None
            out.setdefault(folder, {})[row["state"]] = (int(row["n"]), float(row["oldest"]))
        return out

    def oldest_unfinished(self) -> tuple[Path, float] | None:
        """The path of the unfinished row queued first, and when (None: no such row). Reads
        only those rows (the state index)."""
        with self._lock:
            row = self._db.execute(
                "SELECT path, created_at FROM files "  # noqa: S608 - constant
                f"WHERE state IN ({ACTIVE_SQL}) ORDER BY created_at, id LIMIT 1").fetchone()
        return None if row is None else (Path(os.fsdecode(row[0])), float(row[1]))

    def last_archived(self) -> dict[Path, FileRecord]:
        """The most recent archived row per folder."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE id IN (SELECT MAX(id) FROM files "
                "WHERE state = 'archived' GROUP BY folder)").fetchall()
        records = [FileRecord.from_row(r) for r in rows]
        return {r.folder: r for r in records}

    def parts(self, file_id: int) -> dict[int, str]:
        """Segment number -> ETag for the segments already stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT number, etag FROM parts WHERE file_id = ?", (file_id,)).fetchall()
        return {r["number"]: r["etag"] for r in rows}

    # --- changes ---------------------------------------------------------------------------

    def enqueue(
        self, entries: Iterable[tuple[Path, Path, Observation]], now: float,
    ) -> list[FileRecord]:
        """Add settled files (folder, path, observation) as QUEUED in one transaction.

        A path that already has an active row is left alone. Returns the new rows.
        """
        created: list[FileRecord] = []
        with self._transaction() as db:
            for folder, path, obs in entries:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO files (folder, path, state, size, mtime_ns, ino, "
                    "dev, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_b(folder), _b(path), FileState.QUEUED.value, obs.size, obs.mtime_ns,
                     obs.ino, obs.dev, now, now))
                if cursor.rowcount == 1 and cursor.lastrowid is not None:
                    row = db.execute("SELECT * FROM files WHERE id = ?",
                                     (cursor.lastrowid,)).fetchone()
                    created.append(FileRecord.from_row(row))
        return created

    def move(
        self, record: FileRecord, target: FileState, now: float, **columns: Any,
    ) -> FileRecord:
        """Move ``record`` to ``target`` (may equal its state to update columns only).

        Raises ``JournalError`` for a move the model forbids or when the row is no longer in
        ``record.state`` (someone else moved it).
        """
        if target != record.state:
            check_move(record.state, target)
        assignments = ["state = ?", "updated_at = ?"]
        values: list[Any] = [target.value, now]
        for name, value in columns.items():
            if name not in _COLUMNS:
                raise JournalError(f"unknown journal column {name}")
            assignments.append(f"{name} = ?")
            values.append(_encode(name, value))
        values.extend([record.id, record.state.value])
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE files SET {', '.join(assignments)} WHERE id = ? AND state = ?",  # noqa: S608 - column names come from _COLUMNS
                values)
            if cursor.rowcount != 1:
                raise JournalError(
                    f"journal row {record.id} is no longer {record.state}; move refused")
            row = db.execute("SELECT * FROM files WHERE id = ?", (record.id,)).fetchone()
        return FileRecord.from_row(row)

    def record_part(self, file_id: int, number: int, etag: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO parts (file_id, number, etag) VALUES (?, ?, ?)",
                       (file_id, number, etag))

    def clear_parts(self, file_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM parts WHERE file_id = ?", (file_id,))

    # --- Documents folder ids, Photos album ids and filed images -------------------------

    def folder_id(self, project_id: int, base_id: int, path: str) -> int | None:
        """The cached Procore folder id of ``path`` ("a/b") below ``base_id`` (0: root)."""
        with self._lock:
            row = self._db.execute(
                "SELECT folder_id FROM folder_ids WHERE project_id = ? AND base_id = ? "
                "AND path = ?", (project_id, base_id, path)).fetchone()
        return None if row is None else int(row["folder_id"])

    def remember_folder(self, project_id: int, base_id: int, path: str, folder_id: int) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO folder_ids (project_id, base_id, path, "
                       "folder_id) VALUES (?, ?, ?, ?)", (project_id, base_id, path, folder_id))

    def forget_folder(self, project_id: int, folder_id: int) -> int:
        """Forget the cached folder ``folder_id`` and every cached folder below it (its path
        as a prefix); returns how many entries went."""
        with self._transaction() as db:
            rows = db.execute("SELECT base_id, path FROM folder_ids WHERE project_id = ? "
                              "AND folder_id = ?", (project_id, folder_id)).fetchall()
            gone = 0
            for row in rows:
                gone += db.execute(
                    "DELETE FROM folder_ids WHERE project_id = ? AND base_id = ? AND "
                    "(path = ? OR substr(path, 1, ?) = ?)",
                    (project_id, row["base_id"], row["path"], len(row["path"]) + 1,
                     row["path"] + "/")).rowcount
        return gone

    def album_id(self, project_id: int, name: str) -> int | None:
        """The kept id of the project's Photos album ``name``."""
        with self._lock:
            row = self._db.execute(
                "SELECT album_id FROM album_ids WHERE project_id = ? AND name = ?",
                (project_id, name)).fetchone()
        return None if row is None else int(row["album_id"])

    def remember_album(self, project_id: int, name: str, album_id: int) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO album_ids (project_id, name, album_id) "
                       "VALUES (?, ?, ?)", (project_id, name, album_id))

    def forget_album(self, project_id: int, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM album_ids WHERE project_id = ? AND name = ?",
                       (project_id, name))

    def image_claimed(self, image_id: int, other_than: int) -> bool:
        """Whether a journal row other than ``other_than`` was filed as Photos image
        ``image_id``."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM files WHERE resource_id = ? AND id != ? AND "
                "json_extract(association, '$.kind') = 'photos' LIMIT 1",
                (image_id, other_than)).fetchone()
        return row is not None


def _encode(name: str, value: Any) -> Any:
    if name in ("archive_path", "final_path"):
        return _b(value)
    if name in ("association", "last_error", "route") and value is not None:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, Mapping):
        return json.dumps(value)
    return value
