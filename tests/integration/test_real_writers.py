"""Real writers that stall for longer than the settle time (issue 19).

A Samba server with an SMB2 client copying onto it as Windows does, a local program, rsync
``--inplace``, and a local program with the archive on another file system (a tmpfs). Each
writer holds the file open through a pause longer than ``settle_seconds``, its size and mtime
quiet meanwhile. Whatever the daemon decides, the outcome must be: Procore stored one Upload,
of the whole file, filed once; the archive holds the whole file; the ledger has one line, of
the whole file; the writer finished, and the file stayed where it wrote it while it was open.

The daemon runs in-process (the engine ``run`` builds) against the emulator; smbd, rsync and
the local copier are real processes, the SMB2 client runs in the test. Every scenario also
runs without the stall: the same harness then copies correctly, so a failure of the stalled
run is the daemon's. One more test runs the daemon as a real process under another uid
without CAP_LEASE (``tests.realwriters.unprivileged``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.engine.compose import Engine
from tests.conftest import running_engine, wait_for, write_config
from tests.realwriters import samba, tmpfs, unprivileged
from tests.realwriters.samba import SambaShare, samba_server
from tests.realwriters.smb_copy import windows_copy
from tests.realwriters.tmpfs import mounted_tmpfs

pytestmark = pytest.mark.real_writers

SETTLE_SECONDS = 1.0
STALL_SECONDS = 3.0  # the writer's pause: clearly longer than the settle time
PROJECT = 5
OLD_MTIME = 978307200  # 2001-01-01: a copy keeps its source's last-write time
WRITERS = Path(__file__).parent.parent / "realwriters"
STALLS = pytest.mark.parametrize("stall", [STALL_SECONDS, 0.0], ids=["stalls", "no-stall"])


# --- the outcome -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one copy, every content described against the whole file."""

    stored: tuple[str, ...]  # every Upload Procore stored
    filed: tuple[str, ...]  # every Documents file version in the project
    archived: str  # what the archive holds under the file's name
    ledger: tuple[str, ...]  # every ledger line
    writer: str  # how the writer ended

    def report(self) -> str:
        """One line a field, for the failure message."""
        return "".join(f"\n  {name}: {value}" for name, value in vars(self).items())


WHOLE = Outcome(stored=("whole",), filed=("whole",), archived="whole", ledger=("whole",),
                writer="finished")


def _describe(data: bytes, whole: bytes) -> str:
    """"whole", or how ``data`` differs from ``whole``: its size, how much of its start is
    right, whether the rest is zeros (a preallocated tail)."""
    if data == whole:
        return "whole"
    right = _common_prefix(data, whole)
    rest = data[right:]
    tail = ", then zeros" if rest and not rest.strip(b"\0") else ""
    return f"{len(data)} of {len(whole)} bytes, the first {right} right{tail}"


def _common_prefix(a: bytes, b: bytes, block: int = 4096) -> int:
    n = min(len(a), len(b))
    start = 0
    while start < n and a[start:start + block] == b[start:start + block]:
        start += block
    while start < n and a[start] == b[start]:
        start += 1
    return min(start, n)


def _outcome(emu: Emulator, state_dir: Path, archived: Path, whole: bytes, writer: str
             ) -> Outcome:
    contents = {hashlib.sha256(whole).hexdigest(): "whole"}
    uploads: dict[str, str] = {}
    for record in emu.stored_uploads():
        uploads[record.uuid] = _describe(emu.stored_path(record.uuid).read_bytes(), whole)
        contents[record.stored_sha256 or ""] = uploads[record.uuid]
    filed = tuple(uploads.get(uuid, f"unknown upload {uuid}")
                  for doc in emu.documents if doc["project_id"] == PROJECT
                  for uuid in doc["upload_uuids"])
    ledger_path = state_dir / "uploads.jsonl"
    lines = ledger_path.read_text().splitlines() if ledger_path.exists() else []
    ledger = tuple(contents.get(entry["sha256"], f"sha256 {entry['sha256']}, "
                                                 f"{entry['size']} bytes")
                   for entry in map(json.loads, lines))
    return Outcome(stored=tuple(uploads.values()), filed=filed,
                   archived=_describe(archived.read_bytes(), whole) if archived.exists()
                   else "nothing", ledger=ledger, writer=writer)


# --- the daemon --------------------------------------------------------------------------------


@contextmanager
def _daemon(tmp_path: Path, emu: Emulator, drop: Path, **folder: Any) -> Iterator[Engine]:
    """The daemon's engine in a thread, filing ``drop`` in Documents of PROJECT."""
    config = write_config(tmp_path, emu, [{"path": str(drop), "project_id": PROJECT,
                                           "destination": "documents", **folder}],
                          settle_seconds=SETTLE_SECONDS)
    with running_engine(load_config(config, environ={})) as (engine, capture):
        wait_for(lambda: any(e.get("event") == "daemon_ready" for e in capture.entries),
                 message="daemon_ready")
        yield engine


