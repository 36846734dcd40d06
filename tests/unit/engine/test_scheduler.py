"""The scheduler without its threads: hints become observations, a settled file becomes a
journal row for the workers, outcomes free the path, and the run mode decides about empty
files. A fake monotonic clock; real files, a real journal."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.config import Config, FolderSettings, parse_config
from procore_hotfolder.engine.dispatch import Dispatcher
from procore_hotfolder.engine.heartbeat import Heartbeat, NullNotifier
from procore_hotfolder.engine.runmode import Daemon, Once, RunMode
from procore_hotfolder.engine.scheduler import Scheduler
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.outcome import Outcome, OutcomeKind
from procore_hotfolder.watch.stability import Observation
from procore_hotfolder.watch.writers import Writers


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class FakeUploader:
    """Only what the scheduler calls: failing a file that never settled."""

    def __init__(self) -> None:
        self.failed: list[tuple[Path, str]] = []

    def fail_unsettled(self, folder: FolderSettings, path: Path, observation: Observation,
                       reason: str, detail: str) -> None:
        self.failed.append((path, reason))


class Rig:
    def __init__(self, tmp_path: Path, mode: RunMode) -> None:
        self.drop = tmp_path / "drop"
        self.drop.mkdir(parents=True)
        self.config = _config(tmp_path)
        self.clock = Clock()
        self.journal = Journal.open(self.config.daemon.state_dir)
        self.dispatcher = Dispatcher(clock=lambda: 1_000_000.0)
        self.uploader = FakeUploader()
        self.writers = Writers()
        heartbeat = Heartbeat(NullNotifier(), progress=_NoProgress(),
                              waiting_out=lambda: False, monotonic=self.clock, watchdog_usec=0)
        self.scheduler = Scheduler(
            self.config, self.journal, self.uploader, dispatcher=self.dispatcher,  # type: ignore[arg-type]
            mode=mode, heartbeat=heartbeat, stop=threading.Event(), watcher=lambda: None,
            writers=self.writers, monotonic=self.clock, wall=lambda: 1_000_000.0)

    def after(self, seconds: float) -> None:
        self.clock.now += seconds
        self.scheduler.tick()


class _NoProgress:
    def last_moved(self, path: Path) -> float | None:
        return None


def _config(tmp_path: Path) -> Config:
    raw: dict[str, Any] = {
        "procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                    "company_id": 1, "client_id": "id"},
        "daemon": {"state_dir": str(tmp_path / "state"), "settle_seconds": 2.0,
                   "empty_file_timeout_seconds": 30.0},
        "folders": [{"path": str(tmp_path / "drop"), "destination": "none"}]}
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path, Daemon())
    yield made
    made.journal.close()


def test_a_hinted_file_is_queued_once_its_quiet_period_has_run(rig: Rig) -> None:
    scan = rig.drop / "scan.pdf"
    scan.write_bytes(b"%PDF 1")
    rig.scheduler.hint(scan)
    rig.after(0.0)
    assert rig.scheduler.held() == 1 and rig.dispatcher.ready() == 0
    rig.after(1.0)
    assert not rig.journal.active()
    with capture_logs() as logs:
        rig.after(1.5)
    (record,) = rig.journal.active()
    assert record.path == scan
    assert rig.dispatcher.ready() == 1 and len(rig.scheduler.tracker) == 0
    assert [e["event"] for e in logs] == ["file_settled"]
    rig.scheduler.hint(scan)  # its row is unfinished: no second row
    rig.after(5.0)
    assert len(rig.journal.active()) == 1


def test_a_file_that_keeps_changing_waits(rig: Rig) -> None:
    scan = rig.drop / "growing.pdf"
    for size in range(1, 5):
        scan.write_bytes(b"x" * size)
        rig.scheduler.hint(scan)
        rig.after(1.5)
    assert not rig.journal.active()
    rig.after(2.5)
    assert len(rig.journal.active()) == 1


def test_an_outcome_frees_the_path_and_a_changed_file_is_looked_at_again(rig: Rig) -> None:
    scan = rig.drop / "scan.pdf"
    scan.write_bytes(b"%PDF 1")
    rig.scheduler.hint(scan)
    rig.after(0.0)
    rig.after(2.5)
    (record,) = rig.journal.active()
    rig.scheduler.finished(Outcome(OutcomeKind.CHANGED, record))
    rig.after(0.0)  # the outcome's hint is looked at in the next tick
    rig.after(0.0)
    assert str(scan) in rig.scheduler.tracker
    rig.scheduler.finished(Outcome(OutcomeKind.ARCHIVED, record))
    rig.after(0.0)
    assert rig.scheduler.last_upload is not None
    assert rig.scheduler.last_upload["path"] == str(scan)


@pytest.mark.parametrize("kind", [OutcomeKind.RETRY, OutcomeKind.LEFT])
def test_a_row_tried_again_or_left_in_the_journal_keeps_its_path(rig: Rig,
                                                                 kind: OutcomeKind) -> None:
    scan = rig.drop / "scan.pdf"
    scan.write_bytes(b"%PDF 1")
    rig.scheduler.hint(scan)
    rig.after(0.0)
    rig.after(2.5)
    (record,) = rig.journal.active()
    rig.scheduler.finished(Outcome(kind, record,
                                   retry_at=1.0 if kind is OutcomeKind.RETRY else None))
    rig.after(0.0)
    rig.scheduler.hint(scan)
    rig.after(0.0)
    assert str(scan) not in rig.scheduler.tracker and rig.scheduler.last_upload is None
    rig.after(2.5)
    assert rig.journal.active() == [record]


def test_the_daemon_fails_a_file_that_stays_empty_once_leaves_it(tmp_path: Path) -> None:
    for mode, expected in ((Daemon(), "empty"), (Once(3, threading.Event()), None)):
        rig = Rig(tmp_path / type(mode).__name__, mode)
        try:
            blank = rig.drop / "blank.pdf"
            blank.write_bytes(b"")
            rig.scheduler.hint(blank)
            rig.after(0.0)
            for _ in range(20):
                rig.after(2.0)
            assert [reason for _, reason in rig.uploader.failed] == (
                [expected] if expected else [])
            # `once` names it in its summary as left in place
            assert rig.scheduler.left_settling() == (
                [] if expected else [(blank, "empty (0 bytes), waiting for content")])
        finally:
            rig.journal.close()


def test_a_skipped_special_file_is_noted_once(rig: Rig) -> None:
    link = rig.drop / "link.pdf"
    link.symlink_to(rig.drop)
    with capture_logs() as logs:
        for _ in range(3):
            rig.scheduler.hint(link)
            rig.after(0.0)
    assert [e["event"] for e in logs] == ["file_skipped"]
    assert str(link) in rig.scheduler.skipped


def test_a_settled_file_a_writer_holds_open_waits_for_the_writer(rig: Rig) -> None:
    """Quiet for its whole settle time but still open for writing (a copy that stalled):
    no journal row; logged once; queued as soon as the writer closes it."""
    scan = rig.drop / "stalled.pdf"
    scan.write_bytes(b"%PDF half of it")
    writer = os.open(scan, os.O_WRONLY | os.O_APPEND)
    try:
        rig.scheduler.hint(scan)
        with capture_logs() as logs:
            rig.after(0.0)
            for _ in range(5):
                rig.after(2.5)
        assert not rig.journal.active() and rig.dispatcher.ready() == 0
        [held] = [e for e in logs if e["event"] == "file_held_by_writer"]
        assert held["path"] == str(scan) and held["seen_by"] == "lease"
        assert rig.scheduler.tracker.held() == 1
        assert rig.scheduler.left_settling() == [
            (scan, "held open by a writer (another process holds it open for writing (a "
                   "read lease was refused))")]
    finally:
        os.close(writer)
    rig.scheduler.hint(scan)  # the close event
    rig.after(0.0)
    (record,) = rig.journal.active()
    assert record.path == scan and rig.scheduler.tracker.held() == 0


def test_an_empty_file_a_scanner_holds_open_is_not_failed(rig: Rig) -> None:
    blank = rig.drop / "blank.pdf"
    blank.write_bytes(b"")
    writer = os.open(blank, os.O_WRONLY)
    try:
        rig.scheduler.hint(blank)
        rig.after(0.0)
        for _ in range(20):
            rig.after(2.0)
        assert rig.uploader.failed == []
    finally:
        os.close(writer)
    for _ in range(20):
        rig.after(2.0)
    assert [reason for _, reason in rig.uploader.failed] == ["empty"]
