"""Moving and writing files without ever overwriting or deleting one.

Within one filesystem a move is ``link()`` + ``unlink()``: the link is atomic and fails when
the name is taken, so a clash picks the next free name instead of overwriting. Across
filesystems the file is copied to a temporary name beside its destination, synced and
verified (size and SHA-256) before it takes its final name, and only then is the original
unlinked. Whatever fails, the original stays where it was and no partial copy is left.

A guarded move (``guard=True``, for the originals of drop folders) holds a read lease on
the source while it moves (``leases``): a file some process holds open for writing is not
moved, and when a writer opens it during the move, the move is undone before the writer
goes on (its open waits for the lease): the original is back under its name, the copy or
new name gone. The last step across filesystems renames the original to a hidden name
beside it, looks at the lease, and only then unlinks it, so nothing is unlinked that a
writer is opening. What no lease closes: a writer whose open looked the name up before the
move and reaches the lease only after it (the microseconds inside one open(2) call); and a
file the daemon may not lease (not its owner, no CAP_LEASE) moves unguarded.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from procore_hotfolder.errors import (
    ArchiveError,
    FileChanged,
    FileOpenForWriting,
    FileVanished,
    HotfolderError,
)
from procore_hotfolder.files.clash_names import MAX_CLASHES, free_name
from procore_hotfolder.files.leases import HeldLease, LeaseAnswer
from procore_hotfolder.files.sourcefile import observation_of
from procore_hotfolder.model import Observation

log = structlog.get_logger(__name__)

COPY_CHUNK = 1024 * 1024

_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _load_renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[..., int] = libc.renameat2
    except (OSError, AttributeError):
        return None
    return function


# Module-level seams: tests replace these to simulate EXDEV, ENOSPC or missing link support
# (conditions that cannot be produced on demand on a test machine).
_link = os.link
_rename = os.rename
_write = os.write
_renameat2 = _load_renameat2()

WRITER_ARRIVED = "a writer opened the file while it was being moved; it was put back"


class _NoLease:
    """Stands for a lease where none is held: nothing can tell of a writer."""

    answer = LeaseAnswer.UNKNOWN

    @staticmethod
    def broken() -> bool:
        return False


_Lease = HeldLease | _NoLease


def move_no_overwrite(source: Path, target: Path, expected: Observation | None = None, *,
                      guard: bool = False) -> Path:
    """Move ``source`` to ``target`` (or a free variant of it) and return the final path.

    Creates missing parent folders; never overwrites. With ``expected``, refuses to move a
    source that no longer matches it (size, mtime, inode). With ``guard``, holds a read
    lease on a regular source while it moves (see the module docstring). Raises
    ``FileVanished`` when the source is gone, ``FileOpenForWriting`` when a writer holds it
    or opened it meanwhile, ``FileChanged`` when it changed, ``ArchiveError`` for any other
    failure (disk full, permission); in every failure case the source is where it was.
    """
    try:
        st = os.lstat(source)
    except FileNotFoundError as exc:
        raise FileVanished(f"{source} disappeared before it could be moved") from exc
    except OSError as exc:
        raise _archive_error("examine", source, exc) from exc
    if expected is not None:
        _check_expected(st, expected, source)
    _make_parents(target.parent)
    with _lease_while_moving(source, st, guard) as (fd, lease):
        final = _link_into_free_name(source, target, st, expected, lease)
        if final is None:
            final = _copy_across(source, target, expected, lease, fd)
    _fsync_dir(final.parent)
    _fsync_dir(source.parent)
    return final


@contextmanager
def _lease_while_moving(source: Path, st: os.stat_result, guard: bool
                        ) -> Iterator[tuple[int | None, _Lease]]:
    """With ``guard`` and a regular ``source``: a read-only descriptor of it and the lease
    held on it, both let go at the end. Otherwise (or when the daemon cannot even read the
    file, so it cannot lease it either): no descriptor, no lease."""
    if not guard or not stat.S_ISREG(st.st_mode):
        yield None, _NoLease()
        return
    try:
        fd = os.open(source, _READ_FLAGS)
    except FileNotFoundError as exc:
        raise FileVanished(f"{source} disappeared before it could be moved") from exc
    except BlockingIOError as exc:  # a write lease (a file server caching a client's writes)
        raise FileOpenForWriting(f"{source} is held open for writing; not moved") from exc
    except OSError:
        yield None, _NoLease()
        return
    try:
        opened = os.fstat(fd)
        if (opened.st_ino, opened.st_dev) != (st.st_ino, st.st_dev):
            raise FileChanged(f"{source} was replaced while it was being moved; not moved")
        with HeldLease(fd) as lease:
            if lease.answer is LeaseAnswer.WRITER:
                raise FileOpenForWriting(f"{source} is held open for writing by another "
                                         "process; not moved")
            yield fd, lease
    finally:
        os.close(fd)


def _check_expected(st: os.stat_result, expected: Observation, source: Path) -> None:
    if not observation_of(st).same_version(expected):
        raise FileChanged(f"{source} changed since it was uploaded; not moved")


def _make_parents(folder: Path) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise _archive_error("create folder", folder, exc) from exc


def _link_into_free_name(
    source: Path, target: Path, st: os.stat_result, expected: Observation | None,
    lease: _Lease,
) -> Path | None:
    """Same-filesystem move. Returns the final path, or None when it needs a copy (EXDEV)."""
    for _ in range(MAX_CLASHES):
        final = free_name(target)
        try:
            _link(source, final, follow_symlinks=False)
        except FileExistsError:
            continue  # taken since free_name() looked: try the next name
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            if exc.errno in _LINK_UNSUPPORTED:
                return _rename_no_overwrite(source, target, lease)
            if exc.errno == errno.ENOENT and not os.path.lexists(source):
                raise FileVanished(f"{source} disappeared before it could be moved") from exc
            raise _archive_error("link", final, exc) from exc
        _unlink_source_after_link(source, final, st, expected, lease)
        return final
    raise ArchiveError(f"no free name for {target}")


def _unlink_source_after_link(
    source: Path, final: Path, st: os.stat_result, expected: Observation | None,
    lease: _Lease,
) -> None:
    """Remove the old name, but only if it still names the inode we linked; when a writer
    opened the file meanwhile, give it its old name back.

    On failure our new link is removed again: the original stays, the target has no extra
    name.
    """
    problem: HotfolderError
    try:
        now = os.lstat(source)
    except OSError as exc:
        problem = _archive_error("examine", source, exc)
    else:
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev) or (
                expected is not None and now.st_size != expected.size):
            problem = FileChanged(f"{source} was replaced while it was being moved; not moved")
        else:
            try:
                os.unlink(source)
            except OSError as exc:
                problem = _archive_error("remove original", source, exc)
            else:
                if not lease.broken():
                    return
                _put_back(final, source)
                raise FileOpenForWriting(f"{source}: {WRITER_ARRIVED}")
    _remove_quietly(final)
    raise problem


def _put_back(moved: Path, original: Path) -> None:
    """Undo a move whose source a writer opened meanwhile: ``moved`` gets the name
    ``original`` again (or a free variant of it, if a new file took the name since)."""
    back = _link_into_free_name(moved, original, os.lstat(moved), None, _NoLease())
    if back is None:  # cannot happen within one filesystem; keep the file where it is
        raise ArchiveError(f"{moved} could not be put back as {original}")
    if back != original:
        log.warning("original_put_back_elsewhere", path=str(original), put_back=str(back))


def _rename_no_overwrite(source: Path, target: Path, lease: _Lease | None = None
                        ) -> Path | None:
    """Move by renaming (for shares without hard links), never replacing an entry; when a
    writer opened the file meanwhile (``lease`` broken), rename it back.

    Returns None when the rename crosses filesystems.
    """
    for _ in range(MAX_CLASHES):
        final = free_name(target)
        try:
            if _renameat2 is not None and _try_renameat2(source, final):
                break
            # No renameat2 on this kernel/filesystem: check, then rename. The window
            # between the two is the best a filesystem without either primitive allows.
            if os.path.lexists(final):
                continue
            _rename(source, final)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            if exc.errno == errno.ENOENT and not os.path.lexists(source):
                raise FileVanished(f"{source} disappeared before it could be moved") from exc
            raise _archive_error("rename", final, exc) from exc
        break
    else:
        raise ArchiveError(f"no free name for {target}")
    if lease is not None and lease.broken():
        back = _rename_no_overwrite(final, source)
        if back != source:
            log.warning("original_put_back_elsewhere", path=str(source), put_back=str(back))
        raise FileOpenForWriting(f"{source}: {WRITER_ARRIVED}")
    return final


def _try_renameat2(source: Path, final: Path) -> bool:
    """True when renameat2(RENAME_NOREPLACE) moved the file; False when unsupported.

    Raises ``FileExistsError`` on a clash and ``OSError`` for other failures.
    """
    assert _renameat2 is not None
    result = _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(final),
                        _RENAME_NOREPLACE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(final))


def _place_no_overwrite(temp: Path, target: Path) -> Path:
    """Give the (private) ``temp`` file a free name based on ``target``; same folder."""
    for _ in range(MAX_CLASHES):
        final = free_name(target)
        try:
            _link(temp, final, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in _LINK_UNSUPPORTED:
                placed = _rename_no_overwrite(temp, target)
                if placed is None:
                    raise _archive_error("rename", target, exc) from exc
                return placed
            raise _archive_error("link", final, exc) from exc
        os.unlink(temp)
        return final
    raise ArchiveError(f"no free name for {target}")


def _temp_name(target: Path) -> Path:
    # Hidden, so no scan ever takes it for a dropped file; short enough for NAME_MAX.
    return target.with_name(f".procore-hotfolder-{secrets.token_hex(8)}.partial")


def _copy_across(source: Path, target: Path, expected: Observation | None, lease: _Lease,
                 leased_fd: int | None) -> Path:
    """Copy, sync, verify, name without overwriting, then unlink the original (through a
    hidden name beside it, with a look at ``lease`` in between: see the module docstring).
    ``leased_fd``: the descriptor the lease is held on, read from when given."""
    if leased_fd is not None:
        src_fd = leased_fd
    else:
        try:
            src_fd = os.open(source, _READ_FLAGS)
        except FileNotFoundError as exc:
            raise FileVanished(f"{source} disappeared before it could be moved") from exc
        except OSError as exc:
            raise _archive_error("open", source, exc) from exc
    temp = _temp_name(target)
    placed: Path | None = None
    try:
        before = os.fstat(src_fd)
        _require_copyable(before, expected, source)
        digest, size = _copy_to_temp(src_fd, temp, before, lease)
        _require_unchanged(before, os.fstat(src_fd), source)
        _verify_copy(temp, size, digest)
        placed = _place_no_overwrite(temp, target)
        _fsync_dir(placed.parent)
        _unlink_copied_source(source, before, lease)
    except BaseException as exc:
        _remove_quietly(temp)
        if placed is not None:
            _remove_quietly(placed)  # our verified copy; the original is still in place
        if isinstance(exc, OSError):
            raise _archive_error("copy", source, exc) from exc
        raise
    finally:
        if leased_fd is None:
            os.close(src_fd)
    return placed


def _require_copyable(st: os.stat_result, expected: Observation | None, source: Path) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ArchiveError(f"{source} is not a regular file; it cannot be copied to another "
                           "filesystem")
    if expected is not None:
        _check_expected(st, expected, source)


def _require_unchanged(before: os.stat_result, after: os.stat_result, source: Path) -> None:
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChanged(f"{source} changed while it was being copied; not moved")


def _copy_to_temp(src_fd: int, temp: Path, st: os.stat_result, lease: _Lease
                  ) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        while True:
            if lease.broken():
                raise FileOpenForWriting("a writer opened the original while it was being "
                                         "copied; the copy is discarded")
            chunk = os.pread(src_fd, COPY_CHUNK, size)
            if not chunk:
                break
            sha.update(chunk)
            view = memoryview(chunk)
            while view:
                written = _write(fd, view)
                view = view[written:]
            size += len(chunk)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.fsync(fd)
    finally:
        os.close(fd)
    if size != st.st_size:
        raise FileChanged(f"read {size} bytes, expected {st.st_size}: the file changed")
    return sha.hexdigest(), size


def _verify_copy(temp: Path, size: int, digest: str) -> None:
    sha = hashlib.sha256()
    copied = 0
    with open(temp, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            sha.update(chunk)
            copied += len(chunk)
    if copied != size or sha.hexdigest() != digest:
        raise ArchiveError(f"the copy at {temp} does not match the original "
                           f"({copied} of {size} bytes or SHA-256 differs); original kept")


def _unlink_copied_source(source: Path, before: os.stat_result, lease: _Lease) -> None:
    """Unlink the original of a verified copy: first renamed to a hidden name beside it, so
    that a writer opening it by its name meanwhile shows on the lease while the file can
    still get its name back."""
    now = os.lstat(source)
    if not observation_of(now).same_version(observation_of(before)):
        raise FileChanged(f"{source} was replaced or changed while it was copied; not moved")
    if isinstance(lease, _NoLease):
        os.unlink(source)
        return
    hidden = source.with_name(f".procore-hotfolder-{secrets.token_hex(8)}.moving")
    _rename(source, hidden)
    if lease.broken():
        back = _rename_no_overwrite(hidden, source)
        if back != source:
            log.warning("original_put_back_elsewhere", path=str(source), put_back=str(back))
        raise FileOpenForWriting(f"{source}: {WRITER_ARRIVED}; the copy is discarded")
    os.unlink(hidden)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("temp_copy_not_removed", path=str(path), detail=str(exc))


def _fsync_dir(folder: Path) -> None:
    """Make a rename/link/unlink in ``folder`` durable (best effort on odd filesystems)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EROFS):
            log.warning("directory_sync_failed", path=str(folder), detail=str(exc))
    finally:
        os.close(fd)


def write_new_file(target: Path, data: bytes) -> Path:
    """Write ``data`` to a new file named ``target`` (or a free variant of that name), atomically
    and durably; an existing entry is never overwritten. Returns the final path; raises
    ``ArchiveError`` when it cannot be written (nothing is left behind then)."""
    temp = _temp_name(target)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[_write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        final = _place_no_overwrite(temp, target)
    except OSError as exc:
        _remove_quietly(temp)
        raise _archive_error("write", target, exc) from exc
    except BaseException:
        _remove_quietly(temp)
        raise
    _fsync_dir(final.parent)
    return final


def _archive_error(action: str, path: Path, exc: OSError) -> ArchiveError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ArchiveError(f"cannot {action} {path}: the disk is full "
                            f"({exc.strerror}); the original is kept in place")
    return ArchiveError(f"cannot {action} {path}: {exc.strerror or exc}; the original is "
                        "kept in place")
