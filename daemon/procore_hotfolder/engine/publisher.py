"""What the running engine shows of itself: ``STATUS=`` and ``status.json`` (every few
seconds, on the scheduler's thread, where it may read the scheduler's tracker) and the metrics
gauges (at each scrape, on the metrics thread, which reads only what the scheduler publishes:
``Scheduler.view``). It only reads the engine's parts; it changes none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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
from procore_hotfolder.upload.holds import ACCOUNT, HoldBoard, HoldKind
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


class StatusPublisher:
    """``config()``, ``watcher()`` and ``workers()`` are read at each use: a reload changes
    them."""

    def __init__(self, *, config: Callable[[], Config], journal: Journal,
                 scheduler: Scheduler, dispatcher: Dispatcher, governor: RateGovernor,
                 holds: HoldBoard, progress: Progress, heartbeat: Heartbeat, mode: RunMode,
                 watcher: Callable[[], FolderWatcher | None], writers: Writers,
                 workers: Callable[[], int],
                 monotonic: Callable[[], float], wall: Callable[[], float]) -> None:
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

    def publish(self) -> None:
        """``STATUS=`` to systemd, then ``status.json`` for `status` and `explain`."""
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
