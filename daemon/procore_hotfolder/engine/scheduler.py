"""From hints to journal rows: the settle tracker and the queue of the workers.

The scheduler's thread (``tick``) owns everything here. Hints come from the watcher's threads
(``hint``), from the scanner (its ``found`` queue: candidates and the entries it passed over)
and from the workers' outcomes (a file that changed or vanished during its upload is looked
at again). Each hint becomes an observation; a file whose quiet period has run with size and
mtime unchanged is settled: it gets a journal row and goes to the dispatcher.

The scanner runs on its own thread (``engine.scanner``); the two talk only through queues:
the scheduler grants each folder room in the scan window (``Scanner.grant``: the window less
the folder's files settling, ready for a worker or on their way) and tells which paths have
an unfinished row (``Scanner.rows_opened``/``rows_closed``). Other threads read only
``view``, which each tick publishes.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.config import Config
from procore_hotfolder.engine.dispatch import Dispatcher, Job
from procore_hotfolder.engine.pace import PaceMeter
from procore_hotfolder.engine.runmode import RunMode
from procore_hotfolder.engine.scanner import EverythingSeen, Scanner
from procore_hotfolder.files import sourcefile
from procore_hotfolder.model import not_a_file_skip
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.upload.holds import HoldBoard
from procore_hotfolder.upload.outcome import Outcome, OutcomeKind
from procore_hotfolder.upload.uploader import Uploader
from procore_hotfolder.watch.ignore import IgnoreRules
from procore_hotfolder.watch.stability import SettleTracker
from procore_hotfolder.watch.writers import Writers

log = structlog.get_logger(__name__)

#: At most this many hints are looked at in one tick (the rest wait for the next).
HINTS_PER_TICK = 20000
#: A settled file held open by a writer is asked again after its quiet period, and at
#: least this long: the writer's close (an inotify event, a poll) usually comes first.
HELD_RECHECK_SECONDS = 1.0
#: At most this many entries passed over (symlinks, FIFOs, unreadable) are remembered, the
#: latest seen: each is logged when first seen or when its reason changes; one seen again
#: after it was forgotten is logged again. A path found gone, or a file again, is forgotten.
SKIPPED_LIMIT = 10_000
#: The oldest settling file of each folder (a walk over the tracker) is looked for at most
#: this often: the metrics' ``oldest_waiting_seconds`` is at most this much behind.
OLDEST_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class SchedulerView:
    """What the scheduler holds in memory, as of its last tick: the only part of it other
    threads read (the metrics); the tracker itself belongs to the scheduler's thread."""

    #: Per folder (its path as text): files settling.
    waiting: Mapping[str, int] = field(default_factory=dict)
    #: Per folder: when its oldest settling file was first seen (monotonic clock).
    oldest: Mapping[str, float] = field(default_factory=dict)
    #: The oldest settling file of all, and when it was first seen (monotonic clock).
    oldest_file: tuple[str, float] | None = None


