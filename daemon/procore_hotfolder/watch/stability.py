"""PURE: decides when a file has settled, given observations and ``now``.

A file counts as complete once two observations at least ``settle_seconds`` apart saw the
same size, mtime, inode and device (and ctime, when both observations carry one). The quiet
period is measured from when we *observed* the current values, never from the file's mtime:
a copy that preserves an old mtime still waits the full settle time.

No clock, no filesystem: the caller passes what ``lstat()`` saw and the current monotonic
time, so tests advance a fake clock instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from procore_hotfolder.model import Observation


@dataclass(frozen=True, slots=True)
class PendingFile:
    """A file waiting to settle, for status and ``explain``.

    ``first_seen``: when the tracker first heard of it; ``last_change``: when the current
    observation was first seen (the quiet period starts there); ``last_seen``: the latest
    observation that confirmed it; ``settle_seconds``: the quiet time this file needs.
    """

    first_seen: float
    last_change: float
    observation: Observation
    last_seen: float = 0.0
    settle_seconds: float = 0.0
    group: str = ""  # the watched folder it belongs to (counted per group)
    #: Settled, but a writer still holds it open: why we know (None: no writer seen).
    held: str | None = None
    held_since: float = 0.0

    @property
    def settled(self) -> bool:
        """Unchanged across a full quiet period (size not considered)."""
        return self.last_seen - self.last_change >= self.settle_seconds


class SettleTracker:
    """Files waiting for their quiet period; O(1) per ``observe``.

    Not thread-safe: one scheduler thread owns it.
    """

    def __init__(self) -> None:
        self._pending: dict[str, PendingFile] = {}
        # Keys settled with size > 0, in the order they settled: what ``due`` hands out.
        self._ready: dict[str, None] = {}
        # Keys whose size is 0 -> when the size was first seen as 0 (consecutively).
        self._empty_since: dict[str, float] = {}
        # Keys settled but held open by a writer (see ``hold``).
        self._held: set[str] = set()
        # When each file's quiet period ends (it is worth an lstat() then), as a heap: a
        # tick looks at the files whose time has come, not at every file waiting.
        self._checks: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._per_group: dict[str, int] = {}

    def observe(
        self, key: str, obs: Observation | None, now: float, settle_seconds: float,
        group: str = "",
    ) -> None:
        """Record what an ``lstat()`` of ``key`` saw at ``now``.

        ``obs`` None means the file is gone: it is forgotten. A changed observation restarts
        the quiet period from ``now``; an unchanged one confirms it, and once confirmed at
        least ``settle_seconds`` after the change the file becomes due (if not empty).
        """
        if obs is None:
            self.forget(key)
            return
        old = self._pending.get(key)
        if old is None or not old.observation.unchanged_since(obs):
            entry = PendingFile(
                first_seen=old.first_seen if old is not None else now,
                last_change=now, observation=obs, last_seen=now,
                settle_seconds=settle_seconds, group=old.group if old is not None else group)
            self._ready.pop(key, None)
        else:
            entry = PendingFile(
                first_seen=old.first_seen, last_change=old.last_change, observation=obs,
                last_seen=max(now, old.last_seen), settle_seconds=settle_seconds,
                group=old.group, held=old.held, held_since=old.held_since)
        if old is None:
            self._per_group[entry.group] = self._per_group.get(entry.group, 0) + 1
        if entry.held is None:
            self._held.discard(key)
        self._pending[key] = entry
        if entry.last_change == now:
            self._schedule(key, now + settle_seconds)
        if obs.size == 0:
            if old is None or old.observation.size != 0:
                self._empty_since[key] = now
            self._ready.pop(key, None)
            return
        self._empty_since.pop(key, None)
        if entry.settled:
            self._ready[key] = None
        else:
            self._ready.pop(key, None)

    def _schedule(self, key: str, at: float) -> None:
        heapq.heappush(self._checks, (at, next(self._seq), key))

    def to_recheck(self, now: float) -> list[str]:
        """Files whose quiet period has run by ``now``: look at each again (``observe``); an
        unchanged one becomes due. An empty one is looked at again every quiet period."""
        out: list[str] = []
        seen: set[str] = set()
        while self._checks and self._checks[0][0] <= now:
            _, _, key = heapq.heappop(self._checks)
            entry = self._pending.get(key)
            if entry is None or key in self._ready or key in seen:
                continue  # forgotten, already due, or listed twice
            if now - entry.last_change < entry.settle_seconds:
                continue  # changed since: its own, later check is in the heap
            seen.add(key)
            out.append(key)
            if entry.observation.size == 0:
                self._schedule(key, now + max(entry.settle_seconds, 1.0))
        return out

    def due(self, now: float) -> list[tuple[str, PendingFile]]:
        """Settled, non-empty files (removed from the tracker as they are returned).

        A file is due once an observation confirmed its values ``settle_seconds`` after
        they were first seen; ``now`` guards against confirmations from the future. The
        caller either takes it or ``hold``s it.
        """
        out: list[tuple[str, PendingFile]] = []
        for key in list(self._ready):
            entry = self._pending[key]
            if entry.last_seen <= now:
                out.append((key, entry))
                self.forget(key)
        return out

    def hold(self, key: str, entry: PendingFile, why: str, now: float, recheck_at: float
             ) -> None:
        """Keep a settled file (``entry``, as ``due`` returned it) waiting because a writer
        holds it open (``why``): it is looked at again at ``recheck_at`` (or at the next
        ``observe``), and becomes due once its values are unchanged and nobody writes."""
        held = PendingFile(first_seen=entry.first_seen, last_change=entry.last_change,
                           observation=entry.observation, last_seen=entry.last_seen,
                           settle_seconds=entry.settle_seconds, group=entry.group, held=why,
                           held_since=entry.held_since if entry.held else now)
        if key not in self._pending:
            self._per_group[held.group] = self._per_group.get(held.group, 0) + 1
        self._pending[key] = held
        self._ready.pop(key, None)
        self._held.add(key)
        self._schedule(key, recheck_at)

    def empty_overdue(self, now: float, timeout: float) -> list[str]:
        """Keys whose size has been 0 for at least ``timeout`` seconds (removed as returned)."""
        overdue = [key for key, since in self._empty_since.items() if now - since >= timeout]
        for key in overdue:
            self.forget(key)
        return overdue

    def forget(self, key: str) -> None:
        """Stop tracking ``key`` (a no-op when it is not tracked)."""
        entry = self._pending.pop(key, None)
        if entry is not None:
            left = self._per_group[entry.group] - 1
            if left:
                self._per_group[entry.group] = left
            else:
                del self._per_group[entry.group]
        self._ready.pop(key, None)
        self._empty_since.pop(key, None)
        self._held.discard(key)

    def pending(self) -> dict[str, PendingFile]:
        """A snapshot of every tracked file (a copy: safe to iterate while observing)."""
        return dict(self._pending)

    def sample(self, limit: int) -> Iterator[tuple[str, PendingFile]]:
        """At most ``limit`` tracked files, oldest first (for the status snapshot)."""
        return itertools.islice(self._pending.items(), limit)

    def count(self, group: str) -> int:
        """Files tracked for ``group`` (a watched folder)."""
        return self._per_group.get(group, 0)

    def waiting_with_content(self) -> int:
        """Tracked files that are neither empty (a scanner still to write) nor held open by
        a writer: the files about to settle."""
        return len(self._pending) - len(self._empty_since) - len(self._held)

    def held(self) -> int:
        """Settled files that a writer holds open."""
        return len(self._held)


    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending
