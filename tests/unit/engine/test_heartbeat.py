"""The heartbeat: the watchdog is fed at its rate while every loop advances, withheld while
one is stuck or dead, never for a loop that ended by design or while Procore is waited out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from procore_hotfolder.engine.heartbeat import STALL_SECONDS, STATUS_MAX_CHARS, Heartbeat
from procore_hotfolder.upload.holds import ACCOUNT, FOLDER_UNAVAILABLE, Hold, HoldKind


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, state: str) -> None:
        self.sent.append(state)


class NoProgress:
    def __init__(self) -> None:
        self.moved: dict[Path, float] = {}

    def last_moved(self, path: Path) -> float | None:
        return self.moved.get(path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def parked(name: str) -> Iterator[tuple[threading.Thread, threading.Event]]:
    """A loop thread that stays alive until released."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name=name)
    try:
        yield thread, release
    finally:
        release.set()
        if thread.is_alive():
            thread.join()


def _heartbeat(clock: Clock, *, waiting_out: bool = False,
               progress: NoProgress | None = None) -> tuple[Heartbeat, Recorder]:
    """A heartbeat under a 2 s watchdog: fed every second."""
    notifier = Recorder()
    beat = Heartbeat(notifier, progress=progress or NoProgress(),
                     waiting_out=lambda: waiting_out, monotonic=clock,
                     watchdog_usec=2_000_000)
    return beat, notifier


def test_the_watchdog_is_fed_at_twice_its_rate_while_all_advance() -> None:
    clock = Clock()
    heartbeat, notifier = _heartbeat(clock)
    with parked("upload-0") as (thread, _):
        heartbeat.watch(thread)
        thread.start()
        for _ in range(10):
            clock.now += 0.5
            heartbeat.feed()
    assert notifier.sent.count("WATCHDOG=1") == 5


def test_a_stuck_loop_withholds_the_watchdog_unless_procore_is_waited_out() -> None:
    for waiting_out in (False, True):
        clock = Clock()
        heartbeat, notifier = _heartbeat(clock, waiting_out=waiting_out)
        with parked("upload-0") as (thread, _):
            heartbeat.watch(thread)
            thread.start()
            clock.now += STALL_SECONDS + 1
            heartbeat.feed()
            assert heartbeat.stalled_loops() == ([] if waiting_out else ["upload-0"])
            assert ("WATCHDOG=1" in notifier.sent) is waiting_out


def test_an_upload_that_moves_is_no_stall() -> None:
    clock = Clock()
    progress = NoProgress()
    heartbeat, _ = _heartbeat(clock, progress=progress)
    stuck_on = Path("/drop/big.pdf")
    working, release = threading.Event(), threading.Event()

    def work() -> None:
        heartbeat.working(stuck_on)
        working.set()
        release.wait()

    thread = threading.Thread(target=work, name="upload-0")
    heartbeat.watch(thread)
    thread.start()
    try:
        working.wait()
        clock.now += STALL_SECONDS + 1
        progress.moved[stuck_on] = clock.now - 1
        assert heartbeat.stalled_loops() == []
        progress.moved.clear()
        assert heartbeat.stalled_loops() == ["upload-0"]
    finally:
        release.set()
        thread.join()


def test_a_dead_loop_stalls_one_ended_by_design_or_replaced_does_not() -> None:
    clock = Clock()
    heartbeat, _ = _heartbeat(clock)
    died = threading.Thread(target=lambda: None, name="scanner")
    heartbeat.watch(died)
    died.start()
    died.join()
    assert heartbeat.stalled_loops() == ["scanner"]

    ended = threading.Thread(target=heartbeat.finished, name="upload-1")
    heartbeat.watch(ended)
    ended.start()
    ended.join()
    assert "upload-1" not in heartbeat.stalled_loops()
    # A reload raises daemon.workers again: a new upload-1 takes the ended one's place.
    with parked("upload-1") as (again, _):
        heartbeat.watch(again)
        again.start()
        assert heartbeat.stalled_loops() == ["scanner"]


def test_status_is_one_line_of_bounded_length() -> None:
    heartbeat, notifier = _heartbeat(Clock())
    counts = {"queued": 2, "delayed": 1, "in_flight": 3}
    heartbeat.status(waiting=4, counts=counts, last_upload="/drop/a.pdf", holds=[])
    assert notifier.sent == ["STATUS=waiting 4, queued 3, uploading 3, last upload "
                             "/drop/a.pdf"]
    unavailable = Hold(kind=HoldKind.FOLDER, scope="/drop/b", reason=FOLDER_UNAVAILABLE,
                       detail="missing", since=0.0, until=None)
    heartbeat.status(waiting=0, counts=counts, last_upload="none", holds=[unavailable])
    assert notifier.sent[-1].endswith("last upload none; UNAVAILABLE /drop/b: missing")
    rate = Hold(kind=HoldKind.API, scope=ACCOUNT, reason="rate_limited", since=0.0,
                until=9.0)
    pause = Hold(kind=HoldKind.REFUSED, scope=ACCOUNT, reason="forbidden", detail="x" * 1000,
                 since=0.0, until=0.0)
    heartbeat.status(waiting=0, counts=counts, last_upload="none", holds=[rate, pause])
    line = notifier.sent[-1]
    assert line.startswith("STATUS=waiting 0, queued 3, uploading 3, last upload none, "
                           "paused: rate_limited; PAUSED all folders: forbidden: xxx")
    assert len(line) == len("STATUS=") + STATUS_MAX_CHARS
