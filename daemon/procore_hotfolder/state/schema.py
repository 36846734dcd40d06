"""The journal's schema: the tables as first released (version 1) and the numbered upgrades
since, applied one by one and recorded in SQLite's ``PRAGMA user_version``.

A change to the schema is a new entry in ``_UPGRADES`` (never an edit of an old one), so a
journal of any earlier release is brought up to date in place, and a journal written by a
newer release than this one is refused rather than misread. Each version is a literal, read
from nothing that lives on (``tests/unit/state/test_schema.py`` holds version 1 to its
text): a new active state changes ``ACTIVE_SQL`` for the queries, and reaches the partial
unique index only through an upgrade of its own.
"""

from __future__ import annotations

import sqlite3

from procore_hotfolder.errors import JournalError
from procore_hotfolder.model import ACTIVE

#: The active states now, as an SQL list, for the queries' ``state IN (...)``.
ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))

#: Version 1 is the schema before versions were kept (``PRAGMA user_version`` 0); its index
#: lists the active states of then.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS files (
    id              INTEGER PRIMARY KEY,
    folder          BLOB NOT NULL,
    path            BLOB NOT NULL,
    state           TEXT NOT NULL,
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    ino             INTEGER NOT NULL,
    dev             INTEGER NOT NULL,
    sha256          TEXT,
    uuid            TEXT,
    ticket          TEXT,
    segments        TEXT,
    association     TEXT,
    resource_id     INTEGER,
    archive_path    BLOB,
    final_path      BLOB,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_row_per_path
    ON files(path) WHERE state IN ('associated', 'associating', 'ledgered', 'queued',
                                  'stored', 'uploading');
CREATE INDEX IF NOT EXISTS files_by_state ON files(state);
CREATE INDEX IF NOT EXISTS files_by_path ON files(path);
CREATE TABLE IF NOT EXISTS parts (
    file_id INTEGER NOT NULL REFERENCES files(id),
    number  INTEGER NOT NULL,
    etag    TEXT NOT NULL,
    PRIMARY KEY (file_id, number)
);
"""

#: ``_UPGRADES[n]`` turns schema version n into n + 1; each runs in one transaction.
_UPGRADES: dict[int, str] = {
    # 2: Procore Documents folder ids by path (below a base folder, 0 = the root), so
    # mirrored folders are neither listed nor created again after a restart.
    1: """
CREATE TABLE folder_ids (
    project_id INTEGER NOT NULL,
    base_id    INTEGER NOT NULL,
    path       TEXT NOT NULL,
    folder_id  INTEGER NOT NULL,
    PRIMARY KEY (project_id, base_id, path)
);
""",
    # 3: the route each file was given (versioned JSON, ``upload.routing.Route``), kept from
    # the creation of its Upload on, so a restart or a reload that changes the routing rules
    # does not send a half-filed file elsewhere (NULL: a row from before, filed by its
    # folder's own keys); and Photos album ids by name, each found or created once.
    2: """
ALTER TABLE files ADD COLUMN route TEXT;
CREATE TABLE album_ids (
    project_id INTEGER NOT NULL,
    name       TEXT NOT NULL,
    album_id   INTEGER NOT NULL,
    PRIMARY KEY (project_id, name)
);
""",
}
SCHEMA_VERSION = 1 + len(_UPGRADES)


def schema_version(db: sqlite3.Connection) -> int:
    """The schema version ``db`` is at (0: older than versions, or empty)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def upgrade(db: sqlite3.Connection) -> None:
    """Bring ``db`` (autocommit mode) to ``SCHEMA_VERSION`` step by step, all in one
    transaction. Raises ``JournalError`` for a schema newer than this daemon's.

    The version is read inside the write transaction: two processes opening a journal at
    once (the daemon starting while ``status`` runs) upgrade it once, the second waiting for
    the first and then finding it done."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _known_version(db)
        start = version
        if version == 0:
            _execute(db, _SCHEMA_V1)  # new, or version 1 (IF NOT EXISTS)
            version = 1
        while version < SCHEMA_VERSION:
            _execute(db, _UPGRADES[version])
            version += 1
        if version != start:
            db.execute(f"PRAGMA user_version = {version}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _known_version(db: sqlite3.Connection) -> int:
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal schema {version} is newer than this daemon's "
                           f"({SCHEMA_VERSION}); upgrade procore-hotfolder")
    return version


def _execute(db: sqlite3.Connection, script: str) -> None:
    """Run ``script``'s statements inside the caller's transaction (``executescript`` would
    commit it first). The schema has no statement with a ``;`` inside it."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
