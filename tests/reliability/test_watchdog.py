"""systemd's watchdog is fed only while the daemon's loops really advance.

The engine runs in-process with a notifier that records what it would send to systemd. A
worker whose upload stops moving (the storage answer never comes) for longer than the stall
limit withholds WATCHDOG=1, names itself and its file in the log, and feeding resumes once the
upload moves again.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from procore_hotfolder.config import load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.engine.compose import build_engine
from tests.conftest import running_engine, use_timing, wait_for, write_config


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def notify(self, state: str) -> None:
        with self._lock:
            self.sent.append((time.monotonic(), state))

    def pings(self, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for at, state in self.sent if state == "WATCHDOG=1" and at >= since)


@pytest.mark.slow
def test_a_stuck_upload_withholds_the_watchdog_until_it_moves_again(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s while all is well
    use_timing(monkeypatch, stall_seconds=2.0)
    drop = tmp_path / "drop"
    drop.mkdir()
    config = load_config(write_config(tmp_path, emulator, [{"path": str(drop)}], workers=2),
                         environ={})
    notifier = RecordingNotifier()
    with running_engine(config, notifier=notifier) as (_, capture):

        def logged(name: str) -> list[dict[str, object]]:
            return [dict(e) for e in list(capture.entries) if e.get("event") == name]

        wait_for(lambda: notifier.pings() >= 3, message="pings while idle")
        emulator.faults.storage_delay_seconds = 6.0  # the storage answer hangs
        (drop / "scan.pdf").write_bytes(os.urandom(20_000))
        (withheld,) = wait_for(lambda: logged("watchdog_withheld"), timeout=30,
                               message="watchdog withheld")
        assert withheld["files"] == [str(drop / "scan.pdf")]
        assert len(withheld["stalled"]) == 1  # the busy worker; the idle one still advances
        stalled_at = time.monotonic()
        wait_for(lambda: logged("upload_completed"), timeout=30, message="upload completed")
        assert notifier.pings(since=stalled_at) <= 1  # one may have been in flight
        wait_for(lambda: logged("watchdog_resumed"), timeout=10, message="watchdog resumed")
        resumed_at = time.monotonic()
        wait_for(lambda: notifier.pings(since=resumed_at) >= 3, message="pings again")


def test_once_keeps_feeding_the_watchdog_after_its_single_scan(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """`once` scans a single time and its scanner ends by design; that is no dead loop."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "scan.pdf").write_bytes(os.urandom(20_000))
    emulator.faults.storage_delay_seconds = 1.5  # the upload outlasts the scan by far
    config = load_config(write_config(tmp_path, emulator, [{"path": str(drop)}]), environ={})
    notifier = RecordingNotifier()
    engine = build_engine(config, once=True, notifier=notifier)
    try:
        summary = engine.service.run()
    finally:
        engine.close()
    assert summary.archived == [drop / "scan.pdf"]
    assert notifier.pings() >= 5  # about one per 0.1 s while the upload ran
