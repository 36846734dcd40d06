"""A project-wide refusal is not the files' fault: the folder pauses, the others flow, and
the pause lifts by itself once Procore answers again (product.md, Failure)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procore_hotfolder.config import load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.model import FileState
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.holds import CHECK_BACKOFF
from tests.conftest import (
    FakeSystemd,
    cli_env,
    running_engine,
    use_timing,
    wait_for,
    write_config,
)
from tests.reliability.test_reload import daemon


def _drop(folder: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = folder / f"scan-{n}.pdf"
        path.write_bytes(b"%PDF-1.7 " + str(n).encode() * 200)
        paths.append(path)
    return paths


def test_a_refused_project_pauses_its_folder_only_and_resumes_by_itself(
        tmp_path: Path, emulator: Emulator) -> None:
    # Re-checks after TEST_TIMING's pause_checks: 0.4 s, then up to 1.5 s.
    refused, fine = tmp_path / "refused", tmp_path / "fine"
    refused.mkdir()
    fine.mkdir()
    config = load_config(write_config(tmp_path, emulator, [
        {"path": str(refused), "project_id": 7, "destination": "documents"},
        {"path": str(fine), "project_id": 8, "destination": "documents"}]), environ={})
    emulator.faults.forbidden_projects.add(7)  # e.g. the app was updated: access reset
    with running_engine(config) as (engine, capture):
        waiting = _drop(refused, 4)
        flowing = _drop(fine, 4)
        for path in flowing:
            wait_for((fine / ".archive" / path.name).exists, message=f"{path.name} archived")
        wait_for(lambda: engine.service.holds.current(time.time()), message="the folder paused")
        refusals_before = emulator.count(status=403)
        # Re-checks go on with backoff, one call each; nothing fails meanwhile.
        wait_for(lambda: any(e["event"] == "pause_check_failed" for e in capture.entries),
                 message="a re-check")
        assert all(p.exists() for p in waiting)
        assert not (refused / ".failed").exists()
        paused = [e for e in capture.entries if e["event"] == "folder_paused"]
        assert len(paused) == 1 and paused[0]["status"] == 403
        assert "access to project 7" in str(paused[0]["detail"])
        re_checks = emulator.count(status=403) - refusals_before
        checks = sum(1 for e in capture.entries if e["event"] == "pause_check_failed")
        in_flight = sum(1 for e in capture.entries if e["event"] == "pause_refusal_in_flight")
        # One call per re-check, not one per queued file (besides the requests that were in
        # flight when the pause began).
        assert re_checks <= checks + in_flight + 1

        emulator.faults.forbidden_projects.discard(7)  # the admin grants the project again
        for path in waiting:
            wait_for((refused / ".archive" / path.name).exists, timeout=30,
                     message=f"{path.name} archived after the pause")
        assert any(e["event"] == "folder_resumed" for e in capture.entries)
    journal = Journal.open(config.daemon.state_dir)
    try:
        rows = journal.history(refused / "scan-0.pdf")
        assert rows[0].state is FileState.ARCHIVED and rows[0].attempts == 0
    finally:
        journal.close()


def test_a_pause_shows_in_status_and_systemd_and_a_reload_rechecks_it(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # Production's re-checks (20 s, then longer): the reload, not the next re-check, must be
    # what lets the file through within the 15 s the test allows.
    use_timing(monkeypatch, pause_checks=CHECK_BACKOFF)
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [
        {"path": str(drop), "project_id": 7, "destination": "documents"}])
    emulator.faults.forbidden_projects.add(7)
    systemd = FakeSystemd(tmp_path / "notify.sock")
    try:
        with daemon(config, systemd) as proc:
            wait_for(lambda: systemd.seen("READY=1") is not None, message="READY=1")
            (drop / "rfi.pdf").write_bytes(b"%PDF-1.7 rfi\n")
            wait_for(lambda: systemd.seen("PAUSED") is not None, timeout=30,
                     message="STATUS= names the pause")

            def report() -> dict[str, object]:
                out = subprocess.run(
                    [sys.executable, "-m", "procore_hotfolder", "status", "--json", "-c",
                     str(config)], capture_output=True, text=True, env=cli_env(), timeout=60,
                    check=True, stdin=subprocess.DEVNULL).stdout
                return json.loads(out)  # type: ignore[no-any-return]

            folder = wait_for(lambda: report()["folders"][0]["paused"],  # type: ignore[index]
                              message="status shows the pause")
            assert folder["reason"] == "permission" and folder["status"] == 403
            assert "project 7" in folder["detail"] and folder["since"]
            text = subprocess.run(
                [sys.executable, "-m", "procore_hotfolder", "status", "-c", str(config)],
                capture_output=True, text=True, env=cli_env(), timeout=60, check=True,
                stdin=subprocess.DEVNULL).stdout
            assert "PAUSED since" in text and "no file is failed for it" in text
            emulator.faults.forbidden_projects.discard(7)
            proc.send_signal(signal.SIGHUP)  # the operator fixed it and reloads: re-check now
            wait_for((drop / ".archive" / "rfi.pdf").exists, timeout=15,
                     message="archived right after the reload")
            assert not (drop / ".failed").exists()
    finally:
        systemd.close()
