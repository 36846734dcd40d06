"""A reload is not a stop (sd_notify(3)): `run` as a real process under a fake systemd.

SIGHUP (what `systemctl reload` sends) answers ``RELOADING=1`` with ``MONOTONIC_USEC=``,
applies the new configuration, then ``READY=1``; ``STOPPING=1`` comes only with the real exit.
An upload in flight in an unchanged folder carries on (one storage POST, not a restart from
byte 0); a folder added by the reload is watched; a configuration that does not load is
refused, logged, and the old one kept. SIGUSR1 (what `retry` sends) is no reload: every folder
is scanned again, and a configuration file changed on disk is not read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from procore_hotfolder.emulator import Emulator
from tests.conftest import FakeSystemd, cli_env, stop_process, wait_for, write_config

pytestmark = pytest.mark.slow


@contextmanager
def daemon(config: Path, systemd: FakeSystemd) -> Iterator[subprocess.Popen[bytes]]:
    env = cli_env()
    env["NOTIFY_SOCKET"] = str(systemd.path)
    out = config.parent / "daemon.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                stop_process(proc)


def events(config: Path) -> list[dict[str, object]]:
    text = (config.parent / "daemon.out").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_reload_keeps_uploads_in_flight_and_applies_the_new_folders(
        tmp_path: Path, emulator: Emulator) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    folders: list[dict[str, object]] = [{"path": str(first)}]
    config = write_config(tmp_path, emulator, folders)
    systemd = FakeSystemd(tmp_path / "notify.sock")
    try:
        with daemon(config, systemd) as proc:
            wait_for(lambda: systemd.seen("READY=1") is not None, message="READY=1")
            # A single form POST that takes seconds: storage answers only after a delay.
            emulator.faults.storage_delay_seconds = 3.0
            (first / "big.pdf").write_bytes(os.urandom(3 * 1024 * 1024))
            wait_for(lambda: emulator.uploads, message="the Upload was created")
            wait_for(lambda: emulator.count(kind="storage") == 1, message="storage POST")

            # Reload with a folder added, while the POST is in flight.
            write_config(tmp_path, emulator, [*folders, {"path": str(second)}])
            mark = len(systemd.messages)
            sent_at = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            reloading = wait_for(lambda: systemd.seen("RELOADING=1", mark),
                                 message="RELOADING=1")
            message = systemd.messages[reloading]
            usec = int(message.split("MONOTONIC_USEC=")[1].split()[0])
            # CLOCK_MONOTONIC is shared by the processes of one machine.
            assert sent_at * 1e6 - 1e6 <= usec <= time.monotonic() * 1e6
            ready = wait_for(lambda: systemd.seen("READY=1", reloading), message="READY=1")
            assert ready > reloading

            wait_for((first / ".archive" / "big.pdf").exists, timeout=60,
                     message="the big file archived")
            emulator.faults.storage_delay_seconds = 0.0
            assert emulator.count(kind="storage") == 1, "the POST started again from byte 0"
            assert len(emulator.uploads) == 1

            (second / "added.pdf").write_bytes(b"%PDF-1.7 in the added folder\n")
            wait_for((second / ".archive" / "added.pdf").exists, message="added folder works")

            # A configuration that does not load is refused; the old one is kept.
            config.write_text("[procore\n")
            mark = len(systemd.messages)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: systemd.seen("READY=1", mark), message="READY=1 after refusal")
            (second / "after.pdf").write_bytes(b"%PDF-1.7 after a refused reload\n")
            wait_for((second / ".archive" / "after.pdf").exists, message="still working")
            assert proc.poll() is None
            assert systemd.seen("STOPPING=1") is None, "a reload is not a stop"
            names = [e["event"] for e in events(config)]
            assert "configuration_reloaded" in names
            assert "configuration_reload_failed" in names
            failed = next(e for e in events(config)
                          if e["event"] == "configuration_reload_failed")
            assert "invalid TOML" in json.dumps(failed["problems"])
            assert stop_process(proc) == 0
        assert systemd.seen("STOPPING=1") is not None
    finally:
        systemd.close()


def test_retry_puts_a_file_back_without_interrupting_uploads_or_reloading(
        tmp_path: Path, emulator: Emulator) -> None:
    """`retry` sends SIGUSR1; the daemon rescans and uploads the file put back without
    aborting the upload in flight, and without reading the configuration file, which an
    operator may be half-way through editing (here, a folder added): that waits for SIGHUP."""
    drop, added = tmp_path / "drop", tmp_path / "added"
    drop.mkdir()
    added.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop)}])
    systemd = FakeSystemd(tmp_path / "notify.sock")
    try:
        with daemon(config, systemd) as proc:
            wait_for(lambda: systemd.seen("READY=1") is not None, message="READY=1")
            ready = len(systemd.messages)
            emulator.faults.fail_next(1, status=422, kind="api", path_contains="uploads")
            (drop / "refused.pdf").write_bytes(b"%PDF-1.7 refused once\n")
            wait_for((drop / ".failed" / "refused.pdf").exists, message="failed")
            emulator.faults.storage_delay_seconds = 2.0
            (drop / "slow.pdf").write_bytes(os.urandom(1024 * 1024))
            wait_for(lambda: emulator.count(kind="storage") >= 1, message="slow POST running")
            write_config(tmp_path, emulator, [{"path": str(drop)}, {"path": str(added)}])
            (added / "not-yet.pdf").write_bytes(b"%PDF-1.7 in a folder being added\n")
            result = subprocess.run(
                [sys.executable, "-m", "procore_hotfolder", "retry", "-c", str(config)],
                capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
                stdin=subprocess.DEVNULL)
            assert result.returncode == 0, result.stderr
            assert "moved back" in result.stdout
            wait_for((drop / ".archive" / "refused.pdf").exists, timeout=60,
                     message="retried file uploaded")
            wait_for((drop / ".archive" / "slow.pdf").exists, timeout=60, message="slow")
            emulator.faults.storage_delay_seconds = 0.0
            assert emulator.count(kind="storage") == 2  # slow.pdf once, refused.pdf once
            assert systemd.seen("STOPPING=1") is None
            names = [e["event"] for e in events(config)]
            assert "rescan_requested" in names
            assert "reload_started" not in names and "configuration_reloaded" not in names
            assert systemd.seen("RELOADING=1") is None and systemd.seen("READY=1", ready) is None
            assert (added / "not-yet.pdf").exists()  # the edited file was not applied

            proc.send_signal(signal.SIGHUP)  # the operator is done: now it is applied
            wait_for((added / ".archive" / "not-yet.pdf").exists, message="applied on SIGHUP")
    finally:
        systemd.close()
