"""The journal: guarded moves, one active row per path, durable across reopen."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from procore_hotfolder.errors import JournalError
from procore_hotfolder.model import FileState
from procore_hotfolder.state import schema
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.watch.stability import Observation

OBS = Observation(size=10, mtime_ns=1, ino=2, dev=3)


def test_enqueue_is_once_per_active_path(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    folder, path = tmp_path / "drop", tmp_path / "drop" / "a.pdf"
    first = journal.enqueue([(folder, path, OBS)], now=1.0)
    again = journal.enqueue([(folder, path, OBS)], now=2.0)
    assert len(first) == 1 and again == []
    record = first[0]
    record = journal.move(record, FileState.UPLOADING, 3.0)
    record = journal.move(record, FileState.FAILED, 4.0)
    # A finished row frees the path for a new version.
    assert len(journal.enqueue([(folder, path, OBS)], now=5.0)) == 1


def test_guarded_moves(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    (record,) = journal.enqueue([(tmp_path, tmp_path / "x", OBS)], now=1.0)
    with pytest.raises(JournalError):
        journal.move(record, FileState.ARCHIVED, 2.0)
    moved = journal.move(record, FileState.UPLOADING, 2.0, uuid="U1")
    with pytest.raises(JournalError):  # stale copy: the row is no longer QUEUED
        journal.move(record, FileState.UPLOADING, 3.0)
    assert moved.uuid == "U1" and moved.state is FileState.UPLOADING


def test_state_survives_reopen_with_odd_names(tmp_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"scan \xff\nname.pdf")
    journal = Journal.open(tmp_path)
    (record,) = journal.enqueue([(tmp_path, odd, OBS)], now=1.0)
    record = journal.move(record, FileState.UPLOADING, 2.0,
                          last_error={"reason": "network", "detail": "x"})
    journal.record_part(record.id, 0, "etag0")
    journal.close()
    reopened = Journal.open(tmp_path)
    (active,) = reopened.active()
    assert active.path == odd
    assert active.last_error == {"reason": "network", "detail": "x"}
    assert reopened.parts(active.id) == {0: "etag0"}
    assert reopened.history(odd)[0].id == active.id


def test_counts_and_failed_version(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    (record,) = journal.enqueue([(tmp_path, tmp_path / "f", OBS)], now=1.0)
    journal.move(record, FileState.FAILED, 2.0)
    assert journal.counts()[tmp_path] == {"failed": 1}
    assert journal.failed_version(tmp_path / "f", OBS) is not None
    other = Observation(size=11, mtime_ns=1, ino=2, dev=3)
    assert journal.failed_version(tmp_path / "f", other) is None


# --- schema versions -------------------------------------------------------------------------

_VERSION_1_ROW = (
    "CREATE TABLE files (id INTEGER PRIMARY KEY, folder BLOB NOT NULL, path BLOB NOT NULL, "
    "state TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT "
    "NULL, dev INTEGER NOT NULL, sha256 TEXT, uuid TEXT, ticket TEXT, segments TEXT, "
    "association TEXT, resource_id INTEGER, archive_path BLOB, final_path BLOB, attempts "
    "INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT, "
    "created_at REAL NOT NULL, updated_at REAL NOT NULL);"
    "CREATE TABLE parts (file_id INTEGER NOT NULL REFERENCES files(id), number INTEGER NOT "
    "NULL, etag TEXT NOT NULL, PRIMARY KEY (file_id, number));"
    "INSERT INTO files (folder, path, state, size, mtime_ns, ino, dev, association, "
    "created_at, updated_at) VALUES (X'2F64', X'2F642F612E706466', 'associating', 10, 1, 2, "
    "3, '{\"kind\": \"photos\", \"name\": \"a.pdf\", \"album_id\": 7}', 1.0, 1.0);"
)


def test_the_oldest_unfinished_row_is_the_one_queued_first(tmp_path: Path) -> None:
    """What the alerts' backlog reads: failed and finished rows do not count."""
    journal = Journal.open(tmp_path)
    assert journal.oldest_unfinished() is None
    folder = tmp_path / "drop"
    (old,) = journal.enqueue([(folder, folder / "old.pdf", OBS)], now=10.0)
    (young,) = journal.enqueue([(folder, folder / "young.pdf", OBS)], now=20.0)
    assert journal.oldest_unfinished() == (folder / "old.pdf", 10.0)
    journal.move(journal.move(old, FileState.UPLOADING, 30.0), FileState.FAILED, 31.0)
    assert journal.oldest_unfinished() == (folder / "young.pdf", 20.0)
    journal.move(young, FileState.UPLOADING, 32.0)  # in flight: still waiting
    assert journal.oldest_unfinished() == (folder / "young.pdf", 20.0)


