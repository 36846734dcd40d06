"""Files from the real world: completeness, network shares, hostile and odd input.

The daemon runs in-process (the same engine `run` builds) over real temporary folders with a
real inotify watcher, against the emulator. Log events are captured to check that every
refusal or skip is visible.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import LogCapture

from procore_hotfolder.commands.reporting import explain
from procore_hotfolder.config import load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.engine.compose import Engine
from procore_hotfolder.files import nooverwrite, sourcefile
from procore_hotfolder.state.snapshot import read_snapshot
from tests.conftest import running_engine, wait_for, write_config


class RunningDaemon:
    def __init__(self, engine: Engine, capture: LogCapture, config_path: Path) -> None:
        self.engine = engine
        self.capture = capture
        self.config_path = config_path

    def events(self, name: str) -> list[dict[str, Any]]:
        return [dict(e) for e in list(self.capture.entries) if e.get("event") == name]

    def explain(self, path: Path) -> str:
        return explain(self.engine.config(), self.engine.journal, str(path))


@contextmanager
def daemon(tmp_path: Path, emu: Emulator, folders: list[dict[str, Any]],
           **settings: Any) -> Iterator[RunningDaemon]:
    """The daemon's engine running in a thread; stopped and joined on exit."""
    config_path = write_config(tmp_path, emu, folders, **settings)
    with running_engine(load_config(config_path, environ={})) as (engine, capture):
        running = RunningDaemon(engine, capture, config_path)
        wait_for(lambda: running.events("daemon_ready"), message="daemon_ready")
        yield running


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stored(emu: Emulator) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for record in emu.stored_uploads():
        out.setdefault(record.stored_sha256, []).append(record.uuid)
    return out


def _archived(drop: Path, relative: str) -> Path:
    return drop / ".archive" / relative


# --- completeness ------------------------------------------------------------------------------


def test_scanner_writing_page_by_page_is_uploaded_once_complete(tmp_path: Path,
                                                                emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    pages = [os.urandom(20_000) for _ in range(5)]
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=1.0):
        with (drop / "scan.pdf").open("wb") as out:
            for page in pages:
                out.write(page)
                out.flush()
                time.sleep(0.3)  # the scanner's pause between pages (shorter than settle)
        wait_for(_archived(drop, "scan.pdf").exists, message="archived")
    whole = b"".join(pages)
    assert list(_stored(emulator)) == [_sha(whole)]
    assert _archived(drop, "scan.pdf").read_bytes() == whole


def test_temp_then_rename_and_old_mtime_copies(tmp_path: Path, emulator: Emulator) -> None:
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    old = outside / "old.dwg"
    old.write_bytes(b"an old drawing")
    os.utime(old, (978307200, 978307200))  # 2001: a copy keeping its mtime
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.8) as d:
        part = drop / "report.pdf.part"
        part.write_bytes(b"partial...")
        with part.open("ab") as out:
            out.write(b"complete")
        part.rename(drop / "report.pdf")
        dropped_at = time.monotonic()
        shutil.copy2(old, drop / "old.dwg")
        wait_for(lambda: _archived(drop, "report.pdf").exists()
                 and _archived(drop, "old.dwg").exists(), message="archived")
        settled = {e["path"]: e for e in d.events("file_settled")}
        # Settled on observation time: the 2001 mtime did not make it count as quiet.
        assert time.monotonic() - dropped_at >= 0.8
        assert str(drop / "old.dwg") in settled
    assert set(_stored(emulator)) == {_sha(b"partial...complete"), _sha(b"an old drawing")}
    assert not any("part" in r.response_filename for r in emulator.stored_uploads())


def test_new_subfolders_and_a_whole_tree_moved_in(tmp_path: Path, emulator: Emulator) -> None:
    drop, staging = tmp_path / "drop", tmp_path / "staging"
    drop.mkdir()
    files = {f"tree/level{i}/sub/file{i}.pdf": os.urandom(1000 + i) for i in range(6)}
    for rel, data in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(data)
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.3):
        (drop / "new" / "deeper").mkdir(parents=True)
        (drop / "new" / "deeper" / "x.pdf").write_bytes(b"in a new folder")
        os.rename(staging / "tree", drop / "tree")  # a whole tree at once
        wait_for(lambda: all(_archived(drop, rel).exists() for rel in files)
                 and _archived(drop, "new/deeper/x.pdf").exists(), message="archived")
    assert set(_stored(emulator)) == {_sha(d) for d in files.values()} | {_sha(b"in a new folder")}


