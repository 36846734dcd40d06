"""RateGovernor arithmetic with a fake clock and a fake wait: nothing really sleeps."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from email.utils import formatdate

import pytest

from procore_hotfolder.errors import Stopping
from procore_hotfolder.procore.governor import MAX_JITTER_SECONDS, RateGovernor
from procore_hotfolder.procore.windows import STALE_SECONDS


class FakeTime:
    """A clock that only moves when someone waits on it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return True

    def governor(self, rand: float = 0.0, ceiling_per_hour: int | None = None) -> RateGovernor:
        """A governor on this clock and wait, its jitter fixed at ``rand``."""
        return RateGovernor(clock=self.clock, wait=self.wait, rand=lambda: rand,
                            ceiling_per_hour=ceiling_per_hour)


def limits(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(reset)}


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def governor(fake: FakeTime) -> RateGovernor:
    return fake.governor()


def test_nothing_known_means_no_waiting(fake: FakeTime, governor: RateGovernor) -> None:
    for _ in range(20):
        governor.acquire()
    assert fake.waits == []


def test_plenty_remaining_is_not_slowed_down(fake: FakeTime, governor: RateGovernor) -> None:
    reset = fake.now + 3600
    for remaining in range(599, 330, -1):  # stays above 30 reserved + 300
        governor.acquire()
        governor.observe(200, limits(600, remaining, reset))
    assert fake.waits == []


def test_low_remaining_is_spread_until_the_reset(fake: FakeTime, governor: RateGovernor) -> None:
    reset = fake.now + 10.0
    governor.acquire()
    governor.observe(200, limits(100, 19, reset))  # below half of 100: spread
    governor.acquire()
    # 19 calls left and the next period's first, evenly from the last start to the reset
    assert fake.waits == [pytest.approx(10.0 / 20)]
    governor.observe(200, limits(100, 18, reset))
    before = fake.now
    governor.acquire()
    assert fake.now - before == pytest.approx((reset - before) / 19, rel=1e-6)


def test_spreading_uses_the_last_call_of_the_window(fake: FakeTime,
                                                    governor: RateGovernor) -> None:
    """No reserve, and the last call goes before the reset: all of the limit is used."""
    reset = fake.now + 10.0
    starts = []
    for remaining in range(8, -1, -1):  # another integration made one call of the ten
        governor.acquire()
        starts.append(fake.now)
        governor.observe(200, limits(10, remaining, reset))
    assert len(starts) == 9
    assert starts[-1] < reset
    gaps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    assert gaps == [pytest.approx(10.0 / 5)] * 4  # 4 calls left after the burst, and the next


def test_calls_in_flight_count_against_the_remaining(fake: FakeTime,
                                                      governor: RateGovernor) -> None:
    reset = fake.now + 5.0
    for _ in range(4):
        governor.acquire()  # four workers send at once
    # the first answer says 6 left; three calls are still unanswered -> 3 left by our count,
    # spread with the next period's first over the 5 s to the reset
    governor.observe(200, limits(10, 6, reset))
    governor.acquire()
    governor.acquire()
    assert fake.waits == [pytest.approx(5.0 / 4), pytest.approx((5.0 - 5.0 / 4) / 3)]
    for remaining in (5, 4, 3, 2):
        governor.observe(200, limits(10, remaining, reset))
    governor.acquire()
    governor.observe(200, limits(10, 0, reset))
    governor.acquire()  # the estimate is spent: waits for the reset
    assert fake.now >= reset


def test_a_spent_window_starts_over_at_its_reset_without_probing(
        fake: FakeTime, governor: RateGovernor) -> None:
    """Once its reset passes, a window's whole limit is there again: the workers go at once
    (no one-call-at-a-time probing), and a lost observation blocks nobody."""
    reset = fake.now + 4.0
    governor.acquire()
    governor.observe(200, limits(10, 0, reset))
    governor.acquire()  # waits for the reset
    assert fake.now == pytest.approx(reset)
    waits = len(fake.waits)
    for _ in range(5):  # none of these observed yet (or ever)
        governor.acquire()
    assert len(fake.waits) == waits


