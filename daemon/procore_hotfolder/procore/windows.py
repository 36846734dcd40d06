"""Procore's rate windows as the client knows them: pure arithmetic on the numbers the
answers' headers give, on our own calls and on ``now``; no clock and no waiting
(``governor`` does that).

What Procore documents (Rate Limiting page, ``procore/documentation``
``plan_your_app/rate_limiting.md``): two windows, an hourly one and a 10-second spike window,
whose numbers "can change at any time"; every answer carries ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (Unix seconds) of only "the limit your
app is most likely to exceed first", so consecutive answers may describe different windows;
"When X-Rate-Limit-Remaining reaches 0, pause requests until after X-Rate-Limit-Reset". For
short-term windows Remaining "may increase again after a brief pause as the window rolls
forward": the spike window slides, and at its ``Reset`` only the calls that aged out are
back, not the whole limit. Whether the hourly window slides is not documented.

So the governor keeps one ``RateWindow`` per window it has heard of (keyed by its limit), and
a window knows a lower bound of the calls it has left (``left``), whichever way it counts:

- an answer about it sets ``left`` to the lowest ``Remaining`` given with that ``Reset``,
  less our calls in flight (answers overtake each other); every call we send lowers it;
- none of its calls is back before ``Reset`` (a sliding window's oldest call leaves then);
  at ``Reset`` at least one is (the oldest; a tumbling window gives all back, and the next
  answer about it says so): ``left`` grows by one and stays a lower bound until an answer
  describes the window again;
- an answer about another window says this one is not "most likely to exceed first": it
  has at least as many calls left, or as large a share of its limit (Procore does not say
  which of the two it compares), whichever is fewer (``implied_left``), less the calls
  that may have been counted since; past its ``Reset`` (before it, what the answers about
  it said rules), ``left`` is raised to that, keeping one back (``implied``);
- a window no answer described for ``STALE_SECONDS`` is forgotten.

The next call waits for the slowest window (``RateWindow.delay``): calls go at once while at
least half of a window's limit is left (a burst of small files is not slowed down); below
that, until ``Reset``, the calls left are spread evenly over the time left, so that
``Remaining`` reaches 0 at ``Reset`` and not before; with none left, a call waits for
``Reset``. After ``Reset``, with none left by the bound, calls go one at a time (the answer
to each says more), and only once our own latest ``limit`` calls went longer ago than the
longest ``Reset`` minus ``now`` an answer gave (``span``, about the window's length: so none
of them can still be in it).

No length is learnt beyond ``span``: ``Reset`` is rounded up to whole seconds, which costs up
to a second per period where one window binds alone (measured against a sliding 10-per-5-s
window: about 84 % of its calls; 94 % of a 25-per-10-s one). Learning the exact length, as
this module once did for windows that start with their first call, fits no documented
window: add it only on evidence from real Procore headers.
"""

from __future__ import annotations

import math
from collections import deque

#: Above this share of a window's limit calls are not slowed down at all.
PLENTY_FRACTION = 0.5
#: A window no answer described for this long is forgotten (Procore changed its numbers:
#: the new limit is a new window; until then the old one only makes us more cautious).
STALE_SECONDS = 6 * 3600.0
#: How often a call waiting for an answer about a window looks again (seconds).
ANSWER_POLL_SECONDS = 0.05


def implied_left(remaining: int, limit: int, other_limit: int) -> int:
    """Calls a window of ``other_limit`` has left at least, when an answer described the
    window of ``limit`` with ``remaining`` as the one "most likely to exceed first": as many
    calls left, or as large a share, whichever is fewer."""
    share = math.ceil(remaining * other_limit / limit - 1e-9) if limit > 0 else 0
    return max(0, min(remaining, share))


class RateWindow:
    """One of Procore's rate windows, as far as we know it.

    Keyed by its limit: the limit is what stays the same from one answer about a window to
    the next (``Remaining`` falls with every call, ``Reset`` moves), and Procore's two
    windows have different limits (600 an hour, 25 per 10 s); windows with equal limits
    would be indistinguishable in the headers anyway.
    """

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.reset = now  # the latest ``Reset`` an answer gave (our clock)
        self.reported = limit  # the lowest ``Remaining`` given with that ``Reset``
        self.left = limit  # calls left at least, by our count
        self.past_reset = True  # ``reset`` has passed (``left`` got its one back)
        self.span = 0.0  # the longest ``Reset`` - now an answer gave: about its length
        self.described_at = now
        self._starts: deque[float] = deque(maxlen=limit)  # our latest calls' send times

    def roll(self, now: float) -> bool:
        """Give back the call a window frees at ``Reset``; False: forget this window."""
        if now - self.described_at >= STALE_SECONDS:
            return False
        if not self.past_reset and now >= self.reset:
            self.left = max(self.left, 0) + 1
            self.past_reset = True
        return True

    def count_call(self, now: float) -> None:
        """One call of ours goes out now."""
        self.left -= 1
        self._starts.append(now)

    def describe(self, remaining: int, reset: float, in_flight: int, now: float) -> None:
        """An answer about this window: ``remaining`` left until ``reset`` (our clock, later
        than ``now``), with ``in_flight`` of our calls unanswered."""
        self.described_at = now
        if reset < self.reset:
            return  # an answer from before the latest ``Reset``, arriving late
        self.span = max(self.span, reset - now)
        if reset > self.reset:
            self.reset, self.reported = reset, remaining
        else:
            self.reported = min(self.reported, remaining)
        self.left = self.reported - in_flight
        self.past_reset = False

    def implied(self, left: int) -> None:
        """An answer about another window says this one has ``left`` calls left at least.

        One of them is kept back: when both windows are spent, an answer describes only
        one, and a window we would spend on inference alone could be spent unseen (the
        next call after the other's ``Reset`` would be refused).
        """
        if self.past_reset:  # before it, what the answers about it said rules
            self.left = max(self.left, left - 1)

    def refused(self, reset: float | None, now: float) -> None:
        """A 429 naming this window: spent until ``reset``."""
        self.described_at = now
        if reset is not None and reset > now:
            self.span = max(self.span, reset - now)
            self.reset = max(self.reset, reset)
            self.past_reset = False
        self.left = self.reported = 0

    def delay(self, now: float, last_start: float, in_flight: int) -> float:
        """Seconds the next call must wait for this window (<= 0: go now)."""
        if self.past_reset:
            if self.left > 0:
                return 0.0
            if in_flight > 0:
                return ANSWER_POLL_SECONDS  # its answer tells more
            # Nothing tells: one call, once a whole limit of ours is no longer within one
            # ``span`` (where ``span`` is the window's length, none of them is in it).
            if len(self._starts) < self.limit:
                return 0.0
            return self._starts[0] + self.span - now
        if self.left <= 0:
            return self.reset - now
        if self.left >= self.limit * PLENTY_FRACTION:
            return 0.0
        # The calls left and the first after ``Reset``, evenly from the last start to
        # ``Reset``: the last call left goes one interval before it (spreading over ``left``
        # intervals would push the last one to ``Reset`` and leave one call unused).
        start = min(last_start, now)
        interval = (self.reset - start) / (self.left + 1)
        return start + interval - now