def test_file_replaced_while_uploading_is_uploaded_again_as_it_now_is(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    first, second = os.urandom(300_000), os.urandom(310_000)
    emulator.faults.storage_delay_seconds = 1.0
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2) as d:
        (drop / "plan.pdf").write_bytes(first)
        wait_for(lambda: d.events("upload_created"), message="upload started")
        (drop / "plan.pdf").write_bytes(second)  # rewritten in place during the upload
        emulator.faults.storage_delay_seconds = 0.0
        wait_for(_archived(drop, "plan.pdf").exists, timeout=30, message="archived")
        assert d.events("file_changed")
    assert _archived(drop, "plan.pdf").read_bytes() == second
    ledger = (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()
    assert len(ledger) == 1 and _sha(second) in ledger[0]


def test_deleted_while_settling_or_uploading_is_no_failure(tmp_path: Path,
                                                           emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    emulator.faults.storage_delay_seconds = 1.0
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.5) as d:
        (drop / "gone-early.pdf").write_bytes(b"x" * 10)
        (drop / "gone-late.pdf").write_bytes(b"y" * 100_000)
        wait_for(lambda: d.engine.service.scheduler.view.waiting.get(str(drop)),
                 message="tracked")
        (drop / "gone-early.pdf").unlink()
        wait_for(lambda: d.events("upload_created"), message="upload started")
        (drop / "gone-late.pdf").unlink()
        wait_for(lambda: d.events("file_vanished") or d.events("file_changed"),
                 message="vanished noticed")
        assert not d.events("upload_failed")
    assert not (drop / ".failed").exists()


def test_empty_file_waits_then_fails_with_its_reason(tmp_path: Path,
                                                     emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2,
                empty_file_timeout_seconds=1.5) as d:
        (drop / "blank.pdf").write_bytes(b"")
        (drop / "filled-later.pdf").write_bytes(b"")
        wait_for(lambda: "empty" in d.explain(drop / "blank.pdf"), message="explained")
        (drop / "filled-later.pdf").write_bytes(b"content arrived")
        wait_for((drop / ".failed" / "blank.pdf.error.json").exists, message="failed")
        wait_for(_archived(drop, "filled-later.pdf").exists, message="archived")
    assert "empty" in (drop / ".failed" / "blank.pdf.error.json").read_text()
    assert list(_stored(emulator)) == [_sha(b"content arrived")]


# --- network shares ----------------------------------------------------------------------------


def test_polling_finds_files_without_events(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    with daemon(tmp_path, emulator, [{"path": str(drop), "watch": "poll"}],
                poll_seconds=0.3) as d:
        assert d.engine.service._watcher is not None
        assert d.engine.service._watcher.modes[drop] == "poll"
        (drop / "from-another-machine.pdf").write_bytes(b"smb")
        wait_for(_archived(drop, "from-another-machine.pdf").exists, message="archived")


def test_vanished_folder_pauses_with_an_alert_and_resumes(tmp_path: Path,
                                                          emulator: Emulator) -> None:
    drop, away = tmp_path / "share", tmp_path / "share-unmounted"
    drop.mkdir()
    (drop / "before.pdf").write_bytes(b"before")
    with daemon(tmp_path, emulator, [{"path": str(drop), "watch": "poll"}],
                poll_seconds=0.2, rescan_seconds=0.5) as d:
        wait_for(_archived(drop, "before.pdf").exists, message="first file")
        os.rename(drop, away)
        wait_for(lambda: d.events("folder_unavailable"), message="alert")
        (away / "during.pdf").write_bytes(b"during")
        os.rename(away, drop)
        wait_for(_archived(drop, "during.pdf").exists, timeout=30, message="resumed")
        assert not d.events("upload_failed")


def test_a_folder_missing_at_the_start_is_reported_once_and_shown(tmp_path: Path,
                                                                  emulator: Emulator) -> None:
    """Missing when the daemon starts (a share not mounted yet): one ``folder_unavailable``
    line (the watcher and the scanner used to log it both, from two threads), the hold on the
    board that status.json and the metrics show, and files once it appears."""
    drop = tmp_path / "late-share"
    with daemon(tmp_path, emulator, [{"path": str(drop)}], poll_seconds=0.2) as d:
        wait_for(lambda: d.events("folder_unavailable"), message="alert")
        [hold] = d.engine.service.holds.current(time.time())
        assert (hold.scope, hold.reason, hold.detail) == (str(drop), "folder_unavailable",
                                                          "missing")
        assert (str(drop), "folder_unavailable") in (
            d.engine.service.publisher.metrics_sample().paused)
        shown = wait_for(lambda: (read_snapshot(tmp_path / "state") or {}).get("holds"),
                         message="status.json shows it")
        assert [(h["kind"], h["scope"], h["detail"]) for h in shown] == [
            ("folder", str(drop), "missing")]
        drop.mkdir()
        (drop / "late.pdf").write_bytes(b"late")
        wait_for(_archived(drop, "late.pdf").exists, timeout=30, message="archived")
        assert d.engine.service.holds.current(time.time()) == []
    assert len(d.events("folder_unavailable")) == 1
    assert len(d.events("folder_available_again")) == 1


# --- hostile and odd input ---------------------------------------------------------------------


def test_symlinks_fifos_and_sockets_are_never_opened(tmp_path: Path,
                                                     emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for upload")
    (drop / "link.pdf").symlink_to(secret)
    os.mkfifo(drop / "pipe.pdf")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(drop / "sock.pdf"))
    try:
        with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2) as d:
            (drop / "real.pdf").write_bytes(b"real")
            wait_for(_archived(drop, "real.pdf").exists, message="archived")
            wait_for(lambda: len(d.events("file_skipped")) >= 3, message="skips logged")
            reasons = {e["path"]: e["reason"] for e in d.events("file_skipped")}
            assert "symlink" in reasons[str(drop / "link.pdf")]
            assert "fifo" in reasons[str(drop / "pipe.pdf")]
            assert "socket" in reasons[str(drop / "sock.pdf")]
            assert "symlink" in d.explain(drop / "link.pdf")
    finally:
        server.close()
    assert list(_stored(emulator)) == [_sha(b"real")]
    assert (drop / "link.pdf").is_symlink() and (drop / "pipe.pdf").exists()


def test_symlink_swapped_in_after_the_check_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"secret")
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"harmless")
    expected = sourcefile.observe(path)
    assert expected is not None
    path.unlink()
    path.symlink_to(target)  # swapped between observation and open
    with pytest.raises(Exception) as caught:
        sourcefile.open_for_upload(path, expected)
    assert getattr(caught.value, "reason", "") == "symlink"


