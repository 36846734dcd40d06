"""Procore's rate limits over API calls: an hourly window and a 10-second spike window.

``RateLimits`` counts each API call against both, refuses it (429) when one is spent, and
says which window's ``X-Rate-Limit-*`` headers an answer carries.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass

from .faults import Faults

_Window = tuple[str, "RateWindow", tuple[int, float] | None]


class RateWindow:
    """Fixed-window counter of API calls; restarts whenever the configured limit changes."""

    def __init__(self) -> None:
        self._config: tuple[int, float] | None = None
        self._start = 0.0
        self._count = 0

    def _roll(self, config: tuple[int, float] | None, now: float) -> tuple[int, float]:
        effective = config or (1_000_000_000, 3600.0)
        if config != self._config or now >= self._start + effective[1]:
            self._config, self._start, self._count = config, now, 0
        return effective

    def allows(self, config: tuple[int, float] | None, now: float) -> bool:
        """Whether one more call fits, without counting it."""
        limit, _ = self._roll(config, now)
        return self._count < limit

    def take(self) -> None:
        """Count one call (after ``allows``)."""
        self._count += 1

    def room(self, config: tuple[int, float] | None, now: float) -> float:
        """Share of the window's calls still left (0 = exhausted)."""
        limit, _ = self._roll(config, now)
        return max(0, limit - self._count) / limit if limit else 0.0

    def reset_at(self, config: tuple[int, float] | None, now: float) -> float:
        """When the current window ends (Unix seconds)."""
        _, window = self._roll(config, now)
        return self._start + window

    def headers(self, config: tuple[int, float] | None, now: float) -> dict[str, str]:
        """Current headers without counting a call."""
        limit, window = self._roll(config, now)
        return {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(max(0, limit - self._count)),
            "X-Rate-Limit-Reset": str(math.ceil(self._start + window)),
        }


@dataclass
class RateDecision:
    """What the rate windows made of one API call."""

    admitted: bool
    window: str  # "hourly" or "spike": whose headers these are
    headers: dict[str, str]
    retry_after: int = 0


class RateLimits:
    """The hourly window (``Faults.rate_limit``) and, when set, the spike window
    (``Faults.spike_limit``); ``refused`` counts the 429s each window caused."""

    def __init__(self, faults: Faults, lock: threading.RLock) -> None:
        self._faults = faults
        self._lock = lock
        self.hourly = RateWindow()
        self.spike = RateWindow()
        self.refused: Counter[str] = Counter()  # window name -> 429s it caused

    def _windows(self) -> list[_Window]:
        windows: list[_Window] = [("hourly", self.hourly, self._faults.rate_limit)]
        if self._faults.spike_limit is not None:
            windows.append(("spike", self.spike, self._faults.spike_limit))
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
            refused = [w for w in windows if not w[1].allows(w[2], now)]
            if refused:
                name, window, config = max(refused, key=lambda w: w[1].reset_at(w[2], now))
                self.refused[name] += 1
                return RateDecision(False, name, window.headers(config, now),
                                    max(1, math.ceil(window.reset_at(config, now) - now)))
            for _, window, _ in windows:
                window.take()
            return self._closest(windows, now)

    def headers(self, now: float) -> dict[str, str]:
        """The headers of the window closest to exhaustion, without counting a call."""
        with self._lock:
            return self._closest(self._windows(), now).headers

    @staticmethod
    def _closest(windows: list[_Window], now: float) -> RateDecision:
        name, window, config = min(windows, key=lambda w: w[1].room(w[2], now))
        return RateDecision(True, name, window.headers(config, now))
