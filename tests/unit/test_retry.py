"""RetryPolicy and Retry-After parsing: pure arithmetic, no sleeping."""

from __future__ import annotations

import pytest

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
