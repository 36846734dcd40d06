"""Whether a file has a writer: the decision as one table (the folder's sight, what the lease
answers, what inotify saw), inotify's evidence kept per path, each folder's sight in words,
and the real thing on a real file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procore_hotfolder.config import FolderSettings, parse_config
from procore_hotfolder.files.leases import LeaseAnswer
from procore_hotfolder.watch.writers import SeenBy, Sight, WriteEvents, Writers, sight_of

W, N, U = LeaseAnswer.WRITER, LeaseAnswer.NO_WRITER, LeaseAnswer.UNKNOWN


def _folder(tmp_path: Path, watch: str = "auto") -> FolderSettings:
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state")},
           "folders": [{"path": str(tmp_path / "drop"), "destination": "none",
                        "watch": watch}]}
    return parse_config(raw, base_dir=tmp_path,
                        environ={"PROCORE_CLIENT_SECRET": "x"}).folders[0]


CHECKS = [
    # id, lease scope, inotify watches, lease answers, inotify saw a write not closed
    #   -> open, seen by
    ("lease-refused", "all", True, W, False, True, SeenBy.LEASE),
    ("lease-granted-beats-stale-event", "all", True, N, True, False, SeenBy.LEASE),
    ("lease-refused-beats-closed-events", "all", True, W, False, True, SeenBy.LEASE),
    ("not-owner-events-say-writing", "owned", True, U, True, True, SeenBy.EVENTS),
    ("not-owner-events-say-closed", "owned", True, U, False, False, SeenBy.EVENTS),
    ("not-owner-polled-nothing-known", "owned", False, U, False, False, SeenBy.NOTHING),
    ("network-mount-never-asks-the-lease", "none", False, W, False, False, SeenBy.NOTHING),
    ("network-mount-events", "none", True, W, True, True, SeenBy.EVENTS),
]


@pytest.mark.parametrize(("scope", "events", "answer", "writing", "is_open", "seen_by"),
                         [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS])
def test_who_says_a_writer_holds_the_file(tmp_path: Path, scope: str, events: bool,
                                          answer: LeaseAnswer, writing: bool, is_open: bool,
                                          seen_by: SeenBy) -> None:
    asked: list[Path] = []

    def lease(path: Path, fd: int | None) -> LeaseAnswer:
        asked.append(path)
        return answer

    folder = _folder(tmp_path)
    path = folder.path / "scan.pdf"
    writers = Writers(sight=lambda f, watched: Sight(scope, watched, "why"), lease=lease)
    writers.watching(folder, events)
    if writing:
        writers.events.wrote(str(path))
    check = writers.check(path, folder)
    assert (check.open, check.seen_by) == (is_open, seen_by)
    assert asked == ([] if scope == "none" else [path])
    assert bool(check.detail) is is_open


def test_inotify_evidence_follows_writes_closes_renames_and_deletions() -> None:
    events = WriteEvents(clock=lambda: 1_700_000_000.0)
    events.wrote("/drop/a.pdf")
    events.wrote("/drop/a.pdf")
    assert events.writing_since("/drop/a.pdf") == 1_700_000_000.0
    events.closed("/drop/a.pdf")
    assert events.writing_since("/drop/a.pdf") is None
    events.wrote("/drop/b.tmp")
    events.moved("/drop/b.tmp", "/drop/b.pdf")  # renamed while its writer still writes
    assert events.writing_since("/drop/b.pdf") is not None
    assert events.writing_since("/drop/b.tmp") is None
    events.wrote("/drop/sub/c.pdf")
    events.wrote("/drop/subway.pdf")
    events.gone("/drop/sub")  # the folder went with everything in it
    assert events.writing_since("/drop/sub/c.pdf") is None
    assert events.writing_since("/drop/subway.pdf") is not None
    events.forget_below("/drop")  # events lost: nothing seen can be trusted
    assert len(events) == 0


SIGHTS = [
    # id, fstype, may lease any file, inotify -> lease scope, warns, words in the summary
    ("local-cap-lease", "ext4", True, True, "all", False, "a read lease on every file"),
    ("local-owner-only", "xfs", False, True, "owned", True, "files the service user owns"),
    ("local-owner-only-polled", "ext4", False, False, "owned", True, "others not at all"),
    ("cifs-client-mount", "cifs", True, False, "none", True, "settle time only"),
    ("nfs-client-mount-events", "nfs4", True, True, "none", True, "inotify"),
]


@pytest.mark.parametrize(("fstype", "any_file", "events", "lease", "warns", "words"),
                         [c[1:] for c in SIGHTS], ids=[c[0] for c in SIGHTS])
def test_each_folder_says_how_its_writers_are_seen(tmp_path: Path, fstype: str,
                                                   any_file: bool, events: bool, lease: str,
                                                   warns: bool, words: str) -> None:
    sight = sight_of(_folder(tmp_path), events=events, fstype=fstype, any_file=any_file)
    assert sight.lease == lease and sight.lease_usable is (lease != "none")
    assert words in sight.summary()
    assert (sight.warning() is not None) is warns
    if lease == "none":
        assert fstype in sight.summary() and fstype in str(sight.warning())
    if lease == "owned":
        assert "CAP_LEASE" in str(sight.warning())
    assert sight.as_dict()["summary"] == sight.summary()


def test_a_real_writer_on_a_real_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path, watch="events")
    folder.path.mkdir()
    path = folder.path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7\n")
    writers = Writers()
    assert writers.sight(folder).lease_usable  # a local filesystem (tmp_path)
    assert not writers.check(path, folder).open
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        check = writers.check(path, folder)
        assert check.open and check.seen_by is SeenBy.LEASE
    finally:
        os.close(fd)
    assert not writers.check(path, folder).open
