"""The daemon's loops: scheduler, scanner, upload workers; signals; sd_notify; status snapshot.

Threads, each stoppable and joined:
- the scheduler (the caller's thread): turns hints into observations, decides when a file
  has settled, queues it in the journal and the dispatcher, writes the status snapshot,
  talks to systemd;
- the scanner: start-up scan, periodic rescans (and frequent scans of polled folders); it only
  produces hints;
- the watcher (watchdog observers): only produces hints;
- N upload workers: take journal rows from the dispatcher and run ``Uploader.process``.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from procore_hotfolder import sourcefile
from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.dispatch import Dispatcher, Job
from procore_hotfolder.errors import ConfigError
from procore_hotfolder.journal import FileRecord, Journal
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks, MetricsSample
from procore_hotfolder.model import IN_FLIGHT, FileState
from procore_hotfolder.pauses import ACCOUNT
from procore_hotfolder.pipeline import Outcome, Uploader
from procore_hotfolder.progress import Progress
from procore_hotfolder.ratelimit import RateGovernor
from procore_hotfolder.stability import SettleTracker
from procore_hotfolder.watcher import FolderHealth, FolderWatcher, IgnoreRules, scan

log = structlog.get_logger(__name__)

SNAPSHOT_NAME = "status.json"
TICK_SECONDS = 0.1
SNAPSHOT_EVERY_SECONDS = 2.0
SNAPSHOT_PENDING_LIMIT = 2000
#: At most this many files of one folder wait in memory between the scan and a worker
#: (files settling, rows ready for a worker). At 200 uploads/s and a 10 s settle time about
#: 2,000 settle at once; past the window the folder's scan stops and resumes once there is
#: room, so a backlog of 50,000 costs what 5,000 do; the journal holds the rest.
SCAN_WINDOW = 5000
#: systemd shows STATUS= on one line of `systemctl status`: keep it readable.
STATUS_MAX_CHARS = 400
#: A scan request for every folder (a reload, `retry`).
_FULL_SCAN = Path("\0full-scan")
#: A loop that has not advanced for this long is stuck: systemd's watchdog is no longer fed,
#: so systemd restarts the daemon (which resumes from the journal). Long enough for the
#: slowest honest step without moving bytes: HTTP timeouts with their retries, a verified
#: archive copy across filesystems. Waiting out a rate limit or an outage is not stuck.
STALL_SECONDS = 1800.0


class Notifier(Protocol):
    def notify(self, state: str) -> None: ...


class NullNotifier:
    def notify(self, state: str) -> None:
        """Not under systemd: nothing to tell."""


@dataclass
class RunSummary:
    """What `once` reports at the end."""

    archived: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_uploaded: list[tuple[Path, str]] = field(default_factory=list)
    #: 0-byte files: not ready yet (a scanner creates the file before writing it), so they
    #: are left in place and named, but are no failure.
    empty: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.not_uploaded else 0


class Service:
    """Runs the engine until stopped (``run``) or until everything present is done (``once``)."""

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        config: Config,
        journal: Journal,
        uploader: Uploader,
        governor: RateGovernor,
        *,
        progress: Progress,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        once: bool = False,
        on_stop: Callable[[], None] | None = None,
        load_config: Callable[[], Config] | None = None,
        on_reload: Iterable[Callable[[Config], None]] = (),
    ) -> None:
        self.config = config
        self._on_stop = on_stop
        self._load_config = load_config
        self._on_reload = tuple(on_reload)
        self._reload_requested = threading.Event()
        self._stopped_by: str | None = None
        self._worker_target = config.daemon.workers
        self._journal = journal
        self._uploader = uploader
        self.pauses = uploader.pauses
        self._governor = governor
        self._progress = progress
        self._notifier = notifier or NullNotifier()
        self._now = monotonic
        self._wall = wall
        self._once = once
        self._stop = threading.Event()
        self._hints: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._hint_ready = threading.Event()
        # Scans stopped for want of room: (folder, top) -> None, resumed once there is room.
        self._unfinished: dict[tuple[Path, Path], None] = {}
        self._tracker = SettleTracker()
        self._dispatcher = Dispatcher(clock=wall)
        self._rules = {f.path: IgnoreRules(f) for f in config.folders}
        self._health = FolderHealth()
        self._active_paths: set[str] = set()  # paths with an unfinished journal row
        self._active_lock = threading.Lock()
        self._skipped: dict[str, str] = {}
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._unavailable: dict[Path, str] = {}
        self._last_upload: dict[str, Any] | None = None
        self._summary = RunSummary()
        self._once_tries: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._watcher: FolderWatcher | None = None
        self._scan_done = threading.Event()
        self._scan_requests: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        # Per loop thread: when it last went round, and the file a worker is on.
        self._beats: dict[str, float] = {}
        self._working: dict[str, Path] = {}
        self._finished_loops: set[str] = set()  # ended as they should (once's single scan)
        self._stalled: list[str] = []
        self._pace = PaceMeter()
        self._quota_sample = (monotonic(), 0.0)
        self._bound_by = "uploads"

    # --- control ---------------------------------------------------------------------------

    def stop(self, signal_name: str | None = None) -> None:
        """Ask every loop to end (safe from a signal handler: it only sets events; the
        signal's name, if any, is logged by the loop)."""
        if signal_name is not None:
            self._stopped_by = signal_name
        self._stop.set()
        self._hint_ready.set()
        if self._on_stop is not None:
            self._on_stop()

    def request_reload(self) -> None:
        """Reload the configuration at the next tick (safe from a signal handler)."""
        self._reload_requested.set()
        self._hint_ready.set()

    def hint(self, path: Path) -> None:
        """Something may have happened at ``path`` (called from watcher threads; never blocks)."""
        self._hints.put(path)
        self._hint_ready.set()

    # --- main ------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run until ``stop()`` (daemon) or until all present files are done (``once``)."""
        self._recover()
        self._start_workers()
        if not self._once:
            self._watcher = FolderWatcher(self.config.folders, self.hint,
                                          self.config.daemon.poll_seconds)
            self._watcher.start()
        self._start_scanner()
        self.metrics.serve(self.metrics_sample)
        self._notifier.notify("READY=1")
        log.info("daemon_ready", folders=len(self.config.folders), once=self._once,
                 workers=self.config.daemon.workers)
        warn_unfiled(self.config)
        last_snapshot = last_watchdog = 0.0
        # systemd wants a ping at least every WATCHDOG_USEC; ping at twice that rate.
        watchdog_every = self._watchdog_usec / 2e6 if self._watchdog_usec else 0.0
        try:
            while not self._stop.is_set():
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self._reload()
                self._tick()
                now = self._now()
                if now - last_snapshot >= SNAPSHOT_EVERY_SECONDS:
                    last_snapshot = now
                    self._publish_status()
                if watchdog_every and now - last_watchdog >= watchdog_every:
                    last_watchdog = now
                    self._ping_watchdog()
                if self._once and self._once_finished():
                    break
                self._hint_ready.wait(TICK_SECONDS)
                self._hint_ready.clear()
        finally:
            self._shutdown()
        return self._summary

    def _recover(self) -> None:
        """Resume every unfinished row where it stopped."""
        rows = self._journal.unfinished()
        for file_id, folder, path, next_attempt_at in rows:
            with self._active_lock:
                self._active_paths.add(path)
            self._dispatcher.push(Job(file_id, folder), next_attempt_at)
        if rows:
            log.info("journal_recovered", unfinished=len(rows))

    def _start_workers(self) -> None:
        """Start workers until ``daemon.workers`` run (after a reload: the missing ones)."""
        running = sum(1 for t in self._threads
                      if t.name.startswith("upload-") and t.is_alive())
        for index in range(running, self._worker_target):
            thread = threading.Thread(target=self._work, args=(index,), name=f"upload-{index}",
                                      daemon=True)
            self._beats[thread.name] = self._now()
            self._finished_loops.discard(thread.name)
            thread.start()
            self._threads.append(thread)

    # --- reload ----------------------------------------------------------------------------

    def _reload(self) -> None:
        """SIGHUP: apply the configuration file as it is now, without stopping work in flight.

        sd_notify(3): ``RELOADING=1`` with ``MONOTONIC_USEC=`` first, ``READY=1`` once done.
        A configuration that does not load (or changes what cannot change while running) is
        refused and the current one kept. Either way every folder is scanned again, so files
        that `retry` put back are found, and pauses are re-checked soon (the operator may
        have fixed what caused them)."""
        self._notifier.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        log.info("reload_started")
        try:
            new = self._reloaded_config()
        except ConfigError as exc:
            log.error("configuration_reload_failed", problems=exc.problems)  # noqa: TRY400 - the problems are the message
        else:
            self._apply(new)
        paused = {p.scope for p in self.pauses.current()}
        if paused:
            self.pauses.check_soon(self._wall())
            self._dispatcher.release(None if ACCOUNT in paused else {Path(s) for s in paused})
        self._scan_requests.put(_FULL_SCAN)
        self._notifier.notify("READY=1")
        self._publish_status()

    def _reloaded_config(self) -> Config:
        """The configuration file as it is now; raises ``ConfigError`` when it does not load
        or changes what cannot change while running."""
        if self._load_config is None:
            raise ConfigError(["this daemon was started without a configuration file"])
        new = self._load_config()
        if new.daemon.state_dir != self.config.daemon.state_dir:
            raise ConfigError([f"daemon.state_dir: cannot change from "
                               f"{self.config.daemon.state_dir} while running; restart the "
                               "service to move the state directory"])
        return new

    def _apply(self, new: Config) -> None:
        old = {f.path: f for f in self.config.folders}
        now = {f.path: f for f in new.folders}
        added = [str(p) for p in now if p not in old]
        removed = [str(p) for p in old if p not in now]
        changed = [str(p) for p in now if p in old and now[p] != old[p]]
        self._rules = {f.path: IgnoreRules(f) for f in new.folders}
        self._uploader.reconfigure(new)
        self.config = new
        for path in removed:
            self.pauses.forget(path)
            self._unavailable.pop(Path(path), None)
        if self._watcher is not None and (added or removed or changed):
            # Hints only: a fresh observer over the new set; the rescan below catches what
            # happened in between. Uploads in flight are not touched.
            self._watcher.stop()
            self._watcher = FolderWatcher(new.folders, self.hint, new.daemon.poll_seconds)
            self._watcher.start()
        self._worker_target = new.daemon.workers
        self._start_workers()
        self._governor.set_ceiling(new.daemon.max_api_calls_per_hour)
        for hook in self._on_reload:
            hook(new)
        log.info("configuration_reloaded", added=added, removed=removed, changed=changed,
                 workers=new.daemon.workers)
        warn_unfiled(new)

    def _start_scanner(self) -> None:
        thread = threading.Thread(target=self._scan_loop, name="scanner", daemon=True)
        self._beats[thread.name] = self._now()
        thread.start()
        self._threads.append(thread)

    def _shutdown(self) -> None:
        self._notifier.notify("STOPPING=1")
        if self._stopped_by is not None:
            log.info("signal_received", signal=self._stopped_by)
        log.info("daemon_stopping")
        self.stop()
        self._governor.stop()
        self._dispatcher.close()
        self._scan_requests.put(None)
        if self._watcher is not None:
            self._watcher.stop()
        for thread in self._threads:
            thread.join()
        self.metrics.close()
        self._publish_status()
        log.info("daemon_stopped")

    # --- scanner ---------------------------------------------------------------------------

    def _scan_loop(self) -> None:
        """Start-up scan, then periodic rescans; polled folders every ``poll_seconds``."""
        next_full = 0.0
        next_poll = 0.0
        while not self._stop.is_set():
            daemon = self.config.daemon  # a reload may change it
            now = self._now()
            self._beat()
            poll_folders = set(self._watcher.poll_folders) if self._watcher else set()
            if now >= next_full:
                self._scan_folders(self.config.folders)
                next_full = now + daemon.rescan_seconds
                next_poll = now + daemon.poll_seconds
                if self._watcher is not None:
                    self._watcher.refresh()
            elif poll_folders and now >= next_poll:
                self._scan_folders([f for f in self.config.folders if f.path in poll_folders])
                next_poll = now + daemon.poll_seconds
            self._resume_scans()
            if not self._unfinished:
                self._scan_done.set()  # every file present was seen at least once
                if self._once:
                    self._finished_loops.add(threading.current_thread().name)  # by design
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
                if self._unavailable.get(folder.path) != problem:
                    log.error("folder_unavailable", path=str(folder.path), reason=problem)
                self._unavailable[folder.path] = problem
                continue
            if folder.path in self._unavailable:
                log.info("folder_available_again", path=str(folder.path))
                self._unavailable.pop(folder.path, None)
            self._scan_tree(folder, folder.path)

    def _scan_tree(self, folder: FolderSettings, top: Path) -> None:
        """Hint every candidate below ``top`` that has no journal row yet. Stops once the
        folder has ``SCAN_WINDOW`` files in memory (settling or ready for a worker): the
        scan is then resumed, from the top, once the folder has room again (rows already
        in the journal are skipped without a look, so a resumed scan costs the walk)."""
        self._unfinished.pop((folder.path, top), None)
        for entry in scan(folder, self._rules[folder.path], top=top):
            if self._stop.is_set():
                return
            self._beat()
            if entry.reason is not None:
                self._note_skip(entry.path, entry.reason)
            elif str(entry.path) not in self._active_paths:
                if not self._has_room(folder):
                    self._unfinished[(folder.path, top)] = None
                    return
                self.hint(entry.path)

    def _has_room(self, folder: FolderSettings, share: float = 1.0) -> bool:
        """Fewer than ``share`` of ``SCAN_WINDOW`` files of ``folder`` wait in memory:
        settling, or ready for a worker (rows waiting for a retry time or a pause do not
        count: a paused folder holds nobody back), plus the hints not looked at yet. Each
        folder has its own window, so one folder's backlog does not hold back another's
        scans."""
        waiting = (self._hints.qsize() + self._tracker.count(str(folder.path))
                   + self._dispatcher.ready(folder.path))
        return waiting < SCAN_WINDOW * share

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

    # --- scheduler tick --------------------------------------------------------------------

    def _tick(self) -> None:
        now = self._now()
        for _ in range(20000):
            try:
                path = self._hints.get_nowait()
            except queue.Empty:
                break
            self._consider(path, now)
        self._collect_outcomes()
        self._reobserve(now)
        self._queue_settled(now)
        self._fail_empty(now)

    def _note_skip(self, path: Path, reason: str) -> None:
        key = str(path)
        if self._skipped.get(key) != reason:
            self._skipped[key] = reason
            log.warning("file_skipped", path=key, reason=reason)

    def _consider(self, path: Path, now: float) -> None:
        folder = self.config.folder_for(path)
        if folder is None or folder.path in self._unavailable:
            return
        if self._rules[folder.path].reason(path) is not None:
            return
        try:
            st = os.lstat(path)
        except OSError:
            self._tracker.forget(str(path))
            return
        if stat.S_ISDIR(st.st_mode):
            # A new folder: files may have landed before its watch existed.
            if path != folder.path and folder.recursive:
                self._scan_requests.put(path)
            return
        kind = sourcefile.classify(st)
        if kind is not None:
            self._note_skip(path, f"{kind}: never opened or uploaded")
            return
        with self._active_lock:
            if str(path) in self._active_paths:
                return
        observation = sourcefile.observation_of(st)
        if self._journal.failed_version(path, observation) is not None:
            return
        key = str(path)
        self._tracker.observe(key, observation, now, folder.settle_seconds, str(folder.path))

    def _reobserve(self, now: float) -> None:
        """Look again at files whose quiet period has run: unchanged ones become due."""
        for key in self._tracker.to_recheck(now):
            folder = self.config.folder_for(Path(key))
            observation = sourcefile.observe(Path(key)) if folder is not None else None
            self._tracker.observe(key, observation, now,
                                  folder.settle_seconds if folder is not None else 0.0)

    def _queue_settled(self, now: float) -> None:
        due = self._tracker.due(now)
        if not due:
            return
        entries = []
        for key, observation in due:
            path = Path(key)
            folder = self.config.folder_for(path)
            if folder is not None:
                entries.append((folder.path, path, observation))
        for record in self._journal.enqueue(entries, self._wall()):
            with self._active_lock:
                self._active_paths.add(str(record.path))
            log.info("file_settled", path=str(record.path), size=record.observation.size)
            self._dispatcher.push(record)

    def _fail_empty(self, now: float) -> None:
        if self._once:
            return
        timeout = self.config.daemon.empty_file_timeout_seconds
        for key in self._tracker.empty_overdue(now, timeout):
            path = Path(key)
            folder = self.config.folder_for(path)
            observation = sourcefile.observe(path)
            if folder is None or observation is None or observation.size != 0:
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
            if outcome.kind == "archived":
                self._pace.completed(self._now())
                if self._once:  # the daemon keeps no per-file list: it runs for months
                    self._summary.archived.append(record.path)
                self._last_upload = {"path": str(record.path), "uuid": record.uuid,
                                     "time": self._wall()}
            elif outcome.kind == "failed" and self._once:
                self._summary.failed.append((record.path, outcome.detail or "failed"))
            elif outcome.kind in ("changed", "vanished"):
                self.hint(record.path)

    # --- workers ---------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        name = threading.current_thread().name
        while not self._stop.is_set():
            if index >= self._worker_target:
                # A reload lowered daemon.workers: this one ends between files.
                self._finished_loops.add(name)
                return
            self._beat()
            job = self._dispatcher.get(timeout=0.5)
            if job is None:
                continue
            record = self._journal.get(job.id)
            self._working[name] = record.path
            try:
                outcome = self._uploader.process(record)
            except Exception:
                log.exception("worker_error", path=str(record.path))
                outcome = Outcome("retry", record, retry_at=self._wall() + 60)
            finally:
                self._working.pop(name, None)
            retry_at = outcome.retry_at if outcome.kind == "retry" else None
            if retry_at is not None and self._once and self._once_gives_up(record):
                # `once` must end: after max_attempts tries (outages included) the file stays
                # queued in the journal for the daemon and is reported as not uploaded.
                retry_at = None
            elif outcome.kind == "retry" and retry_at is None:
                retry_at = outcome.record.next_attempt_at
            self._dispatcher.finished(outcome.record, retry_at)
            self._outcomes.put(outcome)
            self._hint_ready.set()

    # --- once ------------------------------------------------------------------------------

    def _once_gives_up(self, record: FileRecord) -> bool:
        with self._active_lock:
            tries = self._once_tries.get(record.id, 0) + 1
            self._once_tries[record.id] = tries
        return self._stop.is_set() or tries >= self.config.daemon.max_attempts

    def _once_finished(self) -> bool:
        if not self._scan_done.is_set() or not self._hints.empty():
            return False
        if not self._outcomes.empty():
            return False
        if self._tracker.waiting_with_content() or not self._dispatcher.idle():
            return False
        for key in self._tracker.pending():
            self._summary.empty.append(Path(key))
        for record in self._journal.active():
            self._summary.not_uploaded.append(
                (record.path, (record.last_error or {}).get("detail", "not finished")))
        return True

    # --- status ----------------------------------------------------------------------------

    def _publish_status(self) -> None:
        counts = self._dispatcher.counts()
        waiting = len(self._tracker)
        last = self._last_upload["path"] if self._last_upload else "none"
        paused = self._governor.paused()
        status = (f"waiting {waiting}, queued {counts['queued'] + counts['delayed']}, "
                  f"uploading {counts['in_flight']}, last upload {last}")
        if paused is not None:
            status += f", paused: {paused[1]}"
        for pause in self.pauses.current():
            who = "all folders" if pause.scope == ACCOUNT else pause.scope
            status += f"; PAUSED {who}: {pause.reason}: {pause.detail}"
        self._notifier.notify(f"STATUS={status[:STATUS_MAX_CHARS]}")
        self._write_snapshot(counts, paused)

    def _ping_watchdog(self) -> None:
        """WATCHDOG=1 only while every loop advances: this one (it is running this code), the
        scanner and the workers."""
        stalled = self._stalled_loops()
        if stalled != self._stalled:
            if stalled:
                log.error("watchdog_withheld", stalled=stalled,
                          files=[str(self._working[n]) for n in stalled if n in self._working])
            else:
                log.info("watchdog_resumed")
            self._stalled = stalled
        if not stalled:
            self._notifier.notify("WATCHDOG=1")

    def _beat(self) -> None:
        """The calling loop went round (or got through one more entry of a scan)."""
        self._beats[threading.current_thread().name] = self._now()

    def _stalled_loops(self) -> list[str]:
        """Names of the loop threads that died or have not advanced for ``STALL_SECONDS``.

        A worker on a file advances while the upload moves (blocks read, sent or hashed);
        while the rate governor holds every call back (rate limit, outage) none is stalled.
        """
        now = self._now()
        waiting_out = self._governor.paused() is not None
        stalled = []
        for thread in self._threads:
            if thread.name in self._finished_loops:
                continue
            last = self._beats[thread.name]
            path = self._working.get(thread.name)
            moved = self._progress.last_moved(path) if path is not None else None
            if moved is not None:
                last = max(last, moved)
            if not thread.is_alive() or (now - last > STALL_SECONDS and not waiting_out):
                stalled.append(thread.name)
        return stalled

    def _write_snapshot(self, counts: dict[str, int], paused: tuple[float, str] | None) -> None:
        wall = self._wall()
        pending = {}
        for key, info in self._tracker.sample(SNAPSHOT_PENDING_LIMIT):
            # The tracker's clock is monotonic; status wants wall-clock times.
            pending[key] = {"since": wall - (self._now() - info.first_seen),
                            "size": info.observation.size,
                            "settle_seconds": self._settle_for(key)}
        snapshot = {
            "pid": os.getpid(),
            "updated": wall,
            "once": self._once,
            "counts": counts,
            "waiting": len(self._tracker),
            "pending": pending,
            "skipped": dict(list(self._skipped.items())[-SNAPSHOT_PENDING_LIMIT:]),
            "unavailable": {str(k): v for k, v in self._unavailable.items()},
            "modes": {str(k): v for k, v in (self._watcher.modes if self._watcher else {}).items()},
            "paused": {"until": paused[0], "reason": paused[1]} if paused else None,
            "pauses": [p.as_dict() for p in self.pauses.current()],
            "pace": {"files_per_hour": self._pace.files_per_hour(self._now()),
                     "bound_by": self._pace_bound(paused is not None)},
            "uploading": self._progress.snapshot(),
            "last_upload": self._last_upload,
        }
        write_snapshot(self.config.daemon.state_dir, snapshot)

    def _pace_bound(self, outage: bool) -> str:
        """What holds the pace back now: a pause (Procore refusing, an outage), the quota
        (workers kept waiting by the rate governor more than a quarter of the time since the
        last look), or the uploads themselves (bandwidth, Procore's answer times)."""
        if outage or self.pauses.current():
            return "pause"
        now, waited = self._now(), self._governor.quota_wait_seconds
        then, waited_then = self._quota_sample
        if now - then >= 10.0:
            share = (waited - waited_then) / max(1e-6, (now - then) * self._worker_target)
            self._bound_by = "quota" if share > 0.25 else "uploads"
            self._quota_sample = (now, waited)
        return self._bound_by

    def _settle_for(self, key: str) -> float:
        folder = self.config.folder_for(Path(key))
        return folder.settle_seconds if folder else 0.0

    # --- metrics (called on the metrics thread at each scrape) -----------------------------

    def metrics_sample(self) -> MetricsSample:
        """Queue per folder and state, oldest waiting file, pauses in force."""
        wall = self._wall()
        queue: dict[str, dict[str, int]] = {str(f.path): {} for f in self.config.folders}
        since: dict[str, float] = {}
        monotonic_now = self._now()
        for key, pending in self._tracker.pending().items():
            folder = self.config.folder_for(Path(key))
            if folder is not None:
                label = str(folder.path)
                counts = queue.setdefault(label, {})
                counts["waiting"] = counts.get("waiting", 0) + 1
                seen = wall - (monotonic_now - pending.first_seen)
                since[label] = min(since.get(label, seen), seen)
        for path, by_state in self._journal.queue_summary().items():
            counts = queue.setdefault(str(path), {})
            for state, (n, oldest) in by_state.items():
                kind = ("failed" if state == FileState.FAILED.value else "uploading"
                        if FileState(state) in IN_FLIGHT else "queued")
                counts[kind] = counts.get(kind, 0) + n
                if kind != "failed":
                    since[str(path)] = min(since.get(str(path), oldest), oldest)
        paused = [(str(path), "folder_unavailable") for path in dict(self._unavailable)]
        paused += [("" if p.scope == ACCOUNT else p.scope, p.reason)
                   for p in self.pauses.current()]
        governor_pause = self._governor.paused()
        if governor_pause is not None:
            paused.append(("", governor_pause[1]))
        return MetricsSample(queue=queue,
                             oldest_waiting_seconds={k: max(0.0, wall - v)
                                                     for k, v in since.items()},
                             paused=tuple(paused))


class PaceMeter:
    """Uploads completed over the last ``WINDOW`` seconds, in 10-second buckets (bounded
    memory, whatever the rate): the pace `status` quotes for its estimates."""

    WINDOW = 900.0
    BUCKET = 10.0

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque()  # [bucket start, count]
        self._started: float | None = None

    def completed(self, now: float) -> None:
        if self._started is None:
            self._started = now
        start = now - now % self.BUCKET
        if self._buckets and self._buckets[-1][0] == start:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([start, 1])
        while self._buckets and self._buckets[0][0] < now - self.WINDOW:
            self._buckets.popleft()

    def files_per_hour(self, now: float) -> float | None:
        """None until a minute of uploads has been seen."""
        if self._started is None or now - self._started < 60.0:
            return None
        span = min(self.WINDOW, now - self._started)
        count = sum(n for start, n in self._buckets if start >= now - span)
        return round(count * 3600.0 / span, 1)


def warn_unfiled(config: Config) -> None:
    """A folder with ``destination = "none"`` files nothing: Procore deletes those Uploads
    after 7 days (only the ledger's UUIDs remain for an integration to use)."""
    for index, folder in enumerate(config.folders):
        if folder.destination == "none":
            log.warning("destination_none", folder=f"folders[{index}]", path=str(folder.path),
                        detail=UNFILED_WARNING)


UNFILED_WARNING = ("destination is none: these uploads are filed nowhere in Procore, which "
                   "deletes them after 7 days")


def write_snapshot(state_dir: Path, snapshot: dict[str, Any]) -> None:
    """Atomically replace ``state_dir/status.json`` (best effort: status is advisory)."""
    target = state_dir / SNAPSHOT_NAME
    temp = state_dir / f".{SNAPSHOT_NAME}.tmp"
    try:
        temp.write_text(json.dumps(snapshot, ensure_ascii=False, default=str), encoding="utf-8",
                        errors="surrogateescape")
        os.replace(temp, target)
    except OSError as exc:
        log.warning("status_snapshot_failed", error=str(exc))


def read_snapshot(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / SNAPSHOT_NAME).read_text(encoding="utf-8",
                                                                errors="surrogateescape"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
