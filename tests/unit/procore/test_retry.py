"""RetryPolicy and Retry-After parsing: pure arithmetic, no sleeping. The request scope
(``RequestRetry``) with scripted answers and a sleep that only records."""

from __future__ import annotations

import pytest

from procore_hotfolder.errors import (
    ContentMismatch,
    NetworkError,
    ProcoreError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Stopping,
    UnexpectedResponse,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.http import RequestRetry
from procore_hotfolder.procore.retry import RetryPolicy, parse_retry_after


def test_backoff_doubles_and_is_capped_without_jitter() -> None:
    policy = RetryPolicy(base=0.5, cap=4.0, jitter=0.25)
    delays = [policy.delay(n, retry_after=None, rand=0.0) for n in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_only_shortens_by_at_most_the_fraction() -> None:
    policy = RetryPolicy(base=1.0, cap=30.0, jitter=0.25)
    assert policy.delay(3, retry_after=None, rand=0.0) == 4.0
    assert policy.delay(3, retry_after=None, rand=0.999999) == pytest.approx(3.0, abs=1e-5)
    for rand in (0.0, 0.1, 0.5, 0.9):
        assert 3.0 <= policy.delay(3, retry_after=None, rand=rand) <= 4.0


def test_server_retry_after_wins_when_longer() -> None:
    policy = RetryPolicy(base=0.5, cap=30.0, jitter=0.25)
    assert policy.delay(1, retry_after=10.0, rand=0.0) == 10.0
    # a little jitter on top, never less than asked
    assert 10.0 < policy.delay(1, retry_after=10.0, rand=0.5) <= 10.0 + 0.25 * 0.5
    # also beyond the cap: the server knows best
    assert policy.delay(1, retry_after=120.0, rand=0.0) == 120.0


def test_own_backoff_wins_when_server_asks_less() -> None:
    policy = RetryPolicy(base=2.0, cap=30.0, jitter=0.0)
    assert policy.delay(3, retry_after=1.0, rand=0.3) == 8.0
    assert policy.delay(3, retry_after=0.0, rand=0.3) == 8.0


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert RetryPolicy(cap=30.0, jitter=0.0).delay(10_000, retry_after=None, rand=0.0) == 30.0


def test_more_tries_counts_the_first_attempt() -> None:
    policy = RetryPolicy(tries=3)
    assert [policy.more_tries(n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert not RetryPolicy(tries=1).more_tries(1)


@pytest.mark.parametrize("kwargs", [{"tries": 0}, {"base": -1.0}, {"jitter": 1.5}])
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(0, retry_after=None, rand=0.0)


def test_policy_is_immutable() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.tries = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),  # 100 s after the epoch, now = 40
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=40.0) == expected


# --- the request scope (RequestRetry) ----------------------------------------------------------


class Tries:
    """An attempt that answers from a script: errors to return, then ``"ok"``."""

    def __init__(self, *errors: ProcoreError) -> None:
        self._errors = list(errors)
        self.calls = 0

    def __call__(self) -> str | ProcoreError:
        self.calls += 1
        return self._errors.pop(0) if self._errors else "ok"


class Sleeps:
    def __init__(self, *, wake: bool = True) -> None:
        self.calls: list[float] = []
        self._wake = wake

    def __call__(self, seconds: float) -> bool:
        self.calls.append(seconds)
        return self._wake


def request_retry(sleeps: Sleeps, *, tries: int = 3,
                  governor: RateGovernor | None = None) -> RequestRetry:
    return RequestRetry(RetryPolicy(tries=tries, base=1.0, jitter=0.0),
                        governor or RateGovernor(clock=lambda: 1000.0),
                        sleep=sleeps, rand=lambda: 0.0, clock=lambda: 1000.0)


def test_request_scope_repeats_what_the_error_allows_until_it_succeeds() -> None:
    sleeps = Sleeps()
    attempt = Tries(ServerError("x", status=502), ServiceUnavailable("y", status=503,
                                                                     retry_after=7.0))
    assert request_retry(sleeps).run("GET x", attempt) == "ok"
    assert attempt.calls == 3
    assert sleeps.calls == [1.0, 7.0]  # backoff, then the server's Retry-After


def test_request_scope_gives_up_with_the_last_error_and_the_history() -> None:
    sleeps = Sleeps()
    last = ServerError("third", status=504)
    attempt = Tries(NetworkError("connection dropped"), ServerError("second", status=502), last)
    with pytest.raises(ServerError) as caught:
        request_retry(sleeps, tries=3).run("GET x", attempt)
    assert caught.value is last
    assert caught.value.history == ("1: network: connection dropped",
                                    "2: server_error: second")
    assert caught.value.as_dict()["history"] == list(caught.value.history)
    assert "history" not in ServerError("once", status=502).as_dict()  # only after retries
    assert attempt.calls == 3
    assert len(sleeps.calls) == 2


@pytest.mark.parametrize("error", [
    UploadExpired("expired", status=403),  # retryable by the whole file, not the request
    ContentMismatch("other bytes", status=400),
    UnexpectedResponse("no uuid", status=201),
    ValidationFailed("invalid", status=422),
])
def test_request_scope_asks_only_the_error(error: ProcoreError) -> None:
    sleeps = Sleeps()
    attempt = Tries(error)
    with pytest.raises(ProcoreError) as caught:
        request_retry(sleeps).run("POST x", attempt)
    assert caught.value is error
    assert caught.value.history == ()
    assert attempt.calls == 1
    assert sleeps.calls == []


def test_a_request_that_must_not_run_twice_is_repeated_only_when_it_did_not_run() -> None:
    sleeps = Sleeps()
    unknown = ServerError("maybe created", status=500)
    with pytest.raises(ServerError):
        request_retry(sleeps).run("POST files", Tries(unknown), idempotent=False)
    assert sleeps.calls == []

    refused = NetworkError("connection refused", not_run=True)
    limited = RateLimited("slow down", status=429)
    attempt = Tries(refused, limited)
    assert request_retry(sleeps).run("POST files", attempt, idempotent=False) == "ok"
    assert attempt.calls == 3


def test_a_body_that_cannot_be_sent_again_is_not_repeated() -> None:
    sleeps = Sleeps()
    attempt = Tries(ServerError("x", status=500))
    with pytest.raises(ServerError):
        request_retry(sleeps).run("storage POST", attempt, replayable=False)
    assert attempt.calls == 1


def test_before_repeat_runs_after_each_pause() -> None:
    sleeps = Sleeps()
    events: list[str] = []

    def attempt() -> str | ProcoreError:
        events.append("try")
        return ServerError("x", status=500) if len(events) < 4 else "ok"

    def rewind() -> None:
        events.append(f"rewind after {len(sleeps.calls)} pauses")

    assert request_retry(sleeps).run("PUT", attempt, before_repeat=rewind) == "ok"
    assert events == ["try", "rewind after 1 pauses", "try", "rewind after 2 pauses", "try"]


def test_stopping_during_a_pause_ends_the_request() -> None:
    sleeps = Sleeps(wake=False)
    attempt = Tries(ServerError("x", status=500))
    with pytest.raises(Stopping):
        request_retry(sleeps).run("GET x", attempt)
    assert attempt.calls == 1


def test_a_network_error_pauses_every_worker() -> None:
    """The governor holds every call back, and reports it (to the board of holds)."""
    reported: list[tuple[str, float, float]] = []
    governor = RateGovernor(clock=lambda: 1000.0,
                            on_pause=lambda *pause: reported.append(pause))
    request_retry(Sleeps(), governor=governor).run("GET x", Tries(NetworkError("down")))
    assert reported == [("network", 1000.0, 1001.0)]
    other = RateGovernor(clock=lambda: 1000.0,
                         on_pause=lambda *pause: reported.append(pause))
    request_retry(Sleeps(), governor=other).run("GET x", Tries(ServerError("x", status=500)))
    assert len(reported) == 1
