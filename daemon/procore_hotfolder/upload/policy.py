"""PURE: what becomes of a file whose attempt ended in an error, in one table.

``decide(state, error, attempts, max_attempts, rand)`` answers, for the journal state the
attempt stopped in and the error it met, one ``Decision``: try again later (charging the
file an attempt or not), wait for a pause of the folder or of the whole account, give the
file up as failed, let it settle again because it changed or went away, or end it without
an archive because its original went after the upload. The uploader applies the decision;
nothing here touches the journal, a file, a clock or a socket.

The rules, first match wins:

1. The original moved on after it settled: re-saved (``FileChanged``), held open by a
   writer (``FileOpenForWriting``, a ``FileChanged``) or gone (``FileVanished``, one too).
   This is the one place that decides it; the step that notices only reports (``transfer``
   before and after the upload, the uploader before filing, ``finishing`` at the archive
   move, which writes the ledger line of what was filed before it reports). Nothing of an
   old version is filed or archived, and the row's ``last_error`` names the reason:

   | the row, when it is noticed           | re-saved, or held by a writer | gone       |
   |---------------------------------------|-------------------------------|------------|
   | QUEUED, UPLOADING: not all stored     | CHANGED                       | VANISHED   |
   | STORED, before filing                 | CHANGED: nothing filed        | (filed)    |
   | at the archive move: ASSOCIATED       | CHANGED: ledger line with     | COMPLETE   |
   |   (filed), LEDGERED (older releases)  |   ``archived: null``          |            |
   | at the archive move: STORED with      | CHANGED: no ledger line       | COMPLETE   |
   |   nothing to file                     |                               |            |

   CHANGED: done for this version; the file settles again and is uploaded as what it is
   then. VANISHED: forgotten. COMPLETE: ARCHIVED with nothing archived, its ledger line
   saying ``archived: null``. Gone before filing is no error: the stored bytes are what was
   dropped, so they are filed (and then COMPLETE). ASSOCIATING reports none of them (it
   looks at Procore, not at the file).
2. The file must not be uploaded (symlink, hard links, empty for too long): failed.
3. The Upload is filed already (ASSOCIATED, LEDGERED) or only local steps failed (ledger,
   archive): never failed, retried with backoff until the disk lets us.
4. Procore refuses the account (credentials): every folder pauses; uncharged.
5. Procore refuses the folder's project or destination (403, 404): that folder pauses;
   uncharged. Neither is the file's fault, and it is fixed in Procore.
6. An outage that hits every request (network down, 429, 503): wait, uncharged.
7. An expired Upload: charged; a fresh Upload at once the first time, then as 9.
8. A filing that could not be confirmed (``FilingUnconfirmed``: its plan kept changing, or
   it was found not done again and again): charged; planned afresh at once the first time,
   then as 9.
9. A transient error (5xx, 408, content mismatch, unreadable file): retried with backoff,
   charged; failed once ``max_attempts`` attempts are spent.
10. Anything else (validation, storage refusal): failed.

A stop is no error and not in this table: ``errors.Stopping`` is a control signal that the
uploader catches itself (the row resumes at the next start, uncharged).

A file whose association POST has an unknown outcome (ASSOCIATING, no certain refusal) is
failed only after a look at Procore shows it was not filed (``resolve_first``).

And, independently: an association POST whose refusal is certain (an HTTP 4xx answer other
than 408) did not create anything, so the row goes back from ASSOCIATING to STORED rather
than paying for a look at what Procore holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from procore_hotfolder.errors import (
    ArchiveError,
    FileChanged,
    FileRefused,
    FileVanished,
    FilingUnconfirmed,
    HotfolderError,
    ProcoreError,
    UploadExpired,
)
from procore_hotfolder.model import ALLOWED_MOVES, Backoff, FileState, Spacing

DEFAULT_BACKOFF = Backoff(base=2.0, cap=300.0)
#: A file's next try while Procore is out for everyone: 2-5 s, never growing.
OUTAGE_SPACING = Spacing(least=2.0, spread=3.0)
#: Retries of the local steps (ledger, archive) back off to at most this exponent.
LOCAL_MAX_EXPONENT = 8


class Action(StrEnum):
    """What the uploader does with the file next."""

    RETRY = "retry"                # try again at ``delay`` from now
    PAUSE_FOLDER = "pause_folder"  # the folder waits for Procore; the file is untouched
    PAUSE_ALL = "pause_all"        # every folder waits for Procore
    FAIL = "fail"                  # to failed_dir with a sidecar (or failed in place)
    CHANGED = "changed"            # done for this version: it settles again
    VANISHED = "vanished"          # done: gone before it was uploaded
    COMPLETE = "complete"          # done: uploaded (and filed); the original went: ARCHIVED
                                   # with nothing archived (its ledger line is written)


@dataclass(frozen=True)
class Decision:
    """The outcome of one failed attempt; see the module docstring."""

    action: Action
    #: Whether the attempt counts towards ``max_attempts``.
    charge: bool = False
    #: Seconds until the next try (RETRY).
    delay: float = 0.0
    #: The association POST certainly created nothing: back from ASSOCIATING to STORED.
    unsent: bool = False
    #: The file gave up after ``max_attempts`` attempts of a transient error (FAIL).
    gave_up: bool = False
    #: FAIL only after finding out that the association POST, whose outcome is unknown, did
    #: not file the Upload: a filed file is never failed.
    resolve_first: bool = False


#: Rule 1's rows: the row's states before and after the bytes are all stored.
_NOT_STORED = frozenset({FileState.QUEUED, FileState.UPLOADING})
_STORED = frozenset({FileState.STORED, FileState.ASSOCIATED, FileState.LEDGERED})


def _moved_on(state: FileState, error: FileChanged) -> Action | None:
    """Rule 1 (see the module docstring)."""
    gone = isinstance(error, FileVanished)
    if state in _NOT_STORED:
        return Action.VANISHED if gone else Action.CHANGED
    if state in _STORED:
        return Action.COMPLETE if gone else Action.CHANGED
    return None


def certainly_unsent(error: HotfolderError) -> bool:
    """True when the request was answered with a refusal: it did nothing on Procore."""
    status = error.status if isinstance(error, ProcoreError) else None
    return status is not None and 400 <= status < 500 and status != 408


def decide(
    state: FileState,
    error: HotfolderError,
    attempts: int,
    max_attempts: int,
    rand: float,
    *,
    backoff: Backoff = DEFAULT_BACKOFF,
    outage: Spacing = OUTAGE_SPACING,
) -> Decision:
    """The decision for an attempt that stopped in ``state`` on ``error``.

    ``attempts`` is what the file was charged before this attempt; ``rand`` in [0, 1).
    """
    unsent = state is FileState.ASSOCIATING and certainly_unsent(error)
    if isinstance(error, FileChanged):
        action = _moved_on(state, error)
        if action is not None:
            return Decision(action)
    if isinstance(error, FileRefused) and FileState.FAILED in ALLOWED_MOVES[state]:
        return Decision(Action.FAIL)
    if isinstance(error, ArchiveError) or state in (FileState.ASSOCIATED, FileState.LEDGERED):
        exponent = min(attempts + 1, LOCAL_MAX_EXPONENT)
        return Decision(Action.RETRY, charge=True, delay=backoff.delay(exponent, rand=rand))
    pauses = error.pauses if isinstance(error, ProcoreError) else None
    if pauses == "account":
        return Decision(Action.PAUSE_ALL, unsent=unsent)
    if pauses == "folder":
        return Decision(Action.PAUSE_FOLDER, unsent=unsent)
    if isinstance(error, ProcoreError) and error.outage:
        # The rate governor holds every caller back; this only spaces the file's next try.
        delay = max(error.retry_after or 0.0, outage.delay(rand=rand))
        return Decision(Action.RETRY, delay=delay, unsent=unsent)
    unknown_filing = state is FileState.ASSOCIATING and not unsent
    if error.retryable:
        charged = attempts + 1
        if charged >= max_attempts:
            return Decision(Action.FAIL, charge=True, gave_up=True,
                            resolve_first=unknown_filing)
        if isinstance(error, UploadExpired | FilingUnconfirmed) and charged == 1:
            delay = 0.0  # a fresh Upload, or a fresh plan, right away
        else:
            delay = backoff.delay(charged, rand=rand, retry_after=error.retry_after)
        return Decision(Action.RETRY, charge=True, delay=delay, unsent=unsent)
    return Decision(Action.FAIL, charge=True, unsent=unsent, resolve_first=unknown_filing)
