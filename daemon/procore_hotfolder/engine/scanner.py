"""The scanner thread: walks the folders and hands what it finds to the scheduler.

Events are hints; the scan is the source of truth: a start-up scan, periodic rescans
(``rescan_seconds``), frequent scans of polled folders (``poll_seconds``), scans below a new
subfolder or where the watch lost events, and a scan of every folder on request (a reload;
SIGUSR1 from `retry`). Before a folder is scanned it is checked, and the board of holds told
whether it can be listed (the scanner is the one reporter of folder availability, so the
board logs each change once).

It talks to the scheduler only through queues, and keeps nothing another thread touches:

- out (``found``, read by the scheduler): each candidate file and each entry passed over
  (``Found``), in scan order; ``EverythingSeen`` once every folder was scanned through;
- in (thread-safe calls that only queue a message): requests (``scan_everything``,
  ``scan_below``, ``stop``) and, from the scheduler, room (``grant``) and the paths that have
  an unfinished journal row (``rows_opened``, ``rows_closed``: a scan passes over those
  without handing them over).

The window: a folder's candidates wait in memory between the scan and a worker (settling,
or a row ready for a worker). The scheduler grants each folder room for ``window`` of them
(``SCAN_WINDOW``), less those in memory or on their way; a scan hands over one file per unit
of room and stops where there is none; a stopped scan starts again from its top once half the
window is free. Rows already in the journal are passed over without a look, so a resumed scan
costs the walk; a backlog of 50,000 files costs what 5,000 do, and the journal holds the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.engine.heartbeat import Heartbeat
from procore_hotfolder.engine.runmode import RunMode
from procore_hotfolder.upload.holds import HoldBoard
from procore_hotfolder.watch.ignore import IgnoreRules
from procore_hotfolder.watch.mounts import FolderHealth
from procore_hotfolder.watch.watcher import FolderWatcher, scan

log = structlog.get_logger(__name__)

#: At most this many files of one folder wait in memory between the scan and a worker
#: (files settling, rows ready for a worker). At 200 uploads/s and a 10 s settle time about
#: 2,000 settle at once; past the window the folder's scan stops and resumes once half of it
#: is free.
SCAN_WINDOW = 5000


@dataclass(frozen=True, slots=True)
class Found:
    """An entry a scan met: a candidate file (``skip`` None: it takes one unit of
    ``folder``'s room), or one passed over and why (a symlink, a FIFO, unreadable)."""

    folder: Path
    path: Path
    skip: str | None = None


@dataclass(frozen=True, slots=True)
class EverythingSeen:
    """Every folder was scanned through once: each file present at the start was found."""


@dataclass(frozen=True, slots=True)
class _ScanEverything:
    pass


@dataclass(frozen=True, slots=True)
class _ScanBelow:
    path: Path


@dataclass(frozen=True, slots=True)
class _Room:
    folder: Path
    files: int


@dataclass(frozen=True, slots=True)
class _Rows:
    opened: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Message = _ScanEverything | _ScanBelow | _Room | _Rows | _Stop


@dataclass
class _Asked:
    """What the messages taken at once ask of the scanner's loop."""

    stop: bool = False
    everything: bool = False
    below: list[Path] = field(default_factory=list)


class Scanner:
    """Finds the folders' files on its own thread (``run``); see the module docstring."""

    def __init__(self, config: Callable[[], Config], *, holds: HoldBoard, mode: RunMode,
                 heartbeat: Heartbeat, stop: threading.Event,
                 watcher: Callable[[], FolderWatcher | None], monotonic: Callable[[], float],
                 wall: Callable[[], float], window: int | None = None,
                 wake: Callable[[], None] = lambda: None) -> None:
        """``wake()`` tells the scheduler that ``found`` has something for it."""
        self._config = config  # asked once per round
        self._wake = wake
        self._holds = holds
        self._mode = mode
        self._heartbeat = heartbeat
        self._stop = stop
        self._watcher = watcher
        self._now = monotonic
        self._wall = wall
        #: Files of one folder in memory at most (the scheduler's grants add up to it).
        self.window = SCAN_WINDOW if window is None else window
        #: What the scans found, in order: read by the scheduler alone.
        self.found: queue.SimpleQueue[Found | EverythingSeen] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        # The scanner thread's own state.
        self._room: dict[Path, int] = {}
        self._rows: set[str] = set()  # paths with an unfinished journal row
        # Scans stopped for want of room: (folder, top) -> None, resumed once there is room.
        self._unfinished: dict[tuple[Path, Path], None] = {}
        self._rules_of: tuple[Config, dict[Path, IgnoreRules]] | None = None
        self._health = FolderHealth()
        self._everything_seen = False
        self._next_full = 0.0  # monotonic: when every folder is scanned next
        self._next_poll = 0.0  # monotonic: when the polled folders are scanned next

    # --- from any thread (they only queue a message; safe in a signal handler) -----------

    def scan_everything(self) -> None:
        """Scan every folder again soon (a reload; SIGUSR1 from `retry`)."""
        self._inbox.put(_ScanEverything())

    def scan_below(self, path: Path) -> None:
        """Scan ``path`` (a folder, or below one) soon: a new subfolder, or the watch lost
        events there."""
        self._inbox.put(_ScanBelow(path))

    def grant(self, folder: Path, files: int) -> None:
        """The scheduler: ``files`` more of ``folder``'s files may be handed over."""
        self._inbox.put(_Room(folder, files))

    def rows_opened(self, paths: Iterable[str]) -> None:
        """The scheduler: these paths have an unfinished journal row now."""
        self._inbox.put(_Rows(opened=tuple(paths)))

    def rows_closed(self, paths: Iterable[str]) -> None:
        """The scheduler: these paths' rows are finished."""
        self._inbox.put(_Rows(closed=tuple(paths)))

    def stop(self) -> None:
        """End ``run`` (after the stop event is set)."""
        self._inbox.put(_Stop())

    # --- the scanner thread --------------------------------------------------------------

    def run(self) -> None:
        """The scanner thread: rounds until stopped (`once`: until every folder was scanned
        through once)."""
        while not self._stop.is_set() and self.round():
            pass

    def round(self, *, wait: bool = True) -> bool:
        """One round of the scanner's thread: the scans that are due (the start-up scan, a
        rescan, the polled folders), the stopped scans that have room again, then the
        messages (waited for, when ``wait``, until the next scan is due or a second at most;
        room comes as a message) and the scans they ask for. False once the scanner is to
        end."""
        config = self._config()  # once per round: a reload may change it
        rules = self._rules(config)
        now = self._now()
        self._heartbeat.beat()
        watcher = self._watcher()
        poll_folders = set(watcher.poll_folders) if watcher else set()
        if now >= self._next_full:
            self._scan_folders(config.folders, rules)
            self._next_full = now + config.daemon.rescan_seconds
            self._next_poll = now + config.daemon.poll_seconds
            if watcher is not None:
                watcher.refresh()
        elif poll_folders and now >= self._next_poll:
            self._scan_folders([f for f in config.folders if f.path in poll_folders], rules)
            self._next_poll = now + config.daemon.poll_seconds
        self._resume_scans(config, rules)
        if not self._unfinished:
            if not self._everything_seen:
                self._everything_seen = True
                self.found.put(EverythingSeen())
                self._wake()
            if not self._mode.rescans:
                self._heartbeat.finished()  # by design
                return False
        due = min(self._next_full, self._next_poll if poll_folders else self._next_full)
        asked = self._read_inbox(max(0.05, min(due - self._now(), 1.0)) if wait else None)
        if asked.stop:
            return False
        if asked.everything:
            log.info("rescan_requested")
            self._next_full = 0.0  # the next round
        for path in [] if asked.everything else asked.below:
            folder = config.folder_for(path)
            if folder is not None:
                self._scan_tree(folder, rules[folder.path], path)
        return True

    def _read_inbox(self, timeout: float | None) -> _Asked:
        """Take the messages waiting (the first one waited for up to ``timeout`` seconds;
        None: not at all): room and rows are applied at once; the requests are returned."""
        asked = _Asked()
        try:
            message = (self._inbox.get_nowait() if timeout is None
                       else self._inbox.get(timeout=timeout))
            while True:
                if isinstance(message, _Stop):
                    asked.stop = True
                elif isinstance(message, _Room):
                    self._room[message.folder] = self._room.get(message.folder, 0) + message.files
                elif isinstance(message, _Rows):
                    self._rows.update(message.opened)
                    self._rows.difference_update(message.closed)
                elif isinstance(message, _ScanEverything):
                    asked.everything = True
                else:
                    asked.below.append(message.path)
                message = self._inbox.get_nowait()
        except queue.Empty:
            return asked

    def _rules(self, config: Config) -> dict[Path, IgnoreRules]:
        """The ignore rules of ``config``'s folders, built again when a reload changed it;
        what the scanner keeps of a folder that left it goes (its room, its stopped scans,
        its availability on the board)."""
        cached = self._rules_of
        if cached is not None and cached[0] is config:
            return cached[1]
        rules = {f.path: IgnoreRules(f) for f in config.folders}
        if cached is not None:
            gone = [path for path in cached[1] if path not in rules]
            self._holds.forget(gone)
            for path in gone:
                self._room.pop(path, None)
        self._rules_of = (config, rules)
        return rules

    def _scan_folders(self, folders: Iterable[FolderSettings],
                      rules: dict[Path, IgnoreRules]) -> None:
        for folder in folders:
            if self._stop.is_set():
                return
            problem = self._health.check(folder)
            if problem is not None:
                self._holds.folder_unavailable(folder.path, problem, self._wall())
                continue
            self._holds.folder_available(folder.path, self._wall())
            self._scan_tree(folder, rules[folder.path], folder.path)

    def _scan_tree(self, folder: FolderSettings, rules: IgnoreRules, top: Path) -> None:
        """Hand over every candidate below ``top`` that has no unfinished journal row, one
        per unit of the folder's room; where there is none, stop (resumed from ``top`` by
        ``_resume_scans``)."""
        self._unfinished.pop((folder.path, top), None)
        room = self._room.get(folder.path, 0)
        try:
            for entry in scan(folder, rules, top=top):
                if self._stop.is_set():
                    return
                self._heartbeat.beat()
                if entry.reason is not None:
                    self.found.put(Found(folder.path, entry.path, entry.reason))
                elif str(entry.path) not in self._rows:
                    if room <= 0:
                        self._unfinished[(folder.path, top)] = None
                        return
                    room -= 1
                    self.found.put(Found(folder.path, entry.path))
        finally:
            self._room[folder.path] = room
            self._wake()

    def _resume_scans(self, config: Config, rules: dict[Path, IgnoreRules]) -> None:
        """Go on with the scans that stopped for want of room, where half the window is
        free: a resumed scan walks the tree again from the top, so it should bring in many
        files, not one."""
        for folder_path, top in list(self._unfinished):
            folder = config.folder_for(folder_path)
            if folder is None or folder.path != folder_path:
                self._unfinished.pop((folder_path, top), None)  # left the configuration
            elif self._room.get(folder_path, 0) >= self.window / 2:
                self._scan_tree(folder, rules[folder.path], top)