def test_permission_denied_is_reported_and_retried(tmp_path: Path, emulator: Emulator,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    real_open = os.open
    denied = {"on": True}

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # Tests run as root, which chmod cannot stop: refuse like the kernel would.
        if denied["on"] and os.fspath(path).endswith("locked.pdf"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2,
                max_attempts=50) as d:
        (drop / "locked.pdf").write_bytes(b"locked for now")
        wait_for(lambda: any(e.get("reason") == "unreadable"
                             for e in d.events("upload_retry_scheduled")), message="reported")
        assert "unreadable" in d.explain(drop / "locked.pdf")
        denied["on"] = False
        wait_for(_archived(drop, "locked.pdf").exists, timeout=30, message="retried")


ODD_NAMES = [
    "with spaces and (parens).pdf",
    "Ünïcødé — 図面 ✓.pdf",
    "line\nbreak.pdf",
    os.fsdecode(b"latin1-\xe9t\xe9.pdf"),
    "x" * 251 + ".pdf",
]


def test_odd_names_are_uploaded_and_archived_unchanged(tmp_path: Path,
                                                       emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    data = {name: os.urandom(500 + i) for i, name in enumerate(ODD_NAMES)}
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2):
        for name, content in data.items():
            (drop / name).write_bytes(content)
        wait_for(lambda: all(_archived(drop, n).exists() for n in data), message="archived")
    for name, content in data.items():
        assert _archived(drop, name).read_bytes() == content
    names = {r.response_filename for r in emulator.stored_uploads()}
    assert "Ünïcødé — 図面 ✓.pdf" in names
    assert "latin1-\ufffdt\ufffd.pdf" in names  # bytes that are not UTF-8 shown as U+FFFD


def test_archive_clash_never_overwrites(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    (drop / ".archive").mkdir(parents=True)
    (drop / ".archive" / "a.pdf").write_bytes(b"archived yesterday")
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2):
        (drop / "a.pdf").write_bytes(b"today")
        wait_for(_archived(drop, "a (1).pdf").exists, message="archived beside")
    assert (drop / ".archive" / "a.pdf").read_bytes() == b"archived yesterday"
    assert (drop / ".archive" / "a (1).pdf").read_bytes() == b"today"


def test_archive_on_another_filesystem(tmp_path: Path, emulator: Emulator) -> None:
    shm = Path("/dev/shm")
    assert os.stat(shm).st_dev != os.stat(tmp_path).st_dev, "needs /dev/shm as a second fs"
    archive = shm / f"hotfolder-archive-{os.getpid()}"
    drop = tmp_path / "drop"
    drop.mkdir()
    try:
        with daemon(tmp_path, emulator, [{"path": str(drop), "archive_dir": str(archive)}],
                    settle_seconds=0.2):
            (drop / "across.pdf").write_bytes(b"across filesystems" * 1000)
            wait_for((archive / "across.pdf").exists, message="archived")
            wait_for(lambda: not (drop / "across.pdf").exists(), message="original removed")
        assert (archive / "across.pdf").read_bytes() == b"across filesystems" * 1000
        assert not list(archive.glob(".procore-hotfolder-*"))
    finally:
        shutil.rmtree(archive, ignore_errors=True)


def test_full_archive_disk_keeps_the_file_and_retries(tmp_path: Path, emulator: Emulator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    full = {"left": 2}
    real_link = nooverwrite._link

    def link(src: Any, dst: Any, **kwargs: Any) -> None:
        if full["left"] > 0:
            full["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(dst))
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(nooverwrite, "_link", link)
    monkeypatch.setattr(nooverwrite, "_rename", lambda *_a, **_k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with daemon(tmp_path, emulator, [{"path": str(drop)}], settle_seconds=0.2) as d:
        (drop / "big.pdf").write_bytes(b"kept in place")
        wait_for(lambda: d.events("archive_retry_scheduled"), message="alert")
        assert (drop / "big.pdf").exists()  # kept in place while the disk is full
        wait_for(_archived(drop, "big.pdf").exists, timeout=30, message="archived later")
    assert len(emulator.stored_uploads()) == 1  # the retry did not upload again
    assert len((tmp_path / "state" / "uploads.jsonl").read_text().splitlines()) == 1
