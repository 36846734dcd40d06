"""Riding through Procore's bad days: faults, throttling, short-lived tokens, outages.

Each test runs the real daemon (a separate process, as systemd would) against the emulator
with faults switched on, and prints the numbers the closing notes quote.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from procore_hotfolder.emulator import Emulator
from tests.conftest import (
    CLIENT_SECRET,
    TEST_TIMING,
    cli_env,
    run_cli,
    stop_process,
    use_timing,
    wait_for,
    write_config,
)


def _drop_files(folder: Path, count: int, prefix: str = "f") -> dict[str, bytes]:
    files = {}
    for i in range(count):
        data = os.urandom(1000 + 997 * i)
        path = folder / f"{prefix}{i:03d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[hashlib.sha256(data).hexdigest()] = data
    return files


def _stored_once(emu: Emulator, files: dict[str, bytes]) -> None:
    uuids: dict[str, set[str]] = {}
    for record in emu.stored_uploads():
        uuids.setdefault(record.stored_sha256, set()).add(record.uuid)
    assert set(uuids) == set(files), "stored set differs from dropped set"
    for sha, found in uuids.items():
        assert len(found) == 1, (sha, found)
        (uuid,) = found
        assert emu.stored_path(uuid).read_bytes() == files[sha]


class Daemon:
    """The real daemon in a child process, its output in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
                stdout=out, stderr=subprocess.STDOUT, env=cli_env(), stdin=subprocess.DEVNULL)

    def stop(self) -> int:
        return stop_process(self.proc, timeout=60)

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()
                if line.startswith("{")]


@pytest.mark.slow
def test_exactly_once_under_5xx_drops_and_expiring_tokens(tmp_path: Path,
                                                          emulator: Emulator) -> None:
    plain, docs = tmp_path / "plain", tmp_path / "docs"
    files = _drop_files(plain, 24) | _drop_files(docs, 24, prefix="d")
    emulator.faults.seed(5)
    emulator.faults.error_rate = 0.25
    emulator.faults.drop_rate = 0.10
    emulator.faults.storage_error_rate = 0.25
    emulator.faults.storage_drop_rate = 0.10
    emulator.faults.token_lifetime = 1  # several renewals within the run
    config = write_config(tmp_path, emulator, [
        {"path": str(plain), "project_id": 1},
        {"path": str(docs), "project_id": 2, "destination": "documents"},
    ], max_attempts=20)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: not any(p.is_file() for p in [*plain.glob("*.pdf"),
                                                       *docs.glob("*.pdf")]),
                 timeout=240, message="all archived")
    finally:
        assert daemon.stop() == 0
    _stored_once(emulator, files)
    for record in emulator.stored_uploads():
        assert emulator.associations(record.uuid) <= 1
    filed = [r for r in emulator.stored_uploads() if emulator.associations(r.uuid) == 1]
    assert len(filed) == 24
    assert not (plain / ".failed").exists() and not (docs / ".failed").exists()
    ledger = (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()
    assert len(ledger) == len(files)
    print(f"files={len(files)} answered_5xx={emulator.count(status=500)} "
          f"dropped={emulator.count(status=0)} tokens={emulator.count(kind='token')} "
          f"duplicates=0 failed=0")


@pytest.mark.slow
def test_rate_limit_paced_with_at_most_one_429(tmp_path: Path, emulator: Emulator) -> None:
    """40 files (one API call each) through 4 workers against a sliding spike window of 10
    calls per 5 s, as Procore's spike window rolls forward (Rate Limiting page): at most one
    429 in the run, at about the pace the window allows."""
    drop = tmp_path / "drop"
    files = _drop_files(drop, 40)
    limit, window = 10, 5.0
    emulator.faults.spike_limit = (limit, window)
    emulator.faults.spike_limit_kind = "sliding"
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 3}],
                          workers=4)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: not any(drop.glob("*.pdf")), timeout=120, message="all archived")
    finally:
        assert daemon.stop() == 0
    _stored_once(emulator, files)
    api = [r for r in emulator.request_log if r.kind == "api"]
    too_many = sum(1 for r in api if r.status == 429)
    served = [r for r in api if r.status != 429]
    elapsed = served[-1].time - served[0].time
    allowed_rate = limit / window
    achieved = (len(served) - 1) / elapsed
    print(f"api_calls={len(served)} 429s={too_many} elapsed={elapsed:.1f}s "
          f"achieved={achieved:.2f}/s allowed={allowed_rate:.2f}/s "
          f"({100 * achieved / allowed_rate:.0f}%)")
    assert emulator.rate_limited.get("spike", 0) == too_many  # none injected
    assert too_many <= 1