def test_429_pauses_every_caller_until_reset_or_retry_after(fake: FakeTime) -> None:
    governor = fake.governor(rand=0.5)
    start = fake.now
    governor.acquire()
    governor.observe(429, {**limits(10, 0, start + 3), "Retry-After": "7"})
    paused = governor.paused()
    assert paused is not None
    until, reason = paused
    assert reason == "rate_limited"
    assert start + 7 < until <= start + 7 + MAX_JITTER_SECONDS
    governor.acquire()
    assert fake.now >= start + 7


def test_429_reset_later_than_retry_after_wins(fake: FakeTime, governor: RateGovernor) -> None:
    start = fake.now
    governor.acquire()
    governor.observe(429, {**limits(10, 0, start + 9), "Retry-After": "1"})
    paused = governor.paused()
    assert paused is not None
    assert paused[0] >= start + 9


def test_429_without_any_hint_still_pauses(fake: FakeTime, governor: RateGovernor) -> None:
    governor.acquire()
    governor.observe(429, {})
    assert governor.paused() is not None


def test_503_pauses_only_with_retry_after(fake: FakeTime, governor: RateGovernor) -> None:
    governor.acquire()
    governor.observe(503, {})
    assert governor.paused() is None
    governor.acquire()
    governor.observe(503, {"Retry-After": "2"})
    paused = governor.paused()
    assert paused is not None
    assert paused[1] == "unavailable"


def test_pause_holds_callers_and_is_reported(fake: FakeTime, governor: RateGovernor) -> None:
    governor.pause(fake.now + 12.0, "network")
    assert governor.paused() == (fake.now + 12.0, "network")
    start = fake.now
    governor.acquire()
    assert fake.now == pytest.approx(start + 12.0)
    assert governor.paused() is None
    governor.pause(fake.now - 1, "network")  # a pause in the past changes nothing
    assert governor.paused() is None


def test_late_answers_from_an_older_window_are_ignored(fake: FakeTime,
                                                        governor: RateGovernor) -> None:
    governor.acquire()
    governor.acquire()
    governor.observe(200, limits(100, 90, fake.now + 20))
    governor.observe(200, limits(100, 1, fake.now + 10))  # older window, arrived late
    governor.acquire()
    assert fake.waits == []


def test_overtaking_answers_count_from_the_lowest_remaining(fake: FakeTime,
                                                            governor: RateGovernor) -> None:
    """Answers overtake each other: the lowest Remaining of the period counts, less the calls
    still in flight (not a running minimum that would count an answered call twice)."""
    reset = fake.now + 10
    governor.acquire()
    governor.acquire()
    governor.observe(200, limits(10, 1, reset))  # counted second, answered first
    governor.observe(200, limits(10, 2, reset))  # counted first, answered later
    governor.acquire()  # one call left: spread, not a wait for the reset
    assert fake.now < reset
    governor.observe(200, limits(10, 0, reset))
    governor.acquire()
    assert fake.now >= reset  # now spent


def test_server_clock_skew_is_corrected_from_date(fake: FakeTime,
                                                  governor: RateGovernor) -> None:
    # the server runs 100 s behind us: its reset looks past, but is 5 s away on its clock
    server_now = fake.now - 100
    headers = {**limits(10, 0, server_now + 5), "Date": formatdate(server_now, usegmt=True)}
    governor.acquire()
    governor.observe(200, headers)
    start = fake.now
    governor.acquire()
    assert 4.0 <= fake.now - start <= 5.0 + 1.0 + MAX_JITTER_SECONDS


def test_stop_makes_acquire_raise(fake: FakeTime, governor: RateGovernor) -> None:
    governor.stop()
    assert governor.stopping
    with pytest.raises(Stopping):
        governor.acquire()
    assert governor.sleep(1.0) is False


def test_wait_returning_false_raises_stopping(fake: FakeTime) -> None:
    governor = RateGovernor(clock=fake.clock, wait=lambda _s: False)
    governor.pause(fake.now + 5, "network")
    with pytest.raises(Stopping):
        governor.acquire()


def _waiting_caller_is_stopped(governor: RateGovernor, stop: Callable[[], None]) -> None:
    """A caller waiting out a pause raises ``Stopping`` as soon as ``stop`` runs."""
    governor.pause(time.time() + 60, "network")
    raised = threading.Event()

    def caller() -> None:
        try:
            governor.acquire()
        except Stopping:
            raised.set()

    thread = threading.Thread(target=caller)
    thread.start()
    stop()
    thread.join(5)
    assert raised.is_set()


