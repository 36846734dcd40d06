"""Detection I/O: which names are candidates, scans, folder health, watchdog hints.

Events are hints, never facts: the watchdog handler only passes a path to ``hint`` (it runs
on watchdog's single dispatch thread, so it never blocks and never stats). The scan is the
source of truth; on network shares and FUSE mounts, where events written by other machines
never arrive, the service scans the folder every ``poll_seconds`` instead.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from procore_hotfolder.config import FolderSettings

log = structlog.get_logger(__name__)

#: Names never uploaded: editor/Office lock and temp files, partial downloads, OS clutter.
#: Matched case-insensitively against every component of the path below the folder.
BUILTIN_IGNORES: tuple[str, ...] = (
    "~$*", ".~lock.*#", "~*.tmp", "*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload",
    "*.download", "*.swp", "*~", "Thumbs.db", "desktop.ini", ".DS_Store", "*.!ut",
    "*.filepart", "._*", "$RECYCLE.BIN", "System Volume Information", "lost+found", "@eaDir",
    "#recycle",
)

#: Filesystems where inotify does not see writes made by other machines: polled.
NETWORK_FS_TYPES: frozenset[str] = frozenset({
    "cifs", "smb3", "smbfs", "smb2", "nfs", "nfs4", "fuse", "9p", "afs", "ceph", "glusterfs",
    "davfs", "ncpfs", "vboxsf", "vmhgfs",
})

SYMLINK_REASON = "symlinks are never followed"
SPECIAL_REASON = "a {kind} is never opened or uploaded"

_SYSCTL_FOR_ERRNO = {
    errno.ENOSPC: "fs.inotify.max_user_watches",
    errno.EMFILE: "fs.inotify.max_user_instances",
}


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns),
                      re.IGNORECASE | re.DOTALL)


_BUILTIN_RE = _compile(BUILTIN_IGNORES)


def _which(patterns: Sequence[str], text: str) -> str:
    for pattern in patterns:
        if fnmatch.fnmatchcase(text.lower(), pattern.lower()):
            return pattern
    return patterns[0]  # unreachable when the combined regex matched


class IgnoreRules:
    """Decides which paths inside one watched folder are candidates for upload.

    Built-in patterns and the folder's ``exclude`` patterns both match case-insensitively
    (SMB shares are case-insensitive; ``*.bak`` should catch ``SCAN.BAK``). An exclude
    pattern matches a component's name or the path relative to the folder.
    """

    def __init__(self, folder: FolderSettings) -> None:
        self.folder = folder
        self._root = os.fspath(folder.path)
        self._archive = os.fspath(folder.archive_dir)
        self._failed = os.fspath(folder.failed_dir)
        self._exclude = folder.exclude
        self._exclude_re = _compile(folder.exclude)

    def name_reason(self, name: str, rel: str) -> str | None:
        """Why the entry ``name`` (at ``rel``, relative to the folder) is ignored, or None.

        Checks only this component; the caller has already checked its parents.
        """
        if name.startswith("."):
            return "hidden"
        if _BUILTIN_RE is not None and _BUILTIN_RE.match(name):
            return f"pattern {_which(BUILTIN_IGNORES, name)}"
        if self._exclude_re is not None:
            if self._exclude_re.match(name):
                return f"exclude {_which(self._exclude, name)}"
            if self._exclude_re.match(rel):
                return f"exclude {_which(self._exclude, rel)}"
        return None

    def special_dir_reason(self, full: str) -> str | None:
        """"archive_dir"/"failed_dir" when ``full`` is (or lies inside) one of them."""
        if full == self._archive or full.startswith(self._archive + os.sep):
            return "archive_dir"
        if full == self._failed or full.startswith(self._failed + os.sep):
            return "failed_dir"
        return None

    def reason(self, path: Path) -> str | None:
        """None when ``path`` (absolute; file or folder) is a candidate, else why not."""
        full = os.path.normpath(os.fspath(path))
        special = self.special_dir_reason(full)
        if special is not None:
            return special
        if full == self._root:
            return None
        if not full.startswith(self._root.rstrip(os.sep) + os.sep):
            return "outside folder"
        parts = full[len(self._root.rstrip(os.sep)) + 1:].split(os.sep)
        if not self.folder.recursive and len(parts) > 1:
            return "not recursive"
        for index, name in enumerate(parts):
            why = self.name_reason(name, "/".join(parts[: index + 1]))
            if why is not None:
                return why
        return None


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """One file-like thing a scan met: ``kind`` "file" (reason None) or why it is skipped."""

    path: Path
    kind: str
    reason: str | None = None


def scan(
    folder: FolderSettings, rules: IgnoreRules, top: Path | None = None,
) -> Iterator[ScanEntry]:
    """Walk ``top`` (default: the whole folder) without following any symlink.

    Yields a ``ScanEntry`` for every non-ignored regular file (kind "file"), every
    non-ignored symlink, FIFO, socket or device (kind names it, ``reason`` explains the
    skip) and every subfolder that cannot be listed (kind "unreadable_dir"). Ignored folders
    are not descended into. Entries vanishing mid-scan are passed over silently.
    """
    root = os.fspath(folder.path)
    start = os.path.normpath(os.fspath(top)) if top is not None else root
    if start != root and rules.reason(Path(start)) is not None:
        return
    root_prefix = len(root.rstrip(os.sep)) + 1
    stack = [start]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                listed = list(entries)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            yield ScanEntry(Path(current), "unreadable_dir",
                            f"cannot list folder: {exc.strerror or exc}")
            continue
        for entry in listed:
            name = entry.name
            full = entry.path
            rel = full[root_prefix:]
            if rules.name_reason(name, rel) is not None:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if folder.recursive and rules.special_dir_reason(full) is None:
                        stack.append(full)
                    continue
                if entry.is_file(follow_symlinks=False):
                    yield ScanEntry(Path(full), "file")
                    continue
                if entry.is_symlink():
                    yield ScanEntry(Path(full), "symlink", SYMLINK_REASON)
                    continue
                kind = _special_kind(entry.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:
                continue
            except OSError as exc:
                yield ScanEntry(Path(full), "unreadable",
                                f"cannot examine: {exc.strerror or exc}")
                continue
            yield ScanEntry(Path(full), kind, SPECIAL_REASON.format(kind=kind))


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


# --- folder health -------------------------------------------------------------------------


def folder_available(folder: FolderSettings) -> str | None:
    """None when the folder exists, is a directory and can be listed; else why not."""
    try:
        st = os.stat(folder.path)
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return _os_reason(exc)
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    try:
        with os.scandir(folder.path) as entries:
            next(entries, None)
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return _os_reason(exc)
    return None


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN, errno.EIO):
        return f"{exc.strerror} (share disconnected or unmounted?)"
    return str(exc.strerror or exc)


class FolderHealth:
    """``folder_available`` plus memory of each folder's device, to notice an unmount.

    When a share is unmounted, its mount point usually remains as an empty folder on the
    parent filesystem: the path still exists but sits on another device. An empty folder on
    a changed device is reported as "device changed (unmounted?)"; once it holds entries
    again the new device is accepted (a remount, or a deliberate move to another disk).
    Thread-safe.
    """

    def __init__(self) -> None:
        self._devices: dict[Path, int] = {}
        self._lock = threading.Lock()

    def check(self, folder: FolderSettings) -> str | None:
        """None when the folder can be scanned now, else the reason."""
        problem = folder_available(folder)
        if problem is not None:
            return problem
        try:
            device = os.stat(folder.path).st_dev
            with os.scandir(folder.path) as entries:
                empty = next(entries, None) is None
        except OSError as exc:
            return _os_reason(exc)
        with self._lock:
            known = self._devices.get(folder.path)
            if known is not None and known != device and empty:
                return "device changed (unmounted?)"
            self._devices[folder.path] = device
        return None


# --- filesystem type and watch mode --------------------------------------------------------


def _unescape_mount(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The filesystem type of the mount holding ``path`` (e.g. "ext4", "cifs"), or
    "unknown" when it cannot be determined."""
    try:
        target = os.path.realpath(path)
        lines = mountinfo.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return "unknown"
    best_len = -1
    best_type = "unknown"
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        if not sep or len(fields) < 5 or not right:
            continue
        mount_point = _unescape_mount(fields[4])
        prefix = mount_point.rstrip("/") + "/"
        if target != mount_point and not target.startswith(prefix):
            continue
        # ">=": a later line for the same mount point is mounted on top of the earlier one.
        if len(mount_point) >= best_len:
            best_len = len(mount_point)
            best_type = right.split(" ", 1)[0]
    return best_type


