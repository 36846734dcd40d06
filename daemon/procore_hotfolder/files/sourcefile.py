"""Safe access to a candidate file: look without following links, open without surprises.

``observe`` is what the scheduler feeds the settle tracker. ``open_for_upload`` opens a
settled file so that nothing swapped in under its name since it settled gets read: no
symlink is followed, a FIFO never blocks us, a device is never read, a file with several
hard links is refused, and the opened inode must be the version that settled.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from types import TracebackType

from procore_hotfolder.errors import FileChanged, FileRefused, FileUnreadable, FileVanished
from procore_hotfolder.model import Observation, not_a_file_skip

__all__ = [
    "FileSlice",
    "Observation",
    "OpenedFile",
    "classify",
    "observation_of",
    "observe",
    "open_for_upload",
]

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

HARD_LINKS_MESSAGE = (
    "the file has {n} hard links: refused, because a shared folder must not become a way to "
    "upload files its writers cannot read (a hard link to someone else's file would be sent "
    "with the daemon's rights)"
)


def observation_of(st: os.stat_result) -> Observation:
    """The ``Observation`` an ``os.stat_result`` describes."""
    return Observation(size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino,
                       dev=st.st_dev, ctime_ns=st.st_ctime_ns)


def observe(path: Path) -> Observation | None:
    """``lstat()`` ``path`` (never following a symlink).

    Returns None when the path is missing or cannot be examined at all (a parent became
    unreadable, a name too long): for the tracker both mean "nothing to settle here".
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return observation_of(st)


def classify(st: os.stat_result) -> str | None:
    """None for a regular file, else what it is: symlink, fifo, socket, device, directory,
    other."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "other"


class FileSlice:
    """A read-only file-like over ``length`` bytes of an open fd, starting at ``offset``.

    Reads use ``os.pread``, so several slices of one fd can be read from different threads
    with independent positions. ``len()`` and ``.len`` give the bytes still to read (what
    requests and requests-toolbelt use to size a body). ``fileno()``, ``tell()`` and
    ``seek()`` are deliberately absent: HTTP libraries would otherwise bypass the slice
    bounds (sendfile) or subtract the position a second time from the length.
    """

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._offset = offset
        self._end = offset + length
        self._pos = offset

    @property
    def len(self) -> int:
        """Bytes left to read."""
        return max(0, self._end - self._pos)

    def __len__(self) -> int:
        return self.len

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that remain when negative or None); b"" at the end.

        A short result before the end means the file got shorter: the caller checks the
        total it read against what it expected.
        """
        remaining = self.len
        want = remaining if size is None or size < 0 else min(size, remaining)
        if want <= 0:
            return b""
        chunks: list[bytes] = []
        while want > 0:
            data = os.pread(self._fd, want, self._pos)
            if not data:
                break
            chunks.append(data)
            self._pos += len(data)
            want -= len(data)
        return b"".join(chunks)

    def readable(self) -> bool:
        return True


class OpenedFile:
    """An fd opened by ``open_for_upload``; closes it when the ``with`` block ends."""

    def __init__(self, fd: int, observation: Observation, path: Path) -> None:
        self.fd = fd
        self.observation = observation
        self.path = path

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the fd (idempotent)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def reader(self, offset: int = 0, length: int | None = None) -> FileSlice:
        """A ``FileSlice`` over ``length`` bytes from ``offset`` (default: to the end)."""
        size = self.observation.size
        if offset < 0 or offset > size:
            raise ValueError(f"offset {offset} outside a file of {size} bytes")
        if length is None:
            length = size - offset
        if length < 0 or offset + length > size:
            raise ValueError(f"slice {offset}+{length} outside a file of {size} bytes")
        return FileSlice(self.fd, offset, length)

    def unchanged(self) -> bool:
        """True when the open file and the name both still show the settled version.

        Compares size, mtime, inode and device of ``fstat(fd)`` and ``lstat(path)`` with the
        observation, and requires a single hard link.
        """
        try:
            by_fd = os.fstat(self.fd)
            by_name = os.lstat(self.path)
        except OSError:
            return False
        return (observation_of(by_fd).same_version(self.observation)
                and observation_of(by_name).same_version(self.observation)
                and by_fd.st_nlink == 1)


def open_for_upload(path: Path, expected: Observation) -> OpenedFile:
    """Open the settled file at ``path`` for reading, refusing anything unsafe.

    Raises ``FileRefused`` (reason symlink, fifo, socket, device, directory, other,
    hard_links), ``FileChanged`` when the opened file is not the ``expected`` version,
    ``FileVanished`` when it is gone, ``FileUnreadable`` on permission or I/O errors.
    The fd is closed on every failure.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    try:
        st = os.fstat(fd)
        _check_opened(st, expected)
        # Regular file confirmed: blocking reads from here on.
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return OpenedFile(fd, observation_of(st), path)
    except OSError as exc:
        os.close(fd)
        raise _open_error(path, exc) from exc
    except BaseException:
        os.close(fd)
        raise


def _check_opened(st: os.stat_result, expected: Observation) -> None:
    """Raise unless the opened file is a singly linked regular file of the expected version."""
    kind = classify(st)
    if kind is not None:
        raise FileRefused(f"not a regular file: {not_a_file_skip(kind)}",
                          reason=kind)
    if st.st_nlink > 1:
        raise FileRefused(HARD_LINKS_MESSAGE.format(n=st.st_nlink), reason="hard_links")
    if not observation_of(st).same_version(expected):
        raise FileChanged(
            f"the file changed since it settled (size {expected.size} -> {st.st_size}, "
            f"mtime_ns {expected.mtime_ns} -> {st.st_mtime_ns}, inode {expected.ino} -> "
            f"{st.st_ino})")


def _open_error(path: Path, exc: OSError) -> Exception:
    code = exc.errno
    if code == errno.ELOOP:
        return FileRefused("the name is a symbolic link: symlinks are never followed",
                           reason="symlink")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return FileVanished("the file disappeared before it could be opened")
    if code in (errno.EACCES, errno.EPERM):
        return FileUnreadable(f"permission denied reading the file ({exc.strerror})")
    if code == errno.EIO:
        return FileUnreadable(f"I/O error reading the file ({exc.strerror}): disk or share "
                              "problem")
    if code == errno.ENXIO:
        # open() of a socket (or a device without its driver) fails this way.
        try:
            kind = classify(os.lstat(path)) or "other"
        except OSError:
            kind = "other"
        return FileRefused(f"not a regular file: {not_a_file_skip(kind)}",
                           reason=kind)
    return FileUnreadable(f"cannot open the file: {exc.strerror or exc}")