class Scheduler:
    """Turns hints into settled files and journal rows for the workers.

    Everything it keeps belongs to the scheduler's thread (``recover`` runs on it too,
    before the other threads start); ``tracker``, ``skipped``, ``pace`` and ``last_upload``
    are read there by the status publisher. Other threads call only ``hint``, ``finished``
    and ``wake`` (which only queue), and read ``view``."""

    def __init__(self, config: Callable[[], Config], journal: Journal, uploader: Uploader, *,
                 dispatcher: Dispatcher, scanner: Scanner, holds: HoldBoard, mode: RunMode,
                 writers: Writers, monotonic: Callable[[], float], wall: Callable[[], float]
                 ) -> None:
        self._config = config  # asked once per tick
        self._journal = journal
        self._writers = writers
        self._uploader = uploader
        self._dispatcher = dispatcher
        self._scanner = scanner
        self._holds = holds
        self._mode = mode
        self._now = monotonic
        self._wall = wall
        self._wake = threading.Event()
        self._hints: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._rules_of: tuple[Config, dict[Path, IgnoreRules]] | None = None
        self._active_paths: set[str] = set()  # paths with an unfinished journal row
        self._everything_seen = False  # the scanner went through every folder once
        # The scan window: room granted to the scanner per folder, and its candidates taken.
        self._granted: dict[Path, int] = {}
        self._taken: dict[Path, int] = {}
        self._oldest_at = -OLDEST_EVERY_SECONDS
        self._oldest: dict[str, float] = {}
        self._oldest_file: tuple[str, float] | None = None
        self.tracker = SettleTracker()
        self.skipped: OrderedDict[str, str] = OrderedDict()
        self.pace = PaceMeter()
        self.last_upload: dict[str, Any] | None = None
        #: Replaced (never changed) at each tick: safe to read from any thread.
        self.view = SchedulerView()

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

    # --- on the scheduler's thread -------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Sleep until a hint, an outcome or ``wake``, at most ``timeout`` seconds."""
        self._wake.wait(timeout)
        self._wake.clear()

    def recover(self) -> None:
        """Resume every unfinished row where it stopped."""
        rows = self._journal.unfinished()
        for file_id, folder, path, next_attempt_at in rows:
            self._active_paths.add(path)
            self._dispatcher.push(Job(file_id, folder), next_attempt_at)
        self._scanner.rows_opened(path for _, _, path, _ in rows)
        if rows:
            log.info("journal_recovered", unfinished=len(rows))

    def tick(self) -> None:
        now = self._now()
        config = self._config()
        rules = self._rules(config)
        self._take_hints(config, rules, now)
        self._collect_outcomes()
        self._reobserve(config, now)
        self._queue_settled(config, now)
        if self._mode.fails_empty:
            self._fail_empty(config, now)
        self._grant_room(config)
        self._publish_view(config, now)

    # --- what a run mode asks (runmode.Progressing) --------------------------------------

    def drained(self) -> bool:
        """Every file present was seen, and nothing moves any more: no hint or outcome to
        look at, no file with content settling, no row queued or in a worker's hands."""
        return (self._everything_seen and self._hints.empty() and self._scanner.found.empty()
                and self._outcomes.empty() and not self.tracker.waiting_with_content()
                and self._dispatcher.idle())

    def left_settling(self) -> list[tuple[Path, str]]:
        """The files still in the tracker, with why they are not uploaded yet."""
        return [(Path(key), f"held open by a writer ({info.held})" if info.held
                 else "empty (0 bytes), waiting for content")
                for key, info in self.tracker.pending().items()]

    def left_unfinished(self) -> list[FileRecord]:
        return list(self._journal.active())

    # --- the steps of a tick -------------------------------------------------------------

    def _rules(self, config: Config) -> dict[Path, IgnoreRules]:
        """The ignore rules of ``config``'s folders, built again when a reload changed it;
        the window's counts of a folder that left it go."""
        cached = self._rules_of
        if cached is not None and cached[0] is config:
            return cached[1]
        rules = {f.path: IgnoreRules(f) for f in config.folders}
        for path in [p for p in self._granted if p not in rules]:
            self._granted.pop(path, None)
            self._taken.pop(path, None)
        self._rules_of = (config, rules)
        return rules

    def _take_hints(self, config: Config, rules: dict[Path, IgnoreRules], now: float) -> None:
        """Look at up to ``HINTS_PER_TICK`` hints: the watcher's and the outcomes' first,
        then what the scanner found."""
        budget = HINTS_PER_TICK
        while budget > 0:
            try:
                path = self._hints.get_nowait()
            except queue.Empty:
                break
            budget -= 1
            self._consider(config, rules, path, now)
        while budget > 0:
            try:
                found = self._scanner.found.get_nowait()
            except queue.Empty:
                break
            budget -= 1
            if isinstance(found, EverythingSeen):
                self._everything_seen = True
            elif found.skip is not None:
                self._note_skip(str(found.path), found.skip)
            else:
                self._taken[found.folder] = self._taken.get(found.folder, 0) + 1
                self._consider(config, rules, found.path, now)

    def _note_skip(self, key: str, reason: str) -> None:
        if self.skipped.get(key) == reason:
            self.skipped.move_to_end(key)
            return
        self.skipped[key] = reason
        self.skipped.move_to_end(key)
        log.warning("file_skipped", path=key, reason=reason)
        while len(self.skipped) > SKIPPED_LIMIT:
            self.skipped.popitem(last=False)

    def _consider(self, config: Config, rules: dict[Path, IgnoreRules], path: Path,
                  now: float) -> None:
        folder = config.folder_for(path)
        if folder is None or self._holds.unavailable(folder.path):
            return
        if rules[folder.path].reason(path) is not None:
            return
        key = str(path)
        try:
            st = os.lstat(path)
        except OSError:
            self.tracker.forget(key)
            self.skipped.pop(key, None)
            return
        if stat.S_ISDIR(st.st_mode):
            # A new folder: files may have landed before its watch existed.
            if path != folder.path and folder.recursive:
                self._scanner.scan_below(path)
            return
        kind = sourcefile.classify(st)
        if kind is not None:
            self._note_skip(key, not_a_file_skip(kind))
            return
        self.skipped.pop(key, None)
        if key in self._active_paths:
            return
        observation = sourcefile.observation_of(st)
        if self._journal.failed_version(path, observation) is not None:
            return
        self.tracker.observe(key, observation, now, folder.settle_seconds, str(folder.path))

    def _reobserve(self, config: Config, now: float) -> None:
        """Look again at files whose quiet period has run: unchanged ones become due."""
        for key in self.tracker.to_recheck(now):
            folder = config.folder_for(Path(key))
            observation = sourcefile.observe(Path(key)) if folder is not None else None
            self.tracker.observe(key, observation, now,
                                 folder.settle_seconds if folder is not None else 0.0)

    def _queue_settled(self, config: Config, now: float) -> None:
        """Settled files become journal rows, unless a writer still holds one open: that
        one waits (``SettleTracker.hold``) and is looked at again after its quiet period,
        or at once when the writer closes it (an event)."""
        due = self.tracker.due(now)
        if not due:
            return
        entries = []
        for key, pending in due:
            path = Path(key)
            folder = config.folder_for(path)
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
        opened = []
        for record in self._journal.enqueue(entries, self._wall()):
            opened.append(str(record.path))
            log.info("file_settled", path=str(record.path), size=record.observation.size)
            self._dispatcher.push(record)
        self._active_paths.update(opened)
        if opened:
            self._scanner.rows_opened(opened)

    def _fail_empty(self, config: Config, now: float) -> None:
        timeout = config.daemon.empty_file_timeout_seconds
        for key in self.tracker.empty_overdue(now, timeout):
            path = Path(key)
            folder = config.folder_for(path)
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
        closed = []
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                break
            record = outcome.record
            if not outcome.kind.done:
                continue
            self._active_paths.discard(str(record.path))
            closed.append(str(record.path))
            self._mode.noted(outcome)
            if outcome.kind is OutcomeKind.ARCHIVED:
                self.pace.completed(self._now())
                self.last_upload = {"path": str(record.path), "uuid": record.uuid,
                                    "time": self._wall()}
            elif outcome.kind.looked_at_again:
                self.hint(record.path)
        if closed:
            self._scanner.rows_closed(closed)

    def _grant_room(self, config: Config) -> None:
        """Keep each folder's room in the scan window: the window less its files settling,
        ready for a worker (rows waiting for a retry time do not count: a folder waiting
        out a backoff holds nobody back), and granted but not yet taken (room the scanner
        holds, or candidates on their way). Each folder has its own window, so one folder's
        backlog does not hold back another's scans."""
        window = self._scanner.window
        for folder in config.folders:
            key = folder.path
            on_the_way = self._granted.get(key, 0) - self._taken.get(key, 0)
            in_memory = self.tracker.count(str(key)) + self._dispatcher.ready(key)
            more = window - in_memory - on_the_way
            if more > 0:
                self._granted[key] = self._granted.get(key, 0) + more
                self._scanner.grant(key, more)

    def _publish_view(self, config: Config, now: float) -> None:
        if now - self._oldest_at >= OLDEST_EVERY_SECONDS:
            self._oldest_at = now
            oldest: dict[str, float] = {}
            oldest_file: tuple[str, float] | None = None
            for key, info in self.tracker.pending().items():
                if info.first_seen < oldest.get(info.group, float("inf")):
                    oldest[info.group] = info.first_seen
                    if oldest_file is None or info.first_seen < oldest_file[1]:
                        oldest_file = (key, info.first_seen)
            self._oldest, self._oldest_file = oldest, oldest_file
        self.view = SchedulerView(
            waiting={str(f.path): self.tracker.count(str(f.path)) for f in config.folders},
            oldest=self._oldest, oldest_file=self._oldest_file)
