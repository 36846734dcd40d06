"""PURE: the pace of uploads and what holds it back, as `status` quotes them.

Both are fed the monotonic time as an argument; neither reads a clock.
"""

from __future__ import annotations

from collections import deque


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


class PaceLimit:
    """What holds the pace back: ``pause`` (Procore refusing, an outage), ``quota`` (workers
    kept waiting by the rate governor more than a quarter of the time since the last look,
    looked at every ``LOOK_SECONDS`` at most), or ``uploads`` (bandwidth, Procore's answer
    times)."""

    LOOK_SECONDS = 10.0
    QUOTA_SHARE = 0.25

    def __init__(self, now: float) -> None:
        self._sample = (now, 0.0)
        self._bound_by = "uploads"

    def bound_by(self, *, paused: bool, now: float, quota_wait_seconds: float,
                 workers: int) -> str:
        """``quota_wait_seconds``: the governor's total of time workers waited for the quota
        so far (it only grows); ``workers``: how many could have waited."""
        if paused:
            return "pause"
        then, waited_then = self._sample
        if now - then >= self.LOOK_SECONDS:
            share = (quota_wait_seconds - waited_then) / max(1e-6, (now - then) * workers)
            self._bound_by = "quota" if share > self.QUOTA_SHARE else "uploads"
            self._sample = (now, quota_wait_seconds)
        return self._bound_by
