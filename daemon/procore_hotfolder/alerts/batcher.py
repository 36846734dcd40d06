"""PURE: which alert events are due, and which go out together. Every call takes ``now``.

Rules (``[alerts]``'s thresholds; tested as tables in ``tests/unit/alerts/test_batcher.py``):

1. **Batches.** The first event that is due opens a window of ``batch_seconds``; everything
   that becomes due until it closes goes out with it as one ``Batch`` (at most one message per
   window). ``flush`` closes the window early (a stop: ``once`` sends what it has).
2. **Failures only.** The events are failures and pauses: nothing is added for a file that
   uploads. Beyond ``max_events`` failures in one window the rest are counted (``omitted``),
   not kept, so a flood of failures costs no memory.
3. **Pauses.** ``holds`` reports the pauses in force. A pause becomes ``FolderPaused`` once it
   has lasted ``paused_minutes`` (by its ``since``), once per pause; a pause that ends sooner
   is never mentioned. ``FolderResumed`` follows only a ``FolderPaused`` that went out (was
   handed over in a batch, or is waiting in the open one); a pause that begins anew (another
   ``since``) for a folder whose pause was told counts as the end of the told one.
4. **Backlog.** ``backlog`` reports the oldest waiting file and its age. Past
   ``oldest_waiting_minutes`` it becomes ``BacklogStuck``, once for that file. Another file
   becoming the oldest means the queue moved: it is told only when it too stays the oldest for
   ``oldest_waiting_minutes`` (a backlog that drains slowly is not stuck), or at once when the
   backlog had caught up in between (no file waiting, or the oldest younger than the
   threshold). One ``BacklogStuck`` per window at most: a newer one replaces an older one.

The thresholds are checked at every call, so a pause or a file crosses its threshold at the
first ``due`` (or ``holds``/``backlog``) after it; ``next_due`` says when that is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from procore_hotfolder.alerts.events import (
    AlertEvent,
    BacklogStuck,
    FileFailed,
    FolderPaused,
    FolderResumed,
    HeldFolder,
)
from procore_hotfolder.config import AlertSettings

#: Failures kept per window; past this they are counted only.
MAX_EVENTS = 100


@dataclass(frozen=True)
class Thresholds:
    """The batcher's three durations, in seconds."""

    paused_seconds: float = 15 * 60.0
    oldest_waiting_seconds: float = 120 * 60.0
    batch_seconds: float = 60.0

    @classmethod
    def of(cls, settings: AlertSettings) -> Thresholds:
        return cls(paused_seconds=settings.paused_minutes * 60,
                   oldest_waiting_seconds=settings.oldest_waiting_minutes * 60,
                   batch_seconds=settings.batch_seconds)


@dataclass(frozen=True)
class Batch:
    """What goes out as one message: the events in the order they became due, and how many
    failures were counted but not kept."""

    events: tuple[AlertEvent, ...]
    omitted: int = 0

    def count(self, kind: str) -> int:
        """Events of ``kind`` (``file_failed`` includes the omitted ones)."""
        kept = sum(1 for e in self.events if e.kind == kind)
        return kept + (self.omitted if kind == FileFailed.kind else 0)


@dataclass(frozen=True)
class _Oldest:
    path: Path
    waiting_since: float
    oldest_since: float  # when it became the oldest


