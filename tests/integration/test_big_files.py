"""Big files: segmented uploads end to end, a failed segment, resume after SIGKILL, progress."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from procore_hotfolder.emulator import Emulator
from tests.conftest import cli_env, run_cli, wait_for, write_config

MIB = 1024 * 1024


def _big(path: Path, mib: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(mib * MIB + 12345)  # the last segment is a short one
    path.write_bytes(data)
    return data


def _puts(emu: Emulator) -> list[str]:
    """The query strings of every segment PUT, in order."""
    return [r.query for r in emu.request_log if r.kind == "storage" and r.method == "PUT"]


def _part(query: str) -> str:
    return query.split("partNumber=")[1].split("&", maxsplit=1)[0]


def test_segmented_upload_with_a_failed_segment(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    data = _big(drop / "model.ifc", 22)
    emulator.faults.fail_next(1, status=500, kind="segment")
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 8}],
                          segment_threshold_mib=5, segment_size_mib=5)
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = emulator.stored_uploads()
    assert record.segments is not None and len(record.segments) == 5
    assert emulator.stored_path(record.uuid).read_bytes() == data
    assert record.store_count == 1
    parts = [_part(p) for p in _puts(emulator)]
    assert len(parts) == 6  # five segments, one of them sent twice after its 500
    assert sorted(set(parts)) == ["1", "2", "3", "4", "5"]
    ledger = json.loads((tmp_path / "state" / "uploads.jsonl").read_text())
    assert ledger["sha256"] == hashlib.sha256(data).hexdigest()


def test_resume_after_sigkill_sends_no_stored_segment_again(tmp_path: Path,
                                                            emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    data = _big(drop / "drone.mp4", 30)
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 8}],
                          segment_threshold_mib=5, segment_size_mib=5, segment_parallelism=1)
    emulator.faults.storage_delay_seconds = 0.3
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=cli_env(), stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: sum(1 for r in emulator.request_log
                             if r.kind == "storage" and r.status == 200) >= 2,
                 timeout=60, message="two segments stored")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stored_before = {_part(r.query) for r in emulator.request_log
                     if r.kind == "storage" and r.status == 200}
    puts_before = len(_puts(emulator))
    emulator.faults.storage_delay_seconds = 0.0
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = emulator.stored_uploads()
    assert emulator.stored_path(record.uuid).read_bytes() == data
    assert len(emulator.uploads) == 1  # the same Upload was resumed
    resent = [_part(p) for p in _puts(emulator)[puts_before:]]
    assert not stored_before & set(resent), (stored_before, resent)
    assert sorted(stored_before | set(resent), key=int) == [str(n) for n in range(1, 8)]


def test_progress_is_logged_and_shown_in_status(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    _big(drop / "scan-set.pdf", 12)
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 8}],
                          segment_threshold_mib=5, segment_size_mib=5, segment_parallelism=1)
    emulator.faults.storage_delay_seconds = 2.5
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=cli_env(), stdin=subprocess.DEVNULL)
    try:
        def uploading() -> dict[str, object] | None:
            report = json.loads(run_cli("status", "--json", "-c", str(config)).stdout)
            return report["uploading"].get(str(drop / "scan-set.pdf"))

        shown = wait_for(uploading, timeout=60, message="status shows the upload")
        assert shown["total"] == 12 * MIB + 12345 and "sent" in shown
        wait_for(lambda: b"upload_progress" in log.read_bytes(), timeout=60,
                 message="progress event")
        emulator.faults.storage_delay_seconds = 0.0
        wait_for((drop / ".archive" / "scan-set.pdf").exists, timeout=60, message="archived")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    progress = [json.loads(line) for line in log.read_text().splitlines()
                if '"upload_progress"' in line]
    assert {"bytes", "total", "percent", "rate_mib_s", "uuid", "path"} <= set(progress[0])
