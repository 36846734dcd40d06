"""What became of one ``Uploader.process`` call: an ``Outcome`` of one ``OutcomeKind``.

The uploader decides it, once: whether the file is done (and how), is tried again at a
given time, or is left in the journal because the run mode gives up on it for this run
(``RetryLimit``, which `once` and `run` answer differently). The engine only reads it: the
dispatcher puts the row back at ``retry_at``, the scheduler forgets a done path (and looks
at a changed one again), the run mode notes what a run reports. A file that failed for good
is also told, as it fails, to whoever the engine gave the uploader (``FailureListener``: the
alerts, which ``upload/`` does not know).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from procore_hotfolder.state.journal import FileRecord


class OutcomeKind(StrEnum):
    """How one ``process`` call ended."""

    ARCHIVED = "archived"  # done: uploaded (and filed), in the ledger, original archived
    FAILED = "failed"      # done: to failed_dir (or failed in place) with its reason
    CHANGED = "changed"    # done for this version: the file changed; it settles again
    VANISHED = "vanished"  # done: the file went before it was uploaded
    RETRY = "retry"        # not done: tried again at ``Outcome.retry_at``
    LEFT = "left"          # not done: left queued in the journal, not tried again this run

    @property
    def done(self) -> bool:
        """The row is finished: its path may get a new row."""
        return self not in (OutcomeKind.RETRY, OutcomeKind.LEFT)

    @property
    def looked_at_again(self) -> bool:
        """The path is looked at again: a new version (or the file back) settles anew."""
        return self in (OutcomeKind.CHANGED, OutcomeKind.VANISHED)


@dataclass(frozen=True)
class Outcome:
    """What became of one ``process`` call; ``retry_at`` (wall clock) is set exactly when
    the kind is RETRY."""

    kind: OutcomeKind
    record: FileRecord
    retry_at: float | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if (self.kind is OutcomeKind.RETRY) != (self.retry_at is not None):
            raise ValueError(f"an outcome {self.kind} with retry_at {self.retry_at}")


class RetryLimit(Protocol):
    """What the run mode answers the uploader about a file it would try again."""

    #: A try that ended in an unexpected exception (a defect, logged as ``worker_error``)
    #: is tried again after this long.
    unexpected_error_retry_seconds: float

    def gives_up(self, record: FileRecord) -> bool:
        """True to leave ``record`` queued in the journal instead of trying it again in this
        run (called on worker threads, once per try that asks for another)."""
        ...


class KeepTrying:
    """Never gives up: the journal keeps the row and its retry time (``run``'s answer)."""

    unexpected_error_retry_seconds = 60.0

    def gives_up(self, record: FileRecord) -> bool:
        return False


class FailureListener(Protocol):
    """Who hears of each file that failed for good: moved to its failed folder
    (``failed_path``) or failed in place (None). Called on the failing thread; it must not
    wait on anything (the engine's alerts only queue)."""

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None: ...


class NobodyListens:
    """No one to tell (the log, the metrics and the journal still say it)."""

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None:
        """Nobody to tell."""