def test_a_version_1_journal_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:

    raw = sqlite3.connect(tmp_path / "journal.sqlite3")
    raw.executescript(_VERSION_1_ROW)  # the schema before versions: user_version 0
    raw.close()

    journal = Journal.open(tmp_path)

    assert journal.schema_version() == 3
    (row,) = journal.active()
    assert row.state is FileState.ASSOCIATING
    assert row.association == {"kind": "photos", "name": "a.pdf", "album_id": 7}
    assert row.route is None  # a row from before routes were kept
    journal.remember_folder(5, 0, "a", 101)
    journal.close()
    reopened = Journal.open(tmp_path)  # version 3 opens as it is
    assert reopened.schema_version() == 3 and reopened.folder_id(5, 0, "a") == 101


def test_a_version_2_journal_gains_routes_and_albums_and_keeps_its_rows(tmp_path: Path
                                                                         ) -> None:
    """Version 3: the route each file was given, and Photos album ids by name."""
    raw = sqlite3.connect(tmp_path / "journal.sqlite3")
    raw.executescript(_VERSION_1_ROW)
    raw.executescript("CREATE TABLE folder_ids (project_id INTEGER NOT NULL, base_id INTEGER "
                      "NOT NULL, path TEXT NOT NULL, folder_id INTEGER NOT NULL, PRIMARY KEY "
                      "(project_id, base_id, path)); INSERT INTO folder_ids VALUES "
                      "(5, 0, 'a', 101); PRAGMA user_version = 2;")
    raw.close()

    journal = Journal.open(tmp_path)

    assert journal.schema_version() == 3
    (row,) = journal.active()
    assert (row.state, row.route, journal.folder_id(5, 0, "a")) == (
        FileState.ASSOCIATING, None, 101)
    route = {"v": 1, "rule": 0, "name": "Plan «A» ü.pdf"}
    assert journal.move(row, row.state, 2.0, route=route).route == route
    assert journal.get(row.id).route == route
    assert journal.album_id(5, "Level 2") is None
    journal.remember_album(5, "Level 2", 9)
    assert (journal.album_id(5, "Level 2"), journal.album_id(6, "Level 2")) == (9, None)
    journal.forget_album(5, "Level 2")
    assert journal.album_id(5, "Level 2") is None


def test_a_new_journal_starts_at_the_latest_version(tmp_path: Path) -> None:
    assert Journal.open(tmp_path).schema_version() == 3


def test_a_journal_newer_than_the_daemon_is_refused(tmp_path: Path) -> None:
    Journal.open(tmp_path).close()

    raw = sqlite3.connect(tmp_path / "journal.sqlite3")
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(JournalError, match="newer"):
        Journal.open(tmp_path)


def test_forgetting_a_folder_forgets_the_folders_below_it_only(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    for path, folder_id in (("a", 1), ("a/b", 2), ("a/b/c", 3), ("ab", 4), ("x/a", 5)):
        journal.remember_folder(9, 0, path, folder_id)
    journal.remember_folder(9, 42, "a", 2)  # same id below another base: gone too

    assert journal.forget_folder(9, 2) == 3

    assert [journal.folder_id(9, 0, p) for p in ("a", "a/b", "a/b/c", "ab", "x/a")] == [
        1, None, None, 4, 5]
    assert journal.folder_id(9, 42, "a") is None


def test_two_processes_opening_a_new_journal_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """The daemon starting while `status` opens the journal: the second to arrive waits for
    the first one's upgrade and finds it done (reading the version outside the write
    transaction, it ran the upgrades again: "table folder_ids already exists")."""
    path = tmp_path / "journal.sqlite3"
    first = sqlite3.connect(path, isolation_level=None, timeout=30)
    first.execute("PRAGMA journal_mode=WAL")
    first.execute("BEGIN IMMEDIATE")  # the first process is in the middle of its upgrade

    second = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    waiting = threading.Event()
    second.set_trace_callback(
        lambda sql: waiting.set() if sql.lstrip().upper().startswith(("BEGIN", "CREATE"))
        else None)
    failures: list[BaseException] = []

    def open_second() -> None:
        try:
            schema.upgrade(second)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=open_second)
    thread.start()
    assert waiting.wait(10), "the second opener never tried to write"
    schema._execute(first, schema._SCHEMA_V1)  # the first one's upgrade
    for version in range(1, schema.SCHEMA_VERSION):
        schema._execute(first, schema._UPGRADES[version])
    first.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")
    first.execute("COMMIT")
    thread.join(30)

    assert not thread.is_alive() and failures == []
    assert schema.schema_version(second) == schema.SCHEMA_VERSION
    first.close()
    second.close()
