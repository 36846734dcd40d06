"""Moves that never overwrite: within a filesystem, across one (copied, synced, verified), and
guarded by a lease, never under a writer."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.errors import ArchiveError, FileChanged, FileOpenForWriting, FileVanished
from procore_hotfolder.files import nooverwrite
from procore_hotfolder.files.archiver import (
    archive_path_for,
)
from procore_hotfolder.files.nooverwrite import move_no_overwrite
from procore_hotfolder.files.sourcefile import observe
from tests.conftest import wait_for
from tests.unit.files.support import leftovers, make, settings


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- same-filesystem moves -----------------------------------------------------------------


def test_move_creates_parents_and_keeps_content(tmp_path: Path) -> None:
    folder = settings(tmp_path)
    source = make(folder.path / "sub" / "plan.pdf", b"plan v1")
    inode = os.stat(source).st_ino
    final = move_no_overwrite(source, archive_path_for(folder, source))
    assert final == folder.archive_dir / "sub" / "plan.pdf"
    assert final.read_bytes() == b"plan v1"
    assert os.stat(final).st_ino == inode and os.stat(final).st_nlink == 1
    assert not source.exists()


def test_clash_never_overwrites(tmp_path: Path) -> None:
    target = make(tmp_path / "archive" / "plan.pdf", b"older upload")
    make(tmp_path / "archive" / "plan (1).pdf", b"second older upload")
    source = make(tmp_path / "drop" / "plan.pdf", b"newest")
    final = move_no_overwrite(source, target)
    assert final == tmp_path / "archive" / "plan (2).pdf"
    assert final.read_bytes() == b"newest"
    assert target.read_bytes() == b"older upload"
    assert (tmp_path / "archive" / "plan (1).pdf").read_bytes() == b"second older upload"
    assert not source.exists()


def test_clash_raced_after_free_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another writer takes the free name between our check and our link.
    source = make(tmp_path / "drop" / "a.pdf", b"mine")
    target = tmp_path / "archive" / "a.pdf"
    real_link = nooverwrite._link

    def racing_link(src: Any, dst: Any, **kwargs: Any) -> None:
        if Path(dst) == target and not target.exists():
            target.write_bytes(b"theirs")
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(nooverwrite, "_link", racing_link)
    final = move_no_overwrite(source, target)
    assert final == tmp_path / "archive" / "a (1).pdf"
    assert target.read_bytes() == b"theirs" and final.read_bytes() == b"mine"


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP])
def test_without_hard_links_renames_without_overwriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int,
) -> None:
    def no_links(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(nooverwrite, "_link", no_links)
    target = make(tmp_path / "archive" / "a.pdf", b"old")
    source = make(tmp_path / "drop" / "a.pdf", b"new")
    final = move_no_overwrite(source, target)
    assert final == tmp_path / "archive" / "a (1).pdf"
    assert final.read_bytes() == b"new" and target.read_bytes() == b"old"
    assert not source.exists()


def test_without_renameat2_falls_back_to_checked_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_links(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(errno.EPERM, "no links here")

    monkeypatch.setattr(nooverwrite, "_link", no_links)
    monkeypatch.setattr(nooverwrite, "_renameat2", None)
    target = make(tmp_path / "archive" / "a.pdf", b"old")
    source = make(tmp_path / "drop" / "a.pdf", b"new")
    final = move_no_overwrite(source, target)
    assert final == tmp_path / "archive" / "a (1).pdf"
    assert target.read_bytes() == b"old" and final.read_bytes() == b"new"


def test_expected_mismatch_moves_nothing(tmp_path: Path) -> None:
    source = make(tmp_path / "drop" / "a.pdf", b"v1")
    expected = observe(source)
    assert expected is not None
    source.write_bytes(b"v2 is longer")
    target = tmp_path / "archive" / "a.pdf"
    with pytest.raises(FileChanged):
        move_no_overwrite(source, target, expected)
    assert source.read_bytes() == b"v2 is longer"
    assert not target.exists()


def test_expected_match_moves(tmp_path: Path) -> None:
    source = make(tmp_path / "drop" / "a.pdf")
    expected = observe(source)
    final = move_no_overwrite(source, tmp_path / "archive" / "a.pdf", expected)
    assert final.read_bytes() == b"content"


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(FileVanished):
        move_no_overwrite(tmp_path / "nope.pdf", tmp_path / "archive" / "nope.pdf")


def test_symlink_is_moved_not_followed(tmp_path: Path) -> None:
    secret = make(tmp_path / "secret", b"private")
    link = tmp_path / "drop" / "link.pdf"
    link.parent.mkdir()
    link.symlink_to(secret)
    final = move_no_overwrite(link, tmp_path / "failed" / "link.pdf")
    assert final.is_symlink() and os.readlink(final) == str(secret)
    assert secret.read_bytes() == b"private" and os.stat(secret).st_nlink == 1


# --- across filesystems --------------------------------------------------------------------


@pytest.fixture(params=["real", "seam"])
def other_fs(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path.

    "real": /dev/shm when it is another filesystem (skipped otherwise). "seam": a folder in
    tmp_path that the module's link seam treats as another device (EXDEV), so the copy path
    runs on every machine.
    """
    shm = Path("/dev/shm")
    if request.param == "real":
        if not (shm.is_dir() and os.access(shm, os.W_OK)
                and os.stat(shm).st_dev != os.stat(tmp_path).st_dev):
            pytest.skip("/dev/shm is not a separate filesystem here")
        folder = shm / f"hotfolder-test-{os.getpid()}-{id(tmp_path)}"
        folder.mkdir()
        try:
            yield folder
        finally:
            for child in sorted(folder.rglob("*"), reverse=True):
                child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
            folder.rmdir()
        return

    other = str(tmp_path / "other-fs") + os.sep

    def cross_device(src: Any, dst: Any, **_kwargs: Any) -> None:
        if str(dst).startswith(other) and not str(src).startswith(other):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        os.link(src, dst, follow_symlinks=False)

    monkeypatch.setattr(nooverwrite, "_link", cross_device)
    monkeypatch.setattr(nooverwrite, "_renameat2", None)
    folder = tmp_path / "other-fs"
    folder.mkdir()
    yield folder


