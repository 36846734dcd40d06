"""Whether someone still writes a file: the read lease, inotify's write and close events, or
nothing but settle time. A file is its writer's until the writer lets go.

Two things Linux shows without privileges, each with what it misses:

- **The read lease** (``leases``): refused while any process holds the file open for
  writing; certain, and about the present. It needs the file's owner or CAP_LEASE, and says
  nothing on a CIFS/NFS client mount (such folders are never asked).
- **inotify**: a write (IN_MODIFY) with no close of a writable descriptor (IN_CLOSE_WRITE)
  since shows a writer still at work, as long as the watch saw both: not across a restart
  of the daemon, not after the event queue overflowed (the evidence below the folder is then
  dropped), never in a polled folder. Two writers at once look like one after the first
  closes.

``Writers.check`` asks the lease first (when it can tell, it is the answer), then inotify's
evidence; where neither can tell, the answer is "no writer seen" and settle time is all the
proof there is. ``Sight`` says, per folder, which of the two the daemon has: `check`,
`status` and the log name the folders where writers cannot be seen.

Thread-safe: the watcher's thread feeds the evidence; the scheduler and the workers ask.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.files import leases
from procore_hotfolder.files.leases import LeaseAnswer
from procore_hotfolder.model import utc_iso
from procore_hotfolder.watch.mounts import choose_watch_mode, filesystem_type, is_network_fs


class SeenBy(StrEnum):
    """What showed whether a file has a writer."""

    LEASE = "lease"
    EVENTS = "inotify"
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class WriterCheck:
    """The answer for one file: ``open`` when a writer holds it, and how that is known."""

    open: bool
    seen_by: SeenBy
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Sight:
    """How the daemon sees the writers of one folder's files.

    ``lease``: "all" (a lease on any file: CAP_LEASE), "owned" (only on files the service
    user owns), or "none" (``no_lease`` says why: a network mount, leases turned off).
    ``events``: inotify watches the folder (not polled)."""

    lease: str
    events: bool
    no_lease: str = ""

    @property
    def lease_usable(self) -> bool:
        """A lease means something on this folder's filesystem (for some files at least)."""
        return self.lease != "none"

    def summary(self) -> str:
        """One line for `check`, `status` and the log."""
        events = "inotify's write and close events" if self.events else "no inotify events"
        if self.lease == "all":
            return f"writers seen: a read lease on every file, and {events}"
        if self.lease == "owned":
            return (f"writers seen: a read lease on files the service user owns; "
                    f"{'others by ' + events if self.events else 'others not at all'}")
        if self.events:
            return f"writers seen by inotify's write and close events only ({self.no_lease})"
        return f"writers not seen ({self.no_lease}): settle time only"

    def warning(self) -> str | None:
        """What an administrator should know about this folder's guarantee, if anything."""
        if self.lease == "all":
            return None
        if self.lease == "owned":
            fix = ("grant the service CAP_LEASE (the unit's AmbientCapabilities=CAP_LEASE; "
                   "README, Deployments)")
            if self.events:
                return ("files of other users are checked for writers by inotify alone, "
                        "which misses a writer that stalled across a daemon restart: " + fix)
            return ("files of other users count as complete after settle_seconds of quiet "
                    "alone (a polled folder has no inotify events): " + fix)
        if not self.events:
            return (f"writers cannot be seen here ({self.no_lease}): a file counts as "
                    "complete after settle_seconds of quiet alone, so a copy that stalls "
                    "longer than that is taken half-written; serve the share from this "
                    "machine instead (README, Deployments)")
        return (f"writers are seen by inotify alone ({self.no_lease}), which misses a "
                "writer that stalled across a daemon restart")

    def as_dict(self) -> dict[str, Any]:
        """For the status snapshot and `status --json`."""
        return {"lease": self.lease, "events": self.events, "summary": self.summary(),
                "warning": self.warning()}


def sight_of(folder: FolderSettings, *, events: bool, fstype: str | None = None,
             any_file: bool | None = None) -> Sight:
    """The ``Sight`` of ``folder`` for this process: its filesystem (``fstype``, looked up
    when None), whether leases are on and whether this process may lease any file
    (``any_file``, from its capabilities when None), and whether inotify watches it."""
    kind = fstype if fstype is not None else filesystem_type(folder.path)
    if is_network_fs(kind):
        return Sight("none", events,
                     no_lease=f"a {kind} mount: writers on other machines are invisible here")
    if not leases.leases_enabled():
        return Sight("none", events, no_lease="leases are turned off (fs.leases-enable = 0)")
    may_any = leases.may_lease_any_file() if any_file is None else any_file
    return Sight("all" if may_any else "owned", events)


