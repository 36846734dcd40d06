"""Segmented (v1.1) uploads through the real CLI against the emulator.

Covers the whole path (per-segment PUTs with exact headers, one PATCH with the ETags in order),
a failed segment being the only one sent again (request retry and whole-file retry), resume
after SIGKILL of a `run` daemon without resending stored segments, and progress in the logs
and in `status --json`. Files are 12-40 MiB with 5 MiB segments, so the suite stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from procore_hotfolder.emulator import Emulator
from procore_hotfolder.state.journal import JOURNAL_NAME
from tests.conftest import cli_env, run_cli, stop_process, wait_for, write_config

MIB = 1024 * 1024
SEGMENT = 5 * MIB
TAIL = 123_457  # the last segment is a short one


def _big(path: Path, mib: int) -> bytes:
    """A file of ``mib`` MiB plus a short tail of random bytes; returns its content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(mib * MIB + TAIL)
    path.write_bytes(data)
    return data


def _segment_count(size: int) -> int:
    return -(-size // SEGMENT)


def _config(tmp_path: Path, emulator: Emulator, drop: Path, **daemon: Any) -> Path:
    settings: dict[str, Any] = {"segment_threshold_mib": 5, "segment_size_mib": 5}
    settings.update(daemon)
    return write_config(tmp_path, emulator,
                        [{"path": str(drop), "project_id": 8, "destination": "documents"}],
                        **settings)


def _part_puts(emulator: Emulator) -> list[tuple[int, int]]:
    """(part number, status) of every segment PUT the emulator answered, in order."""
    return [(int(parse_qs(r.query)["partNumber"][0]), r.status) for r in emulator.request_log
            if r.kind == "storage" and r.method == "PUT"]


def _patches(emulator: Emulator) -> list[int]:
    return [r.status for r in emulator.request_log if r.method == "PATCH"]


def _stored_parts(emulator: Emulator) -> set[int]:
    with emulator.lock:
        return {n for u in emulator.uploads.values() for n in u.parts}


def _journal_parts(tmp_path: Path) -> dict[int, str]:
    """Segment index (0-based) -> ETag, as the daemon's journal holds them."""
    try:
        db = sqlite3.connect(f"file:{tmp_path / 'state' / JOURNAL_NAME}?mode=ro", uri=True)
        try:
            return dict(db.execute("SELECT number, etag FROM parts").fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError:
        return {}  # the daemon has not created its journal yet


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith("{") and f'"{name}"' in line]


@contextmanager
def _daemon(config: Path, log: Path, command: str = "run"
            ) -> Iterator[subprocess.Popen[bytes]]:
    """A real daemon (`run`, or `once`) writing JSON logs to ``log``; killed if the test leaves
    it alive."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", command, "-c", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=cli_env(), stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _assert_stored_once(emulator: Emulator, data: bytes) -> str:
    (record,) = emulator.stored_uploads()
    assert len(emulator.uploads) == 1
    assert record.store_count == 1 and record.status == "complete"
    assert emulator.stored_path(record.uuid).read_bytes() == data
    assert emulator.associations(record.uuid) == 1
    return record.uuid


def test_segmented_upload_end_to_end(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    data = _big(drop / "model.ifc", 23)
    count = _segment_count(len(data))
    config = _config(tmp_path, emulator, drop)

    result = run_cli("once", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    uuid = _assert_stored_once(emulator, data)
    record = emulator.uploads[uuid]
    assert record.segments is not None
    assert [s["size"] for s in record.segments] == [SEGMENT] * (count - 1) + [TAIL + 3 * MIB]
    for number, declared in enumerate(record.segments, start=1):
        piece = data[(number - 1) * SEGMENT:number * SEGMENT]
        assert declared["sha256"] == hashlib.sha256(piece).hexdigest()
        assert declared.get("md5")  # declared, so the emulator checked each PUT's Content-MD5
    puts = _part_puts(emulator)
    assert sorted(puts) == [(n, 200) for n in range(1, count + 1)]  # each part exactly once
    assert _patches(emulator) == [200]
    # ETags are kept without S3's quotes (the emulator answers them quoted).
    etags = _journal_parts(tmp_path)
    assert sorted(etags) == list(range(count))
    assert all('"' not in etag for etag in etags.values())
    assert record.completed_etags == [etags[i] for i in range(count)]  # in order
    assert (drop / ".archive" / "model.ifc").read_bytes() == data
    ledger = json.loads((tmp_path / "state" / "uploads.jsonl").read_text())
    assert ledger["uuid"] == uuid
    assert ledger["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_failing_segment_is_the_only_one_sent_again(tmp_path: Path,
                                                      emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    data = _big(drop / "survey.las", 17)
    count = _segment_count(len(data))
    config = _config(tmp_path, emulator, drop, segment_parallelism=3)
    emulator.faults.failing_segments = {2}
    log = tmp_path / "once.log"
    with _daemon(config, log, "once") as proc:
        wait_for(lambda: _part_puts(emulator).count((2, 500)) >= 2, timeout=30,
                 message="segment 2 refused twice")
        emulator.faults.failing_segments = set()
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]

    _assert_stored_once(emulator, data)
    sent = Counter(number for number, _ in _part_puts(emulator))
    assert sent[2] >= 3
    assert {n: sent[n] for n in sent if n != 2} == {n: 1 for n in range(1, count + 1) if n != 2}
    assert _patches(emulator) == [200]


def test_after_a_failed_attempt_stored_segments_are_not_sent_again(
        tmp_path: Path, emulator: Emulator) -> None:
    """Segment 3 fails past the request retries: the file is retried later, on the same
    Upload, and only segment 3 travels again (the others' ETags are in the journal)."""
    drop = tmp_path / "drop"
    data = _big(drop / "plans.pdf", 22)
    count = _segment_count(len(data))
    config = _config(tmp_path, emulator, drop, segment_parallelism=2)
    emulator.faults.failing_segments = {3}
    log = tmp_path / "daemon.log"
    with _daemon(config, log) as proc:
        wait_for(lambda: _events(log, "upload_retry_scheduled"), timeout=40,
                 message="the file scheduled for another attempt")
        stored_first = _stored_parts(emulator)
        emulator.faults.failing_segments = set()
        wait_for((drop / ".archive" / "plans.pdf").exists, timeout=40, message="archived")
        assert stop_process(proc) == 0

    assert stored_first == set(range(1, count + 1)) - {3}
    _assert_stored_once(emulator, data)
    sent = Counter(n for n, status in _part_puts(emulator) if status == 200)
    assert sent == Counter(range(1, count + 1))  # every part stored exactly once
    assert _patches(emulator) == [200]
    assert len(_events(log, "upload_created")) == 1
    assert len(_events(log, "upload_resumed")) == 1


@pytest.mark.slow
def test_resume_after_sigkill_reuses_the_upload_and_its_stored_segments(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    data = _big(drop / "drone.mp4", 40)
    count = _segment_count(len(data))
    config = _config(tmp_path, emulator, drop, segment_parallelism=1)
    emulator.faults.storage_delay_seconds = 1.0  # each PUT waits before its body is read
    log = tmp_path / "daemon.log"
    with _daemon(config, log) as proc:
        # Three segments stored and their ETags journalled; the next PUT sits in the delay.
        wait_for(lambda: len(_journal_parts(tmp_path)) >= 3, timeout=60,
                 message="three segments stored and journalled")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # The PUT in flight at the kill is still being handled (its delay, then a body cut off
    # or, when the kernel had buffered all of it, stored): count only once it is over, or it
    # would be logged among the PUTs of the restart.
    wait_for(lambda: emulator.open_connections() == 0, timeout=30,
             message="the emulator done with the killed daemon's requests")
    stored_at_kill = _stored_parts(emulator)
    (uuid,) = emulator.uploads
    journalled = {i + 1 for i in _journal_parts(tmp_path)}
    assert 3 <= len(journalled) < count
    # Every segment the daemon recorded is stored; at most the one in flight at the kill is
    # stored without its ETag in the journal (sent again: same bytes, same part number).
    assert journalled <= stored_at_kill and len(stored_at_kill - journalled) <= 1
    puts_before = len(_part_puts(emulator))

    emulator.faults.storage_delay_seconds = 0.0
    result = run_cli("once", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert set(emulator.uploads) == {uuid}  # the same Upload, not a new one
    assert _assert_stored_once(emulator, data) == uuid
    resent = [n for n, _ in _part_puts(emulator)[puts_before:]]
    assert not journalled & set(resent), (journalled, resent)  # none travels twice
    assert sorted(resent) == sorted(set(range(1, count + 1)) - journalled)
    assert _patches(emulator) == [200]
    assert (drop / ".archive" / "drone.mp4").read_bytes() == data


def test_resume_after_sigterm_mid_upload(tmp_path: Path, emulator: Emulator) -> None:
    """A clean stop in the middle of a segmented upload: the restart finishes it."""
    drop = tmp_path / "drop"
    data = _big(drop / "pointcloud.e57", 25)
    count = _segment_count(len(data))
    config = _config(tmp_path, emulator, drop, segment_parallelism=1)
    emulator.faults.storage_delay_seconds = 0.7
    log = tmp_path / "daemon.log"
    with _daemon(config, log) as proc:
        wait_for(lambda: len(_stored_parts(emulator)) >= 2, timeout=60,
                 message="two segments stored")
        assert stop_process(proc) == 0
    stored_at_stop = _stored_parts(emulator)
    assert len(stored_at_stop) < count
    puts_before = len(_part_puts(emulator))

    emulator.faults.storage_delay_seconds = 0.0
    result = run_cli("once", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    _assert_stored_once(emulator, data)
    resent = {n for n, _ in _part_puts(emulator)[puts_before:]}
    assert resent == set(range(1, count + 1)) - stored_at_stop
    assert (drop / ".archive" / "pointcloud.e57").read_bytes() == data


@pytest.mark.slow
def test_progress_in_the_log_and_in_status(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    _big(drop / "scan-set.pdf", 12)
    size = 12 * MIB + TAIL
    config = _config(tmp_path, emulator, drop, segment_parallelism=1)
    emulator.faults.storage_delay_seconds = 2.5  # three segments: about 7.5 s in all
    log = tmp_path / "daemon.log"
    key = str(drop / "scan-set.pdf")
    with _daemon(config, log) as proc:
        def uploading() -> dict[str, Any] | None:
            report = json.loads(run_cli("status", "--json", "-c", str(config)).stdout)
            shown: dict[str, Any] | None = report["uploading"].get(key)
            return shown if shown and shown["sent"] > 0 else None

        shown = wait_for(uploading, timeout=30, interval=0.2,
                         message="status shows bytes sent")
        assert shown["total"] == size and 0 < shown["sent"] < size
        wait_for(lambda: _events(log, "upload_progress"), timeout=30, message="progress event")
        emulator.faults.storage_delay_seconds = 0.0
        wait_for((drop / ".archive" / "scan-set.pdf").exists, timeout=30, message="archived")
        assert stop_process(proc) == 0

    (event, *_) = _events(log, "upload_progress")
    assert event["path"] == key and event["uuid"] in emulator.uploads
    assert event["total"] == size and 0 < event["bytes"] <= size
    assert 0 < event["percent"] <= 100 and event["rate_mib_s"] > 0
    report = json.loads(run_cli("status", "--json", "-c", str(config)).stdout)
    assert key not in report["uploading"]
