"""How a run ends: ``Daemon`` (`run`: until stopped) or ``Once`` (`once`: when everything
present is done), chosen once at construction; the loops ask it instead of testing a flag.

``Daemon`` watches for events, rescans for ever, fails files that stay empty and never gives
up on a file (the journal keeps it). ``Once`` scans a single time, leaves in place empty
files and files a writer holds open, gives a file ``max_attempts`` tries (outages included)
and keeps the ``RunSummary`` the command prints.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from procore_hotfolder.state.journal import FileRecord
from procore_hotfolder.upload.outcome import KeepTrying, Outcome, OutcomeKind, RetryLimit


@dataclass
class RunSummary:
    """What `once` reports at the end."""

    archived: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_uploaded: list[tuple[Path, str]] = field(default_factory=list)
    #: Files not ready yet, with why: 0-byte files (a scanner creates the file before
    #: writing it) and files a writer holds open. Left in place and named, but no failure.
    left_in_place: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.not_uploaded else 0


class Progressing(Protocol):
    """What a run mode asks the scheduler when deciding whether the run is over."""

    def drained(self) -> bool: ...

    def left_settling(self) -> list[tuple[Path, str]]: ...

    def left_unfinished(self) -> list[FileRecord]: ...


class RunMode(RetryLimit, Protocol):
    """How a run ends; as a ``RetryLimit`` it tells the uploader when to give up on a file
    for this run (``gives_up``, asked on worker threads)."""

    #: As `status.json` and the ``daemon_ready`` event show it.
    once: bool
    #: Watch the folders for events (else the scans alone find the files).
    watches: bool
    #: Go on scanning after the first complete scan.
    rescans: bool
    #: Fail files that stay empty for ``empty_file_timeout_seconds``.
    fails_empty: bool
    #: At the end, the alerts send what is pending first; a channel that is down is tried
    #: again for up to this long.
    alerts_flush_seconds: float
    summary: RunSummary

    def noted(self, outcome: Outcome) -> None:
        """A worker is done with a row (``outcome.kind.done``; called on the scheduler's
        thread)."""
        ...

    def finished(self, engine: Progressing) -> bool:
        """True once the run should end by itself (called on the scheduler's thread)."""
        ...


class Daemon(KeepTrying):
    """`run`: until stopped; never gives up on a file (the journal keeps the row and its
    retry time). The daemon keeps no per-file list: it runs for months."""

    once = False
    watches = True
    rescans = True
    fails_empty = True
    #: systemd's TimeoutStopSec=60 covers the workers' stop, this, and a send under way at
    #: its end (its own timeout: 15 s, 30 s for a command).
    alerts_flush_seconds = 10.0

    def __init__(self) -> None:
        self.summary = RunSummary()

    def noted(self, outcome: Outcome) -> None:
        """Nothing to keep."""

    def finished(self, engine: Progressing) -> bool:
        """Never: only a stop ends the daemon."""
        return False


class Once:
    """`once`: until every file present when it started is done or given up on."""

    once = True
    watches = False
    rescans = False
    fails_empty = False
    #: `once` sends what it has before it exits (nothing stops it from outside meanwhile).
    alerts_flush_seconds = 60.0
    #: `once` must end: its ``max_attempts`` tries come at once, then the file is left.
    unexpected_error_retry_seconds = 0.0

    def __init__(self, max_attempts: int, stop: threading.Event) -> None:
        self.summary = RunSummary()
        self._max_attempts = max_attempts
        self._stop = stop
        self._tries: dict[int, int] = {}
        self._lock = threading.Lock()

    def gives_up(self, record: FileRecord) -> bool:
        """`once` must end: after ``max_attempts`` tries (outages included), or once stopped,
        the file stays queued in the journal for the daemon and is reported as not
        uploaded."""
        with self._lock:
            tries = self._tries.get(record.id, 0) + 1
            self._tries[record.id] = tries
        return self._stop.is_set() or tries >= self._max_attempts

    def noted(self, outcome: Outcome) -> None:
        if outcome.kind is OutcomeKind.ARCHIVED:
            self.summary.archived.append(outcome.record.path)
        elif outcome.kind is OutcomeKind.FAILED:
            self.summary.failed.append((outcome.record.path, outcome.detail or "failed"))

    def finished(self, engine: Progressing) -> bool:
        """Done once the single scan is through and nothing moves any more; the files left
        (empty ones, ones a writer holds open, rows given up on) go into the summary."""
        if not engine.drained():
            return False
        self.summary.left_in_place.extend(engine.left_settling())
        self.summary.not_uploaded.extend(
            (record.path, (record.last_error or {}).get("detail", "not finished"))
            for record in engine.left_unfinished())
        return True