def folder_sight(folder: FolderSettings) -> Sight:
    """``sight_of`` for a folder the daemon would watch as ``folder.watch`` says (for `check`
    and for `status` without a running daemon)."""
    return sight_of(folder, events=choose_watch_mode(folder) == "events")


class WriteEvents:
    """inotify's evidence of writers: per path, when a write was seen with no close of a
    writable descriptor since. Fed by the watcher's thread; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._writing: dict[str, float] = {}

    def wrote(self, path: str) -> None:
        """IN_MODIFY on ``path``."""
        with self._lock:
            self._writing.setdefault(path, self._clock())

    def closed(self, path: str) -> None:
        """IN_CLOSE_WRITE on ``path``."""
        with self._lock:
            self._writing.pop(path, None)

    def moved(self, source: str, dest: str) -> None:
        """``source`` was renamed to ``dest``: a writer keeps its descriptor across it."""
        with self._lock:
            since = self._writing.pop(source, None)
            if since is not None:
                self._writing[dest] = since

    def gone(self, path: str) -> None:
        """``path`` (a file, or a folder and all below it) was deleted."""
        self.forget_below(path)

    def forget_below(self, top: str) -> None:
        """Drop the evidence of ``top`` and everything below it (a deleted folder; or the
        watch lost events there, so what it showed can no longer be trusted)."""
        prefix = top.rstrip(os.sep) + os.sep
        with self._lock:
            for key in [k for k in self._writing if k == top or k.startswith(prefix)]:
                del self._writing[key]

    def writing_since(self, path: str) -> float | None:
        """When a write to ``path`` was seen with no close since (wall clock), or None."""
        with self._lock:
            return self._writing.get(path)

    def __len__(self) -> int:
        with self._lock:
            return len(self._writing)


def _ask_lease(path: Path, fd: int | None) -> LeaseAnswer:
    return leases.probe(fd) if fd is not None else leases.probe_path(path)


class Writers:
    """Answers whether a file has a writer (see the module docstring); thread-safe."""

    def __init__(self, events: WriteEvents | None = None, *,
                 sight: Callable[[FolderSettings, bool], Sight] | None = None,
                 lease: Callable[[Path, int | None], LeaseAnswer] | None = None) -> None:
        self.events = events or WriteEvents()
        self._sight_of = sight or (lambda folder, watched: sight_of(folder, events=watched))
        self._lease = lease or _ask_lease
        self._lock = threading.Lock()
        self._sights: dict[Path, Sight] = {}

    def watching(self, folder: FolderSettings, events: bool) -> Sight:
        """The watcher set ``folder`` up, with inotify events or not; returns its sight."""
        sight = self._sight_of(folder, events)
        with self._lock:
            self._sights[folder.path] = sight
        return sight

    def sight(self, folder: FolderSettings) -> Sight:
        """``folder``'s sight (worked out at first use when the watcher did not set it up:
        `once` watches no events)."""
        with self._lock:
            known = self._sights.get(folder.path)
        if known is not None:
            return known
        sight = self._sight_of(folder, False)
        with self._lock:
            return self._sights.setdefault(folder.path, sight)

    def sights(self) -> dict[Path, Sight]:
        with self._lock:
            return dict(self._sights)

    def forget(self, folder: Path) -> None:
        """The folder left the configuration (or is set up anew)."""
        with self._lock:
            self._sights.pop(folder, None)

    def check(self, path: Path, folder: FolderSettings, fd: int | None = None) -> WriterCheck:
        """Does a writer hold ``path`` open? ``fd``: a read-only descriptor of it, when the
        caller has one (else the path is opened for the question)."""
        sight = self.sight(folder)
        if sight.lease_usable:
            answer = self._lease(path, fd)
            if answer is LeaseAnswer.WRITER:
                return WriterCheck(True, SeenBy.LEASE,
                                   "another process holds it open for writing (a read lease "
                                   "was refused)")
            if answer is LeaseAnswer.NO_WRITER:
                return WriterCheck(False, SeenBy.LEASE)
        since = self.events.writing_since(str(path))
        if since is not None:
            return WriterCheck(True, SeenBy.EVENTS,
                               f"inotify saw a write at {utc_iso(since)} and no close since")
        return WriterCheck(False, SeenBy.EVENTS if sight.events else SeenBy.NOTHING)
