"""Pacing of Procore API calls, shared by every worker thread.

The ``RateGovernor`` keeps one ``RateWindow`` (``windows``) per rate window of Procore's it
has heard of, counts every call it lets through against each, and:

- paces by the most restrictive window: the next call waits for the largest of the windows'
  delays (what the headers say, sliding or tumbling: see ``windows``);
- on 429 (and 503 with ``Retry-After``) pauses every caller until the later of the reset
  and ``Retry-After``, plus a little jitter (Procore's Rate Limiting page,
  ``procore/documentation`` ``plan_your_app/rate_limiting.md``: "pause requests until
  after that time", "Retry with backoff (and jitter, if possible)"); ``pause()`` does the
  same for a network outage; each pause that begins or grows later is reported to
  ``on_pause`` (the engine's board of holds, which `status`, the metrics and the watchdog
  read: this package imports none of it);
- keeps no reserve (but for the one call of ``RateWindow.implied``): the local ceiling
  ``daemon.max_api_calls_per_hour`` is the tool for leaving room to other integrations. It
  is paced too (a minute's worth at once, then evenly), so that the room is left at every
  moment and never more than the ceiling goes out in any hour.

Nothing about the limits is hard-coded: everything comes from the headers. Storage requests
are not API calls and never pass through here. Sleeping goes through an injectable ``wait``
so that tests drive the governor with a fake clock; stopping through one ``threading.Event``
(the process's, when the composition root passes it).
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
from procore_hotfolder.procore.retry import parse_retry_after
from procore_hotfolder.procore.windows import RateWindow, implied_left

log = structlog.get_logger(__name__)

#: Largest jitter added to a pause or a wait for the reset (seconds).
MAX_JITTER_SECONDS = 0.25
#: A clock difference with the server below this is ignored (``Date`` has 1 s resolution).
SKEW_TOLERANCE_SECONDS = 2.0
#: A shorter delay is none (a Unix time in floating point cannot move by less: waiting for
#: a rounding error would never end).
MIN_DELAY_SECONDS = 1e-6
#: The ceiling lets this many seconds' worth of calls go at once, then paces them evenly.
CEILING_BURST_SECONDS = 60.0


class RateGovernor:
    """Thread-safe pacing of API calls; see the module docstring.

    ``clock`` returns Unix seconds (the rate-limit reset is a Unix time). ``wait(seconds)``
    sleeps and returns False when the daemon is stopping; by default it waits on ``stop``.
    ``stop`` is the event that stops the governor (every ``acquire()`` and ``sleep()``
    checks it): the process's one stop event, or a new one when None. ``rand`` returns a
    number in [0, 1) for jitter. ``on_pause(reason, since, until)`` (Unix seconds) is told,
    outside the governor's lock, each time every call is held back from ``since`` until a
    later ``until`` than before. Every ``acquire()`` is followed by exactly one
    ``observe()``, on the same thread (which calls went after which is kept per thread).
    """

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
        *,
        rand: Callable[[], float] = random.random,
        ceiling_per_hour: int | None = None,
        stop: threading.Event | None = None,
        on_pause: Callable[[str, float, float], None] | None = None,
    ) -> None:
        self._clock = clock
        self._ceiling = ceiling_per_hour
        self._recent: deque[float] = deque()  # starts of the calls of the last hour (ceiling)
        self._tokens = 0.0  # the ceiling's bucket (calls that may go at once)
        self._tokens_at = -math.inf
        #: Seconds callers were held back by the quota (server windows or our ceiling): what
        #: `status` reads to tell whether the quota bounds the pace.
        self.quota_wait_seconds = 0.0
        self._stop = stop if stop is not None else threading.Event()
        self._wait = wait if wait is not None else self._event_wait
        self._rand = rand
        self._lock = threading.Lock()
        self._windows: dict[int, RateWindow] = {}
        self._sent = 0  # calls let through so far
        #: Per thread, the numbers (``_sent`` then) of its calls not observed yet, oldest
        #: first (one in the daemon: a worker observes its call before sending the next).
        self._unobserved = threading.local()
        self._in_flight = 0  # acquired, not yet observed
        self._last_start = -math.inf
        self._paused_until = 0.0
        self._on_pause = on_pause

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
                if delay < MIN_DELAY_SECONDS:
                    self._in_flight += 1
                    self._sent += 1
                    self._unobserved_calls().append(self._sent)
                    for window in self._windows.values():
                        window.count_call(now)
                    self._last_start = now
                    if self._ceiling is not None:
                        self._recent.append(now)
                        self._tokens -= 1.0
                    return
                if self._paused_until <= now:
                    self.quota_wait_seconds += delay
            if not self._wait(delay):
                raise Stopping("stopping: API call not sent")

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from one API answer (``status`` 0 and no headers when none came).

        Must follow every ``acquire()`` exactly once, on the same thread.
        """
        lower = {key.lower(): value for key, value in headers.items()}
        calls = self._unobserved_calls()
        number = calls.popleft() if calls else None
        paused = None
        with self._lock:
            now = self._clock()
            self._in_flight = max(0, self._in_flight - 1)
            skew = _server_skew(lower.get("date"), now)
            limit = _int_header(lower.get("x-rate-limit-limit"))
            remaining = _int_header(lower.get("x-rate-limit-remaining"))
            reset_raw = _float_header(lower.get("x-rate-limit-reset"))
            reset = None if reset_raw is None else reset_raw - skew
            window = None
            if limit is not None and limit > 0:
                window = self._windows.get(limit)
                if window is None and (status == 429 or (reset is not None and reset > now)):
                    window = self._windows[limit] = RateWindow(limit, now)
            if (window is not None and status != 429 and remaining is not None
                    and reset is not None and reset > now):
                window.describe(remaining, reset, self._in_flight, now)
                self._imply_locked(window, remaining, number)
            if status == 429:
                self.metrics.rate_limited()
            if status == 429 or (status == 503 and "retry-after" in lower):
                paused = self._pause_locked(status, lower, reset, window, now)
        if paused is not None:
            self._report(*paused)

    def _imply_locked(self, described: RateWindow, remaining: int, number: int | None) -> None:
        """The windows the answer to call ``number`` did not describe are not the one "most
        likely to exceed first": what they had left then, less every call that may have been
        counted after it (sent after it, or still in flight). Lock held."""
        later = self._in_flight + self._sent - (number if number is not None else 0)
        for window in self._windows.values():
            if window is not described:
                window.implied(implied_left(remaining, described.limit, window.limit) - later)

    def _unobserved_calls(self) -> deque[int]:
        calls: deque[int] | None = getattr(self._unobserved, "calls", None)
        if calls is None:
            calls = self._unobserved.calls = deque()
        return calls

    def _pause_locked(self, status: int, lower: Mapping[str, str], reset: float | None,
                      window: RateWindow | None, now: float
                      ) -> tuple[str, float, float] | None:
        """Hold every caller after a 429 or a 503 with Retry-After; returns the pause to
        report, when it grew. Lock held."""
        asked = parse_retry_after(lower.get("retry-after"), now) or 0.0
        until = now + asked
        if status == 429:
            if window is not None:
                # The window this 429 names is spent until its reset (the spike window may
                # be the one, while the hourly one has plenty left).
                window.refused(reset, now)
            if reset is not None:
                until = max(until, reset)
            if until <= now:
                until = now + 1.0  # told "too many" but not until when
        until += self._jitter()
        if until <= self._paused_until:
            return None
        self._paused_until = until
        reason = "rate_limited" if status == 429 else "unavailable"
        log.warning("api_paused", reason=reason, seconds=round(until - now, 3))
        return reason, now, until

    # --- outages --------------------------------------------------------------------------

    def pause(self, until: float, reason: str) -> None:
        """Hold every caller until ``until`` (Unix seconds), e.g. while the network is down."""
        with self._lock:
            now = self._clock()
            if until <= self._paused_until or until <= now:
                return
            self._paused_until = until
        self._report(reason, now, until)

    def _report(self, reason: str, since: float, until: float) -> None:
        if self._on_pause is not None:
            self._on_pause(reason, since, until)

    def set_ceiling(self, per_hour: int | None) -> None:
        """``daemon.max_api_calls_per_hour`` (a reload may change it; None: no ceiling)."""
        with self._lock:
            self._ceiling = per_hour
            if per_hour is None:
                self._recent.clear()

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
        delay = self._ceiling_delay(now)
        for limit, window in list(self._windows.items()):
            if not window.roll(now):
                del self._windows[limit]
                continue
            delay = max(delay, window.delay(now, self._last_start, self._in_flight))
        # No jitter on a period's end: the callers are ours and take turns under the lock;
        # on a 2-s window every 0.1 s idled would cost 5 % of it.
        return delay

    def _ceiling_delay(self, now: float) -> float:
        """Our own ceiling: at most ``ceiling`` calls in any hour (sliding), a minute's worth
        at once and the rest evenly (a bucket of ``ceiling/60`` refilled at
        ``(ceiling - bucket)/3600`` a second holds any hour to ``ceiling``). Lock held."""
        if self._ceiling is None:
            return 0.0
        burst = max(1.0, math.floor(self._ceiling * CEILING_BURST_SECONDS / 3600.0))
        rate = max(self._ceiling - burst, 1.0) / 3600.0
        if self._tokens_at == -math.inf:
            self._tokens = burst
        else:
            self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        while self._recent and self._recent[0] <= now - 3600.0:
            self._recent.popleft()
        delay = 0.0
        if len(self._recent) >= self._ceiling:
            delay = self._recent[0] + 3600.0 - now
        if self._tokens < 1.0:
            delay = max(delay, (1.0 - self._tokens) / rate)
        return delay

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
