"""Pacing of Procore API calls, shared by every worker thread.

Procore counts API calls in two windows, an hourly one and a 10-second spike window, whose
numbers change without notice. Every answer carries ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (Unix seconds) of only the window
closer to exhaustion, so consecutive answers may describe different windows. The
``RateGovernor`` therefore keeps one ``_Window`` per window it has heard of (keyed by its
limit, see ``_Window``) and:

- counts every call it lets through against every known window, whichever the answers
  describe; an answer corrects only the window it describes;
- paces by the most restrictive window: the next call waits for the largest of the windows'
  delays. In a window, calls go at once while at least half of its limit is left (a burst of
  small files is not slowed down); below that, the calls left are spread evenly over the time
  left until the window ends, so its ``Remaining`` reaches 0 at the reset and not before;
- when a window ends, starts counting its next period at once with the whole limit (no
  one-call-at-a-time probing: the spike window ends every few seconds and is often not the
  one the headers describe); a window never described for ``STALE_SECONDS`` is forgotten;
- learns when a window really ends: ``Reset`` is rounded up to a whole second, which costs
  up to a second per period (a third of a 5-per-2-s window). Where a period starts with the
  first call after the previous one (as the emulator's do), the shortest ``Reset`` minus the
  send time of a period's first call bounds the window's length from above, and ``Reset``
  less a second minus that answer's arrival from below; a few periods started at chosen
  moments narrow the bounds (bisection on the rounding), and a period is then taken to end
  that long after its first call (never more than a second before ``Reset``). The first sign
  that the window does not work that way (crossed bounds, or an answer or a 429 naming the
  period we thought over: at most one 429 per window) turns this off for that window;
- counts a period from the lowest ``Remaining`` reported for it less the calls in flight
  (answers overtake each other);
- on 429 (and 503 with ``Retry-After``) pauses every caller until the later of the reset
  and ``Retry-After``, plus a little jitter; ``pause()`` does the same for a network outage;
- keeps no reserve: the local ceiling ``daemon.max_api_calls_per_hour`` is the tool for
  leaving room to other integrations. It is paced too (a minute's worth at once, then
  evenly), so that the room is left at every moment and never more than the ceiling goes
  out in any hour.

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

#: Above this share of a window's limit calls are not slowed down at all.
PLENTY_FRACTION = 0.5
#: Largest jitter added to a pause or a wait for the reset (seconds).
MAX_JITTER_SECONDS = 0.25
#: A clock difference with the server below this is ignored (``Date`` has 1 s resolution).
SKEW_TOLERANCE_SECONDS = 2.0
#: ``X-Rate-Limit-Reset`` is in whole seconds: a period ends at most this long before it.
RESET_ROUNDING_SECONDS = 1.0
#: A window no answer described for this long is forgotten (Procore changed its numbers:
#: the new limit is a new window; until then the old one only makes us more cautious).
STALE_SECONDS = 6 * 3600.0
#: The length of a window is known well enough once its bounds are this close (seconds).
LENGTH_TOLERANCE_SECONDS = 0.05
#: A shorter delay is none (a Unix time in floating point cannot move by less: waiting for
#: a rounding error would never end).
MIN_DELAY_SECONDS = 1e-6
#: The ceiling lets this many seconds' worth of calls go at once, then paces them evenly.
CEILING_BURST_SECONDS = 60.0


class _Window:
    """One of Procore's rate windows, as far as we know it.

    Keyed by its limit: the limit is what stays the same from one answer about a window to
    the next (``Remaining`` falls with every call, ``Reset`` moves every period), and
    Procore's two windows have different limits (600 an hour, 25 per 10 s); windows with
    equal limits would be indistinguishable in the headers anyway.
    """

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.remaining = limit  # calls left in the current period, by our count
        self.reported = limit  # the lowest Remaining the server gave for the period
        self.end = now  # when the current period ends, on our clock (our belief)
        self.spread_end = now  # the calls of the current period go before this
        self.announced = -math.inf  # the last ``Reset`` the server announced (our clock)
        self.described_at = now
        #: Bounds of the window's length where a period starts with its first call (as the
        #: emulator's do): ``Reset`` minus the send time of a period's first call is at
        #: least the length (``Reset`` is rounded up, the server counted the call after we
        #: sent it); ``Reset`` minus a second minus that answer's arrival is less than it.
        self.longest: float | None = None
        self.shortest: float | None = None
        self.seen: float | None = None  # longest ``Reset`` minus answer time seen
        self.early_ok = True  # ending periods before ``Reset`` has not been contradicted
        self.awaiting_first = False  # a period we started counting has had no call yet
        self.opened_at: float | None = None  # when our first call of that period went out
        self.ended_early: float | None = None  # ``announced`` of a period we ended early

    def roll(self, now: float) -> bool:
        """Start the next period if the current one is over; False: forget this window."""
        if now < self.end:
            return True
        length = self._rearm_length()
        if length is None or now - self.described_at >= STALE_SECONDS:
            return False
        if self.announced > now:
            self.ended_early = self.announced
        # The next period starts with our next call (where periods are aligned on the clock
        # instead, it ends sooner than we think: cautious).
        self.remaining = self.reported = self.limit
        self.end = self.spread_end = now + length
        self.awaiting_first, self.opened_at = True, None
        return True

    def _rearm_length(self) -> float | None:
        # A period we count without answers about it must not end before the server's does:
        # the learnt length (and a margin for the latency) once it is known, else the longer
        # estimate.
        learnt = self._learnt_length()
        if learnt is not None:
            return learnt
        known = [x for x in (self.longest, self.seen) if x is not None]
        return max(known) if known else None

    def _learnt_length(self) -> float | None:
        """The window's length, with a margin for the latency, once its bounds are close."""
        if (self.early_ok and self.longest is not None and self.shortest is not None
                and self.longest - self.shortest <= LENGTH_TOLERANCE_SECONDS):
            return self.longest + LENGTH_TOLERANCE_SECONDS
        return None

    def count_call(self, now: float) -> None:
        if self.awaiting_first:
            self.awaiting_first, self.opened_at = False, now
        self.remaining -= 1

    def describe(self, remaining: int, reset: float, in_flight: int, sent: float | None,
                 now: float) -> None:
        """An answer about this window: ``remaining`` left until ``reset`` (our clock), with
        ``in_flight`` calls unanswered; ``sent``: when this one went out (None: unknown).

        Our count is the lowest Remaining reported for the period less the calls still in
        flight: answers overtake each other, and a running minimum of "Remaining less the
        calls in flight" would keep the calls counted twice (in flight, and already in a
        lower Remaining) for the rest of the period.
        """
        self.described_at = now
        if reset < self.announced:
            return  # an answer about an older period arriving late says nothing new
        self.seen = reset - now if self.seen is None else max(self.seen, reset - now)
        if reset == self.announced:
            if self.ended_early == reset and now < reset:
                self._contradicted(reset)  # the period we thought over is still counting
            self.reported = min(self.reported, remaining)
            self.remaining = self.reported - in_flight
            self.opened_at = None  # the call we took for the next period's first was not
        else:
            # A period we had not heard of (or the first we hear of).
            self.announced = reset
            self.ended_early = None
            self.reported = remaining
            self.remaining = remaining - in_flight
            self.end = self.spread_end = reset
            length = self._learnt_length()
            if length is not None and self.opened_at is not None:
                # Its first call was ours, sent when we started counting the period (the
                # answer described the other window): it ends a known time after that.
                self.end = self.spread_end = max(reset - RESET_ROUNDING_SECONDS,
                                                 min(reset, self.opened_at + length))
            self.opened_at = None
        if remaining == self.limit - 1 and sent is not None:
            self._opened_period(reset, sent, now)  # answers overtake: not always the first

    def _opened_period(self, reset: float, sent: float, now: float) -> None:
        """This call was the period's first: narrow the length's bounds, end it early."""
        longest = reset - sent
        shortest = reset - RESET_ROUNDING_SECONDS - now
        self.longest = longest if self.longest is None else min(self.longest, longest)
        self.shortest = shortest if self.shortest is None else max(self.shortest, shortest)
        if not self.early_ok:
            return
        if self.shortest > self.longest + LENGTH_TOLERANCE_SECONDS:
            # The bounds cross: periods do not start with their first call here.
            self._contradicted(reset)
            return
        end = max(reset - RESET_ROUNDING_SECONDS, min(reset, now + self.longest))
        self.end = self.spread_end = end
        width = self.longest - self.shortest
        if width > LENGTH_TOLERANCE_SECONDS:
            # Still unsure of the length. The next period's rounded-up Reset tells on which
            # side of ``x`` the length lies where that period starts ``x`` before a whole
            # second. Starting at ``end`` tests such an ``x`` for free; when that one is not
            # in the middle half of the bounds, start later, at the middle's (costs under a
            # second, a few times). The calls of this period go before it surely ends, so
            # that none opens the next one at another moment.
            free = math.ceil(end + self.shortest + width / 4) - end
            if free > self.longest - width / 4:
                middle = self.shortest + width / 2
                self.end = max(end, math.ceil(end + middle) - middle)
            self.spread_end = min(end, max(now, sent + self.shortest))

    def refused(self, reset: float | None, now: float) -> None:
        """A 429 naming this window: spent until ``reset``."""
        self.described_at = now
        if reset is not None:
            if self.ended_early is not None and reset <= self.ended_early:
                self._contradicted(reset)
            self.announced = max(self.announced, reset)
            self.end = self.spread_end = max(self.end, reset)
        self.remaining = self.reported = 0

    def _contradicted(self, reset: float) -> None:
        self.early_ok = False
        self.ended_early = None
        self.end = self.spread_end = reset
        log.info("rate_window_ends_at_reset", limit=self.limit)

    def delay(self, now: float, last_start: float) -> float:
        """Seconds the next call must wait for this window (<= 0: go now)."""
        if self.remaining <= 0:
            return self.end - now
        if self.remaining >= self.limit * PLENTY_FRACTION:
            return 0.0
        # The calls left and the next period's first, evenly from the last start to the
        # end: the last call left goes one interval before the end, the next period's first
        # at it (spreading over ``remaining`` intervals would push the last one to the end,
        # into the next period, and leave one call of every period unused).
        start = min(last_start, now)
        interval = (self.spread_end - start) / (self.remaining + 1)
        return start + interval - now