@pytest.mark.slow
def test_outage_fails_nothing_and_work_resumes_by_itself(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every request in the outage waits out the emulator's Retry-After (1 s) between tries,
    # and the workers take turns at the token: two tries a request, not five.
    use_timing(monkeypatch, requests=replace(TEST_TIMING.requests, tries=2))
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 4}],
                          max_attempts=1)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: b"daemon_ready" in daemon.log.read_bytes(), message="ready")
        emulator.faults.outage = True
        files = _drop_files(drop, 4)
        # Files retried more often than max_attempts (1) allows for errors: none may fail.
        def retried_past_max_attempts() -> bool:
            retries: dict[object, int] = {}
            for event in daemon.events():
                if event["event"] == "upload_retry_scheduled":
                    retries[event["path"]] = retries.get(event["path"], 0) + 1
            return sum(1 for n in retries.values() if n >= 2) >= 2

        wait_for(retried_past_max_attempts, timeout=120,
                 message="the daemon kept trying through the outage")
        status = json.loads(run_cli("status", "--json", "-c", str(config)).stdout)
        (folder,) = status["folders"]
        assert folder["failed"] == 0
        assert folder["queued"] + folder["uploading"] + folder["waiting"] == 4
        explained = run_cli("explain", str(next(drop.glob("*.pdf"))), "-c", str(config)).stdout
        assert "unavailable" in explained or "retrying" in explained, explained
        emulator.faults.outage = False
        back = time.monotonic()
        wait_for(lambda: not any(drop.glob("*.pdf")), timeout=60, message="resumed")
        resumed_in = time.monotonic() - back
    finally:
        assert daemon.stop() == 0
    _stored_once(emulator, files)
    assert not (drop / ".failed").exists()
    print(f"refused_during_outage={emulator.count(status=503)} files={len(files)} "
          f"failed=0 all_uploaded_within={resumed_in:.1f}s_of_return")
    assert resumed_in < 20


def test_no_secret_in_any_output(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    _drop_files(drop, 5)
    (drop / "refused.pdf").write_bytes(b"x")
    os.link(drop / "refused.pdf", tmp_path / "second-link")
    emulator.faults.token_lifetime = 2
    emulator.faults.fail_next(2, status=500, kind="storage")
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 5,
                                                "destination": "photos"}],
                          log_level="debug")
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 1  # the refused file
    outputs = [result.stdout, result.stderr]
    for path in (tmp_path / "state").rglob("*.jsonl"):
        outputs.append(path.read_text())
    for path in drop.rglob("*.error.json"):
        outputs.append(path.read_text())
    text = "\n".join(outputs)
    secrets = {CLIENT_SECRET, *emulator.state.tokens}
    for record in emulator.uploads.values():
        for name, value in record.fields.items():
            if name.lower() in ("policy", "x-amz-signature", "x-amz-credential"):
                secrets.add(value)
    assert len(secrets) > 5
    leaked = [s for s in secrets if s in text]
    assert not leaked
    assert "upload_completed" in text  # the output was really captured


def test_408_request_timeouts_are_retried_not_failed(tmp_path: Path, emulator: Emulator) -> None:
    """Procore documents 408 as transient (a large unfiltered request): retried, never a
    failed file; a filing answered 408 (outcome unknown) is looked up, not filed twice."""
    drop = tmp_path / "drop"
    files = _drop_files(drop, 3)
    emulator.faults.fail_next(2, status=408, kind="api", path_contains="uploads")
    emulator.faults.fail_next(1, status=408, kind="api", path_contains="files")
    config = write_config(tmp_path, emulator, [
        {"path": str(drop), "project_id": 4, "destination": "documents"}])
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: not any(p.is_file() for p in drop.glob("*.pdf")), timeout=60,
                 message="all archived")
    finally:
        assert daemon.stop() == 0
    assert emulator.count(status=408) == 3
    assert not (drop / ".failed").exists()
    _stored_once(emulator, files)
    assert all(emulator.associations(r.uuid) == 1 for r in emulator.stored_uploads())