def test_default_wait_is_woken_by_stop() -> None:
    governor = RateGovernor()
    _waiting_caller_is_stopped(governor, governor.stop)


def test_the_process_stop_event_stops_a_waiting_caller() -> None:
    stop = threading.Event()
    governor = RateGovernor(stop=stop)
    # set by whoever owns the process's stop, not through the governor
    _waiting_caller_is_stopped(governor, stop.set)
    assert governor.stopping
    assert governor.sleep(1.0) is False


def test_stop_sets_the_event_it_was_given(fake: FakeTime) -> None:
    stop = threading.Event()
    governor = RateGovernor(clock=fake.clock, wait=fake.wait, stop=stop)
    governor.stop()
    assert stop.is_set()
    with pytest.raises(Stopping):
        governor.acquire()


def test_unreadable_headers_are_ignored(fake: FakeTime, governor: RateGovernor) -> None:
    governor.acquire()
    governor.observe(200, {"X-Rate-Limit-Limit": "many", "X-Rate-Limit-Remaining": "nan",
                           "X-Rate-Limit-Reset": ""})
    governor.acquire()
    governor.observe(0, {})  # no answer at all
    governor.acquire()
    assert fake.waits == []


# --- two windows: the headers describe whichever is closer to exhaustion ---------------------


def test_a_sooner_reset_is_the_other_window_not_a_late_answer(
        fake: FakeTime, governor: RateGovernor) -> None:
    """Hourly and spike answers alternate: the spike window's sooner reset is tracked, not
    mistaken for an older hourly answer, and a spent spike window holds the next call."""
    hourly_reset, spike_reset = fake.now + 3000, fake.now + 8
    governor.acquire()
    governor.observe(200, limits(600, 400, hourly_reset))
    governor.acquire()
    governor.observe(200, limits(25, 0, spike_reset))  # the spike window, spent
    governor.acquire()
    assert fake.now == pytest.approx(spike_reset)  # waited for the spike window only
    governor.observe(200, limits(600, 397, hourly_reset))
    assert fake.waits == [pytest.approx(8.0)]


def test_spike_window_spent_while_the_hourly_has_plenty(
        fake: FakeTime, governor: RateGovernor) -> None:
    spike_reset = fake.now + 10
    governor.acquire()
    governor.observe(200, limits(25, 24, spike_reset))
    starts = [fake.now]
    for _ in range(30):
        governor.acquire()
        starts.append(fake.now)
        governor.observe(200, limits(600, 500, fake.now + 3000))  # the hourly described
    # every call counted against the spike window although no answer described it
    assert sum(1 for t in starts if t < spike_reset) == 25
    # and the next period's go together (within the second the reset may be rounded by)
    assert all(spike_reset - 1 <= t <= spike_reset + 1 for t in starts[25:])
    assert len({round(t, 6) for t in starts[25:]}) == 1


def test_hourly_window_spent_while_the_spike_window_has_plenty(
        fake: FakeTime, governor: RateGovernor) -> None:
    hourly_reset = fake.now + 1800
    governor.acquire()
    governor.observe(200, limits(600, 0, hourly_reset))
    governor.acquire()
    governor.observe(200, limits(25, 24, fake.now + 10))  # spike: roomy, resets soon
    before = fake.now
    governor.acquire()
    assert before >= hourly_reset  # the earlier wait was for the hourly window
    assert fake.waits == [pytest.approx(1800.0)]


def test_the_next_call_waits_for_the_slowest_window(fake: FakeTime,
                                                    governor: RateGovernor) -> None:
    governor.acquire()
    governor.observe(200, limits(600, 100, fake.now + 1200))  # hourly: 1200 s / 101
    governor.acquire()
    governor.observe(200, limits(25, 10, fake.now + 10))  # spike: 10 s / 11
    first = fake.now
    governor.acquire()
    assert fake.now - first == pytest.approx(1200 / 101, rel=0.01)


