"""Procore's rate windows as the client knows them: pure arithmetic on the numbers the
answers' headers give and on ``now``, no clock and no waiting (``governor`` does that).

Procore counts API calls in two windows, an hourly one and a 10-second spike window, whose
numbers change without notice. Every answer carries ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (Unix seconds) of only the window
closer to exhaustion, so consecutive answers may describe different windows. The governor
therefore keeps one ``RateWindow`` per window it has heard of (keyed by its limit), and a
window:

- counts every call let through, whichever window the answers describe; an answer corrects
  only the window it describes;
- says how long the next call must wait: calls go at once while at least half of its limit
  is left (a burst of small files is not slowed down); below that, the calls left are spread
  evenly over the time left until the window ends, so its ``Remaining`` reaches 0 at the
  reset and not before;
- when it ends, starts counting its next period at once with the whole limit (no
  one-call-at-a-time probing: the spike window ends every few seconds and is often not the
  one the headers describe); a window never described for ``STALE_SECONDS`` is forgotten;
- learns when it really ends: ``Reset`` is rounded up to a whole second, which costs
  up to a second per period (a third of a 5-per-2-s window). Where a period starts with the
  first call after the previous one (as the emulator's do), the shortest ``Reset`` minus the
  send time of a period's first call bounds the window's length from above, and ``Reset``
  less a second minus that answer's arrival from below; a few periods started at chosen
  moments narrow the bounds (bisection on the rounding), and a period is then taken to end
  that long after its first call (never more than a second before ``Reset``). The first sign
  that the window does not work that way (crossed bounds, or an answer or a 429 naming the
  period we thought over: at most one 429 per window) turns this off for that window;
- counts a period from the lowest ``Remaining`` reported for it less the calls in flight
  (answers overtake each other).
"""

from __future__ import annotations

import math

import structlog

log = structlog.get_logger(__name__)

#: Above this share of a window's limit calls are not slowed down at all.
PLENTY_FRACTION = 0.5
#: ``X-Rate-Limit-Reset`` is in whole seconds: a period ends at most this long before it.
RESET_ROUNDING_SECONDS = 1.0
#: A window no answer described for this long is forgotten (Procore changed its numbers:
#: the new limit is a new window; until then the old one only makes us more cautious).
STALE_SECONDS = 6 * 3600.0
#: The length of a window is known well enough once its bounds are this close (seconds).
LENGTH_TOLERANCE_SECONDS = 0.05


class RateWindow:
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
