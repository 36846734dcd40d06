"""End to end: files dropped into real folders reach the emulator once, byte for byte, and
their originals land in the archive with a ledger line each."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.engine.compose import build_engine
from tests.conftest import (
    CLIENT_SECRET,
    COMPANY_ID,
    FakeSystemd,
    cli_env,
    run_cli,
    running_engine,
    use_timing,
    wait_for,
    write_config,
)


def _drop(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _stored(emu: Emulator) -> dict[str, list[object]]:
    by_sha: dict[str, list[object]] = {}
    for record in emu.stored_uploads():
        by_sha.setdefault(record.stored_sha256, []).append(record)
    return by_sha


def test_once_uploads_nested_two_projects_and_company(tmp_path: Path,
                                                      emulator: Emulator) -> None:
    a, b, c = tmp_path / "tower-a", tmp_path / "tower-b", tmp_path / "company"
    files = {
        a / "plan.pdf": os.urandom(70_000),
        a / "level 2" / "deep" / "détail.dwg": os.urandom(1234),
        b / "photo.jpg": os.urandom(300_000),
        c / "contract.docx": b"company-level document\n",
    }
    sums = {path: _drop(path, data) for path, data in files.items()}
    _drop(a / "~$lock.docx", b"office lock")  # ignored
    config = write_config(tmp_path, emulator, [
        {"path": str(a), "project_id": 11},
        {"path": str(b), "project_id": 2**40},
        {"path": str(c)},
    ])

    result = run_cli("once", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    stored = _stored(emulator)
    for path, digest in sums.items():
        (record,) = stored[digest]  # stored exactly once
        assert record.store_count == 1
        assert record.response_filename == path.name
        expected_project = {a: 11, b: 2**40, c: None}[next(p for p in (a, b, c)
                                                           if p in path.parents)]
        assert record.project_id == expected_project
        assert record.company_id == COMPANY_ID
        assert emulator.stored_path(record.uuid).read_bytes() == files[path]
        folder = next(p for p in (a, b, c) if p in path.parents)
        archived = folder / ".archive" / path.relative_to(folder)
        assert archived.read_bytes() == files[path]
        assert not path.exists()
    assert (a / "~$lock.docx").exists()
    assert len(emulator.stored_uploads()) == len(files)
    ledger = [json.loads(line) for line in
              (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    assert sorted(entry["sha256"] for entry in ledger) == sorted(sums.values())
    for entry in ledger:
        assert set(entry) >= {"time", "uuid", "company_id", "project_id", "source", "archived",
                              "size", "sha256", "destination"}
        assert Path(entry["archived"]).exists()
        assert entry["time"].endswith("Z")


def test_run_notifies_systemd_uploads_and_stops_cleanly(tmp_path: Path,
                                                        emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 7,
                                                "destination": "documents"}])
    systemd = FakeSystemd(tmp_path / "notify.sock")

    def received(text: str) -> bool:
        return systemd.seen(text) is not None

    env = cli_env()
    env["NOTIFY_SOCKET"] = str(systemd.path)
    env["WATCHDOG_USEC"] = "2000000"
    proc = subprocess.Popen([sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: received("READY=1"), message="READY=1")
        data = os.urandom(50_000)
        digest = _drop(drop / "new" / "sub" / "scan.pdf", data)
        wait_for((drop / ".archive" / "new" / "sub" / "scan.pdf").exists, message="archive")
        (record,) = _stored(emulator)[digest]
        assert emulator.associations(record.uuid) == 1
        wait_for(lambda: received("WATCHDOG=1"), message="WATCHDOG=1")
        wait_for(lambda: received("STATUS="), message="STATUS=")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        stopping_sent = received("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        systemd.close()
    assert proc.returncode == 0, err.decode()
    assert stopping_sent
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    completed = [e for e in events if e["event"] == "upload_completed"]
    assert len(completed) == 1 and completed[0]["uuid"] == record.uuid
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    assert CLIENT_SECRET.encode() not in out + err
    assert b"Bearer " not in out + err


def test_a_backlog_is_scanned_in_a_bounded_window(tmp_path: Path, emulator: Emulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder holding far more files than the window: the scan waits for room, memory
    holds at most the window of files settling or ready (the watcher's hints of archived
    originals come on top and are forgotten at once), and every file is uploaded."""
    use_timing(monkeypatch, scan_window=10)
    drop = tmp_path / "drop"
    for n in range(120):
        (drop / f"batch{n % 4}").mkdir(parents=True, exist_ok=True)
        (drop / f"batch{n % 4}" / f"scan-{n:03d}.pdf").write_bytes(b"%PDF " + bytes([n]) * 99)
    config = load_config(write_config(tmp_path, emulator, [{"path": str(drop)}],
                                      settle_seconds=0.1), environ={})
    seen: list[int] = []
    with running_engine(config) as (engine, _):

        def all_archived() -> bool:
            # What the scheduler published at its last tick, and the rows ready now.
            seen.append(sum(engine.service.scheduler.view.waiting.values())
                        + engine.service._dispatcher.ready())
            return sum(1 for _ in (drop / ".archive").rglob("*.pdf")) == 120

        wait_for(all_archived, timeout=60, message="120 files archived")
    # The two counts are read one after the other while the scheduler moves files from the
    # one to the other, so a sample may count a file twice: at most the window again.
    assert max(seen) <= 2 * 10  # unbounded, 120 files would all settle at once
    assert len(emulator.stored_uploads()) == 120


