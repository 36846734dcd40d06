"""Detection I/O: scans and watchdog hints (which names count is ``ignore``'s business,
whether a folder can be watched and how is ``mounts``').

Events are hints, never facts: the watchdog handler only passes a path to ``hint`` (it runs
on watchdog's single dispatch thread, so it never blocks and never stats). The scan is the
source of truth; on network shares and FUSE mounts, where events written by other machines
never arrive, the service scans the folder every ``poll_seconds`` instead. The handler also
tells ``writers`` what inotify shows of writers (a write, a close after writing, a rename, a
deletion, events lost); the opens and read-only closes of files (the daemon's own among them)
are not asked for.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.files.sourcefile import classify
from procore_hotfolder.model import SYMLINK_SKIP, not_a_file_skip
from procore_hotfolder.watch.ignore import IgnoreRules
from procore_hotfolder.watch.mounts import choose_watch_mode, folder_available
from procore_hotfolder.watch.writers import Writers

log = structlog.get_logger(__name__)

#: The events asked of inotify: every change of a name or of content, and the close of a
#: writable descriptor; not opens or read-only closes (FileOpenedEvent,
#: FileClosedNoWriteEvent), which every read of a file (the daemon's own) would raise.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, DirModifiedEvent, FileAttribEvent,
    DirAttribEvent, FileMovedEvent, DirMovedEvent, FileDeletedEvent, DirDeletedEvent,
    FileClosedEvent, EventsLostEvent,
]

_SYSCTL_FOR_ERRNO = {
    errno.ENOSPC: "fs.inotify.max_user_watches",
    errno.EMFILE: "fs.inotify.max_user_instances",
}


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
                    yield ScanEntry(Path(full), "symlink", SYMLINK_SKIP)
                    continue
                kind = classify(entry.stat(follow_symlinks=False)) or "other"
            except FileNotFoundError:
                continue
            except OSError as exc:
                yield ScanEntry(Path(full), "unreadable",
                                f"cannot examine: {exc.strerror or exc}")
                continue
            yield ScanEntry(Path(full), kind, not_a_file_skip(kind))


# --- watchdog ------------------------------------------------------------------------------


class _HintHandler(FileSystemEventHandler):
    """Passes every interesting path to ``hint`` and what it shows of writers to
    ``writers``: never blocks, never stats."""

    def __init__(self, hint: Callable[[Path], None], writers: Writers,
                 lost: Callable[[Path], None]) -> None:
        super().__init__()
        self._hint = hint
        self._events = writers.events
        self._lost = lost

    def _send(self, raw: str | bytes) -> None:
        self._hint(Path(os.fsdecode(raw)))

    def on_created(self, event: FileSystemEvent) -> None:
        self._send(event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._events.wrote(os.fsdecode(event.src_path))
        self._send(event.src_path)

    def on_attrib(self, event: FileSystemEvent) -> None:
        # utime() at the end of a copy that preserves timestamps changes only attributes.
        self._send(event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        # IN_CLOSE_WRITE: a writable descriptor was closed.
        self._events.closed(os.fsdecode(event.src_path))
        self._send(event.src_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._events.gone(os.fsdecode(event.src_path))
        self._send(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._events.moved(os.fsdecode(event.src_path), os.fsdecode(event.dest_path))
        self._send(event.dest_path)
        self._send(event.src_path)

    def on_events_lost(self, event: FileSystemEvent) -> None:
        # The kernel's queue overflowed: writes and closes below went unseen.
        where = os.fsdecode(event.src_path)
        self._events.forget_below(where)
        self._lost(Path(where))


class FolderWatcher:
    """Watchdog (inotify) watches for "events" folders; reports which folders need polling.

    ``poll_folders`` lists folders the service must scan every ``poll_seconds``: those in
    poll mode, those whose inotify watch could not be set up (limit reached) and those that
    are missing (checked cheaply until they come back; ``refresh()`` then watches them).
    Whether a folder is available, and the log lines about it, are the scanner's business
    (one owner: the board of holds); here a folder that cannot be listed is only one not
    watched yet. All methods are thread-safe; ``stop()`` joins watchdog's threads and is
    idempotent.
    """

    def __init__(
        self,
        folders: Sequence[FolderSettings],
        hint: Callable[[Path], None],
        poll_seconds: float,
        *,
        writers: Writers | None = None,
        lost: Callable[[Path], None] | None = None,
    ) -> None:
        self._folders = list(folders)
        self.poll_seconds = poll_seconds
        self.writers = writers or Writers()
        self._handler = _HintHandler(hint, self.writers, lost or hint)
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._watches: dict[Path, ObservedWatch] = {}
        self._modes: dict[Path, str] = {}
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

    def start(self) -> None:
        """Start watching (a folder that cannot be listed now is polled until it can)."""
        with self._lock:
            if self._observer is not None or self._stopped:
                return
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
                    self.writers.events.forget_below(str(path))  # it saw nothing since
                    self._set_up(folder)
                elif self._modes.get(path) == "missing":
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
        if folder_available(folder) is not None:
            self._modes[path] = "missing"  # the scanner says why, and polls it
            return
        mode = choose_watch_mode(folder)
        if mode == "poll":
            self._modes[path] = "poll"
            log.info("folder_watch_started", path=str(path), mode="poll",
                     poll_seconds=self.poll_seconds, writers=self._sight(folder, False))
            return
        assert self._observer is not None
        failure: OSError | None = None
        try:
            watch = self._observer.schedule(self._handler, os.fspath(path),
                                            recursive=folder.recursive, event_filter=_EVENTS)
        except OSError as exc:
            failure = exc
        if failure is not None:
            self._fall_back_to_poll(path, failure)
            self._sight(folder, False)
            return
        self._watches[path] = watch
        self._modes[path] = "events"
        log.info("folder_watch_started", path=str(path), mode="events",
                 recursive=folder.recursive, writers=self._sight(folder, True))

    def _sight(self, folder: FolderSettings, events: bool) -> str:
        """Tell ``writers`` how this folder is watched; warn when its writers cannot all be
        seen. Returns the sight's summary for the log."""
        sight = self.writers.watching(folder, events)
        warning = sight.warning()
        if warning is not None:
            log.warning("writers_not_seen", path=str(folder.path), detail=warning)
        return sight.summary()

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