def _wait_until_done(engine: Engine, original: Path, archived: Path) -> None:
    """The file left the drop folder, the archive holds it and no journal row is unfinished;
    or, when the daemon never takes it, a timeout (the test's failure)."""
    wait_for(lambda: not original.exists() and archived.exists()
             and not engine.journal.active(), timeout=30, message="the file archived")


def _source(tmp_path: Path, size: int, mtime: int | None = None) -> tuple[Path, bytes]:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    if mtime is not None:
        os.utime(source, (mtime, mtime))
    return source, data


def _stalled_while(original: Path, stall: float) -> str:
    """The stall, called by the writer between two writes: it pauses ``stall`` seconds
    holding the file open. Returns what became of ``original`` meanwhile ("" for nothing)."""
    before = os.stat(original)
    time.sleep(stall)  # the stall itself: the writer's pause is the scenario
    try:
        after = os.stat(original)
    except FileNotFoundError:
        return "moved away while it was open"
    if (after.st_ino, after.st_dev) != (before.st_ino, before.st_dev):
        return "replaced while it was open"
    return ""


def _writer_result(problem: str) -> str:
    return f"finished, but the file was {problem}" if problem else "finished"


# --- Samba and an SMB2 client copying as Windows does -----------------------------------------


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


@pytest.fixture
def share(tmp_path: Path, drop: Path) -> Iterator[SambaShare]:
    reason = samba.unavailable()
    if reason:
        pytest.skip(reason)
    with samba_server(tmp_path / "samba", drop) as running:
        yield running


@STALLS
def test_windows_copy_over_smb_that_stalls_is_uploaded_whole_once(
        tmp_path: Path, emulator: Emulator, drop: Path, share: SambaShare,
        stall: float) -> None:
    source, whole = _source(tmp_path, 3 * 1024 * 1024, mtime=OLD_MTIME)
    original, archived = drop / "drawing.pdf", drop / ".archive" / "drawing.pdf"
    problems: list[str] = []
    with _daemon(tmp_path, emulator, drop) as engine:
        try:
            windows_copy(share, source, original.name,
                         at_halfway=lambda: problems.append(_stalled_while(original, stall)))
            writer = _writer_result("".join(problems))
        except Exception as exc:  # the server refused a step: part of the outcome
            writer = f"failed: {type(exc).__name__}: {exc}"[:200]
        _wait_until_done(engine, original, archived)
    outcome = _outcome(emulator, tmp_path / "state", archived, whole, writer)
    assert outcome == WHOLE, outcome.report()


# --- a local program ----------------------------------------------------------------------------


