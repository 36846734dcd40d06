"""One settled file through the upload steps, resuming from whatever step the journal holds.

``Uploader.process(record)`` drives a journal row through QUEUED → UPLOADING → STORED →
ASSOCIATING → ASSOCIATED → LEDGERED → ARCHIVED as far as it can: the bytes (``transfer``),
the filing in Documents or Photos (``destinations``), the ledger line and the archive move
(``finishing``). Every step is committed to the journal before the next begins, so a crash
at any instant resumes at the step that was running. An attempt that ends in an error is
sorted here, once, by applying the outcome table (``policy.decide``): an outage waits
without charging the file, a transient error is charged and retried with backoff, a
permanent error (or too many attempts) moves the file to ``failed_dir`` with a sidecar that
says why.

Every log line of a file's work carries its ``path`` and ``file_id``: ``process`` and
``fail_unsettled`` bind them with ``structlog.contextvars`` around the work.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.errors import (
    ArchiveError,
    FileChanged,
    FileOpenForWriting,
    FileRefused,
    HotfolderError,
    ProcoreError,
    Stopping,
    UploadExpired,
)
from procore_hotfolder.files import archiver, sourcefile
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.model import TERMINAL, Backoff, FileState, Spacing, utc_iso
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.upload.destinations import Filing
from procore_hotfolder.upload.finishing import Finishing
from procore_hotfolder.upload.pauses import ACCOUNT, PauseBoard
from procore_hotfolder.upload.policy import (
    DEFAULT_BACKOFF,
    OUTAGE_SPACING,
    Action,
    Decision,
    decide,
)
from procore_hotfolder.upload.progress import Progress
from procore_hotfolder.upload.transfer import Transfer
from procore_hotfolder.watch.writers import Writers

log = structlog.get_logger(__name__)

#: A row of a folder that left the configuration is looked at again after this long.
UNCONFIGURED_RETRY_SECONDS = 3600.0


@dataclass(frozen=True)
class Outcome:
    """What became of one ``process`` call."""

    kind: str  # "archived" | "failed" | "retry" | "changed" | "vanished"
    record: FileRecord
    retry_at: float | None = None  # "retry": when to try again (wall clock)
    detail: str | None = None


#: States whose next step is a call to Procore (STORED too, unless nothing is filed).
_ASKS_PROCORE = frozenset({FileState.QUEUED, FileState.UPLOADING, FileState.ASSOCIATING})

#: The outcome kind of each terminal state a row can reach in one ``process`` call.
_TERMINAL_OUTCOMES = {FileState.ARCHIVED: "archived", FileState.FAILED: "failed",
                      FileState.CHANGED: "changed", FileState.VANISHED: "vanished"}


class Uploader:
    """Advances journal rows through the upload steps (see the module docstring)."""

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        config: Config,
        journal: Journal,
        ledger: Ledger,
        client: ProcoreClient,
        *,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        backoff: Backoff = DEFAULT_BACKOFF,
        outage: Spacing = OUTAGE_SPACING,
        stopping: Callable[[], bool] | None = None,
        pauses: PauseBoard | None = None,
        writers: Writers | None = None,
    ) -> None:
        self._config = config
        self._journal = journal
        self._client = client
        self._progress = progress or Progress()
        self._clock = clock
        self._rand = rand
        self._backoff = backoff
        self._outage = outage
        self._folders = {f.path: f for f in config.folders}
        self._writers = writers or Writers()
        self._transfer = Transfer(journal, client, self._progress, clock=clock,
                                  stopping=stopping or (lambda: False), writers=self._writers)
        self._filing = Filing(journal, client, clock=clock)
        self._finishing = Finishing(journal, ledger, clock=clock, writers=self._writers)
        self.pauses = pauses or PauseBoard()

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` for every file taken from now on; files in progress keep the
        settings they started with."""
        self._folders = {f.path: f for f in config.folders}
        self._config = config
        self._client.reconfigure(config.procore)

    # --- entry points ----------------------------------------------------------------------

    def process(self, record: FileRecord) -> Outcome:
        """Advance ``record`` as far as possible; never raises for a file's own troubles.

        The one place that catches ``Stopping``: the row is left to resume at the next
        start (an UPLOADING row back in the queue), uncharged.
        """
        with structlog.contextvars.bound_contextvars(path=str(record.path), file_id=record.id):
            return self._process(record)

    def _process(self, record: FileRecord) -> Outcome:
        folder = self._folders.get(record.folder)
        if folder is None:
            # The folder left the configuration: keep the row, touch nothing.
            log.warning("folder_not_configured", folder=str(record.folder))
            return Outcome("retry", record, retry_at=self._clock() + UNCONFIGURED_RETRY_SECONDS,
                           detail="folder no longer configured")
        scopes = (ACCOUNT, str(folder.path))
        # Only a step that talks to Procore waits for a pause (and only its answer lifts
        # one): a filed file's ledger line and archive move go ahead.
        asks_procore = record.state in _ASKS_PROCORE or (
            record.state is FileState.STORED and folder.destination != "none")
        # When this attempt starts: a refusal of a request it sends is a failed re-check of
        # a pause only if the pause began at or before this moment (``PauseBoard.pause``).
        started = self._clock()
        wait_until = self.pauses.admit(scopes, started) if asks_procore else None
        if wait_until is not None:
            return Outcome("retry", record, retry_at=wait_until, detail="paused")
        try:
            record = self._advance(record, folder)
        except Stopping:
            # Resumed at the next start from the journal's state, never charged.
            log.info("upload_interrupted_by_stop")
            record = self._journal.get(record.id)
            if record.state is FileState.UPLOADING:
                record = self._journal.move(record, FileState.QUEUED, self._clock())
            return Outcome("retry", record, retry_at=self._clock(), detail="stopping")
        except HotfolderError as exc:
            return self._after_error(record, folder, exc, started)
        except OSError as exc:
            # Ledger or archive I/O (disk full, permission): the file stays where it is.
            return self._after_error(record, folder, ArchiveError(str(exc)), started)
        finally:
            self._progress.done(record.path)
        if asks_procore:
            self.pauses.lift(scopes, self._clock())
        if record.state is FileState.ARCHIVED:
            self.metrics.upload_finished(str(folder.path), "completed", record.observation.size)
        return Outcome(_TERMINAL_OUTCOMES[record.state], record)

    def fail_unsettled(self, folder: FolderSettings, path: Path,
                       observation: sourcefile.Observation, reason: str, detail: str) -> None:
        """Fail a file that never became uploadable (e.g. empty for too long)."""
        rows = self._journal.enqueue([(folder.path, path, observation)], self._clock())
        if not rows:
            return
        with structlog.contextvars.bound_contextvars(path=str(path), file_id=rows[0].id):
            self._fail(rows[0], folder, FileRefused(detail, reason=reason), attempts=0)

    # --- the steps -------------------------------------------------------------------------

    def _advance(self, record: FileRecord, folder: FolderSettings) -> FileRecord:
        redo_budget = 3  # association found not done -> redone; bounded within one call
        company_id = self._config.procore.company_id
        while record.state not in TERMINAL:
            state = record.state
            if state in (FileState.QUEUED, FileState.UPLOADING):
                record = self._transfer.store(record, folder, self._config)
            elif state is FileState.STORED:
                self._still_as_uploaded(record, folder)
                if folder.destination == "none":
                    record = self._finishing.write_ledger(record, folder, company_id)
                else:
                    redo_budget -= 1
                    if redo_budget < 0:
                        raise UploadExpired("association could not be confirmed; retrying")
                    record = self._filing.associate(record, folder)
            elif state is FileState.ASSOCIATING:
                record = self._filing.resolve(record, folder)
            elif state is FileState.ASSOCIATED:
                record = self._finishing.write_ledger(record, folder, company_id)
            elif state is FileState.LEDGERED:
                record = self._finishing.archive(record, folder)
        return record

    def _still_as_uploaded(self, record: FileRecord, folder: FolderSettings) -> None:
        """Before anything of the uploaded version is filed (or, destination none, recorded):
        the file must still be that version, and no writer may hold it. Re-saved, or opened
        again by a writer: nothing of the old version is filed; the file settles again and
        is uploaded (and filed) once, as what it then is. A file that is gone is neither:
        its stored bytes are still filed."""
        if _changed_since(record):
            raise FileChanged("the file changed after its upload; not filed, it settles again")
        writer = self._writers.check(record.path, folder)
        if writer.open:
            raise FileOpenForWriting(f"{writer.detail} after its upload; not filed, it "
                                     "settles again once the writer lets go")

    # --- outcomes --------------------------------------------------------------------------

    def _after_error(self, record: FileRecord, folder: FolderSettings, exc: HotfolderError,
                     started: float) -> Outcome:
        """Apply the outcome policy (``policy.decide``) to an attempt that started at
        ``started`` and ended in ``exc``."""
        record = self._journal.get(record.id)
        info = _error_info(exc)
        now = self._clock()
        decision = decide(record.state, exc, record.attempts, self._config.daemon.max_attempts,
                          self._rand(), backoff=self._backoff, outage=self._outage)
        if decision.unsent:
            # Refused outright: Procore created nothing, so nothing needs looking up.
            record = self._journal.move(record, FileState.STORED, now, association=None)
        action = decision.action
        if action in (Action.PAUSE_FOLDER, Action.PAUSE_ALL):
            scope = ACCOUNT if action is Action.PAUSE_ALL else str(folder.path)
            paused = self.pauses.pause(scope, info, now, self._rand(), sent_at=started)
            log.info("upload_paused", scope=scope, reason=paused.reason)
            return self._schedule(record, now, Decision(Action.RETRY,
                                                        delay=paused.next_check - now),
                                  info, log_it=False)
        if action in (Action.CHANGED, Action.VANISHED):
            state = FileState(action.value)
            record = self._journal.move(record, state, now,
                                        last_error={"reason": exc.reason, "detail": exc.message})
            log.info("file_changed" if state is FileState.CHANGED else "file_vanished",
                     reason=exc.reason, detail=exc.message)
            return Outcome(state.value, record, detail=exc.message)
        if action is Action.FAIL:
            if decision.resolve_first:
                return self._fail_after_lookup(record, folder, exc, decision)
            attempts = record.attempts + (1 if decision.charge else 0)
            if decision.gave_up:
                info["detail"] = f"{info['detail']} (gave up after {attempts} attempts)"
            return self._fail(record, folder, exc, info=info, attempts=attempts)
        return self._schedule(record, now, decision, info)

    def _fail_after_lookup(self, record: FileRecord, folder: FolderSettings,
                           exc: HotfolderError, decision: Decision) -> Outcome:
        """A filing with an unknown outcome ran out of tries: fail the file only once Procore
        shows it was not filed (a filed file goes on to its ledger line and archive)."""
        try:
            record = self._filing.resolve(record, folder)
        except HotfolderError as lookup:
            retry = Decision(Action.RETRY, charge=True,
                             delay=self._backoff.delay(record.attempts + 1, rand=self._rand()))
            return self._schedule(record, self._clock(), retry, _error_info(lookup))
        if record.state is FileState.ASSOCIATED:
            return self._schedule(record, self._clock(), Decision(Action.RETRY), {})
        attempts = record.attempts + 1
        info = {**_error_info(exc), "detail": f"{exc.message} (gave up after {attempts} "
                "attempts)"}
        return self._fail(record, folder, exc, info=info, attempts=attempts)

    def _schedule(self, record: FileRecord, now: float, decision: Decision,
                  info: dict[str, Any], *, log_it: bool = True) -> Outcome:
        """Put the row back for a try at ``now + decision.delay`` (an UPLOADING row back in
        the queue), charging an attempt when the decision says so."""
        state = FileState.QUEUED if record.state is FileState.UPLOADING else record.state
        attempts = record.attempts + (1 if decision.charge else 0)
        retry_at = now + decision.delay
        record = self._journal.move(record, state, now, attempts=attempts,
                                    next_attempt_at=retry_at, last_error=info or None)
        if log_it:
            local = state in (FileState.ASSOCIATED, FileState.LEDGERED)
            level = log.error if local else log.warning
            level("archive_retry_scheduled" if local else "upload_retry_scheduled",
                  retry_in=round(decision.delay, 1), attempts=attempts, **info)
        return Outcome("retry", record, retry_at=retry_at, detail=info.get("detail"))

    def _fail(self, record: FileRecord, folder: FolderSettings, exc: HotfolderError,
              *, info: dict[str, Any] | None = None,
              attempts: int | None = None) -> Outcome:
        record = self._journal.get(record.id)
        info = dict(info or _error_info(exc))
        attempts = attempts if attempts is not None else record.attempts + 1
        sidecar = {**info, "attempts": attempts,
                   "time": utc_iso(self._clock()),
                   "source": str(record.path)}
        if record.uuid:
            sidecar["uuid"] = record.uuid
        final = archiver.move_to_failed(folder, record.path, sidecar,
                                        guard=self._writers.sight(folder).lease_usable)
        record = self._journal.move(record, FileState.FAILED, self._clock(), final_path=final,
                                    attempts=attempts, last_error=sidecar)
        log.error("upload_failed", failed_path=str(final) if final else None,
                  kept_in_place=final is None, attempts=attempts,
                  **info)
        self.metrics.upload_finished(str(folder.path), "failed", record.observation.size)
        return Outcome("failed", record, detail=info.get("detail"))


def _error_info(exc: HotfolderError) -> dict[str, Any]:
    if isinstance(exc, ProcoreError):
        return exc.as_dict()
    return {"reason": exc.reason, "detail": exc.message}


def _changed_since(record: FileRecord) -> bool:
    """The file at ``record.path`` is another version than the one uploaded (a file that is
    gone is not: its stored bytes are still filed)."""
    current = sourcefile.observe(record.path)
    return current is not None and not current.same_version(record.observation)
