"""Procore's rate limits over API calls: an hourly window and a 10-second spike window.

``RateLimits`` counts each API call against both, refuses it (429) when one is spent, and
says which window's ``X-Rate-Limit-*`` headers an answer carries.

How a window counts is its kind (``faults.WINDOW_KINDS``). Procore's Rate Limiting page
(``procore/documentation`` ``plan_your_app/rate_limiting.md``) says of
``X-Rate-Limit-Remaining``: "For short-term windows, this value may increase again after a
brief pause as the window rolls forward", so the spike window slides. Whether the hourly
one ("60-minute window", same page) slides, starts with the first call or follows the
clock is not documented; it slides too unless a test says otherwise, the least convenient
reading for a client: nothing but the calls that aged out is back at ``Reset``, and a client
that takes ``Reset`` for "the whole limit is back" is refused.

- ``sliding``: the calls counted in the last ``seconds``; a call leaves the window
  ``seconds`` after it was counted, and ``Reset`` is when the oldest call in it leaves.
- ``first_call``: a period starts with the first call after the previous period ended and
  lasts ``seconds``; the whole limit is back at its end.
- ``clock``: periods at whole multiples of ``seconds`` of Unix time.

``Reset`` is rounded up to whole Unix seconds, as Procore's is ("The Unix timestamp (in
seconds)", same page).
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass

from .faults import Faults

#: The hourly window when ``Faults.rate_limit`` is None: never spent.
_UNLIMITED = (1_000_000_000, 3600.0)


@dataclass(frozen=True)
class WindowRule:
    """What a window allows: ``limit`` calls per ``seconds``, counted as ``kind`` says."""

    limit: int
    seconds: float
    kind: str


class RateWindow:
    """One window's calls. Starts afresh whenever its rule changes (an admin request)."""

    def __init__(self) -> None:
        self._rule: WindowRule | None = None
        self._calls: deque[float] = deque()  # when each call in the window was counted
        self._start = -math.inf  # first_call, clock: the current period's start

    def _roll(self, rule: WindowRule, now: float) -> None:
        """Let the calls that have left the window go."""
        if rule != self._rule:
            self._rule, self._start = rule, -math.inf
            self._calls.clear()
        if rule.kind == "sliding":
            while self._calls and self._calls[0] <= now - rule.seconds:
                self._calls.popleft()
        elif now >= self._start + rule.seconds:
            if rule.kind == "clock":
                self._start = math.floor(now / rule.seconds) * rule.seconds
            else:
                self._start = now
            self._calls.clear()

    def count(self, rule: WindowRule, now: float) -> int:
        """Calls in the window at ``now``."""
        self._roll(rule, now)
        return len(self._calls)

    def take(self, now: float) -> None:
        """Count one call (after ``count`` said it fits)."""
        self._calls.append(now)

    def room(self, rule: WindowRule, now: float) -> float:
        """Share of the window's calls still left (0 = exhausted)."""
        left = max(0, rule.limit - self.count(rule, now))
        return left / rule.limit if rule.limit else 0.0

    def reset_at(self, rule: WindowRule, now: float) -> float:
        """When the window resets (Unix seconds, exact): a sliding window when its oldest
        call leaves it (or one counted now would), the others when the period ends."""
        self._roll(rule, now)
        if rule.kind == "sliding":
            return (self._calls[0] if self._calls else now) + rule.seconds
        return self._start + rule.seconds

    def headers(self, rule: WindowRule, now: float) -> dict[str, str]:
        """Current headers without counting a call."""
        return {
            "X-Rate-Limit-Limit": str(rule.limit),
            "X-Rate-Limit-Remaining": str(max(0, rule.limit - self.count(rule, now))),
            "X-Rate-Limit-Reset": str(math.ceil(self.reset_at(rule, now))),
        }


@dataclass
class RateDecision:
    """What the rate windows made of one API call."""

    admitted: bool
    window: str  # "hourly" or "spike": whose headers these are
    headers: dict[str, str]
    retry_after: int = 0


_Window = tuple[str, RateWindow, WindowRule]


class RateLimits:
    """The hourly window (``Faults.rate_limit``, counted as ``Faults.rate_limit_kind``)
    and, when set, the spike window (``Faults.spike_limit``, ``Faults.spike_limit_kind``);
    ``refused`` counts the 429s each window caused."""

    def __init__(self, faults: Faults, lock: threading.RLock) -> None:
        self._faults = faults
        self._lock = lock
        self.hourly = RateWindow()
        self.spike = RateWindow()
        self.refused: Counter[str] = Counter()  # window name -> 429s it caused

    def _windows(self) -> list[_Window]:
        faults = self._faults
        hourly = faults.rate_limit or _UNLIMITED
        windows: list[_Window] = [
            ("hourly", self.hourly, WindowRule(*hourly, faults.rate_limit_kind))]
        if faults.spike_limit is not None:
            windows.append(
                ("spike", self.spike, WindowRule(*faults.spike_limit, faults.spike_limit_kind)))
        return windows

    def admit(self, now: float) -> RateDecision:
        """Count one API call against both windows, or refuse it (429).

        Procore: "The values returned reflect the limit your app is most likely to exceed
        first. In most cases, the spike limit is reported until you are very close to
        exhausting the hourly limit" (Rate Limiting, ``procore/documentation``
        ``plan_your_app/rate_limiting.md``). Most likely to be exceeded first = the smaller
        share of calls left. A refused call gets the headers of the window that refused it
        (of both, the one that resets later) and counts against neither: Procore does not
        say whether refused calls count.
        """
        with self._lock:
            windows = self._windows()
            refused = [w for w in windows if w[1].count(w[2], now) >= w[2].limit]
            if refused:
                name, window, rule = max(refused, key=lambda w: w[1].reset_at(w[2], now))
                self.refused[name] += 1
                return RateDecision(False, name, window.headers(rule, now),
                                    max(1, math.ceil(window.reset_at(rule, now) - now)))
            for _, window, _ in windows:
                window.take(now)
            return self._closest(windows, now)

    def headers(self, now: float) -> dict[str, str]:
        """The headers of the window closest to exhaustion, without counting a call."""
        with self._lock:
            return self._closest(self._windows(), now).headers

    @staticmethod
    def _closest(windows: list[_Window], now: float) -> RateDecision:
        name, window, rule = min(windows, key=lambda w: w[1].room(w[2], now))
        return RateDecision(True, name, window.headers(rule, now))
