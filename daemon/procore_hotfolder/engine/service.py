"""The thread owner: starts, stops and joins the daemon's threads; applies a reload.

Threads, each stoppable and joined:
- the scheduler (the caller's thread): ``Scheduler.tick`` turns hints into journal rows;
  between ticks ``StatusPublisher`` writes the status snapshot and ``Heartbeat`` feeds
  systemd's watchdog;
- the scanner: ``Scanner.run``; it only finds files, and talks to the scheduler only
  through queues;
- the watcher (watchdog observers, not under `once`): only produces hints;
- N upload workers: take journal rows from the dispatcher and run ``Uploader.process``;
- the alerts' delivery thread (``AlertSink``: started with the others; at the stop, after
  the last report, what is pending goes out first, for up to the run mode's
  ``alerts_flush_seconds``).

How the run ends is the ``RunMode``'s business (`run` vs `once`); the stop event is the
process's one, given by the composition root, and set by ``stop`` or by whoever holds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from procore_hotfolder.alerts import NULL_ALERTS, AlertSink
from procore_hotfolder.config import Config, Current
from procore_hotfolder.engine.dispatch import Dispatcher
from procore_hotfolder.engine.heartbeat import Heartbeat, Notifier, NullNotifier
from procore_hotfolder.engine.publisher import StatusPublisher
from procore_hotfolder.engine.runmode import RunMode, RunSummary
from procore_hotfolder.engine.scanner import Scanner
from procore_hotfolder.engine.scheduler import Scheduler
from procore_hotfolder.engine.timing import Timing
from procore_hotfolder.errors import ConfigError
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload import destinations
from procore_hotfolder.upload.holds import ACCOUNT, HoldBoard
from procore_hotfolder.upload.progress import Progress
from procore_hotfolder.upload.uploader import Uploader
from procore_hotfolder.watch.watcher import FolderWatcher
from procore_hotfolder.watch.writers import Writers

log = structlog.get_logger(__name__)

TICK_SECONDS = 0.1


class Service:
    """Runs the engine until stopped or until its ``RunMode`` says the run is over."""

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        config: Current,
        journal: Journal,
        uploader: Uploader,
        governor: RateGovernor,
        *,
        holds: HoldBoard,
        stop: threading.Event,
        mode: RunMode,
        progress: Progress,
        timing: Timing,
        writers: Writers | None = None,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        load_config: Callable[[], Config] | None = None,
        on_reload: Iterable[Callable[[Config], None]] = (),
        paused_rows_wait: bool = True,
        alerts: AlertSink = NULL_ALERTS,
    ) -> None:
        """``holds``: the board of holds (the uploader's, the governor's reports go there
        too); ``paused_rows_wait``: the rows of a folder Procore refuses wait in the
        dispatcher for its re-check (`run`); False: the workers take them and each try
        counts (`once`, which gives a file ``max_attempts`` tries, pauses included);
        ``alerts``: told the pauses and the oldest waiting file at each publication."""
        self._config = config
        self.holds = holds
        self._journal = journal
        self._uploader = uploader
        self._stop = stop
        self._mode = mode
        self._alerts = alerts
        self._notifier = notifier or NullNotifier()
        self._now = monotonic
        self._wall = wall
        self._load_config = load_config
        self._on_reload = tuple(on_reload)
        self._snapshot_every = timing.snapshot_every
        self._reload_requested = threading.Event()
        self._stopped_by: str | None = None
        self._threads: list[threading.Thread] = []
        self._watcher: FolderWatcher | None = None
        self._writers = writers or Writers()
        self._dispatcher = Dispatcher(wall=wall, monotonic=monotonic,
                                      held=holds.waits_until if paused_rows_wait else None)
        self.heartbeat = Heartbeat(self._notifier, progress=progress,
                                   waiting_out=lambda: holds.calls_held(wall()),
                                   monotonic=monotonic, stall_seconds=timing.stall_seconds)
        self.scanner = Scanner(config, holds=holds, mode=mode, heartbeat=self.heartbeat,
                               stop=stop, watcher=lambda: self._watcher, monotonic=monotonic,
                               wall=wall, window=timing.scan_window,
                               wake=lambda: self.scheduler.wake())  # noqa: PLW0108 - made next
        self.scheduler = Scheduler(config, journal, uploader, dispatcher=self._dispatcher,
                                   scanner=self.scanner, holds=holds, mode=mode,
                                   writers=self._writers, monotonic=monotonic, wall=wall)
        self.publisher = StatusPublisher(
            config=config, journal=journal, scheduler=self.scheduler,
            dispatcher=self._dispatcher, governor=governor, holds=holds,
            progress=progress, heartbeat=self.heartbeat, mode=mode,
            watcher=lambda: self._watcher, writers=self._writers,
            workers=lambda: self._config().daemon.workers, monotonic=monotonic, wall=wall,
            alerts=alerts)

    # --- control (safe from a signal handler: they only set events) ------------------------

    def stop(self, signal_name: str | None = None) -> None:
        """Ask every loop to end (the signal's name, if any, is logged by the loop)."""
        if signal_name is not None:
            self._stopped_by = signal_name
        self._stop.set()
        self.scheduler.wake()

    def request_reload(self) -> None:
        """Reload the configuration at the next tick."""
        self._reload_requested.set()
        self.scheduler.wake()

    def request_rescan(self) -> None:
        """Scan every folder again soon (SIGUSR1, what `retry` sends); the configuration is
        not read again. Safe in a signal handler: a ``SimpleQueue.put`` is reentrant."""
        self.scanner.scan_everything()

    # --- main ------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run until ``stop()`` or until the run mode finds the run over."""
        config = self._config()
        self._alerts.start()
        self.scheduler.recover()
        self._start_workers()
        if self._mode.watches:
            self._watcher = self._new_watcher(config)
            self._watcher.start()
        self._start_thread(self.scanner.run, "scanner")
        self.metrics.serve(self.publisher.metrics_sample)
        self._notifier.notify("READY=1")
        log.info("daemon_ready", folders=len(config.folders), once=self._mode.once,
                 workers=config.daemon.workers)
        destinations.log_warnings(config)
        last_snapshot = 0.0
        try:
            while not self._stop.is_set():
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self._reload()
                self.scheduler.tick()
                now = self._now()
                if now - last_snapshot >= self._snapshot_every:
                    last_snapshot = now
                    self.publisher.publish()
                self.heartbeat.feed()
                if self._mode.finished(self.scheduler):
                    break
                self.scheduler.wait(TICK_SECONDS)
        finally:
            self._shutdown()
        return self._mode.summary

    def _new_watcher(self, config: Config) -> FolderWatcher:
        return FolderWatcher(config.folders, self.scheduler.hint, config.daemon.poll_seconds,
                             writers=self._writers, lost=self.scanner.scan_below)

    def _start_thread(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self.heartbeat.watch(thread)
        thread.start()
        self._threads.append(thread)

    def _start_workers(self) -> None:
        """Start workers until ``daemon.workers`` run (after a reload: the missing ones)."""
        running = sum(1 for t in self._threads
                      if t.name.startswith("upload-") and t.is_alive())
        for index in range(running, self._config().daemon.workers):
            self._start_thread(self._work, f"upload-{index}", index)

    def _shutdown(self) -> None:
        self._notifier.notify("STOPPING=1")
        if self._stopped_by is not None:
            log.info("signal_received", signal=self._stopped_by)
        log.info("daemon_stopping")
        self.stop()  # the process's one stop event: the governor's waits end with it
        self._dispatcher.close()
        self.scanner.stop()
        if self._watcher is not None:
            self._watcher.stop()
        for thread in self._threads:
            thread.join()
        self.publisher.publish()  # the last report to the alerts too
        self._alerts.close(self._mode.alerts_flush_seconds)
        self.metrics.close()
        log.info("daemon_stopped")

    # --- workers ---------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        while not self._stop.is_set():
            if index >= self._config().daemon.workers:
                # A reload lowered daemon.workers: this one ends between files.
                self.heartbeat.finished()
                return
            self.heartbeat.beat()
            job = self._dispatcher.get(timeout=0.5)
            if job is None:
                continue
            record = self._journal.get(job.id)
            self.heartbeat.working(record.path)
            try:
                outcome = self._uploader.process(record)  # never raises
            finally:
                self.heartbeat.working(None)
            self._dispatcher.finished(outcome.record, outcome.retry_at)
            self.scheduler.finished(outcome)

    # --- reload ----------------------------------------------------------------------------

    def _reload(self) -> None:
        """SIGHUP: apply the configuration file as it is now, without stopping work in flight.

        sd_notify(3): ``RELOADING=1`` with ``MONOTONIC_USEC=`` first, ``READY=1`` once done.
        A configuration that does not load (or changes what cannot change while running) is
        refused and the current one kept. Either way every folder is scanned again and
        pauses are re-checked soon: the operator may have fixed what held them back. (`retry`
        asks for the scan alone, with SIGUSR1: ``request_rescan``.)"""
        self._notifier.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        log.info("reload_started")
        try:
            new = self._reloaded_config()
        except ConfigError as exc:
            log.error("configuration_reload_failed", problems=exc.problems)  # noqa: TRY400 - the problems are the message
        else:
            self._apply(new)
        paused = self.holds.check_soon(self._wall())
        if paused:
            self._dispatcher.release(None if ACCOUNT in paused else {Path(s) for s in paused})
        self.scanner.scan_everything()
        self._notifier.notify("READY=1")
        self.publisher.publish()

    def _reloaded_config(self) -> Config:
        """The configuration file as it is now; raises ``ConfigError`` when it does not load
        or changes what cannot change while running."""
        if self._load_config is None:
            raise ConfigError(["this daemon was started without a configuration file"])
        new = self._load_config()
        state_dir = self._config().daemon.state_dir
        if new.daemon.state_dir != state_dir:
            raise ConfigError([f"daemon.state_dir: cannot change from "
                               f"{state_dir} while running; restart the "
                               "service to move the state directory"])
        return new

    def _apply(self, new: Config) -> None:
        """Make ``new`` the configuration in force (every reader asks ``config.Current``),
        then act on what a changed value alone does not do: the watches of a changed set of
        folders, the number of workers, and the ``on_reload`` hooks (the Procore client's
        settings, the rate ceiling, the log level)."""
        old = {f.path: f for f in self._config().folders}
        now = {f.path: f for f in new.folders}
        added = [str(p) for p in now if p not in old]
        removed = [str(p) for p in old if p not in now]
        changed = [str(p) for p in now if p in old and now[p] != old[p]]
        self._config.set(new)
        self.holds.forget(Path(p) for p in removed)
        if self._watcher is not None and (added or removed or changed):
            # Hints only: a fresh observer over the new set; the rescan below catches what
            # happened in between. Uploads in flight are not touched.
            self._watcher.stop()
            for path in removed:
                self._writers.forget(Path(path))
            self._watcher = self._new_watcher(new)
            self._watcher.start()
        self._start_workers()
        for hook in self._on_reload:
            hook(new)
        log.info("configuration_reloaded", added=added, removed=removed, changed=changed,
                 workers=new.daemon.workers)
        destinations.log_warnings(new)
