"""What the running engine shows of itself: ``STATUS=`` and ``status.json`` (every few
seconds, on the scheduler's thread, where it may read the scheduler's tracker), the pauses and
the oldest waiting file to the alerts (at the same moments: ``AlertSink.holds`` and
``backlog``, which only note them) and the metrics gauges (at each scrape, on the metrics
thread, which reads only what the scheduler publishes: ``Scheduler.view``). It only reads the
engine's parts; it changes none of them.

Which pauses a person is told of (``PausesToTell``, once a pause has lasted ``[alerts]
paused_minutes``): Procore refusing a folder's project or destination, or the login; a drop
folder that cannot be listed (an unmounted share: files dropped there wait unseen); and an
outage, the network down or Procore unavailable, however the rate governor's pauses come
and go during it. Not the governor's waits for a spent rate limit: they end by themselves
within the hour and come back every hour under a steady backlog; when one holds files up
for long, the oldest waiting file is told (``backlog_stuck``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from procore_hotfolder.alerts import NULL_ALERTS, AlertSink, HeldFolder
from procore_hotfolder.config import Config
from procore_hotfolder.engine.dispatch import Dispatcher
from procore_hotfolder.engine.heartbeat import Heartbeat
from procore_hotfolder.engine.pace import PaceLimit
from procore_hotfolder.engine.runmode import RunMode
from procore_hotfolder.engine.scheduler import Scheduler
from procore_hotfolder.metrics import MetricsSample
from procore_hotfolder.model import IN_FLIGHT, FileState
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.state import snapshot
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.holds import ACCOUNT, Hold, HoldBoard, HoldKind
from procore_hotfolder.upload.progress import Progress
from procore_hotfolder.watch.stability import PendingFile
from procore_hotfolder.watch.watcher import FolderWatcher
from procore_hotfolder.watch.writers import Writers


def pending_view(settling: Iterable[tuple[str, PendingFile]], *, wall: float, monotonic: float,
                 settle_for: Callable[[str], float]) -> dict[str, dict[str, Any]]:
    """The snapshot's ``pending``: per settling file, since when (wall clock), its size and
    its folder's quiet period; for a file a writer holds open, why we know and since when.
    The tracker's clock is monotonic; status wants wall time."""
    view: dict[str, dict[str, Any]] = {}
    for key, info in settling:
        item: dict[str, Any] = {"since": wall - (monotonic - info.first_seen),
                                "size": info.observation.size,
                                "settle_seconds": settle_for(key)}
        if info.held is not None:
            item["held"] = info.held
            item["held_since"] = wall - (monotonic - info.held_since)
        view[key] = item
    return view


#: The rate governor's pauses that are an outage (the others are a spent rate limit).
OUTAGE_REASONS = frozenset({"network", "unavailable"})
#: The governor pauses once per failed request, for that request's backoff; the next one
#: may take up to its timeout to fail again. Pauses this close are one outage.
OUTAGE_GAP_SECONDS = 120.0


class PausesToTell:
    """PURE: the holds of the board as the alerts take them (``HeldFolder``), see the module
    docstring. One per scope (a folder, or None: every folder), the one in force longest. A
    refusal and a folder that cannot be listed are as the board has them. The governor's
    outage pauses are joined into one outage while each begins within ``gap_seconds`` of the
    end of the one before; it is over ``gap_seconds`` after the last one ended. One owner
    (the scheduler's thread): it remembers the outage between calls."""

    def __init__(self, gap_seconds: float = OUTAGE_GAP_SECONDS) -> None:
        self._gap = gap_seconds
        self._outage: HeldFolder | None = None
        self._outage_until = 0.0

    def held(self, holds: Iterable[Hold], now: float) -> list[HeldFolder]:
        """The pauses to report at ``now``, given the board's ``holds`` in force."""
        by_scope: dict[Path | None, HeldFolder] = {}
        for hold in holds:
            if hold.kind is HoldKind.API:
                if hold.reason in OUTAGE_REASONS:
                    self._outage_goes_on(hold, now)
                continue
            _keep_oldest(by_scope, HeldFolder(None if hold.scope == ACCOUNT
                                              else Path(hold.scope),
                                              hold.reason, hold.detail, hold.since))
        if self._outage is not None and now > self._outage_until + self._gap:
            self._outage = None
        if self._outage is not None:
            _keep_oldest(by_scope, self._outage)
        return list(by_scope.values())

    def _outage_goes_on(self, hold: Hold, now: float) -> None:
        if self._outage is None or hold.since > self._outage_until + self._gap:
            self._outage = HeldFolder(None, hold.reason, hold.detail, hold.since)
        self._outage_until = max(self._outage_until,
                                 hold.until if hold.until is not None else now)


def _keep_oldest(by_scope: dict[Path | None, HeldFolder], held: HeldFolder) -> None:
    current = by_scope.get(held.folder)
    if current is None or held.since < current.since:
        by_scope[held.folder] = held