def test_a_spike_window_that_ends_is_counted_again_from_its_whole_limit(
        fake: FakeTime, governor: RateGovernor) -> None:
    """The spike window's reset passes every few seconds, mostly unannounced: its next period
    is counted from the whole limit at once (no probing), for as long as the run lasts."""
    governor.acquire()
    governor.observe(200, limits(5, 4, fake.now + 2))
    start = fake.now
    starts = []
    for _ in range(50):
        governor.acquire()
        starts.append(fake.now - start)
        governor.observe(200, limits(600, 500, fake.now + 3000))
    for period in range(1, 10):  # at most 5 calls in any 2 s, and no idling beyond that
        inside = [t for t in starts if period * 2 <= t < period * 2 + 2 - 1e-6]
        assert len(inside) <= 5
    assert starts[-1] <= 2 * 11


def test_a_window_never_described_for_hours_is_forgotten(fake: FakeTime,
                                                         governor: RateGovernor) -> None:
    governor.acquire()
    governor.observe(200, limits(5, 4, fake.now + 2))
    fake.now += STALE_SECONDS + 10
    for _ in range(20):
        governor.acquire()
    assert fake.waits == []


def test_429_on_the_spike_window_pauses_until_its_reset(fake: FakeTime,
                                                        governor: RateGovernor) -> None:
    start = fake.now
    governor.acquire()
    governor.observe(200, limits(600, 590, start + 3000))
    governor.acquire()
    governor.observe(429, {**limits(25, 0, start + 4), "Retry-After": "4"})
    paused = governor.paused()
    assert paused is not None
    assert start + 4 < paused[0] <= start + 4 + MAX_JITTER_SECONDS
    governor.acquire()  # after the pause: the hourly window has plenty
    assert fake.now < start + 5
    assert fake.waits and len(fake.waits) == 1


def test_429_on_the_hourly_window_pauses_until_its_reset(fake: FakeTime,
                                                         governor: RateGovernor) -> None:
    start = fake.now
    governor.acquire()
    governor.observe(200, limits(25, 20, start + 5))
    governor.acquire()
    governor.observe(429, {**limits(600, 0, start + 900), "Retry-After": "900"})
    governor.acquire()
    assert fake.now >= start + 900


def test_a_period_is_ended_before_its_rounded_up_reset_once_its_length_is_known(
        fake: FakeTime, governor: RateGovernor) -> None:
    """Where a period starts with its first call (the emulator), Reset is rounded up to the
    second: the governor learns the length and starts the next period when the server does."""
    server = FixedWindowServer(fake, [FixedWindow(5, 2.0, aligned=False)])
    run_against(fake, governor, server, 60)  # learning
    ok = server.ok
    elapsed = run_against(fake, governor, server, 60)
    assert server.refused == 0
    assert server.ok - ok >= 0.98 * 5 / 2.0 * elapsed


def test_aligned_periods_cost_at_most_one_429_then_reset_rules(fake: FakeTime,
                                                               governor: RateGovernor) -> None:
    server = FixedWindowServer(fake, [FixedWindow(5, 2.0, aligned=True)])
    run_against(fake, governor, server, 600)
    assert server.refused <= 1
    assert not governor._windows[5].early_ok or server.refused == 0


# --- a whole run against a simulated server ------------------------------------------------