class Batcher:
    """The rules of the module docstring. Not thread-safe: one owner (the delivery loop)."""

    def __init__(self, thresholds: Thresholds, *, max_events: int = MAX_EVENTS) -> None:
        self._limits = thresholds
        self._max_events = max_events
        self._pending: list[AlertEvent] = []
        self._omitted = 0
        self._opened: float | None = None
        self._holds: dict[Path | None, HeldFolder] = {}
        self._told_paused: dict[Path | None, HeldFolder] = {}
        self._oldest: _Oldest | None = None
        self._told_stuck: Path | None = None

    # --- what the engine reports ------------------------------------------------------------

    def file_failed(self, now: float, event: FileFailed) -> None:
        """A file failed for good."""
        if sum(1 for e in self._pending if isinstance(e, FileFailed)) >= self._max_events:
            self._omitted += 1
            self._open(now)
        else:
            self._add(now, event)

    def holds(self, now: float, holds: Iterable[HeldFolder]) -> None:
        """The pauses in force now (all of them: a folder left out has resumed)."""
        self._holds = {hold.folder: hold for hold in holds}
        self._promote(now)

    def backlog(self, now: float, oldest: Path | None, age_seconds: float) -> None:
        """The oldest file waiting or queued now, and its age (None: nothing waits)."""
        if oldest is None or age_seconds < self._limits.oldest_waiting_seconds:
            self._told_stuck = None  # caught up: the next stuck file is news again
        if oldest is None:
            self._oldest = None
        elif self._oldest is None or self._oldest.path != oldest:
            self._oldest = _Oldest(oldest, now - age_seconds, oldest_since=now)
        self._promote(now)

    # --- what goes out ----------------------------------------------------------------------

    def due(self, now: float) -> Batch | None:
        """The batch whose window has closed by ``now``, or None."""
        self._promote(now)
        if self._opened is None or now < self._opened + self._limits.batch_seconds:
            return None
        return self._take()

    def flush(self, now: float) -> Batch | None:
        """Everything due by ``now``, window open or not (None: nothing)."""
        self._promote(now)
        return self._take() if self._opened is not None else None

    def next_due(self) -> float | None:
        """The earliest time at which ``due`` may return a batch (None: not before something
        is reported)."""
        times: list[float] = []
        if self._opened is not None:
            times.append(self._opened + self._limits.batch_seconds)
        for folder, hold in self._holds.items():
            if folder not in self._told_paused:
                times.append(hold.since + self._limits.paused_seconds)
        stuck = self._stuck_at()
        if stuck is not None:
            times.append(stuck)
        return min(times) if times else None

    # --- inside -----------------------------------------------------------------------------

    def _promote(self, now: float) -> None:
        """Turn pauses and the backlog that crossed their thresholds into events."""
        for folder, told in list(self._told_paused.items()):
            current = self._holds.get(folder)
            if current is None or current.since != told.since:
                ended = now if current is None else min(now, current.since)
                del self._told_paused[folder]
                self._add(now, FolderResumed(folder, told.reason, told.since, ended))
        for folder, hold in self._holds.items():
            if folder not in self._told_paused and \
                    now - hold.since >= self._limits.paused_seconds:
                self._told_paused[folder] = hold
                self._add(now, FolderPaused(folder, hold.reason, hold.detail, hold.since))
        stuck = self._stuck_at()
        if stuck is not None and self._oldest is not None and now >= stuck:
            self._told_stuck = self._oldest.path
            self._pending = [e for e in self._pending if not isinstance(e, BacklogStuck)]
            self._add(now, BacklogStuck(now, self._oldest.path, self._oldest.waiting_since))

    def _stuck_at(self) -> float | None:
        """When the oldest file is to be told stuck (None: not to be told)."""
        oldest = self._oldest
        if oldest is None or oldest.path == self._told_stuck:
            return None
        at = oldest.waiting_since + self._limits.oldest_waiting_seconds
        if self._told_stuck is not None:  # the queue moved since the last one told
            at = max(at, oldest.oldest_since + self._limits.oldest_waiting_seconds)
        return at

    def _add(self, now: float, event: AlertEvent) -> None:
        self._pending.append(event)
        self._open(now)

    def _open(self, now: float) -> None:
        if self._opened is None:
            self._opened = now

    def _take(self) -> Batch:
        batch = Batch(tuple(self._pending), omitted=self._omitted)
        self._pending, self._omitted, self._opened = [], 0, None
        return batch