class StatusPublisher:
    """``config()``, ``watcher()`` and ``workers()`` are read at each use: a reload changes
    them."""

    def __init__(self, *, config: Callable[[], Config], journal: Journal,
                 scheduler: Scheduler, dispatcher: Dispatcher, governor: RateGovernor,
                 holds: HoldBoard, progress: Progress, heartbeat: Heartbeat, mode: RunMode,
                 watcher: Callable[[], FolderWatcher | None], writers: Writers,
                 workers: Callable[[], int],
                 monotonic: Callable[[], float], wall: Callable[[], float],
                 alerts: AlertSink = NULL_ALERTS) -> None:
        self._config = config
        self._journal = journal
        self._scheduler = scheduler
        self._dispatcher = dispatcher
        self._governor = governor
        self._holds = holds
        self._progress = progress
        self._heartbeat = heartbeat
        self._mode = mode
        self._watcher = watcher
        self._writers = writers
        self._workers = workers
        self._now = monotonic
        self._wall = wall
        self._pace_limit = PaceLimit(monotonic())
        self._alerts = alerts
        self._pauses_to_tell = PausesToTell()

    def publish(self) -> None:
        """``STATUS=`` to systemd, then ``status.json`` for `status` and `explain`; the
        pauses and the oldest waiting file to the alerts."""
        scheduler = self._scheduler
        counts = self._dispatcher.counts()
        wall, now = self._wall(), self._now()
        holds = self._holds.current(wall)
        last = scheduler.last_upload
        self._heartbeat.status(waiting=len(scheduler.tracker), counts=counts,
                               last_upload=last["path"] if last else "none", holds=holds)
        pending = pending_view(
            scheduler.tracker.sample(snapshot.SNAPSHOT_PENDING_LIMIT), wall=wall,
            monotonic=now, settle_for=self._settle_for)
        bound_by = self._pace_limit.bound_by(
            paused=any(h.kind is not HoldKind.FOLDER for h in holds), now=now,
            quota_wait_seconds=self._governor.quota_wait_seconds, workers=self._workers())
        watcher = self._watcher()
        snapshot.write_snapshot(self._config().daemon.state_dir, snapshot.build_snapshot(
            pid=os.getpid(), updated=wall, once=self._mode.once, counts=counts,
            waiting=len(scheduler.tracker), pending=pending, skipped=scheduler.skipped,
            modes=watcher.modes if watcher else {},
            writers={path: sight.as_dict() for path, sight in self._writers.sights().items()},
            holds=[h.as_dict() for h in holds],
            files_per_hour=scheduler.pace.files_per_hour(now), bound_by=bound_by,
            uploading=self._progress.snapshot(), last_upload=last))
        self._alerts.holds(wall, self._pauses_to_tell.held(holds, wall))
        oldest = self._oldest_waiting(wall, now)
        if oldest is None:
            self._alerts.backlog(wall, None, 0.0)
        else:
            self._alerts.backlog(wall, oldest[0], wall - oldest[1])

    def _oldest_waiting(self, wall: float, now: float) -> tuple[Path, float] | None:
        """The file waiting longest, settling or with an unfinished row (queued, waiting
        for a retry or a pause, uploading), and since when (wall clock): as the metrics'
        ``oldest_waiting_seconds`` counts them."""
        waiting: list[tuple[Path, float]] = []
        settling = self._scheduler.view.oldest_file
        if settling is not None:
            waiting.append((Path(settling[0]), wall - (now - settling[1])))
        queued = self._journal.oldest_unfinished()
        if queued is not None:
            waiting.append(queued)
        return min(waiting, key=lambda item: item[1], default=None)

    def _settle_for(self, key: str) -> float:
        folder = self._config().folder_for(Path(key))
        return folder.settle_seconds if folder else 0.0

    def metrics_sample(self) -> MetricsSample:
        """Queue per folder and state, oldest waiting file, holds in force."""
        config = self._config()
        wall = self._wall()
        queue: dict[str, dict[str, int]] = {str(f.path): {} for f in config.folders}
        since: dict[str, float] = {}
        monotonic_now = self._now()
        view = self._scheduler.view  # on the metrics thread: never the live tracker
        for label, waiting in view.waiting.items():
            if label in queue and waiting:
                queue[label]["waiting"] = waiting
                first_seen = view.oldest.get(label)
                if first_seen is not None:
                    since[label] = wall - (monotonic_now - first_seen)
        for path, by_state in self._journal.queue_summary().items():
            counts = queue.setdefault(str(path), {})
            for state, (n, oldest) in by_state.items():
                kind = ("failed" if state == FileState.FAILED.value else "uploading"
                        if FileState(state) in IN_FLIGHT else "queued")
                counts[kind] = counts.get(kind, 0) + n
                if kind != "failed":
                    since[str(path)] = min(since.get(str(path), oldest), oldest)
        paused = [("" if h.scope == ACCOUNT else h.scope, h.reason)
                  for h in self._holds.current(wall)]
        return MetricsSample(queue=queue,
                             oldest_waiting_seconds={k: max(0.0, wall - v)
                                                     for k, v in since.items()},
                             paused=tuple(paused))
