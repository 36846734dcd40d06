"""The work queue between the scheduler and the upload workers.

Fair across folders: each folder has its own queue and workers take from them in turn, so a
backlog of thousands of files in one folder delays a new file in another by at most a few
uploads. Rows with a retry time wait in a heap until it passes. Under `run`, the rows of a
folder that Procore refuses (a hold on the board of holds, ``held``) stay queued until its
re-check is due: then a worker takes one, and the pipeline's admission makes it the re-check;
the others are not handed out one by one only to be put back.

Two clocks, one per kind of value: a retry time is wall-clock (Unix seconds: the journal keeps
it across restarts, and the board of holds speaks it too); how long ``get`` waits is a
duration, measured on the monotonic clock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from procore_hotfolder.state.journal import FileRecord


@dataclass(frozen=True, slots=True)
class Job:
    """A journal row waiting for a worker: its id and folder, nothing more. The journal is
    the queue's memory; a backlog of 50,000 files costs a few MiB here, not a row each."""

    id: int
    folder: Path


class Dispatcher:
    """Thread-safe fair queue of journal rows; each row is handed to one worker at a time."""

    def __init__(self, *, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 held: Callable[[Path, float], float | None] | None = None) -> None:
        """``held(folder, now)``: until when (wall clock) the rows of ``folder`` wait for a
        hold, or None (the board's ``waits_until``); without it no row waits for a hold."""
        self._wall = wall
        self._monotonic = monotonic
        self._held = held
        self._cond = threading.Condition()
        self._queues: dict[Path, deque[Job]] = {}
        self._order: list[Path] = []
        self._turn = 0
        self._delayed: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._known: set[int] = set()      # queued, delayed or in flight
        self._in_flight: dict[int, Job] = {}
        self._closed = False

    def push(self, record: FileRecord | Job, at: float | None = None) -> None:
        """Queue a row now, or at ``at`` (wall clock; a record: its ``next_attempt_at``). A
        row already known is ignored."""
        if isinstance(record, FileRecord):
            at = record.next_attempt_at if at is None else at
            record = Job(record.id, record.folder)
        with self._cond:
            if record.id in self._known:
                return
            self._known.add(record.id)
            self._place(record, at or 0.0)
            self._cond.notify()

    def _place(self, job: Job, at: float) -> None:
        if at > self._wall():
            heapq.heappush(self._delayed, (at, next(self._seq), job))
            return
        queue = self._queues.get(job.folder)
        if queue is None:
            # One Path object per folder, shared by all its jobs.
            queue = self._queues[job.folder] = deque()
            self._order.append(job.folder)
        queue.append(job)

    def _release_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job = heapq.heappop(self._delayed)
            self._place(job, 0.0)

    def get(self, timeout: float) -> Job | None:
        """The next row, round-robin across folders, passing over the folders whose rows
        wait for a hold; None after ``timeout`` seconds or when closed."""
        deadline = self._monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = self._wall()
                self._release_due(now)
                next_due = self._delayed[0][0] if self._delayed else None
                for _ in range(len(self._order)):
                    folder = self._order[self._turn % len(self._order)]
                    self._turn += 1
                    queue = self._queues[folder]
                    if not queue:
                        continue
                    held_until = self._held(folder, now) if self._held is not None else None
                    if held_until is not None:
                        next_due = held_until if next_due is None else min(next_due, held_until)
                        continue
                    job = queue.popleft()
                    self._in_flight[job.id] = job
                    return job
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return None
                wait = remaining
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - now) + 0.01)
                self._cond.wait(wait)
            return None

    def finished(self, job: Job | FileRecord, retry_at: float | None) -> None:
        """A worker is done with ``job``; a ``retry_at`` (wall clock) puts it back, to be
        handed out again at that time (the end of a hold may let others go: every waiting
        ``get`` looks again)."""
        with self._cond:
            self._in_flight.pop(job.id, None)
            if retry_at is not None and not self._closed:
                self._place(Job(job.id, job.folder), retry_at)
            else:
                self._known.discard(job.id)
            self._cond.notify_all()

    def release(self, folders: set[Path] | None) -> None:
        """Hand out the waiting rows of ``folders`` (every folder: None) now, not at their
        retry time (a reload: a pause they wait for is re-checked at once)."""
        with self._cond:
            keep = []
            for entry in self._delayed:
                if folders is None or entry[2].folder in folders:
                    self._place(entry[2], 0.0)
                else:
                    keep.append(entry)
            heapq.heapify(keep)
            self._delayed = keep
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued, delayed or in flight."""
        with self._cond:
            return not self._known

    def ready(self, folder: Path | None = None) -> int:
        """Rows waiting for a worker now (not those waiting for their retry time, but those
        held for their folder's re-check), of ``folder`` or of all."""
        with self._cond:
            if folder is not None:
                queue = self._queues.get(folder)
                return len(queue) if queue is not None else 0
            return sum(len(q) for q in self._queues.values())

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {
                "queued": sum(len(q) for q in self._queues.values()),
                "delayed": len(self._delayed),
                "in_flight": len(self._in_flight),
            }