def test_cross_filesystem_move_copies_verifies_and_unlinks(tmp_path: Path,
                                                         other_fs: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = make(tmp_path / "drop" / "big.bin", data)
    os.utime(source, ns=(1_000_000_000, 2_000_000_000))
    expected = observe(source)
    make(other_fs / "archive" / "big.bin", b"an older one")
    final = move_no_overwrite(source, other_fs / "archive" / "big.bin", expected)
    assert final == other_fs / "archive" / "big (1).bin"
    assert final.read_bytes() == data
    assert os.stat(final).st_mtime_ns == 2_000_000_000
    assert (other_fs / "archive" / "big.bin").read_bytes() == b"an older one"
    assert not source.exists()
    assert leftovers(other_fs) == []


def test_cross_filesystem_failure_leaves_source_intact(
    tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = make(tmp_path / "drop" / "a.pdf", b"precious" * 1000)

    def broken_verify(*_args: Any) -> None:
        raise ArchiveError("the copy does not match the original")

    monkeypatch.setattr(nooverwrite, "_verify_copy", broken_verify)
    with pytest.raises(ArchiveError, match="does not match"):
        move_no_overwrite(source, other_fs / "archive" / "a.pdf")
    assert source.read_bytes() == b"precious" * 1000
    assert not (other_fs / "archive" / "a.pdf").exists()
    assert leftovers(other_fs) == []


def test_cross_filesystem_disk_full(tmp_path: Path, other_fs: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    source = make(tmp_path / "drop" / "a.pdf", os.urandom(2 * 1024 * 1024))
    before = sha(source)
    calls = {"n": 0}

    def full_after_first_chunk(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    monkeypatch.setattr(nooverwrite, "_write", full_after_first_chunk)
    with pytest.raises(ArchiveError, match="disk is full"):
        move_no_overwrite(source, other_fs / "archive" / "a.pdf")
    assert sha(source) == before
    assert not (other_fs / "archive" / "a.pdf").exists()
    assert leftovers(other_fs) == []


def test_cross_filesystem_expected_mismatch(tmp_path: Path, other_fs: Path) -> None:
    source = make(tmp_path / "drop" / "a.pdf", b"v1")
    expected = observe(source)
    assert expected is not None
    source.write_bytes(b"v2, different")
    with pytest.raises(FileChanged):
        move_no_overwrite(source, other_fs / "a.pdf", expected)
    assert source.read_bytes() == b"v2, different"
    assert leftovers(other_fs) == [] and not (other_fs / "a.pdf").exists()


def test_disk_full_on_same_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make(tmp_path / "drop" / "a.pdf")

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nooverwrite, "_link", full)
    with pytest.raises(ArchiveError, match="disk is full"):
        move_no_overwrite(source, tmp_path / "archive" / "a.pdf")
    assert source.read_bytes() == b"content"


def test_source_replaced_during_move_is_not_deleted(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A writer replaces the file between our link() and unlink(): the new file must survive
    # and our link must be taken back.
    source = make(tmp_path / "drop" / "a.pdf", b"uploaded version")
    real_link = nooverwrite._link

    def link_then_replace(src: Any, dst: Any, **kwargs: Any) -> None:
        real_link(src, dst, **kwargs)
        fresh = tmp_path / "drop" / "fresh"
        fresh.write_bytes(b"newer version")
        os.replace(fresh, src)

    monkeypatch.setattr(nooverwrite, "_link", link_then_replace)
    with pytest.raises(FileChanged):
        move_no_overwrite(source, tmp_path / "archive" / "a.pdf")
    assert source.read_bytes() == b"newer version"
    assert list((tmp_path / "archive").iterdir()) == []


# --- guarded moves: never under a writer ---------------------------------------------------


class ArrivingWriter:
    """A writer that opens ``path`` for writing in a thread at ``arrive()``: while the move
    holds its lease the open waits, which /proc/locks shows as a lease BREAKING."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ino = os.stat(path).st_ino
        self.fd: int | None = None
        self._thread = threading.Thread(target=self._open)

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def arrive(self) -> None:
        self._thread.start()
        wait_for(self._breaking, timeout=10, message="the writer waiting on the lease")

    def _breaking(self) -> bool:
        return any("BREAKING" in line and f":{self.ino} " in line
                   for line in Path("/proc/locks").read_text().splitlines())

    def write(self, data: bytes) -> None:
        self._thread.join(timeout=10)
        assert self.fd is not None
        os.write(self.fd, data)

    def close(self) -> None:
        self._thread.join(timeout=10)
        if self.fd is not None:
            os.close(self.fd)


@pytest.mark.parametrize("where", ["same", "other"])
def test_a_guarded_move_leaves_a_file_a_writer_holds(tmp_path: Path, other_fs: Path,
                                                     where: str) -> None:
    source = make(tmp_path / "drop" / "stalled.pdf", b"half of it")
    target = (tmp_path / "drop" / ".archive" if where == "same" else other_fs) / "stalled.pdf"
    writer = os.open(source, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(FileOpenForWriting):
            move_no_overwrite(source, target, observe(source), guard=True)
    finally:
        os.close(writer)
    assert source.read_bytes() == b"half of it" and not target.exists()
    assert leftovers(tmp_path) == [] and leftovers(other_fs) == []
    # Unguarded (the network mounts, where a lease means nothing) it would have moved.
    assert move_no_overwrite(source, target, observe(source)) == target


def test_a_writer_arriving_during_a_move_gets_the_file_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make(tmp_path / "drop" / "scan.pdf", b"first part")
    target = tmp_path / "drop" / ".archive" / "scan.pdf"
    writer = ArrivingWriter(source)

    def link_then_writer_arrives(src: Any, dst: Any, **kwargs: Any) -> None:
        os.link(src, dst, **kwargs)
        if Path(src) == source:
            writer.arrive()

    monkeypatch.setattr(nooverwrite, "_link", link_then_writer_arrives)
    try:
        with pytest.raises(FileOpenForWriting):
            move_no_overwrite(source, target, observe(source), guard=True)
        writer.write(b", and the rest")
    finally:
        writer.close()
    assert source.read_bytes() == b"first part, and the rest"  # the writer's own inode
    assert os.stat(source).st_ino == writer.ino and not target.exists()


@pytest.mark.parametrize("moment", ["copy", "unlink"])
def test_a_writer_arriving_during_a_copy_across_filesystems_loses_nothing(
        tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    """The copy is discarded and the original keeps its name, whether the writer comes while
    the bytes are copied or at the last step, when the original is about to be unlinked."""
    data = os.urandom(3 * 1024 * 1024)
    source = make(tmp_path / "drop" / "big.bin", data)
    target = other_fs / "archive" / "big.bin"
    writer = ArrivingWriter(source)
    seam, real = ("_write", os.write) if moment == "copy" else ("_rename", os.rename)

    def writer_arrives_first(*args: Any) -> Any:
        monkeypatch.setattr(nooverwrite, seam, real)
        writer.arrive()
        return real(*args)

    monkeypatch.setattr(nooverwrite, seam, writer_arrives_first)
    try:
        with pytest.raises(FileOpenForWriting):
            move_no_overwrite(source, target, observe(source), guard=True)
        writer.write(b"the rest")
    finally:
        writer.close()
    assert source.read_bytes() == data + b"the rest"
    assert os.stat(source).st_ino == writer.ino
    assert not target.exists() and leftovers(other_fs) == [] and leftovers(tmp_path) == []
