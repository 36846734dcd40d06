"""The kernel's read lease: whether any process holds a file open for writing, now.

fcntl(2), "Leases": ``F_SETLEASE`` with ``F_RDLCK`` on a descriptor opened read-only is
refused with EAGAIN while any process has the file open for writing (a local program, or
the file server on this machine writing for an SMB client), whatever the file's size and
mtime do. While the lease is held, a process that opens the file for writing "breaks" it:
its open(2) waits (up to ``/proc/sys/fs/lease-break-time`` seconds) until the holder lets
go, and ``F_GETLEASE`` answers ``F_UNLCK`` to the holder meanwhile. Taking a lease needs the
file's owner, or CAP_LEASE in the initial user namespace (not under systemd's
``PrivateUsers=yes``); without either it is refused with EACCES and says nothing.

On a CIFS or NFS client mount the kernel grants a lease only while the server lets the
client cache the file (an oplock or a delegation), and answers EAGAIN otherwise: there a
refusal means nothing, so callers never ask on such filesystems (``writers``).

The kernel tells the holder of a broken lease with a signal, SIGIO unless ``F_SETSIG`` names
another, and SIGIO's default action ends the process. Every lease here is taken after
``F_SETSIG`` with SIGURG, whose default action is to ignore it (signal(7)): the break costs
nothing, and the holder asks ``F_GETLEASE`` instead of handling a signal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
from enum import Enum
from pathlib import Path
from types import TracebackType

#: The signal a lease break sends (signal(7): SIGURG is ignored by default).
_BREAK_SIGNAL = signal.SIGURG
_REFUSED = (errno.EAGAIN, errno.EWOULDBLOCK)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class LeaseAnswer(Enum):
    """What asking for a read lease showed."""

    WRITER = "writer"        # refused: a process holds the file open for writing
    NO_WRITER = "no_writer"  # granted: nobody holds it open for writing
    UNKNOWN = "unknown"      # not permitted (not the owner, no CAP_LEASE) or not supported


def _take(fd: int) -> LeaseAnswer:
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _BREAK_SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return LeaseAnswer.WRITER if exc.errno in _REFUSED else LeaseAnswer.UNKNOWN
    return LeaseAnswer.NO_WRITER


def _release(fd: int) -> None:
    with contextlib.suppress(OSError):  # the descriptor's close releases it anyway
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def probe(fd: int) -> LeaseAnswer:
    """Take a read lease on ``fd`` (opened read-only) and release it at once."""
    answer = _take(fd)
    if answer is LeaseAnswer.NO_WRITER:
        _release(fd)
    return answer


def probe_path(path: Path) -> LeaseAnswer:
    """``probe`` on a read-only descriptor of ``path`` (never following a symlink, never
    blocking). An open refused with EWOULDBLOCK means someone holds a write lease on it (a
    file server caching a client's writes): a writer. A file that cannot be opened at all
    (gone, unreadable) gives UNKNOWN: the caller's own checks say what became of it."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return LeaseAnswer.WRITER if exc.errno in _REFUSED else LeaseAnswer.UNKNOWN
    try:
        return probe(fd)
    finally:
        os.close(fd)


class HeldLease:
    """A read lease held on ``fd`` for a ``with`` block: ``answer`` says whether it was
    granted; ``broken()`` whether a writer has opened the file since (its open waits until
    the block ends, so the holder can undo what it did before the writer goes on)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.answer = LeaseAnswer.UNKNOWN

    def __enter__(self) -> HeldLease:
        self.answer = _take(self._fd)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.answer is LeaseAnswer.NO_WRITER:
            _release(self._fd)

    def broken(self) -> bool:
        """True once a process opened the file for writing while the lease was held (False
        when no lease is held: then nothing can tell)."""
        if self.answer is not LeaseAnswer.NO_WRITER:
            return False
        try:
            return fcntl.fcntl(self._fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK
        except OSError:
            return True


#: The bit of CAP_LEASE in /proc/PID/status's capability masks (capabilities(7)).
_CAP_LEASE_BIT = 28
_FULL_UID_MAP = ("0", "0", "4294967295")


def may_lease_any_file(proc: Path = Path("/proc/self")) -> bool:
    """True when this process may lease files it does not own: CAP_LEASE is effective and
    the process is in the initial user namespace (fcntl(2) checks the capability there).
    False when it may lease only its own files, or when /proc cannot tell."""
    try:
        status = (proc / "status").read_text(encoding="ascii", errors="replace")
        uid_map = (proc / "uid_map").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    effective = next((line.split(":", 1)[1].strip() for line in status.splitlines()
                      if line.startswith("CapEff:")), "0")
    try:
        has_cap = bool(int(effective, 16) >> _CAP_LEASE_BIT & 1)
    except ValueError:
        return False
    initial_namespace = any(tuple(line.split()) == _FULL_UID_MAP
                            for line in uid_map.splitlines())
    return has_cap and initial_namespace


def leases_enabled(sysctl: Path = Path("/proc/sys/fs/leases-enable")) -> bool:
    """False when the administrator turned leases off (``fs.leases-enable = 0``: every
    F_SETLEASE then fails with EINVAL)."""
    try:
        return sysctl.read_text(encoding="ascii").strip() != "0"
    except OSError:
        return True
