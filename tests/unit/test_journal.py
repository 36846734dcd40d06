"""The journal: guarded moves, one active row per path, durable across reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procore_hotfolder.errors import JournalError
from procore_hotfolder.journal import Journal
from procore_hotfolder.model import FileState
from procore_hotfolder.stability import Observation

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
