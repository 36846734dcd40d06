"""The board of holds. Refusals: one re-check at a time, with backoff from ~20 s up to 15 min;
lifted by an answer; only a re-check's refusal backs off (not one of a request in flight when
the pause began). The rate governor's holds end by themselves; a folder that cannot be listed
is logged once however often it is reported; every reader sees the same holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.upload.holds import (
    ACCOUNT,
    FOLDER_UNAVAILABLE,
    MAX_CHECK_SECONDS,
    HoldBoard,
    HoldKind,
)

REFUSED = {"reason": "permission", "detail": "Procore answered HTTP 403: project not allowed",
           "status": 403, "request_id": "r-1"}


def test_a_paused_folder_waits_and_lets_one_file_recheck() -> None:
    board = HoldBoard()
    paused = board.pause("/drop/a", REFUSED, now=1000.0, rand=0.5, sent_at=999.0)
    assert 15.0 <= paused.until - 1000.0 <= 30.0
    assert board.admit((ACCOUNT, "/drop/a"), 1001.0) == paused.until
    assert board.admit((ACCOUNT, "/drop/b"), 1001.0) is None  # other folders flow
    due = paused.until
    assert board.admit((ACCOUNT, "/drop/a"), due) is None      # the re-check
    later = board.admit((ACCOUNT, "/drop/a"), due)              # everyone else still waits
    assert later is not None and later > due


def test_failed_rechecks_back_off_to_fifteen_minutes() -> None:
    board = HoldBoard()
    now = 0.0
    gaps = []
    for _ in range(12):
        sent = now
        now += 0.5  # the answer comes back
        paused = board.pause("/drop/a", REFUSED, now=now, rand=0.5, sent_at=sent)
        gaps.append(paused.until - now)
        now = paused.until
        assert board.admit(("/drop/a",), now) is None  # the next re-check
    assert gaps == sorted(gaps)
    assert gaps[-1] == MAX_CHECK_SECONDS
    assert board.current(now)[0].since == 0.5  # since the first refusal


def test_an_answer_lifts_the_pause_and_says_so() -> None:
    board = HoldBoard()
    with capture_logs() as logs:
        board.pause(ACCOUNT, {"reason": "authentication", "detail": "refused"}, 0.0, 0.5,
                    sent_at=0.0)
        board.pause(ACCOUNT, {"reason": "authentication", "detail": "refused"}, 30.0, 0.5,
                    sent_at=29.0)
        assert board.admit((ACCOUNT, "/drop/a"), 31.0) is not None  # the account pauses all
        board.lift((ACCOUNT, "/drop/a"), 100.0)
    assert board.current(100.0) == []
    assert board.admit((ACCOUNT, "/drop/a"), 100.0) is None
    assert [e["event"] for e in logs] == ["account_paused", "pause_check_failed",
                                          "account_resumed"]
    assert logs[-1]["paused_seconds"] == 100.0


def test_a_reload_brings_the_recheck_forward() -> None:
    board = HoldBoard()
    board.pause("/drop/a", REFUSED, now=0.0, rand=0.5, sent_at=0.0)
    board.check_soon(5.0)
    assert board.admit(("/drop/a",), 5.0) is None


# Each event: ("refused", sent_at, now), a refusal answered at ``now`` to a request sent at
# ``sent_at``; ("admit", now), a file asks to go (None expected when a re-check is due).
# Then: the failed re-checks counted and the delay to the next re-check from the last event
# (rand 0.5: no jitter, so 20 s, 40 s, 80 s, ...).
PAUSE_CASES = [
    ("three-in-flight-when-the-pause-began",
     [("refused", 0.0, 1.0), ("refused", 0.0, 1.1), ("refused", 0.2, 1.2)], 0, 20.0 - 0.2),
    ("sent-at-the-moment-the-pause-began-counts",
     [("refused", 0.0, 1.0), ("refused", 1.0, 2.0)], 1, 40.0),
    ("the-recheck-refused", [("refused", 0.0, 1.0), ("admit", 21.0), ("refused", 21.0, 22.0)],
     1, 40.0),
    ("in-flight-refused-after-the-recheck-was-admitted",
     [("refused", 0.0, 1.0), ("admit", 21.0), ("refused", 0.5, 22.0)], 0, 21.0 + 20.0 - 22.0),
    ("then-the-recheck-refused",
     [("refused", 0.0, 1.0), ("admit", 21.0), ("refused", 0.5, 22.0), ("refused", 21.0, 23.0)],
     1, 40.0),
    ("two-overlapping-rechecks-count-once",  # the first hung past its hold; a second went
     [("refused", 0.0, 1.0), ("admit", 21.0), ("admit", 41.0), ("refused", 41.0, 42.0),
      ("refused", 21.0, 43.0)], 1, 42.0 + 40.0 - 43.0),
    ("two-overlapping-rechecks-count-once-either-order",
     [("refused", 0.0, 1.0), ("admit", 21.0), ("admit", 41.0), ("refused", 21.0, 42.0),
      ("refused", 41.0, 43.0)], 1, 40.0),
    ("a-second-failed-recheck",
     [("refused", 0.0, 1.0), ("admit", 21.0), ("refused", 21.0, 22.0), ("admit", 62.0),
      ("refused", 62.0, 63.0), ("refused", 21.5, 63.5)], 2, 80.0 - 0.5),
]


@pytest.mark.parametrize(("events", "checks", "next_in"), [c[1:] for c in PAUSE_CASES],
                         ids=[c[0] for c in PAUSE_CASES])
def test_only_a_request_sent_since_the_pause_or_its_recheck_backs_off(
        events: list[tuple[Any, ...]], checks: int, next_in: float) -> None:
    board = HoldBoard()
    now = 0.0
    for event in events:
        if event[0] == "admit":
            now = float(event[1])
            assert board.admit(("/drop/a",), now) is None
        else:
            sent_at, now = float(event[1]), float(event[2])
            board.pause("/drop/a", REFUSED, now=now, rand=0.5, sent_at=sent_at)
    [paused] = board.current(now)
    assert paused.checks == checks
    assert paused.until - now == pytest.approx(next_in)
    assert paused.since == 1.0


def test_a_refusal_in_flight_is_logged_but_does_not_back_off() -> None:
    board = HoldBoard()
    with capture_logs() as logs:
        board.pause("/drop/a", REFUSED, now=1.0, rand=0.5, sent_at=0.0)
        board.pause("/drop/a", REFUSED, now=1.5, rand=0.5, sent_at=0.5)
    assert [e["event"] for e in logs] == ["folder_paused", "pause_refusal_in_flight"]
    assert logs[-1]["checks"] == 0 and logs[-1]["check_in"] == 19.5


def test_the_governors_hold_ends_by_itself_and_grows_while_in_force() -> None:
    board = HoldBoard()
    board.api_paused("rate_limited", since=100.0, until=110.0)
    [hold] = board.current(105.0)
    assert (hold.kind, hold.scope, hold.reason, hold.since, hold.until) == (
        HoldKind.API, ACCOUNT, "rate_limited", 100.0, 110.0)
    assert board.calls_held(105.0) and board.waits_until(Path("/drop/a"), 105.0) is None
    board.api_paused("unavailable", since=108.0, until=120.0)  # the same hold, longer
    [hold] = board.current(115.0)
    assert (hold.reason, hold.since, hold.until) == ("unavailable", 100.0, 120.0)
    assert board.current(120.0) == [] and not board.calls_held(120.0)
    board.api_paused("network", since=130.0, until=131.0)  # a new one
    assert board.current(130.5)[0].since == 130.0


def test_a_folder_that_cannot_be_listed_is_logged_once_per_change() -> None:
    """Every scan reports the folder; the log says it when it changes (it used to come from
    the watcher and the scanner both)."""
    board = HoldBoard()
    folder = Path("/drop/share")
    with capture_logs() as logs:
        board.folder_unavailable(folder, "missing", 10.0)
        board.folder_unavailable(folder, "missing", 15.0)  # the next scan
        assert board.unavailable(folder) and not board.unavailable(Path("/drop/other"))
        board.folder_unavailable(folder, "permission denied", 20.0)
        [hold] = board.current(25.0)
        board.folder_available(folder, 30.0)
        board.folder_available(folder, 35.0)
    assert [e["event"] for e in logs] == ["folder_unavailable", "folder_unavailable",
                                          "folder_available_again"]
    assert [e.get("reason") for e in logs[:2]] == ["missing", "permission denied"]
    assert logs[-1]["unavailable_seconds"] == 20.0
    assert (hold.kind, hold.scope, hold.reason, hold.detail, hold.since, hold.until) == (
        HoldKind.FOLDER, str(folder), FOLDER_UNAVAILABLE, "permission denied", 10.0, None)
    assert board.current(35.0) == [] and not board.unavailable(folder)


def test_a_refused_folders_rows_wait_until_its_recheck_is_due() -> None:
    """What the dispatcher asks: until when a folder's rows wait (its refusal or the
    account's, not the governor's, which the governor itself enforces)."""
    board = HoldBoard()
    board.pause("/drop/a", REFUSED, now=0.0, rand=0.5, sent_at=0.0)  # re-check at 20
    board.api_paused("rate_limited", since=0.0, until=50.0)
    assert board.waits_until(Path("/drop/a"), 1.0) == 20.0
    assert board.waits_until(Path("/drop/b"), 1.0) is None
    assert board.waits_until(Path("/drop/a"), 20.0) is None  # due: one row goes, as re-check
    assert board.admit(("/drop/a",), 20.0) is None
    assert board.waits_until(Path("/drop/a"), 20.5) == 40.0  # the others wait for its answer
    board.pause(ACCOUNT, {"reason": "authentication", "detail": "refused"}, 21.0, 0.5,
                sent_at=21.0)
    assert board.waits_until(Path("/drop/b"), 22.0) == 41.0


def test_every_reader_sees_the_same_holds_in_one_order_and_removed_folders_go() -> None:
    board = HoldBoard()
    board.folder_unavailable(Path("/drop/c"), "missing", 0.0)
    board.pause("/drop/a", REFUSED, now=0.0, rand=0.5, sent_at=0.0)
    board.api_paused("network", since=0.0, until=5.0)
    board.pause(ACCOUNT, {"reason": "authentication", "detail": "refused"}, 0.0, 0.5,
                sent_at=0.0)
    held = board.current(1.0)
    assert [(h.kind, h.scope) for h in held] == [
        (HoldKind.API, ACCOUNT), (HoldKind.REFUSED, "/drop/a"), (HoldKind.REFUSED, ACCOUNT),
        (HoldKind.FOLDER, "/drop/c")]
    assert held[1].as_dict() == {
        "kind": "refused", "scope": "/drop/a", "reason": "permission",
        "detail": REFUSED["detail"], "since": 0.0, "until": 20.0, "checks": 0, "status": 403,
        "request_id": "r-1"}
    assert board.check_soon(2.0) == ["/drop/a", ACCOUNT]
    board.forget([Path("/drop/a"), Path("/drop/c")])
    assert [(h.kind, h.scope) for h in board.current(2.0)] == [
        (HoldKind.API, ACCOUNT), (HoldKind.REFUSED, ACCOUNT)]
