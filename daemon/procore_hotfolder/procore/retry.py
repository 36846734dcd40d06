"""Request-level retry arithmetic: pure values and functions, no clock and no sleeping.

``RetryPolicy`` says how many times one HTTP request is tried and how long to wait between
tries (capped exponential backoff with jitter; a server's ``Retry-After`` wins when it asks
for longer). Whether an error may be retried at all is the error's business
(``HotfolderError.retryable``); sleeping is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

#: Beyond this exponent the backoff is at its cap anyway; keeps 2**n from growing huge.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried.

    ``tries`` counts attempts, the first included. The wait before attempt ``n + 1`` is
    ``min(cap, base * 2**(n-1))`` reduced by a random share of at most ``jitter`` (so that
    workers that failed together do not come back together), or the server's
    ``Retry-After`` (plus a little jitter) when that is longer.
    """

    tries: int = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError("tries must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must lie between 0 and 1")

    def delay(self, attempt: int, *, retry_after: float | None, rand: float) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

        ``rand`` is a random number in [0, 1) supplied by the caller (keeps this pure).
        ``retry_after`` is the server's requested delay in seconds, if any.
        """
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        backoff = min(self.cap, self.base * (2.0**exponent))
        computed = backoff * (1.0 - self.jitter * rand)
        if retry_after is not None and retry_after > 0:
            # The server knows best, but workers it stopped together should not return in
            # the same instant: spread them over a small fraction of the base delay.
            asked = retry_after + self.jitter * self.base * rand
            return max(computed, asked)
        return computed

    def more_tries(self, attempt: int) -> bool:
        """True when another attempt may follow failed attempt ``attempt`` (1-based)."""
        return attempt < self.tries


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` asked by a ``Retry-After`` header (delta-seconds or HTTP date).

    None when absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
