"""Safe access to candidate files, on real files in tmp_path."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from pathlib import Path

import pytest

from procore_hotfolder.errors import FileChanged, FileRefused, FileUnreadable, FileVanished
from procore_hotfolder.files import sourcefile
from procore_hotfolder.files.sourcefile import classify, observe, open_for_upload


def make(path: Path, data: bytes = b"hello world") -> sourcefile.Observation:
    path.write_bytes(data)
    found = observe(path)
    assert found is not None
    return found


def open_fds() -> set[tuple[str, str]]:
    """This process's open descriptors and what each refers to. Compared as sets, before and
    after: "nothing was left open" is "no descriptor is new" (an earlier test's socket that
    the garbage collector closes meanwhile does not count)."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir used, closed by now
            fds.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
    return fds


def test_observe_regular_missing_and_symlink(tmp_path: Path) -> None:
    target = tmp_path / "a.pdf"
    seen = make(target, b"12345")
    st = os.lstat(target)
    assert (seen.size, seen.mtime_ns, seen.ino, seen.dev, seen.ctime_ns) == (
        5, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)
    assert observe(tmp_path / "missing") is None
    link = tmp_path / "link"
    link.symlink_to(target)
    linked = observe(link)
    assert linked is not None and linked.ino != seen.ino  # the link itself, not followed


def test_classify_kinds(tmp_path: Path) -> None:
    regular = tmp_path / "f"
    regular.write_bytes(b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(regular)
    assert classify(os.lstat(regular)) is None
    assert classify(os.lstat(fifo)) == "fifo"
    assert classify(os.lstat(link)) == "symlink"
    assert classify(os.lstat(tmp_path)) == "directory"
    assert classify(os.lstat("/dev/null")) == "device"
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        assert classify(os.lstat(sock_path)) == "socket"


def test_open_and_read_whole_file_and_slices(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = os.urandom(300_000)
    expected = make(path, data)
    with open_for_upload(path, expected) as opened:
        whole = opened.reader()
        assert len(whole) == whole.len == len(data)
        assert not hasattr(whole, "fileno")
        first = whole.read(1000)
        assert len(whole) == len(data) - 1000
        assert first + whole.read() == data
        assert whole.read(10) == b"" and len(whole) == 0
        part = opened.reader(100_000, 50_000)
        assert part.len == 50_000
        assert part.read(10**9) == data[100_000:150_000]
        with pytest.raises(ValueError, match="outside"):
            opened.reader(299_999, 10)
        assert opened.unchanged()
    assert opened.fd == -1


def test_slices_read_concurrently_with_independent_positions(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(4 * 256 * 1024)
    expected = make(path, data)
    results: dict[int, bytes] = {}
    with open_for_upload(path, expected) as opened:
        size = 256 * 1024

        def read_segment(index: int) -> None:
            reader = opened.reader(index * size, size)
            chunks = []
            while chunk := reader.read(4096):
                chunks.append(chunk)
            results[index] = b"".join(chunks)

        threads = [threading.Thread(target=read_segment, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert b"".join(results[i] for i in range(4)) == data


def test_unchanged_detects_append_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    expected = make(path)
    with open_for_upload(path, expected) as opened:
        with path.open("ab") as handle:
            handle.write(b"more")
        assert not opened.unchanged()
    expected = make(path)
    with open_for_upload(path, expected) as opened:
        replacement = tmp_path / "new"
        replacement.write_bytes(b"hello world")
        os.replace(replacement, path)
        assert not opened.unchanged()


def test_unchanged_false_when_hard_link_appears(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    expected = make(path)
    with open_for_upload(path, expected) as opened:
        os.link(path, tmp_path / "other")
        assert not opened.unchanged()


def test_refuses_symlink(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    expected = make(target)
    link = tmp_path / "link"
    link.symlink_to(target)
    before = open_fds()
    with pytest.raises(FileRefused) as info:
        open_for_upload(link, expected)
    assert info.value.reason == "symlink"
    assert open_fds() <= before


def test_refuses_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "scan.pdf"
    os.mkfifo(fifo)
    fake = sourcefile.Observation(size=0, mtime_ns=0, ino=0, dev=0)
    before = open_fds()
    with pytest.raises(FileRefused) as info:
        open_for_upload(fifo, fake)  # would hang forever with a blocking open
    assert info.value.reason == "fifo"
    assert open_fds() <= before


def test_refuses_socket_and_directory(tmp_path: Path) -> None:
    fake = sourcefile.Observation(size=0, mtime_ns=0, ino=0, dev=0)
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(FileRefused) as info:
            open_for_upload(sock_path, fake)
        assert info.value.reason == "socket"
    with pytest.raises(FileRefused) as info:
        open_for_upload(tmp_path, fake)
    assert info.value.reason == "directory"


def test_refuses_hard_linked_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    make(path)
    os.link(path, tmp_path / "elsewhere")
    expected = observe(path)
    assert expected is not None
    before = open_fds()
    with pytest.raises(FileRefused) as info:
        open_for_upload(path, expected)
    assert info.value.reason == "hard_links"
    assert "writers cannot read" in info.value.message
    assert open_fds() <= before


def test_changed_since_settled(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    expected = make(path)
    path.write_bytes(b"hello world, longer now")
    before = open_fds()
    with pytest.raises(FileChanged):
        open_for_upload(path, expected)
    assert open_fds() <= before


def test_vanished(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    expected = make(path)
    path.unlink()
    with pytest.raises(FileVanished):
        open_for_upload(path, expected)


def test_opened_fd_is_blocking_and_cloexec(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    expected = make(path)
    with open_for_upload(path, expected) as opened:
        flags = fcntl.fcntl(opened.fd, fcntl.F_GETFL)
        assert not flags & os.O_NONBLOCK
        assert not os.get_inheritable(opened.fd)


@pytest.mark.parametrize(("code", "cause"), [(13, "permission denied"), (1, "permission denied"),
                                             (5, "I/O error")])
def test_open_errors_name_their_cause(tmp_path: Path, code: int, cause: str) -> None:
    # Runs as root too, where a real EACCES cannot be produced.
    error = sourcefile._open_error(tmp_path / "f", OSError(code, os.strerror(code)))
    assert isinstance(error, FileUnreadable)
    assert cause in error.message
