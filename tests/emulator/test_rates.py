"""The two rate windows on their own, on a made-up clock (no server, no sleeping)."""

from __future__ import annotations

import threading

import pytest

from procore_hotfolder.emulator.faults import Faults
from procore_hotfolder.emulator.rates import RateLimits, WindowRule

T0 = 1_000_000.0


def limits(hourly: tuple[int, float] | None, spike: tuple[int, float] | None, *,
           hourly_kind: str = "sliding", spike_kind: str = "sliding") -> RateLimits:
    faults = Faults()
    faults.rate_limit = hourly
    faults.rate_limit_kind = hourly_kind
    faults.spike_limit = spike
    faults.spike_limit_kind = spike_kind
    return RateLimits(faults, threading.RLock())


def remaining(rates: RateLimits, now: float) -> tuple[str, str]:
    headers = rates.headers(now)
    return headers["X-Rate-Limit-Remaining"], headers["X-Rate-Limit-Reset"]


def test_both_windows_slide_unless_told_otherwise() -> None:
    """Procore's Rate Limiting page: for short-term windows Remaining "may increase again
    after a brief pause as the window rolls forward"; the hourly window's kind is not
    documented, and sliding is the least convenient reading for a client."""
    faults = Faults()
    assert (faults.rate_limit_kind, faults.spike_limit_kind) == ("sliding", "sliding")


def test_first_call_window_counts_refuses_and_turns_over() -> None:
    rates = limits((2, 60.0), None, hourly_kind="first_call")
    first = rates.admit(T0)
    assert first.admitted
    assert first.headers == {"X-Rate-Limit-Limit": "2", "X-Rate-Limit-Remaining": "1",
                             "X-Rate-Limit-Reset": str(int(T0 + 60))}
    assert rates.admit(T0 + 1).admitted
    refused = rates.admit(T0 + 10)
    assert not refused.admitted
    assert (refused.window, refused.retry_after) == ("hourly", 50)
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    assert rates.refused == {"hourly": 1}
    # A new window starts once the old one has ended: the whole limit is back.
    again = rates.admit(T0 + 60)
    assert again.admitted
    assert again.headers["X-Rate-Limit-Remaining"] == "1"
    assert again.headers["X-Rate-Limit-Reset"] == str(int(T0 + 120))


def test_sliding_window_gives_back_one_call_at_a_time() -> None:
    """Remaining rises as old calls leave the window; Reset is when the oldest call in it
    leaves, rounded up to the second."""
    rates = limits(None, (3, 5.0))
    for offset in (0.25, 1.5, 2.75):
        assert rates.admit(T0 + offset).admitted
    assert remaining(rates, T0 + 3) == ("0", str(int(T0 + 6)))  # 5.25 s rounded up
    refused = rates.admit(T0 + 4)
    assert (refused.admitted, refused.window, refused.retry_after) == (False, "spike", 2)
    assert refused.headers["X-Rate-Limit-Reset"] == str(int(T0 + 6))
    # The oldest call left at 5.25 s: one call back, not three; the next leaves at 6.5 s.
    assert remaining(rates, T0 + 5.25) == ("1", str(int(T0 + 7)))
    assert rates.admit(T0 + 5.5).admitted
    assert not rates.admit(T0 + 6.25).admitted
    assert rates.admit(T0 + 6.5).admitted
    assert remaining(rates, T0 + 7.75) == ("1", str(int(T0 + 11)))  # 2.75 s call left
    empty = rates.spike.headers(WindowRule(3, 5.0, "sliding"), T0 + 20)
    assert empty["X-Rate-Limit-Remaining"] == "3"
    assert empty["X-Rate-Limit-Reset"] == str(int(T0 + 25))  # a call counted now would leave
    assert rates.refused == {"spike": 2}


def test_sliding_window_admits_no_more_than_its_limit_in_any_span() -> None:
    rates = limits(None, (10, 5.0))
    admitted = [T0 + i * 0.1 for i in range(200) if rates.admit(T0 + i * 0.1).admitted]
    assert all(later - earlier >= 5.0 - 1e-9
               for earlier, later in zip(admitted, admitted[10:], strict=False))
    assert len(admitted) == 40  # 10 at once, then 10 every 5 s as the first ones leave


def test_clock_window_turns_over_on_whole_multiples() -> None:
    rates = limits((2, 60.0), None, hourly_kind="clock")
    start = 60 * 16_667  # a whole minute
    assert rates.admit(start + 50).headers["X-Rate-Limit-Reset"] == str(start + 60)
    assert rates.admit(start + 55).admitted
    assert not rates.admit(start + 59).admitted
    assert remaining(rates, start + 60) == ("2", str(start + 120))


def test_a_changed_rule_starts_the_window_afresh() -> None:
    rates = limits((2, 60.0), None)
    assert rates.admit(T0).admitted
    rates.admit(T0 + 1)
    assert not rates.admit(T0 + 2).admitted
    faults_rule = WindowRule(2, 60.0, "first_call")
    assert rates.hourly.count(faults_rule, T0 + 3) == 0


def test_headers_are_those_of_the_window_closest_to_exhaustion() -> None:
    rates = limits((100, 3600.0), (5, 10.0))
    decision = rates.admit(T0)  # 99/100 of the hour left, 4/5 of the spike window
    assert decision.window == "spike"
    assert decision.headers["X-Rate-Limit-Limit"] == "5"
    assert rates.headers(T0 + 1)["X-Rate-Limit-Remaining"] == "4"  # not counted


@pytest.mark.parametrize("kind", ["sliding", "first_call", "clock"])
def test_a_refused_call_counts_against_neither_window(kind: str) -> None:
    rates = limits((100, 3600.0), (1, 10.0), hourly_kind=kind, spike_kind=kind)
    start = T0 - T0 % 10  # a whole period of the clock-aligned spike window
    assert rates.admit(start).admitted
    refused = rates.admit(start + 2)
    assert (refused.admitted, refused.window, refused.retry_after) == (False, "spike", 8)
    assert rates.refused == {"spike": 1}
    # one call in the hour, not two
    assert rates.hourly.room(WindowRule(100, 3600.0, kind), start + 3) == 0.99


def test_when_both_windows_refuse_the_later_reset_answers() -> None:
    rates = limits((1, 3600.0), (1, 10.0))
    assert rates.admit(T0).admitted
    refused = rates.admit(T0 + 5)
    assert (refused.window, refused.retry_after) == ("hourly", 3595)
    assert refused.headers["X-Rate-Limit-Reset"] == str(int(T0 + 3600))
    assert rates.refused == {"hourly": 1}