def _local_copy(source: Path, target: Path, stall: float) -> str:
    """``local_copy.py``: half the file, the stall holding it open, the rest, close."""
    done = subprocess.run(
        [sys.executable, str(WRITERS / "local_copy.py"), str(source), str(target),
         "--stall-after", str(source.stat().st_size // 2), "--stall-seconds", str(stall)],
        capture_output=True, text=True, timeout=60 + stall, check=False)
    if done.returncode != 0:
        return f"failed: exit {done.returncode}: {done.stderr.strip()[-200:]}"
    report = json.loads(done.stdout)
    if not report["linked_after_stall"]:
        return _writer_result("unlinked while it was open")
    return _writer_result("" if report["in_place_after_stall"] else "moved away while it was open")


@STALLS
def test_local_writer_that_stalls_is_uploaded_whole_once(
        tmp_path: Path, emulator: Emulator, drop: Path, stall: float) -> None:
    source, whole = _source(tmp_path, 1024 * 1024)
    original, archived = drop / "scan.pdf", drop / ".archive" / "scan.pdf"
    with _daemon(tmp_path, emulator, drop) as engine:
        writer = _local_copy(source, original, stall)
        _wait_until_done(engine, original, archived)
    outcome = _outcome(emulator, tmp_path / "state", archived, whole, writer)
    assert outcome == WHOLE, outcome.report()


# --- rsync --inplace ----------------------------------------------------------------------------


@STALLS
def test_rsync_inplace_that_stalls_is_uploaded_whole_once(
        tmp_path: Path, emulator: Emulator, drop: Path, stall: float) -> None:
    if shutil.which("rsync") is None:
        pytest.skip("rsync not installed: apt-get install rsync; .ci/run installs it")
    # rsync's receiver writes through a 256 KiB buffer: a few MiB leave a half on disk.
    source, whole = _source(tmp_path, 4 * 1024 * 1024, mtime=OLD_MTIME)
    original, archived = drop / source.name, drop / ".archive" / source.name
    relay = (f"{sys.executable} {WRITERS / 'rsync_relay.py'} "
             f"--stall-after {len(whole) // 2} --stall-seconds {stall}")
    with _daemon(tmp_path, emulator, drop) as engine:
        done = subprocess.run(["rsync", "--inplace", "--times", "-e", relay, str(source),
                               f"localhost:{drop}/"],
                              capture_output=True, text=True, timeout=60 + stall, check=False)
        writer = "finished" if done.returncode == 0 else (
            f"failed: rsync exit {done.returncode}: {done.stderr.strip()[-200:]}")
        _wait_until_done(engine, original, archived)
    outcome = _outcome(emulator, tmp_path / "state", archived, whole, writer)
    assert outcome == WHOLE, outcome.report()


# --- an archive on another file system ----------------------------------------------------------


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    reason = tmpfs.unavailable()
    if reason:
        pytest.skip(reason)
    try:
        with mounted_tmpfs(tmp_path / "tmpfs") as mountpoint:
            yield mountpoint
    except subprocess.CalledProcessError as exc:
        if exc.cmd[0] != "mount":
            raise
        pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.strip()}")


@STALLS
def test_local_writer_that_stalls_with_the_archive_on_another_file_system_loses_nothing(
        tmp_path: Path, emulator: Emulator, drop: Path, other_filesystem: Path,
        stall: float) -> None:
    source, whole = _source(tmp_path, 1024 * 1024)
    archive = other_filesystem / "archive"
    original, archived = drop / "site-photo.jpg", archive / "site-photo.jpg"
    with _daemon(tmp_path, emulator, drop, archive_dir=str(archive)) as engine:
        writer = _local_copy(source, original, stall)
        _wait_until_done(engine, original, archived)
    assert os.stat(archived).st_dev != os.stat(drop).st_dev
    outcome = _outcome(emulator, tmp_path / "state", archived, whole, writer)
    assert outcome == WHOLE, outcome.report()


# --- the daemon as another uid, without CAP_LEASE -----------------------------------------------


def test_daemon_as_another_uid_without_capabilities_uploads_a_file_it_does_not_own(
        emulator: Emulator) -> None:
    reason = unprivileged.unavailable()
    if reason:
        pytest.skip(reason)
    with unprivileged.owned_directory() as home:
        drop = home / "drop"
        drop.mkdir()
        config = write_config(home, emulator, [{"path": str(drop)}], settle_seconds=0.3)
        unprivileged.give(home)
        # Root's file, read-only to the daemon: a lease on it is not the daemon's to take.
        (drop / "by-root.pdf").write_bytes(b"dropped by another user")
        archived = drop / ".archive" / "by-root.pdf"
        with unprivileged.unprivileged_daemon(config, home / "daemon.log") as process:
            wait_for(lambda: archived.exists() or process.poll() is not None, timeout=60,
                     message="archived")
            assert process.poll() is None, (home / "daemon.log").read_text()[-2000:]
            credentials = unprivileged.credentials(process.pid)
        assert process.returncode == 0, (home / "daemon.log").read_text()[-2000:]
        assert credentials["Uid"].split() == [str(unprivileged.NOBODY)] * 4
        assert credentials["CapEff"] == credentials["CapBnd"] == "0000000000000000"
        assert archived.read_bytes() == b"dropped by another user"
        (record,) = emulator.stored_uploads()
        assert record.stored_sha256 == hashlib.sha256(b"dropped by another user").hexdigest()


@pytest.mark.slow
def test_without_cap_lease_inotify_still_sees_a_stalled_writer(emulator: Emulator,
                                                              tmp_path: Path) -> None:
    """The daemon as another uid without CAP_LEASE: a lease on root's file is refused
    (EACCES) and tells nothing, so what holds the stalled copy back is inotify's evidence (a
    write, no close since)."""
    reason = unprivileged.unavailable()
    if reason:
        pytest.skip(reason)
    source, whole = _source(tmp_path, 1024 * 1024)
    with unprivileged.owned_directory() as home:
        drop = home / "drop"
        drop.mkdir()
        config = write_config(home, emulator, [{"path": str(drop), "watch": "events",
                                                "project_id": PROJECT,
                                                "destination": "documents"}],
                              settle_seconds=SETTLE_SECONDS)
        unprivileged.give(home)
        original, archived = drop / "scan.pdf", drop / ".archive" / "scan.pdf"
        log = home / "daemon.log"
        with unprivileged.unprivileged_daemon(config, log) as process:
            wait_for(lambda: "daemon_ready" in log.read_text() or process.poll() is not None,
                     timeout=30, message="daemon_ready")
            writer = _local_copy(source, original, STALL_SECONDS)  # root's, stalled
            wait_for(lambda: archived.exists() or process.poll() is not None, timeout=60,
                     message="archived")
            wait_for(lambda: "upload_completed" in log.read_text(), timeout=30,
                     message="upload_completed")
        events = [json.loads(line) for line in log.read_text().splitlines()
                  if line.startswith("{")]
        outcome = _outcome(emulator, home / "state", archived, whole, writer)
    assert outcome == WHOLE, outcome.report()
    [held] = [e for e in events if e["event"] == "file_held_by_writer"]
    assert held["seen_by"] == "inotify" and held["path"] == str(original)
    [warning] = [e for e in events if e["event"] == "writers_not_seen"]
    assert "CAP_LEASE" in warning["detail"]