@pytest.mark.slow
def test_one_folders_backlog_does_not_hold_back_another(tmp_path: Path, emulator: Emulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each folder has its own window: while a backlog fills one folder's window, a file
    dropped into another folder is taken in turn, long before the backlog is through."""
    use_timing(monkeypatch, scan_window=5)
    backlog, fresh = tmp_path / "backlog", tmp_path / "fresh"
    backlog.mkdir()
    fresh.mkdir()
    for n in range(80):
        (backlog / f"old-{n:03d}.pdf").write_bytes(b"%PDF " + bytes([n]) * 50)
    emulator.faults.delay_seconds = 0.05  # Procore's round trip: the backlog takes a while
    config = load_config(write_config(tmp_path, emulator, [
        {"path": str(backlog)}, {"path": str(fresh), "watch": "poll"}],
        settle_seconds=0.1, workers=1, poll_seconds=0.2), environ={})
    with running_engine(config):
        wait_for(lambda: any((backlog / ".archive").glob("*.pdf")), message="backlog moving")
        (fresh / "new.pdf").write_bytes(b"%PDF fresh")
        wait_for((fresh / ".archive" / "new.pdf").exists, timeout=30, message="fresh file")
        left = sum(1 for _ in backlog.glob("*.pdf"))
        assert left > 40, "the fresh file waited for most of the backlog"
        wait_for(lambda: not any(backlog.glob("*.pdf")), timeout=60, message="backlog done")


def test_once_sees_every_file_of_a_backlog_larger_than_the_window(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    use_timing(monkeypatch, scan_window=5)
    drop = tmp_path / "drop"
    drop.mkdir()
    for n in range(40):
        (drop / f"scan-{n:03d}.pdf").write_bytes(b"%PDF " + bytes([n]) * 50)
    config = load_config(write_config(tmp_path, emulator, [{"path": str(drop)}],
                                      settle_seconds=0.1), environ={})
    engine = build_engine(config, once=True)
    try:
        summary = engine.service.run()
    finally:
        engine.close()
    assert len(summary.archived) == 40 and summary.exit_code == 0


def test_once_ends_when_a_worker_meets_an_unexpected_error(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A defect in a file's processing (an exception no step expected) is logged as
    `worker_error`; `once` gives the file its tries at once and ends naming it (it used to
    wait a minute per try)."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "scan.pdf").write_bytes(b"%PDF broken by a defect")
    config = load_config(write_config(tmp_path, emulator, [{"path": str(drop)}],
                                      settle_seconds=0.1, max_attempts=3), environ={})
    engine = build_engine(config, once=True)
    tries: list[int] = []

    def defect(record: object) -> None:
        tries.append(1)
        raise RuntimeError("a defect")

    monkeypatch.setattr(engine.service._uploader, "_process", defect)
    done = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: (result.append(engine.service.run()), done.set()))
    thread.start()
    try:
        assert done.wait(30), "once did not end"
    finally:
        engine.service.stop()
        thread.join(30)
        engine.close()
    [summary] = result
    assert len(tries) == 3 and summary.exit_code == 1
    assert [p.name for p, _ in summary.not_uploaded] == ["scan.pdf"]
    assert (drop / "scan.pdf").exists()
