"""The scheduler without its threads: hints become observations, a settled file becomes a
journal row for the workers, outcomes free the path, and the run mode decides about empty
files; the scanner is told only through its queues (room in the scan window, paths with a
row), and other threads read only the view each tick publishes. A fake monotonic clock; real
files, a real journal; a fake scanner that keeps what it is told."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.config import Config, FolderSettings, parse_config
from procore_hotfolder.engine.dispatch import Dispatcher
from procore_hotfolder.engine.runmode import Daemon, Once, RunMode
from procore_hotfolder.engine.scanner import EverythingSeen, Found
from procore_hotfolder.engine.scheduler import SKIPPED_LIMIT, Scheduler
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.holds import HoldBoard
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


class FakeScanner:
    """The scanner's side of the queues: what it found (``found``), what it was told."""

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self.found: queue.SimpleQueue[Found | EverythingSeen] = queue.SimpleQueue()
        self.room: dict[Path, int] = {}
        self.rows: set[str] = set()
        self.below: list[Path] = []

    def grant(self, folder: Path, files: int) -> None:
        self.room[folder] = self.room.get(folder, 0) + files

    def rows_opened(self, paths: Iterable[str]) -> None:
        self.rows.update(paths)

    def rows_closed(self, paths: Iterable[str]) -> None:
        self.rows.difference_update(paths)

    def scan_below(self, path: Path) -> None:
        self.below.append(path)

    def hand_over(self, folder: Path, paths: Iterable[Path]) -> None:
        """Found candidates, each taking a unit of the room granted."""
        for path in paths:
            assert self.room[folder] > 0, "handed over without room"
            self.room[folder] -= 1
            self.found.put(Found(folder, path))


class Rig:
    def __init__(self, tmp_path: Path, mode: RunMode) -> None:
        self.drop = tmp_path / "drop"
        self.drop.mkdir(parents=True)
        self.config = _config(tmp_path)
        self.clock = Clock()
        self.journal = Journal.open(self.config.daemon.state_dir)
        self.dispatcher = Dispatcher(wall=lambda: 1_000_000.0)
        self.holds = HoldBoard()
        self.uploader = FakeUploader()
        self.writers = Writers()
        self.scanner = FakeScanner()
        self.scheduler = Scheduler(
            lambda: self.config, self.journal, self.uploader,  # type: ignore[arg-type]
            dispatcher=self.dispatcher, scanner=self.scanner,  # type: ignore[arg-type]
            holds=self.holds, mode=mode, writers=self.writers, monotonic=self.clock,
            wall=lambda: 1_000_000.0)

    def after(self, seconds: float) -> None:
        self.clock.now += seconds
        self.scheduler.tick()


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
    assert len(rig.scheduler.tracker) == 1 and rig.dispatcher.ready() == 0
    assert rig.scheduler.view.waiting == {str(rig.drop): 1}
    rig.after(1.0)
    assert not rig.journal.active()
    with capture_logs() as logs:
        rig.after(1.5)
    (record,) = rig.journal.active()
    assert record.path == scan
    assert rig.dispatcher.ready() == 1 and len(rig.scheduler.tracker) == 0
    assert [e["event"] for e in logs] == ["file_settled"]
    assert rig.scanner.rows == {str(scan)}  # its scans pass over it now
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
    assert rig.scanner.rows == {str(scan)}
    rig.scheduler.finished(Outcome(OutcomeKind.CHANGED, record))
    rig.after(0.0)  # the outcome's hint is looked at in the next tick
    assert rig.scanner.rows == set()  # a scan may hand it over again
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


def test_a_folder_added_by_a_reload_is_watched_without_telling_the_scheduler(
        rig: Rig, tmp_path: Path) -> None:
    """The scheduler asks the configuration in force at each tick: once the reload sets it,
    a file of an added folder settles (no copy of the folders to bring in step)."""
    added = tmp_path / "added"
    added.mkdir()
    folder = replace(rig.config.folders[0], path=added, archive_dir=added / ".archive",
                     failed_dir=added / ".failed")
    scan = added / "plan.pdf"
    scan.write_bytes(b"%PDF added")
    rig.after(0.0)  # a tick under the configuration it started with
    rig.config = replace(rig.config, folders=(*rig.config.folders, folder))
    rig.scheduler.hint(scan)
    rig.after(0.0)
    rig.after(2.5)
    (record,) = rig.journal.active()
    assert record.path == scan and record.folder == added


def _files(folder: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = folder / f"scan-{n:02d}.pdf"
        path.write_bytes(b"%PDF " + bytes([n]) * 10)
        paths.append(path)
    return paths


def test_the_scan_window_is_room_granted_to_the_scanner_and_given_back(rig: Rig) -> None:
    """Each folder's room: the window less its files settling, ready for a worker, or
    granted and not taken yet; it comes back as workers take rows."""
    rig.after(0.0)
    assert rig.scanner.room == {rig.drop: 10}  # the window (FakeScanner's)
    rig.after(0.0)
    assert rig.scanner.room == {rig.drop: 10}  # not granted twice while unused
    files = _files(rig.drop, 12)
    rig.scanner.hand_over(rig.drop, files[:10])
    rig.scheduler.hint(files[10])  # an event: not counted against the scanner's room
    rig.after(0.0)
    assert rig.scanner.room == {rig.drop: 0}
    assert len(rig.scheduler.tracker) == 11  # the event's file comes on top
    rig.after(2.5)
    assert rig.dispatcher.ready() == 11 and rig.scanner.room == {rig.drop: 0}
    for _ in range(6):
        assert rig.dispatcher.get(timeout=0) is not None  # workers take rows
    rig.after(0.0)
    assert rig.scanner.room == {rig.drop: 5}  # 10 less the 5 still ready


def test_the_entries_passed_over_are_kept_within_a_bound(rig: Rig) -> None:
    """``skipped`` keeps the latest ``SKIPPED_LIMIT`` (it used to grow with every entry
    ever passed over); one found gone is forgotten."""
    for n in range(SKIPPED_LIMIT + 5):
        rig.scanner.found.put(Found(rig.drop, rig.drop / f"link-{n}", "a symbolic link"))
    with capture_logs() as logs:
        rig.after(0.0)
    assert len(logs) == SKIPPED_LIMIT + 5
    assert len(rig.scheduler.skipped) == SKIPPED_LIMIT
    assert str(rig.drop / "link-4") not in rig.scheduler.skipped
    last = str(rig.drop / f"link-{SKIPPED_LIMIT + 4}")
    assert last in rig.scheduler.skipped
    rig.scheduler.hint(Path(last))  # an event: it is gone
    rig.after(0.0)
    assert last not in rig.scheduler.skipped


def test_the_run_is_drained_only_once_the_scanner_saw_everything(rig: Rig) -> None:
    rig.after(0.0)
    assert not rig.scheduler.drained()
    rig.scanner.found.put(EverythingSeen())
    rig.after(0.0)
    assert rig.scheduler.drained()


def test_other_threads_read_the_view_each_tick_publishes(rig: Rig) -> None:
    """The metrics thread reads ``view``, a value replaced at each tick, never the live
    tracker."""
    first = rig.scheduler.view
    a, b = _files(rig.drop, 2)
    rig.scheduler.hint(a)
    rig.after(0.0)
    rig.clock.now += 0.5
    rig.scheduler.hint(b)
    rig.after(0.0)
    view = rig.scheduler.view
    assert first.waiting == {} and view is not first
    assert view.waiting == {str(rig.drop): 2}
    assert view.oldest == {str(rig.drop): 500.0}  # a's first sight
