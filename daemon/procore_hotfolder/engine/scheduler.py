"""From hints to journal rows: scans, the settle tracker, and the queue of the workers.

Hints come from the watcher's threads, from the scanner and from the workers' outcomes (a
file that changed or vanished during its upload is looked at again). On the scheduler's
thread (``tick``) each hint becomes an observation; a file whose quiet period has run with
size and mtime unchanged is settled: it gets a journal row and goes to the dispatcher.

The scanner thread (``scan_loop``) only produces hints: a start-up scan, periodic rescans,
frequent scans of polled folders, and scans of new subfolders. A folder's scan stops once
``SCAN_WINDOW`` of its files wait in memory and resumes when there is room.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.engine.dispatch import Dispatcher, Job
from procore_hotfolder.engine.heartbeat import Heartbeat
from procore_hotfolder.engine.pace import PaceMeter
from procore_hotfolder.engine.runmode import RunMode
from procore_hotfolder.files import sourcefile
from procore_hotfolder.model import not_a_file_skip
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.upload.pipeline import Outcome, Uploader
from procore_hotfolder.watch.ignore import IgnoreRules
from procore_hotfolder.watch.mounts import FolderHealth
from procore_hotfolder.watch.stability import SettleTracker
from procore_hotfolder.watch.watcher import FolderWatcher, scan
from procore_hotfolder.watch.writers import Writers

log = structlog.get_logger(__name__)

#: At most this many files of one folder wait in memory between the scan and a worker
#: (files settling, rows ready for a worker). At 200 uploads/s and a 10 s settle time about
#: 2,000 settle at once; past the window the folder's scan stops and resumes once there is
#: room, so a backlog of 50,000 costs what 5,000 do; the journal holds the rest.
SCAN_WINDOW = 5000
#: At most this many hints are looked at in one tick (the rest wait for the next).
HINTS_PER_TICK = 20000
#: A settled file held open by a writer is asked again after its quiet period, and at
#: least this long: the writer's close (an inotify event, a poll) usually comes first.
HELD_RECHECK_SECONDS = 1.0
#: A scan request for every folder (a reload, `retry`).
_FULL_SCAN = Path("\0full-scan")


class Scheduler:
    """Turns hints into settled files and journal rows for the workers.

    ``tracker``, ``unavailable``, ``skipped``, ``pace`` and ``last_upload`` are read (never
    changed) by the status snapshot and the metrics."""

    def __init__(self, config: Config, journal: Journal, uploader: Uploader, *,
                 dispatcher: Dispatcher, mode: RunMode, heartbeat: Heartbeat,
                 stop: threading.Event, watcher: Callable[[], FolderWatcher | None],
                 writers: Writers, monotonic: Callable[[], float], wall: Callable[[], float],
                 scan_window: int = SCAN_WINDOW) -> None:
        self.config = config
        self._scan_window = scan_window
        self._journal = journal
        self._writers = writers
        self._uploader = uploader
        self._dispatcher = dispatcher
        self._mode = mode
        self._heartbeat = heartbeat
        self._stop = stop
        self._watcher = watcher
        self._now = monotonic
        self._wall = wall
        self._wake = threading.Event()
        self._hints: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._scan_requests: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._scan_done = threading.Event()
        # Scans stopped for want of room: (folder, top) -> None, resumed once there is room.
        self._unfinished: dict[tuple[Path, Path], None] = {}
        self._rules = {f.path: IgnoreRules(f) for f in config.folders}
        self._health = FolderHealth()
        self._active_paths: set[str] = set()  # paths with an unfinished journal row
        self._active_lock = threading.Lock()
        self.tracker = SettleTracker()
        self.unavailable: dict[Path, str] = {}
        self.skipped: dict[str, str] = {}
        self.pace = PaceMeter()
        self.last_upload: dict[str, Any] | None = None

    # --- from any thread (never blocks) --------------------------------------------------

    def hint(self, path: Path) -> None:
        """Something may have happened at ``path`` (called from watcher threads)."""
        self._hints.put(path)
        self._wake.set()

    def finished(self, outcome: Outcome) -> None:
        """A worker is done with a row for now (called from the workers)."""
        self._outcomes.put(outcome)
        self._wake.set()

    def wake(self) -> None:
        """End the scheduler thread's current ``wait`` at once."""
        self._wake.set()

    def rescan(self) -> None:
        """Scan every folder again soon (a reload, `retry`)."""
        self._scan_requests.put(_FULL_SCAN)

    def scan_below(self, path: Path) -> None:
        """Scan ``path`` (a folder, or below one) again soon: the watch lost events there."""
        self._scan_requests.put(path)

    def stop_scanning(self) -> None:
        """End ``scan_loop`` (after ``stop`` is set)."""
        self._scan_requests.put(None)

    # --- on the scheduler's thread -------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Sleep until a hint, an outcome or ``wake``, at most ``timeout`` seconds."""
        self._wake.wait(timeout)
        self._wake.clear()

    def recover(self) -> None:
        """Resume every unfinished row where it stopped."""
        rows = self._journal.unfinished()
        for file_id, folder, path, next_attempt_at in rows:
            with self._active_lock:
                self._active_paths.add(path)
            self._dispatcher.push(Job(file_id, folder), next_attempt_at)
        if rows:
            log.info("journal_recovered", unfinished=len(rows))

    def reconfigure(self, new: Config) -> None:
        """Take ``new``'s folders from now on (a folder removed is forgotten)."""
        self._rules = {f.path: IgnoreRules(f) for f in new.folders}
        kept = {f.path for f in new.folders}
        for path in [p for p in self.unavailable if p not in kept]:
            self.unavailable.pop(path, None)
        self.config = new

    def tick(self) -> None:
        now = self._now()
        for _ in range(HINTS_PER_TICK):
            try:
                path = self._hints.get_nowait()
            except queue.Empty:
                break
            self._consider(path, now)
        self._collect_outcomes()
        self._reobserve(now)
        self._queue_settled(now)
        if self._mode.fails_empty:
            self._fail_empty(now)

    # --- what a run mode asks (runmode.Progressing) --------------------------------------

    def drained(self) -> bool:
        """Every file present was seen, and nothing moves any more: no hint or outcome to
        look at, no file with content settling, no row queued or in a worker's hands."""
        return (self._scan_done.is_set() and self._hints.empty() and self._outcomes.empty()
                and not self.tracker.waiting_with_content() and self._dispatcher.idle())

    def left_settling(self) -> list[tuple[Path, str]]:
        """The files still in the tracker, with why they are not uploaded yet."""
        return [(Path(key), f"held open by a writer ({info.held})" if info.held
                 else "empty (0 bytes), waiting for content")
                for key, info in self.tracker.pending().items()]

    def left_unfinished(self) -> list[FileRecord]:
        return list(self._journal.active())

    def held(self) -> int:
        """Files in memory between the scans and the workers: settling, or rows ready."""
        return len(self.tracker) + self._dispatcher.ready()

    # --- scanner thread ------------------------------------------------------------------

    def scan_loop(self) -> None:
        """Start-up scan, then periodic rescans; polled folders every ``poll_seconds``."""
        next_full = 0.0
        next_poll = 0.0
        while not self._stop.is_set():
            daemon = self.config.daemon  # a reload may change it
            now = self._now()
            self._heartbeat.beat()
            watcher = self._watcher()
            poll_folders = set(watcher.poll_folders) if watcher else set()
            if now >= next_full:
                self._scan_folders(self.config.folders)
                next_full = now + daemon.rescan_seconds
                next_poll = now + daemon.poll_seconds
                if watcher is not None:
                    watcher.refresh()
            elif poll_folders and now >= next_poll:
                self._scan_folders([f for f in self.config.folders if f.path in poll_folders])
                next_poll = now + daemon.poll_seconds
            self._resume_scans()
            if not self._unfinished:
                self._scan_done.set()  # every file present was seen at least once
                if not self._mode.rescans:
                    self._heartbeat.finished()  # by design
                    return
            wait = min(next_full, next_poll if poll_folders else next_full) - self._now()
            if self._unfinished:
                wait = min(wait, 0.2)  # look for room again soon
            try:
                request = self._scan_requests.get(timeout=max(0.05, min(wait, 1.0)))
            except queue.Empty:
                continue
            if request is None:
                return
            if request is _FULL_SCAN:
                next_full = 0.0
                continue
            folder = self.config.folder_for(request)
            if folder is not None:
                self._scan_tree(folder, request)

    def _scan_folders(self, folders: Iterable[FolderSettings]) -> None:
        for folder in folders:
            if self._stop.is_set():
                return
            problem = self._health.check(folder)
            if problem is not None:
                if self.unavailable.get(folder.path) != problem:
                    log.error("folder_unavailable", path=str(folder.path), reason=problem)
                self.unavailable[folder.path] = problem
                continue
            if folder.path in self.unavailable:
                log.info("folder_available_again", path=str(folder.path))
                self.unavailable.pop(folder.path, None)
            self._scan_tree(folder, folder.path)

    def _scan_tree(self, folder: FolderSettings, top: Path) -> None:
        """Hint every candidate below ``top`` that has no journal row yet. Stops once the
        folder has ``scan_window`` files in memory (settling or ready for a worker): the
        scan is then resumed, from the top, once the folder has room again (rows already
        in the journal are skipped without a look, so a resumed scan costs the walk)."""
        self._unfinished.pop((folder.path, top), None)
        for entry in scan(folder, self._rules[folder.path], top=top):
            if self._stop.is_set():
                return
            self._heartbeat.beat()
            if entry.reason is not None:
                self._note_skip(entry.path, entry.reason)
            elif str(entry.path) not in self._active_paths:
                if not self._has_room(folder):
                    self._unfinished[(folder.path, top)] = None
                    return
                self.hint(entry.path)

    def _has_room(self, folder: FolderSettings, share: float = 1.0) -> bool:
        """Fewer than ``share`` of ``scan_window`` files of ``folder`` wait in memory:
        settling, or ready for a worker (rows waiting for a retry time or a pause do not
        count: a paused folder holds nobody back), plus the hints not looked at yet. Each
        folder has its own window, so one folder's backlog does not hold back another's
        scans."""
        waiting = (self._hints.qsize() + self.tracker.count(str(folder.path))
                   + self._dispatcher.ready(folder.path))
        return waiting < self._scan_window * share

    def _resume_scans(self) -> None:
        """Go on with the scans that stopped for want of room, where there is room now."""
        for folder_path, top in list(self._unfinished):
            folder = self.config.folder_for(folder_path)
            if folder is None or folder.path != folder_path:
                self._unfinished.pop((folder_path, top), None)  # left the configuration
            elif self._has_room(folder, share=0.5):
                # Half the window free: a resumed scan walks the tree again from the top,
                # so it should bring in many files, not one.
                self._scan_tree(folder, top)

    # --- the steps of a tick -------------------------------------------------------------

    def _note_skip(self, path: Path, reason: str) -> None:
        key = str(path)
        if self.skipped.get(key) != reason:
            self.skipped[key] = reason
            log.warning("file_skipped", path=key, reason=reason)

    def _consider(self, path: Path, now: float) -> None:
        folder = self.config.folder_for(path)
        if folder is None or folder.path in self.unavailable:
            return
        if self._rules[folder.path].reason(path) is not None:
            return
        try:
            st = os.lstat(path)
        except OSError:
            self.tracker.forget(str(path))
            return
        if stat.S_ISDIR(st.st_mode):
            # A new folder: files may have landed before its watch existed.
            if path != folder.path and folder.recursive:
                self._scan_requests.put(path)
            return
        kind = sourcefile.classify(st)
        if kind is not None:
            self._note_skip(path, not_a_file_skip(kind))
            return
        with self._active_lock:
            if str(path) in self._active_paths:
                return
        observation = sourcefile.observation_of(st)
        if self._journal.failed_version(path, observation) is not None:
            return
        key = str(path)
        self.tracker.observe(key, observation, now, folder.settle_seconds, str(folder.path))

    def _reobserve(self, now: float) -> None:
        """Look again at files whose quiet period has run: unchanged ones become due."""
        for key in self.tracker.to_recheck(now):
            folder = self.config.folder_for(Path(key))
            observation = sourcefile.observe(Path(key)) if folder is not None else None
            self.tracker.observe(key, observation, now,
                                 folder.settle_seconds if folder is not None else 0.0)

    def _queue_settled(self, now: float) -> None:
        """Settled files become journal rows, unless a writer still holds one open: that
        one waits (``SettleTracker.hold``) and is looked at again after its quiet period,
        or at once when the writer closes it (an event)."""
        due = self.tracker.due(now)
        if not due:
            return
        entries = []
        for key, pending in due:
            path = Path(key)
            folder = self.config.folder_for(path)
            if folder is None:
                continue
            writer = self._writers.check(path, folder)
            if writer.open:
                if pending.held is None:
                    log.info("file_held_by_writer", path=key, seen_by=writer.seen_by.value,
                             detail=writer.detail)
                self.tracker.hold(key, pending, writer.detail, now,
                                  now + max(folder.settle_seconds, HELD_RECHECK_SECONDS))
                continue
            entries.append((folder.path, path, pending.observation))
        for record in self._journal.enqueue(entries, self._wall()):
            with self._active_lock:
                self._active_paths.add(str(record.path))
            log.info("file_settled", path=str(record.path), size=record.observation.size)
            self._dispatcher.push(record)

    def _fail_empty(self, now: float) -> None:
        timeout = self.config.daemon.empty_file_timeout_seconds
        for key in self.tracker.empty_overdue(now, timeout):
            path = Path(key)
            folder = self.config.folder_for(path)
            observation = sourcefile.observe(path)
            if folder is None or observation is None or observation.size != 0:
                continue
            if self._writers.check(path, folder).open:
                # A scanner that holds its empty file open is still to write it: wait on.
                self.tracker.observe(key, observation, now, folder.settle_seconds,
                                     str(folder.path))
                continue
            self._uploader.fail_unsettled(
                folder, path, observation, "empty",
                f"the file stayed empty (0 bytes) for {timeout:g} s; a scanner or copy "
                "that creates files before writing them never finished")

    def _collect_outcomes(self) -> None:
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            record = outcome.record
            if outcome.kind == "retry":
                continue
            with self._active_lock:
                self._active_paths.discard(str(record.path))
            self._mode.noted(outcome)
            if outcome.kind == "archived":
                self.pace.completed(self._now())
                self.last_upload = {"path": str(record.path), "uuid": record.uuid,
                                    "time": self._wall()}
            elif outcome.kind in ("changed", "vanished"):
                self.hint(record.path)
