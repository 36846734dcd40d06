"""The scanner, round by round without its thread: it hands over one file per unit of room
the scheduler granted, passes over paths with an unfinished row, resumes a stopped scan from
its top once half the window is free, reports each folder's availability to the board of
holds (logged once per change), scans every folder on request, and under `once` ends after
one pass. A fake monotonic clock (no rescan comes due by itself); real folders."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.config import Config, parse_config
from procore_hotfolder.engine.heartbeat import Heartbeat, NullNotifier
from procore_hotfolder.engine.runmode import Daemon, Once, RunMode
from procore_hotfolder.engine.scanner import EverythingSeen, Found, Scanner
from procore_hotfolder.upload.holds import HoldBoard


class Rig:
    def __init__(self, tmp_path: Path, mode: RunMode | None = None, window: int = 4) -> None:
        self.drop = tmp_path / "drop"
        self.config = _config(tmp_path)
        self.now = 100.0
        self.holds = HoldBoard()
        heartbeat = Heartbeat(NullNotifier(), progress=_NoProgress(), waiting_out=lambda: False,
                              monotonic=lambda: self.now, watchdog_usec=0)
        self.scanner = Scanner(lambda: self.config, holds=self.holds, mode=mode or Daemon(),
                               heartbeat=heartbeat, stop=threading.Event(),
                               watcher=lambda: None, monotonic=lambda: self.now,
                               wall=lambda: 1_000_000.0 + self.now, window=window)
        self.seen: list[Found | EverythingSeen] = []

    def files(self, count: int) -> list[Path]:
        self.drop.mkdir(exist_ok=True)
        paths = []
        for n in range(count):
            path = self.drop / f"scan-{n:02d}.pdf"
            path.write_bytes(b"%PDF")
            paths.append(path)
        return paths

    def rounds(self, count: int = 1) -> bool:
        going = True
        for _ in range(count):
            going = self.scanner.round(wait=False)
        return going

    def handed_over(self) -> list[str]:
        """The candidates found since the last call (names), as the scheduler takes them."""
        new = []
        while not self.scanner.found.empty():
            item = self.scanner.found.get_nowait()
            self.seen.append(item)
            if isinstance(item, Found) and item.skip is None:
                assert item.folder == self.drop
                new.append(item.path.name)
        return new


class _NoProgress:
    def last_moved(self, path: Path) -> float | None:
        return None


def _config(tmp_path: Path) -> Config:
    raw: dict[str, Any] = {
        "procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                    "company_id": 1, "client_id": "id"},
        "daemon": {"state_dir": str(tmp_path / "state"), "rescan_seconds": 300.0},
        "folders": [{"path": str(tmp_path / "drop"), "destination": "none"}]}
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield Rig(tmp_path)


def test_a_scan_hands_over_what_there_is_room_for_and_resumes_at_half(rig: Rig) -> None:
    names = [p.name for p in rig.files(10)]
    rig.rounds()
    assert rig.handed_over() == []  # no room granted yet: the scan waits
    rig.scanner.grant(rig.drop, 4)
    rig.rounds(2)
    first = rig.handed_over()
    assert len(first) == 4
    # The scheduler: those four have rows now; one place is free again.
    rig.scanner.rows_opened(str(rig.drop / name) for name in first)
    rig.scanner.grant(rig.drop, 1)
    rig.rounds(3)
    assert rig.handed_over() == []  # 1 of 4 free: not worth a walk from the top
    rig.scanner.grant(rig.drop, 1)
    rig.rounds(2)
    second = rig.handed_over()
    assert len(second) == 2 and not set(second) & set(first)  # rows passed over
    assert not any(isinstance(item, EverythingSeen) for item in rig.seen)
    rig.scanner.rows_opened(str(rig.drop / name) for name in second)
    rig.scanner.grant(rig.drop, 10)
    rig.rounds(2)
    rest = rig.handed_over()
    assert sorted(first + second + rest) == sorted(names)
    assert isinstance(rig.seen[-1], EverythingSeen)


def test_entries_passed_over_are_handed_over_without_room(rig: Rig) -> None:
    rig.files(1)
    (rig.drop / "link.pdf").symlink_to(rig.drop / "scan-00.pdf")
    rig.rounds()
    assert rig.handed_over() == []
    skipped = [item for item in rig.seen if isinstance(item, Found)]
    assert [(item.path.name, item.skip is not None) for item in skipped] == [("link.pdf", True)]


def test_a_folder_that_cannot_be_listed_is_held_and_logged_once(rig: Rig) -> None:
    """The scanner is the one reporter of a folder's availability: each scan reports it,
    the board logs the change once."""
    with capture_logs() as logs:
        rig.rounds()
        rig.scanner.scan_everything()
        rig.rounds(3)  # two full scans of a missing folder
        [hold] = rig.holds.current(1_000_000.0 + rig.now)
        assert (hold.scope, hold.detail) == (str(rig.drop), "missing")
        rig.files(1)
        rig.scanner.scan_everything()
        rig.scanner.grant(rig.drop, 4)
        rig.rounds(2)
    assert rig.holds.current(1_000_000.0 + rig.now) == []
    assert rig.handed_over() == ["scan-00.pdf"]
    assert [e["event"] for e in logs] == ["folder_unavailable", "rescan_requested",
                                          "rescan_requested", "folder_available_again"]


def test_once_ends_after_one_pass(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Once(3, threading.Event()))
    rig.files(3)
    rig.scanner.grant(rig.drop, 4)
    assert rig.rounds() is True  # the room comes as a message: read at the round's end
    assert rig.rounds() is False  # everything handed over: `once` scans no more
    assert len(rig.handed_over()) == 3 and isinstance(rig.seen[-1], EverythingSeen)


def test_a_stop_ends_the_rounds(rig: Rig) -> None:
    rig.scanner.stop()
    assert rig.rounds() is False
