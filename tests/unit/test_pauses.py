"""Pauses: one re-check at a time, with backoff from ~20 s up to 15 min; lifted by an answer."""

from __future__ import annotations

from structlog.testing import capture_logs

from procore_hotfolder.pauses import ACCOUNT, MAX_CHECK_SECONDS, PauseBoard

REFUSED = {"reason": "permission", "detail": "Procore answered HTTP 403: project not allowed",
           "status": 403, "request_id": "r-1"}


def test_a_paused_folder_waits_and_lets_one_file_recheck() -> None:
    board = PauseBoard()
    paused = board.pause("/drop/a", REFUSED, now=1000.0, rand=0.5)
    assert 15.0 <= paused.next_check - 1000.0 <= 30.0
    assert board.admit((ACCOUNT, "/drop/a"), 1001.0) == paused.next_check
    assert board.admit((ACCOUNT, "/drop/b"), 1001.0) is None  # other folders flow
    due = paused.next_check
    assert board.admit((ACCOUNT, "/drop/a"), due) is None      # the re-check
    later = board.admit((ACCOUNT, "/drop/a"), due)              # everyone else still waits
    assert later is not None and later > due


def test_failed_rechecks_back_off_to_fifteen_minutes() -> None:
    board = PauseBoard()
    now = 0.0
    gaps = []
    for _ in range(12):
        paused = board.pause("/drop/a", REFUSED, now=now, rand=0.5)
        gaps.append(paused.next_check - now)
        now = paused.next_check
    assert gaps == sorted(gaps)
    assert gaps[-1] == MAX_CHECK_SECONDS
    assert board.current()[0].since == 0.0  # since the first refusal


def test_an_answer_lifts_the_pause_and_says_so() -> None:
    board = PauseBoard()
    with capture_logs() as logs:
        board.pause(ACCOUNT, {"reason": "authentication", "detail": "refused"}, 0.0, 0.5)
        board.pause(ACCOUNT, {"reason": "authentication", "detail": "refused"}, 30.0, 0.5)
        assert board.admit((ACCOUNT, "/drop/a"), 31.0) is not None  # the account pauses all
        board.lift((ACCOUNT, "/drop/a"), 100.0)
    assert board.current() == []
    assert board.admit((ACCOUNT, "/drop/a"), 100.0) is None
    assert [e["event"] for e in logs] == ["account_paused", "pause_check_failed",
                                          "account_resumed"]
    assert logs[-1]["paused_seconds"] == 100.0


def test_a_reload_brings_the_recheck_forward() -> None:
    board = PauseBoard()
    board.pause("/drop/a", REFUSED, now=0.0, rand=0.5)
    board.check_soon(5.0)
    assert board.admit(("/drop/a",), 5.0) is None