class FixedWindow:
    """One of the server's windows: counts calls in fixed periods.

    ``aligned``: periods at multiples of ``seconds`` (reset exact), else a period starts with
    the first call after the last one ended and the reset is rounded up to whole seconds
    (as the project's emulator does).
    """

    def __init__(self, limit: int, seconds: float, *, aligned: bool) -> None:
        self.limit, self.seconds, self.aligned = limit, seconds, aligned
        self.start = -math.inf
        self.count = 0

    def roll(self, now: float) -> None:
        if now >= self.start + self.seconds:
            self.start = (now // self.seconds) * self.seconds if self.aligned else now
            self.count = 0

    def reset(self) -> float:
        end = self.start + self.seconds
        return end if self.aligned else math.ceil(end)

    def room(self) -> float:
        return (self.limit - self.count) / self.limit

    def headers(self) -> dict[str, str]:
        return limits(self.limit, self.limit - self.count, self.reset())


class FixedWindowServer:
    """Procore's two windows as the spec describes them: a call counts against every window,
    is refused (429, the refusing window's headers) when one is spent, and every answer
    carries the headers of the window closest to exhaustion."""

    def __init__(self, fake: FakeTime, windows: list[FixedWindow]) -> None:
        self.fake, self.windows = fake, windows
        self.ok = 0
        self.refused = 0

    def call(self) -> tuple[int, dict[str, str]]:
        now = self.fake.now
        for window in self.windows:
            window.roll(now)
        spent = [w for w in self.windows if w.count >= w.limit]
        if spent:
            self.refused += 1
            refusing = max(spent, key=FixedWindow.reset)
            return 429, {**refusing.headers(),
                         "Retry-After": str(max(1, math.ceil(refusing.reset() - now)))}
        for window in self.windows:
            window.count += 1
        self.ok += 1
        return 200, min(self.windows, key=FixedWindow.room).headers()


def run_against(fake: FakeTime, governor: RateGovernor, server: FixedWindowServer,
                seconds: float, latency: float = 0.01) -> float:
    """Calls back to back for ``seconds``: the server counts each half-way through its
    latency. Returns the seconds elapsed."""
    start = fake.now
    while fake.now - start < seconds:
        governor.acquire()
        fake.now += latency / 2
        status, headers = server.call()
        fake.now += latency / 2
        governor.observe(status, headers)
    return fake.now - start


@pytest.mark.parametrize(
    ("windows", "aligned"),
    [
        ([(10, 5.0)], False),
        ([(5, 2.0)], False),  # rounding the reset up would cost a third of every period
        ([(10, 5.0)], True),
        ([(25, 10.0)], True),
        ([(600, 3600.0)], True),
        ([(60, 60.0), (5, 2.0)], False),  # the benchmark's windows: the hourly one binds
        ([(600, 3600.0), (25, 10.0)], False),  # Procore's example numbers
        ([(600, 3600.0), (25, 10.0)], True),
        ([(600, 60.0), (5, 2.0)], False),  # the spike window binds
        ([(600, 60.0), (5, 2.0)], True),
    ],
)
def test_long_run_uses_the_tighter_window_with_at_most_one_429_an_hour(
        fake: FakeTime, windows: list[tuple[int, float]], aligned: bool) -> None:
    governor = fake.governor(rand=0.5)
    server = FixedWindowServer(
        fake, [FixedWindow(limit, seconds, aligned=aligned) for limit, seconds in windows])
    longest = max(seconds for _, seconds in windows)
    elapsed = run_against(fake, governor, server, max(6 * longest, 400 * min(
        seconds for _, seconds in windows)))
    allowed = min(limit / seconds for limit, seconds in windows) * elapsed
    assert server.ok >= 0.95 * allowed
    # Where periods are aligned on the clock, ending one early is tried once (the 429 says
    # it was wrong, and the window is then taken to end at its Reset).
    assert server.refused <= max(1.0, elapsed / 3600)


def test_our_ceiling_caps_calls_in_any_hour(fake: FakeTime) -> None:
    """daemon.max_api_calls_per_hour: at most N calls in any sliding hour, whatever Procore's
    headers would allow, leaving the rest of the company's quota to other integrations."""
    governor = fake.governor(ceiling_per_hour=5)
    starts = []
    for _ in range(12):
        governor.acquire()
        governor.observe(200, limits(3600, 3000, fake.now + 3600))
        starts.append(fake.now)
        fake.now += 1.0
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] >= 3600.0  # any 6 calls span more than an hour
    assert governor.quota_wait_seconds > 0
    governor.set_ceiling(None)
    before = fake.now
    governor.acquire()
    assert fake.now == before  # lifted by a reload


def test_our_ceiling_lets_a_minutes_worth_go_at_once_then_paces_evenly(
        fake: FakeTime) -> None:
    """The ceiling leaves its room to other integrations at every moment, not only at the end
    of an hour spent in one burst; and it binds whatever the server's windows allow."""
    governor = fake.governor(ceiling_per_hour=1800)
    server = FixedWindowServer(fake, [FixedWindow(60, 60.0, aligned=False),
                                      FixedWindow(5, 2.0, aligned=False)])
    elapsed = run_against(fake, governor, server, 3600)
    assert server.refused == 0
    assert 1780 <= server.ok <= 1800
    assert elapsed >= 3600
    later = server.ok
    run_against(fake, governor, server, 600)
    assert server.ok - later == pytest.approx((1800 - 30) / 3600 * 600, abs=2)
