"""The two rate windows on their own, on a made-up clock (no server, no sleeping)."""

from __future__ import annotations

import threading

from procore_hotfolder.emulator.faults import Faults
from procore_hotfolder.emulator.rates import RateLimits

T0 = 1_000_000.0


def limits(hourly: tuple[int, float] | None, spike: tuple[int, float] | None) -> RateLimits:
    faults = Faults()
    faults.rate_limit = hourly
    faults.spike_limit = spike
    return RateLimits(faults, threading.RLock())


def test_hourly_window_counts_refuses_and_turns_over() -> None:
    rates = limits((2, 60.0), None)
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
    # A new window starts once the old one has ended.
    again = rates.admit(T0 + 60)
    assert again.admitted
    assert again.headers["X-Rate-Limit-Remaining"] == "1"


def test_headers_are_those_of_the_window_closest_to_exhaustion() -> None:
    rates = limits((100, 3600.0), (5, 10.0))
    decision = rates.admit(T0)  # 99/100 of the hour left, 4/5 of the spike window
    assert decision.window == "spike"
    assert decision.headers["X-Rate-Limit-Limit"] == "5"
    assert rates.headers(T0 + 1)["X-Rate-Limit-Remaining"] == "4"  # not counted


def test_a_refused_call_counts_against_neither_window() -> None:
    rates = limits((100, 3600.0), (1, 10.0))
    assert rates.admit(T0).admitted
    refused = rates.admit(T0 + 2)
    assert (refused.admitted, refused.window, refused.retry_after) == (False, "spike", 8)
    assert rates.refused == {"spike": 1}
    assert rates.hourly.room((100, 3600.0), T0 + 3) == 0.99  # one call in the hour, not two


def test_when_both_windows_refuse_the_later_reset_answers() -> None:
    rates = limits((1, 3600.0), (1, 10.0))
    assert rates.admit(T0).admitted
    refused = rates.admit(T0 + 5)
    assert (refused.window, refused.retry_after) == ("hourly", 3595)
    assert refused.headers["X-Rate-Limit-Reset"] == str(int(T0 + 3600))
    assert rates.refused == {"hourly": 1}