class RateGovernor:
    """Thread-safe pacing of API calls; see the module docstring.

    ``clock`` returns Unix seconds (the rate-limit reset is a Unix time). ``wait(seconds)``
    sleeps and returns False when the daemon is stopping; by default it waits on an event
    that ``stop()`` sets. ``rand`` returns a number in [0, 1) for jitter. ``acquire()`` and
    its ``observe()`` must run on the same thread (the send time of each call is kept per
    thread).
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
        self._tokens = 0.0  # the ceiling's bucket (calls that may go at once)
        self._tokens_at = -math.inf
        #: Seconds callers were held back by the quota (server windows or our ceiling): what
        #: `status` reads to tell whether the quota bounds the pace.
        self.quota_wait_seconds = 0.0
        self._stop = threading.Event()
        self._wait = wait if wait is not None else self._event_wait
        self._rand = rand
        self._lock = threading.Lock()
        self._windows: dict[int, _Window] = {}
        #: Per thread, the send times of the calls it has not observed, oldest first (one
        #: in the daemon: a worker observes its call before sending the next).
        self._sent = threading.local()
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
                if delay < MIN_DELAY_SECONDS:
                    self._in_flight += 1
                    for window in self._windows.values():
                        window.count_call(now)
                    self._last_start = now
                    self._sent_calls().append(now)
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
        calls = self._sent_calls()
        sent = calls.popleft() if calls else None
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
                    window = self._windows[limit] = _Window(limit, now)
            if (window is not None and status != 429 and remaining is not None
                    and reset is not None and reset > now):
                window.describe(remaining, reset, self._in_flight, sent, now)
            if status == 429:
                self.metrics.rate_limited()
            if status == 429 or (status == 503 and "retry-after" in lower):
                self._pause_locked(status, lower, reset, window, now)

    def _sent_calls(self) -> deque[float]:
        calls: deque[float] | None = getattr(self._sent, "calls", None)
        if calls is None:
            calls = self._sent.calls = deque()
        return calls

    def _pause_locked(self, status: int, lower: Mapping[str, str], reset: float | None,
                      window: _Window | None, now: float) -> None:
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
        delay = self._ceiling_delay(now)
        for limit, window in list(self._windows.items()):
            if not window.roll(now):
                del self._windows[limit]
                continue
            delay = max(delay, window.delay(now, self._last_start))
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
