"""The outcome policy in one table: journal state x error -> retry, pause, fail or settle again.

Pure: no journal, no HTTP, no clock. Each row is one line of the policy a reader can check
against `product.md` (Failure; Never lost, never twice).
"""

from __future__ import annotations

import pytest

from procore_hotfolder.errors import (
    ArchiveError,
    AuthenticationError,
    ContentMismatch,
    FileChanged,
    FileOpenForWriting,
    FileRefused,
    FileUnreadable,
    FileVanished,
    FilingUnconfirmed,
    HotfolderError,
    NetworkError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    ServerError,
    ServiceUnavailable,
    StorageRejected,
    UnexpectedResponse,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.model import ALLOWED_MOVES, FileState
from procore_hotfolder.upload.policy import Action, decide

Q, U, S = FileState.QUEUED, FileState.UPLOADING, FileState.STORED
A, D, L = FileState.ASSOCIATING, FileState.ASSOCIATED, FileState.LEDGERED

RETRY, FAIL = Action.RETRY, Action.FAIL
PAUSE_F, PAUSE_A = Action.PAUSE_FOLDER, Action.PAUSE_ALL
CHANGED, VANISHED, COMPLETE = Action.CHANGED, Action.VANISHED, Action.COMPLETE


def _e(cls: type[HotfolderError], status: int | None = None) -> HotfolderError:
    if cls in (FileRefused, FileChanged, FileVanished, FileUnreadable, ArchiveError,
               FilingUnconfirmed, FileOpenForWriting):
        return cls("x")
    return cls("x", status=status)  # type: ignore[call-arg]


# state, error, attempts so far, -> action, charged, unsent (ASSOCIATING -> STORED first)
TABLE = [
    # rule 1, the original moved on: it settles again / is forgotten / the upload stands;
    # nothing archived, whichever step noticed it
    (Q, _e(FileChanged), 0, CHANGED, False, False),
    (U, _e(FileChanged), 3, CHANGED, False, False),
    (Q, _e(FileOpenForWriting), 0, CHANGED, False, False),  # a writer before the upload
    (U, _e(FileOpenForWriting), 0, CHANGED, False, False),  # ... back while uploading
    (Q, _e(FileVanished), 0, VANISHED, False, False),       # gone before the upload
    (U, _e(FileVanished), 0, VANISHED, False, False),
    (S, _e(FileChanged), 0, CHANGED, False, False),  # re-saved before filing (or archiving)
    (S, _e(FileOpenForWriting), 0, CHANGED, False, False),  # a writer before filing
    (S, _e(FileVanished), 0, COMPLETE, False, False),  # nothing to file: gone at the archive
    (D, _e(FileChanged), 0, CHANGED, False, False),  # re-saved after filing / before the move
    (D, _e(FileOpenForWriting), 0, CHANGED, False, False),  # a writer before the move
    (D, _e(FileVanished), 0, COMPLETE, False, False),  # gone after its upload
    (L, _e(FileChanged), 0, CHANGED, False, False),  # a row of an older release
    (L, _e(FileOpenForWriting), 0, CHANGED, False, False),
    (L, _e(FileVanished), 0, COMPLETE, False, False),  # (was CHANGED: one rule now)
    (A, _e(FileChanged), 0, RETRY, True, False),  # never raised there: no rule-1 answer
    # refused files fail at once
    (Q, _e(FileRefused), 0, FAIL, False, False),
    (U, _e(FileRefused), 0, FAIL, False, False),
    # filed already, or only the disk failed: never failed, retried
    (D, _e(ServerError, 500), 9, RETRY, True, False),
    (L, _e(ArchiveError), 9, RETRY, True, False),
    (S, _e(ArchiveError), 9, RETRY, True, False),
    # the account is refused: everything pauses, nobody charged
    (U, _e(AuthenticationError, 401), 0, PAUSE_A, False, False),
    (A, _e(AuthenticationError, 401), 0, PAUSE_A, False, True),
    # the folder's project or destination is refused: that folder pauses
    (U, _e(PermissionDenied, 403), 0, PAUSE_F, False, False),
    (U, _e(NotFound, 404), 4, PAUSE_F, False, False),
    (A, _e(PermissionDenied, 403), 0, PAUSE_F, False, True),
    (S, _e(NotFound, 404), 0, PAUSE_F, False, False),
    # outages hit every request: wait, uncharged, however often
    (U, _e(NetworkError), 99, RETRY, False, False),
    (U, _e(RateLimited, 429), 99, RETRY, False, False),
    (U, _e(ServiceUnavailable, 503), 99, RETRY, False, False),
    (A, _e(RateLimited, 429), 0, RETRY, False, True),   # 429: the POST did not run
    (A, _e(NetworkError), 0, RETRY, False, False),      # maybe filed: look first
    # transient errors: charged, retried, failed after max_attempts (5)
    (U, _e(ServerError, 500), 0, RETRY, True, False),
    (U, _e(RequestTimeout, 408), 0, RETRY, True, False),
    (A, _e(RequestTimeout, 408), 0, RETRY, True, False),  # 408: outcome unknown
    (U, _e(UploadExpired, 403), 0, RETRY, True, False),
    # a filing that could not be confirmed: planned afresh (at once the first time)
    (S, _e(FilingUnconfirmed), 0, RETRY, True, False),
    (A, _e(FilingUnconfirmed), 0, RETRY, True, False),  # a plan recorded, not sent: look
    (S, _e(FilingUnconfirmed), 4, FAIL, True, False),
    (U, _e(ContentMismatch, 400), 1, RETRY, True, False),
    (U, _e(UnexpectedResponse, 201), 0, RETRY, True, False),
    (Q, _e(FileUnreadable), 0, RETRY, True, False),
    (U, _e(ServerError, 500), 4, FAIL, True, False),
    (Q, _e(FileUnreadable), 4, FAIL, True, False),
    # permanent errors fail
    (U, _e(ValidationFailed, 422), 0, FAIL, True, False),
    (U, _e(StorageRejected, 400), 0, FAIL, True, False),
    (A, _e(ValidationFailed, 422), 0, FAIL, True, True),
]


@pytest.mark.parametrize(("state", "error", "attempts", "action", "charge", "unsent"), TABLE,
                         ids=[f"{r[0]}-{type(r[1]).__name__}-{r[2]}" for r in TABLE])
def test_policy_table(state: FileState, error: HotfolderError, attempts: int,
                      action: Action, charge: bool, unsent: bool) -> None:
    decision = decide(state, error, attempts, 5, 0.5)
    assert (decision.action, decision.charge, decision.unsent) == (action, charge, unsent)


def test_every_decision_is_a_move_the_journal_allows() -> None:
    """No decision strands a row: each names a move the state table allows (or none)."""
    targets = {CHANGED: FileState.CHANGED, VANISHED: FileState.VANISHED,
               FAIL: FileState.FAILED, COMPLETE: FileState.ARCHIVED}
    for state, error, attempts, *_ in TABLE:
        decision = decide(state, error, attempts, 5, 0.5)
        start = FileState.STORED if decision.unsent else state
        target = targets.get(decision.action)
        if target is not None and not decision.resolve_first:
            assert target in ALLOWED_MOVES[start], (state, error, decision)


def test_a_filing_of_unknown_outcome_is_never_failed_without_a_look() -> None:
    """ASSOCIATING after a lost answer: even out of tries, fail only after finding out."""
    decision = decide(A, _e(ServerError, 500), 4, 5, 0.5)
    assert decision.action is FAIL and decision.resolve_first and decision.gave_up
    assert FileState.FAILED not in ALLOWED_MOVES[A]


def test_backoff_grows_and_a_fresh_upload_comes_at_once() -> None:
    delays = [decide(U, _e(ServerError, 500), n, 10, 0.5).delay for n in range(4)]
    assert delays == sorted(delays) and delays[0] > 0
    assert decide(U, _e(UploadExpired, 403), 0, 5, 0.5).delay == 0.0
    assert decide(U, _e(UploadExpired, 403), 1, 5, 0.5).delay > 0.0


def test_an_unconfirmed_filing_is_planned_afresh_at_once_then_with_backoff() -> None:
    """Nothing expired: its own error and reason, but the same first retry as a fresh
    Upload."""
    assert decide(S, _e(FilingUnconfirmed), 0, 5, 0.5).delay == 0.0
    assert decide(S, _e(FilingUnconfirmed), 1, 5, 0.5).delay > 0.0
    assert _e(FilingUnconfirmed).reason == "filing_unconfirmed"


def test_outage_waits_as_long_as_the_server_asks() -> None:
    error = RateLimited("x", status=429, retry_after=42.0)
    assert decide(U, error, 0, 5, 0.5).delay == 42.0