def is_network_fs(fstype: str) -> bool:
    """True for shares and FUSE mounts, where inotify misses other machines' writes."""
    return fstype in NETWORK_FS_TYPES or fstype.startswith("fuse.")


def choose_watch_mode(folder: FolderSettings) -> Literal["events", "poll"]:
    """``folder.watch`` unless "auto": then poll on network/FUSE filesystems, else events."""
    if folder.watch == "events":
        return "events"
    if folder.watch == "poll":
        return "poll"
    return "poll" if is_network_fs(filesystem_type(folder.path)) else "events"


# --- watchdog ------------------------------------------------------------------------------


class _HintHandler(FileSystemEventHandler):
    """Passes every interesting path to ``hint``: never blocks, never stats."""

    def __init__(self, hint: Callable[[Path], None]) -> None:
        super().__init__()
        self._hint = hint

    def _send(self, raw: str | bytes) -> None:
        self._hint(Path(os.fsdecode(raw)))

    def on_created(self, event: FileSystemEvent) -> None:
        self._send(event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        self._send(event.src_path)

    def on_attrib(self, event: FileSystemEvent) -> None:
        # utime() at the end of a copy that preserves timestamps changes only attributes.
        self._send(event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._send(event.src_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._send(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._send(event.dest_path)
        self._send(event.src_path)


class FolderWatcher:
    """Watchdog (inotify) watches for "events" folders; reports which folders need polling.

    ``poll_folders`` lists folders the service must scan every ``poll_seconds``: those in
    poll mode, those whose inotify watch could not be set up (limit reached) and those that
    are missing (checked cheaply until they come back; ``refresh()`` then watches them).
    All methods are thread-safe; ``stop()`` joins watchdog's threads and is idempotent.
    """

    def __init__(
        self,
        folders: Sequence[FolderSettings],
        hint: Callable[[Path], None],
        poll_seconds: float,
    ) -> None:
        self._folders = list(folders)
        self.poll_seconds = poll_seconds
        self._handler = _HintHandler(hint)
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._watches: dict[Path, ObservedWatch] = {}
        self._modes: dict[Path, str] = {}
        self._missing: dict[Path, str] = {}
        self._stopped = False

    @property
    def modes(self) -> dict[Path, str]:
        """Per folder: "events", "poll", or "missing" (polled until it comes back)."""
        with self._lock:
            return dict(self._modes)

    @property
    def poll_folders(self) -> list[Path]:
        """Folders the caller must scan every ``poll_seconds``."""
        with self._lock:
            return [path for path, mode in self._modes.items() if mode != "events"]

    @property
    def missing(self) -> dict[Path, str]:
        """Folders that could not be watched at the last attempt, with the reason."""
        with self._lock:
            return dict(self._missing)

    def start(self) -> dict[Path, str]:
        """Start watching; returns the folders that are unavailable now (with the reason)."""
        with self._lock:
            if self._observer is not None or self._stopped:
                return dict(self._missing)
            observer = Observer()
            observer.start()
            self._observer = observer
            try:
                for folder in self._folders:
                    self._set_up(folder)
            except BaseException:
                # Leave no thread behind on an unexpected failure.
                self._observer = None
                observer.stop()
                observer.join()
                raise
            return dict(self._missing)

    def refresh(self) -> None:
        """Watch folders that came back, and notice event watches that died (unmounts)."""
        with self._lock:
            if self._observer is None or self._stopped:
                return
            alive = {emitter.watch for emitter in self._observer.emitters
                     if emitter.is_alive()}
            for folder in self._folders:
                path = folder.path
                watch = self._watches.get(path)
                if watch is not None and watch not in alive:
                    self._unschedule(path)
                    log.warning("folder_watch_lost", path=str(path))
                    self._set_up(folder)
                elif path in self._missing:
                    self._set_up(folder)

    def stop(self) -> None:
        """Stop and join watchdog's threads (idempotent)."""
        with self._lock:
            self._stopped = True
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()

    def _set_up(self, folder: FolderSettings) -> None:
        path = folder.path
        problem = folder_available(folder)
        if problem is not None:
            if self._missing.get(path) != problem:
                log.error("folder_unavailable", path=str(path), reason=problem)
            self._missing[path] = problem
            self._modes[path] = "missing"
            return
        if path in self._missing:
            del self._missing[path]
            log.info("folder_available_again", path=str(path))
        mode = choose_watch_mode(folder)
        if mode == "poll":
            self._modes[path] = "poll"
            log.info("folder_watch_started", path=str(path), mode="poll",
                     poll_seconds=self.poll_seconds)
            return
        assert self._observer is not None
        failure: OSError | None = None
        try:
            watch = self._observer.schedule(self._handler, os.fspath(path),
                                            recursive=folder.recursive)
        except OSError as exc:
            failure = exc
        if failure is not None:
            self._fall_back_to_poll(path, failure)
            return
        self._watches[path] = watch
        self._modes[path] = "events"
        log.info("folder_watch_started", path=str(path), mode="events",
                 recursive=folder.recursive)

    def _fall_back_to_poll(self, path: Path, failure: OSError) -> None:
        sysctl = _SYSCTL_FOR_ERRNO.get(failure.errno or 0)
        if sysctl is not None:
            log.error("inotify_limit_reached", path=str(path), sysctl=sysctl,
                      detail=str(failure.strerror or failure), fallback="poll",
                      fix=f"raise {sysctl} (sysctl -w {sysctl}=...) and restart the daemon")
        else:
            log.error("folder_watch_failed", path=str(path), detail=str(failure),
                      fallback="poll")
        self._modes[path] = "poll"

    def _unschedule(self, path: Path) -> None:
        watch = self._watches.pop(path, None)
        if watch is None or self._observer is None:
            return
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError) as exc:
            log.debug("folder_unwatch_failed", path=str(path), detail=str(exc))
