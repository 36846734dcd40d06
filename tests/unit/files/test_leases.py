"""The kernel's read lease, for real: refused while a writer holds the file open, broken when
one opens it while the lease is held (the writer's open waits until the holder lets go), and
whether this process may lease files it does not own. Real files and descriptors; the
writer that arrives during a held lease is a thread whose open(2) blocks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from procore_hotfolder.files import leases
from procore_hotfolder.files.leases import HeldLease, LeaseAnswer
from tests.conftest import wait_for


def _file(tmp_path: Path, name: str = "scan.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.7\n" * 100)
    return path


def test_a_lease_is_refused_while_a_writer_holds_the_file_and_granted_after(
        tmp_path: Path) -> None:
    path = _file(tmp_path)
    assert leases.probe_path(path) is LeaseAnswer.NO_WRITER
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)  # opened, nothing written yet
    try:
        assert leases.probe_path(path) is LeaseAnswer.WRITER
        reader = os.open(path, os.O_RDONLY)
        try:
            assert leases.probe(reader) is LeaseAnswer.WRITER
        finally:
            os.close(reader)
    finally:
        os.close(writer)
    assert leases.probe_path(path) is LeaseAnswer.NO_WRITER


def test_a_reader_is_no_writer_and_a_probe_leaves_no_lease_behind(tmp_path: Path) -> None:
    path = _file(tmp_path)
    other_reader = os.open(path, os.O_RDONLY)
    try:
        assert leases.probe_path(path) is LeaseAnswer.NO_WRITER
    finally:
        os.close(other_reader)
    # Released at once: a writer's open does not wait for anybody.
    fd = os.open(path, os.O_RDONLY)
    try:
        assert leases.probe(fd) is LeaseAnswer.NO_WRITER
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # no EWOULDBLOCK: no lease
    finally:
        os.close(fd)


def test_what_cannot_be_asked_is_unknown_not_a_writer(tmp_path: Path) -> None:
    assert leases.probe_path(tmp_path / "gone.pdf") is LeaseAnswer.UNKNOWN
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # no lease on a folder
    try:
        assert leases.probe(fd) is LeaseAnswer.UNKNOWN
    finally:
        os.close(fd)


def test_a_writer_opening_during_a_held_lease_breaks_it_and_waits(tmp_path: Path) -> None:
    path = _file(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    opened = threading.Event()

    def writer() -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        opened.set()

    thread = threading.Thread(target=writer)
    try:
        with HeldLease(fd) as lease:
            assert lease.answer is LeaseAnswer.NO_WRITER and not lease.broken()
            thread.start()
            wait_for(lease.broken, timeout=10, message="the lease broken by the writer")
            assert not opened.is_set()  # the writer waits for the holder
        thread.join(timeout=10)
        assert opened.is_set()
    finally:
        os.close(fd)


def test_a_lease_refused_at_the_start_is_held_by_nobody(tmp_path: Path) -> None:
    path = _file(tmp_path)
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)
    fd = os.open(path, os.O_RDONLY)
    try:
        with HeldLease(fd) as lease:
            assert lease.answer is LeaseAnswer.WRITER
            assert not lease.broken()  # nothing held, nothing to break
    finally:
        os.close(fd)
        os.close(writer)


CAP_LEASE_ONLY = f"{1 << 28:016x}"
ALL_BUT_CAP_LEASE = f"{0x1ffffffffff & ~(1 << 28):016x}"


@pytest.mark.parametrize(("cap_eff", "uid_map", "expected"), [
    (CAP_LEASE_ONLY, "         0          0 4294967295\n", True),
    (ALL_BUT_CAP_LEASE, "         0          0 4294967295\n", False),
    # systemd's PrivateUsers=yes: the capability counts only in the user namespace
    (CAP_LEASE_ONLY, "         0          0          1\n       998        998          1\n",
     False),
    ("zz", "         0          0 4294967295\n", False),
], ids=["cap-lease", "no-cap-lease", "private-users", "unreadable"])
def test_who_may_lease_any_file(tmp_path: Path, cap_eff: str, uid_map: str,
                                expected: bool) -> None:
    (tmp_path / "status").write_text(f"Name:\tx\nCapInh:\t0\nCapEff:\t{cap_eff}\nCapBnd:\t0\n")
    (tmp_path / "uid_map").write_text(uid_map)
    assert leases.may_lease_any_file(tmp_path) is expected
    assert leases.may_lease_any_file(tmp_path / "missing") is False


def test_leases_turned_off_by_the_sysctl(tmp_path: Path) -> None:
    sysctl = tmp_path / "leases-enable"
    sysctl.write_text("0\n")
    assert leases.leases_enabled(sysctl) is False
    sysctl.write_text("1\n")
    assert leases.leases_enabled(sysctl) is True
    assert leases.leases_enabled(tmp_path / "missing") is True
