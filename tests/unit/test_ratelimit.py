"""RateGovernor arithmetic with a fake clock and a fake wait: nothing really sleeps."""

from __future__ import annotations

import math
import threading
import time
from email.utils import formatdate

import pytest

from procore_hotfolder.errors import Stopping
from procore_hotfolder.ratelimit import (
    MAX_JITTER_SECONDS,
    PROBE_POLL_SECONDS,
    PROBE_STALL_SECONDS,
    RateGovernor,
)


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


def limits(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(reset)}


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def governor(fake: FakeTime) -> RateGovernor:
    return RateGovernor(clock=fake.clock, wait=fake.wait, rand=lambda: 0.0)


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
    governor.observe(200, limits(100, 21, reset))  # reserve 5 -> 16 usable, below half of 100
    governor.acquire()  # the first paced call: spaced from the previous start
    assert fake.waits == [pytest.approx(10.0 / 16)]
    governor.observe(200, limits(100, 20, reset))
    before = fake.now
    governor.acquire()
    # 20 left, 5 reserved: 15 calls over what remains of the window
    assert fake.now - before == pytest.approx((reset - before) / 15, rel=1e-6)


def test_calls_in_flight_count_against_the_remaining(fake: FakeTime,
                                                      governor: RateGovernor) -> None:
    reset = fake.now + 5.0
    for _ in range(4):
        governor.acquire()  # four workers send at once
    # the first answer says 6 left; three calls are still unanswered -> 3 left by our count,
    # spread over the 5 s to the reset
    governor.observe(200, limits(10, 6, reset))
    governor.acquire()
    governor.acquire()
    assert fake.waits == [pytest.approx(5.0 / 3), pytest.approx(5.0 / 3)]
    for remaining in (5, 4, 3, 2):
        governor.observe(200, limits(10, remaining, reset))
    governor.acquire()
    governor.observe(200, limits(10, 0, reset))
    governor.acquire()  # the estimate is spent: waits for the reset
    assert fake.now >= reset


def test_a_lost_observation_does_not_block_probing_forever(fake: FakeTime,
                                                           governor: RateGovernor) -> None:
    reset = fake.now + 1.0
    governor.acquire()
    governor.observe(200, limits(10, 0, reset))
    governor.acquire()  # probe, never observed (a bug elsewhere must not hang every worker)
    governor.acquire()
    assert fake.now >= reset + PROBE_STALL_SECONDS


def test_exhausted_window_waits_for_reset_then_probes_one_at_a_time(
        fake: FakeTime, governor: RateGovernor) -> None:
    reset = fake.now + 4.0
    governor.acquire()
    governor.observe(200, limits(10, 0, reset))
    governor.acquire()  # waits for the reset (plus jitter), then probes
    assert fake.now >= reset
    # a second caller while the probe is unanswered polls instead of rushing in
    waits_before = len(fake.waits)
    worker_done = threading.Event()

    def second_caller() -> None:
        governor.acquire()
        worker_done.set()

    # run the second caller with a wait that answers the probe on its first poll
    probe_answered = {"done": False}

    def answering_wait(seconds: float) -> bool:
        assert seconds == PROBE_POLL_SECONDS
        if not probe_answered["done"]:
            probe_answered["done"] = True
            governor.observe(200, limits(10, 9, math.ceil(fake.now + 5)))
        return fake.wait(seconds)

    governor._wait = answering_wait
    second_caller()
    assert worker_done.is_set()
    assert len(fake.waits) == waits_before + 1


def test_429_pauses_every_caller_until_reset_or_retry_after(fake: FakeTime) -> None:
    governor = RateGovernor(clock=fake.clock, wait=fake.wait, rand=lambda: 0.5)
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


def test_overtaking_answers_keep_the_cautious_count(fake: FakeTime,
                                                     governor: RateGovernor) -> None:
    reset = fake.now + 10
    governor.acquire()
    governor.acquire()
    governor.observe(200, limits(10, 1, reset))
    governor.observe(200, limits(10, 9, reset))  # counted earlier, answered later
    governor.acquire()
    assert fake.now >= reset  # still believes the window is spent


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


def test_default_wait_is_woken_by_stop() -> None:
    governor = RateGovernor()
    governor.pause(time.time() + 60, "network")
    raised = threading.Event()

    def caller() -> None:
        try:
            governor.acquire()
        except Stopping:
            raised.set()

    thread = threading.Thread(target=caller)
    thread.start()
    governor.stop()
    thread.join(5)
    assert raised.is_set()


def test_unreadable_headers_are_ignored(fake: FakeTime, governor: RateGovernor) -> None:
    governor.acquire()
    governor.observe(200, {"X-Rate-Limit-Limit": "many", "X-Rate-Limit-Remaining": "nan",
                           "X-Rate-Limit-Reset": ""})
    governor.acquire()
    governor.observe(0, {})  # no answer at all
    governor.acquire()
    assert fake.waits == []


# --- a whole run against a simulated server ------------------------------------------------


class FixedWindowServer:
    """Counts calls in fixed windows.

    ``aligned``: windows at multiples of ``window`` (reset exact), else the window starts at
    the first call after the last one ended and the reset is rounded up to whole seconds
    (as the project's emulator does).
    """

    def __init__(self, fake: FakeTime, limit: int, window: float, *, aligned: bool) -> None:
        self.fake, self.limit, self.window, self.aligned = fake, limit, window, aligned
        self.start = -math.inf
        self.count = 0
        self.ok = 0
        self.refused = 0

    def call(self) -> tuple[int, dict[str, str]]:
        now = self.fake.now
        if now >= self.start + self.window:
            self.start = (now // self.window) * self.window if self.aligned else now
            self.count = 0
        end = self.start + self.window
        reset = end if self.aligned else math.ceil(end)
        if self.count >= self.limit:
            self.refused += 1
            return 429, {**limits(self.limit, 0, reset),
                         "Retry-After": str(max(1, math.ceil(reset - now)))}
        self.count += 1
        self.ok += 1
        return 200, limits(self.limit, self.limit - self.count, reset)


@pytest.mark.parametrize(
    ("limit", "window", "aligned", "minimum_share"),
    [
        (10, 5.0, True, 0.85),
        (10, 5.0, False, 0.80),  # the rounded-up reset costs up to 1 s per window
        (25, 10.0, True, 0.85),
        (600, 3600.0, True, 0.9),
    ],
)
def test_sustained_run_stays_under_the_limit_and_near_the_rate(
        fake: FakeTime, limit: int, window: float, aligned: bool, minimum_share: float) -> None:
    governor = RateGovernor(clock=fake.clock, wait=fake.wait, rand=lambda: 0.5)
    server = FixedWindowServer(fake, limit, window, aligned=aligned)
    start = fake.now
    duration = window * 12
    latency = 0.01
    while fake.now - start < duration:
        governor.acquire()
        fake.now += latency
        status, headers = server.call()
        governor.observe(status, headers)
    elapsed = fake.now - start
    allowed = limit / window * elapsed
    assert server.refused == 0
    assert server.ok >= minimum_share * allowed


def test_our_ceiling_caps_calls_in_any_hour(fake: FakeTime) -> None:
    """daemon.max_api_calls_per_hour: at most N calls in any sliding hour, whatever Procore's
    headers would allow, leaving the rest of the company's quota to other integrations."""
    governor = RateGovernor(clock=fake.clock, wait=fake.wait, rand=lambda: 0.0,
                            ceiling_per_hour=5)
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
