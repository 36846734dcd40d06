"""Pacing of Procore API calls, shared by every worker thread.

Procore reports, on every API response, the window closest to exhaustion:
``X-Rate-Limit-Limit``, ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (Unix seconds).
The ``RateGovernor`` keeps an estimate of the calls left in that window (the server's last
``Remaining`` minus the calls sent since and still unanswered) and:

- lets calls through at once while plenty is left (at least half of the limit above the
  reserve): a burst of small files is not slowed down;
- below that, spreads the calls left over the time left until the reset, so the window is
  used evenly and ``Remaining`` does not run out;
- keeps a small reserve (5 % of the limit, rounded down) for other users of the account;
- when the estimate is used up, waits for the reset; after the reset it sends one call at a
  time until an answer describes the new window (the server may count windows differently
  from what we assume);
- on 429 (and 503 with ``Retry-After``) pauses every caller until the later of the reset and
  ``Retry-After``, plus a little jitter; ``pause()`` does the same for a network outage.

Nothing about the limits is hard-coded: everything comes from the headers. Storage requests
are not API calls and never pass through here. Sleeping goes through an injectable ``wait``
so that tests drive the governor with a fake clock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

import structlog

from procore_hotfolder.errors import Stopping
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.retry import parse_retry_after

log = structlog.get_logger(__name__)

#: Share of the limit kept in reserve (rounded down: tiny windows keep none, as one call is
#: already a large share of them).
RESERVE_FRACTION = 0.05
#: Above this share of the limit (after the reserve) calls are not slowed down at all.
PLENTY_FRACTION = 0.5
#: While probing a new window, how often a waiting caller looks again.
PROBE_POLL_SECONDS = 0.02
#: A probe unanswered for this long no longer holds the others back (it may be slow, or a
#: caller forgot to ``observe``; stalling every worker would be worse than one extra call).
PROBE_STALL_SECONDS = 10.0
#: Largest jitter added to a pause or a wait for the reset (seconds).
MAX_JITTER_SECONDS = 0.25
#: A clock difference with the server below this is ignored (``Date`` has 1 s resolution).
SKEW_TOLERANCE_SECONDS = 2.0


class RateGovernor:
    """Thread-safe pacing of API calls; see the module docstring.

    ``clock`` returns Unix seconds (the rate-limit reset is a Unix time). ``wait(seconds)``
    sleeps and returns False when the daemon is stopping; by default it waits on an event
    that ``stop()`` sets. ``rand`` returns a number in [0, 1) for jitter.
    """

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
        *,
        rand: Callable[[], float] = random.random,
        ceiling_per_hour: int | None = None,
    ) -> None:
        self._clock = clock
        self._ceiling = ceiling_per_hour
        self._recent: deque[float] = deque()  # starts of the calls of the last hour (ceiling)
        #: Seconds callers were held back by the quota (server windows or our ceiling): what
        #: `status` reads to tell whether the quota bounds the pace.
        self.quota_wait_seconds = 0.0
        self._stop = threading.Event()
        self._wait = wait if wait is not None else self._event_wait
        self._rand = rand
        self._lock = threading.Lock()
        # What the last useful answer said, with ``reset`` on our clock.
        self._limit: int | None = None
        self._reset: float | None = None
        self._estimate: int | None = None  # calls left in the window, by our count
        self._in_flight = 0  # acquired, not yet observed
        self._last_start = -math.inf
        self._paused_until = 0.0
        self._pause_reason = ""

    # --- the two calls around every API request ---------------------------------------------

    def acquire(self) -> None:
        """Block until one more API call may be sent; count it as in flight.

        Raises ``Stopping`` once ``stop()`` was called (also while waiting).
        """
        while True:
            if self._stop.is_set():
                raise Stopping("stopping: API call not sent")
            with self._lock:
                now = self._clock()
                delay = self._delay_locked(now)
                if delay <= 0:
                    self._in_flight += 1
                    if self._estimate is not None:
                        self._estimate -= 1
                    self._last_start = now
                    if self._ceiling is not None:
                        self._recent.append(now)
                    return
                if self._paused_until <= now:
                    self.quota_wait_seconds += delay
            if not self._wait(delay):
                raise Stopping("stopping: API call not sent")

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from one API answer (``status`` 0 and no headers when none came).

        Must follow every ``acquire()`` exactly once.
        """
        lower = {key.lower(): value for key, value in headers.items()}
        with self._lock:
            now = self._clock()
            self._in_flight = max(0, self._in_flight - 1)
            skew = _server_skew(lower.get("date"), now)
            limit = _int_header(lower.get("x-rate-limit-limit"))
            remaining = _int_header(lower.get("x-rate-limit-remaining"))
            reset_raw = _float_header(lower.get("x-rate-limit-reset"))
            reset = None if reset_raw is None else reset_raw - skew
            if limit is not None and limit > 0:
                self._limit = limit
            if remaining is not None and reset is not None and reset > now:
                candidate = remaining - self._in_flight
                if self._reset is None or reset > self._reset or now >= self._reset:
                    # A newer window (or the first we hear of).
                    self._reset = reset
                    self._estimate = candidate
                elif reset == self._reset:
                    # Answers overtake each other: keep the more cautious count.
                    current = candidate if self._estimate is None else self._estimate
                    self._estimate = min(current, candidate)
                # An older window's answer arriving late (reset < ours) says nothing new.
            if status == 429:
                self.metrics.rate_limited()
            if status == 429 or (status == 503 and "retry-after" in lower):
                asked = parse_retry_after(lower.get("retry-after"), now) or 0.0
                until = now + asked
                if status == 429 and reset is not None:
                    # The window this 429 names is spent until its reset, and it is the one
                    # to pace by now (the spike window may be the one; its reset is sooner
                    # than the hourly one we knew). Without a reset, Retry-After alone rules.
                    until = max(until, reset)
                    self._reset, self._estimate = reset, 0
                if status == 429 and until <= now:
                    until = now + 1.0  # told "too many" but not until when
                until += self._jitter()
                if until > self._paused_until:
                    self._paused_until = until
                    self._pause_reason = "rate_limited" if status == 429 else "unavailable"
                    log.warning("api_paused", reason=self._pause_reason,
                                seconds=round(until - now, 3))

    # --- outages and status -----------------------------------------------------------------

    def pause(self, until: float, reason: str) -> None:
        """Hold every caller until ``until`` (Unix seconds), e.g. while the network is down."""
        with self._lock:
            if until > self._paused_until:
                self._paused_until = until
                self._pause_reason = reason

    def paused(self) -> tuple[float, str] | None:
        """``(until, reason)`` while calls are held back, else None (for ``status``)."""
        with self._lock:
            if self._paused_until > self._clock():
                return self._paused_until, self._pause_reason
            return None

    def set_ceiling(self, per_hour: int | None) -> None:
        """``daemon.max_api_calls_per_hour`` (a reload may change it; None: no ceiling)."""
        with self._lock:
            self._ceiling = per_hour
            if per_hour is None:
                self._recent.clear()

    def stop(self) -> None:
        """Make every waiting and later ``acquire()`` (and ``sleep()``) raise/return at once."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep through the governor's ``wait``; False when the daemon is stopping."""
        if self._stop.is_set():
            return False
        return self._wait(max(0.0, seconds)) and not self._stop.is_set()

    # --- arithmetic ---------------------------------------------------------------------------

    def _delay_locked(self, now: float) -> float:
        """Seconds the next call must still wait (<= 0: go now). Lock held."""
        if self._paused_until > now:
            return self._paused_until - now
        ceiling = self._ceiling_delay(now)
        if ceiling > 0:
            return ceiling
        if self._limit is None or self._estimate is None or self._reset is None:
            return 0.0  # nothing known yet: the first answers will tell
        if now >= self._reset:
            # The window we knew has ended. Probe the new one with one call at a time until
            # an answer describes it.
            if self._in_flight == 0 or now - self._last_start >= PROBE_STALL_SECONDS:
                return 0.0
            return PROBE_POLL_SECONDS
        reserve = math.floor(self._limit * RESERVE_FRACTION)
        usable = self._estimate - reserve
        if usable <= 0:
            return (self._reset - now) + self._jitter()
        if usable >= self._limit * PLENTY_FRACTION:
            return 0.0
        interval = (self._reset - now) / usable
        return self._last_start + interval - now

    def _ceiling_delay(self, now: float) -> float:
        """Our own ceiling: at most ``ceiling`` calls in any hour (sliding). Lock held."""
        if self._ceiling is None:
            return 0.0
        while self._recent and self._recent[0] <= now - 3600.0:
            self._recent.popleft()
        if len(self._recent) < self._ceiling:
            return 0.0
        return self._recent[0] + 3600.0 - now

    def _jitter(self) -> float:
        return 0.01 + (MAX_JITTER_SECONDS - 0.01) * self._rand()

    def _event_wait(self, seconds: float) -> bool:
        # Bounded: callers re-check and wait again; an enormous timeout would overflow.
        return not self._stop.wait(min(max(0.0, seconds), 3600.0))


def _int_header(value: str | None) -> int | None:
    number = _float_header(value)
    return None if number is None else int(number)


def _float_header(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _server_skew(date: str | None, now: float) -> float:
    """How far the server's clock runs ahead of ours (0 when unknown or negligible)."""
    if not date:
        return 0.0
    try:
        server_now = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0
    skew = server_now - now
    return skew if abs(skew) >= SKEW_TOLERANCE_SECONDS else 0.0
