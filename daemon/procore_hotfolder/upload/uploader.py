"""One settled file through the upload steps, resuming from whatever step the journal holds.

``Uploader.process(record)`` drives a journal row through QUEUED → UPLOADING → STORED →
ASSOCIATING → ASSOCIATED → ARCHIVED as far as it can (STORED → ARCHIVED when its destination
files nothing): the bytes (``transfer``), the filing in Documents or Photos
(``destinations``), the archive move and the ledger line (``finishing``), each where the
file's route says (``routing``). A file is routed when its Upload is about to be created:
by its folder's rules (its project number looked up in the shared ``ProjectNumbers``) or
own keys; the row keeps that route from the creation of the Upload on, so a restart or a
reload that changes the rules does not send it elsewhere. Every step is
committed to the journal before the next begins, so a crash at any instant resumes at the
step that was running. An attempt that ends in an error is sorted here, once, by applying
the outcome table (``policy.decide``): an outage waits without charging the file, a
transient error is charged and retried with backoff, a permanent error (or too many
attempts) moves the file to ``failed_dir`` with a sidecar that says why; a file whose
original moved on is not archived (policy rule 1).

What became of the call is an ``Outcome`` (``outcome``), decided here: a try that would be
tried again is left queued in the journal instead when the run mode gives up on the file for
this run (``RetryLimit``: `once` does after ``max_attempts`` tries, `run` never does).

Every log line of a file's work carries its ``path`` and ``file_id``: ``process`` and
``fail_unsettled`` bind them with ``structlog.contextvars`` around the work.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.errors import (
    ArchiveError,
    FileChanged,
    FileOpenForWriting,
    FileRefused,
    FilingUnconfirmed,
    HotfolderError,
    InvalidRoute,
    Stopping,
)
from procore_hotfolder.files import archiver, sourcefile
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.model import TERMINAL, Backoff, FileState, Spacing, utc_iso
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.projects import list_projects
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.upload.destinations import Filing
from procore_hotfolder.upload.finishing import Finishing
from procore_hotfolder.upload.holds import ACCOUNT, HoldBoard
from procore_hotfolder.upload.outcome import (
    FailureListener,
    KeepTrying,
    NobodyListens,
    Outcome,
    OutcomeKind,
    RetryLimit,
)
from procore_hotfolder.upload.policy import (
    DEFAULT_BACKOFF,
    OUTAGE_SPACING,
    Action,
    Decision,
    decide,
)
from procore_hotfolder.upload.progress import Progress
from procore_hotfolder.upload.project_numbers import ProjectNumbers
from procore_hotfolder.upload.routing import Route, folder_route, relative_path, route_file
from procore_hotfolder.upload.transfer import Transfer
from procore_hotfolder.watch.writers import Writers

log = structlog.get_logger(__name__)

#: A row of a folder that left the configuration is looked at again after this long.
UNCONFIGURED_RETRY_SECONDS = 3600.0


#: States whose next step is a call to Procore (STORED too, when the destination files).
_ASKS_PROCORE = frozenset({FileState.QUEUED, FileState.UPLOADING, FileState.ASSOCIATING})

#: The outcome kind of each terminal state a row can reach in one ``process`` call.
_TERMINAL_OUTCOMES = {FileState.ARCHIVED: OutcomeKind.ARCHIVED,
                      FileState.FAILED: OutcomeKind.FAILED,
                      FileState.CHANGED: OutcomeKind.CHANGED,
                      FileState.VANISHED: OutcomeKind.VANISHED}


class Uploader:
    """Advances journal rows through the upload steps (see the module docstring)."""

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        config: Callable[[], Config],
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
        pauses: HoldBoard | None = None,
        writers: Writers | None = None,
        limit: RetryLimit | None = None,
        failures: FailureListener | None = None,
        numbers: ProjectNumbers | None = None,
    ) -> None:
        """``numbers``: the project numbers every worker looks up (built by the engine, which
        tells it of reloads and `retry`); one of its own when not given."""
        self._config = config  # asked once per file (``config.Current``)
        self._journal = journal
        self._client = client
        self._progress = progress or Progress()
        self._clock = clock
        self._rand = rand
        self._backoff = backoff
        self._outage = outage
        self._writers = writers or Writers()
        self._transfer = Transfer(journal, client, self._progress, clock=clock,
                                  stopping=stopping or (lambda: False), writers=self._writers)
        self._filing = Filing(journal, client, clock=clock)
        self._finishing = Finishing(journal, ledger, clock=clock, writers=self._writers)
        self.pauses = pauses or HoldBoard()
        self._limit = limit or KeepTrying()
        self._failures = failures or NobodyListens()  # told of each file failed for good
        self._numbers = numbers or ProjectNumbers(
            lambda: list_projects(client, self._config().procore.company_id))

    # --- entry points ----------------------------------------------------------------------

    def process(self, record: FileRecord) -> Outcome:
        """Advance ``record`` as far as possible; never raises: a file's own troubles go
        through the outcome policy, a defect (an exception no step expected) is logged as
        ``worker_error`` and tried again after ``unexpected_error_retry_seconds``. A RETRY
        becomes LEFT when the run mode gives up on the file (``RetryLimit.gives_up``).

        The one place that catches ``Stopping``: the row is left to resume at the next
        start (an UPLOADING row back in the queue), uncharged.
        """
        with structlog.contextvars.bound_contextvars(path=str(record.path), file_id=record.id):
            try:
                outcome = self._process(record)
            except Exception:
                log.exception("worker_error")
                outcome = Outcome(OutcomeKind.RETRY, record,
                                  retry_at=self._clock()
                                  + self._limit.unexpected_error_retry_seconds,
                                  detail="unexpected error (worker_error in the log)")
            if outcome.kind is OutcomeKind.RETRY and self._limit.gives_up(outcome.record):
                return replace(outcome, kind=OutcomeKind.LEFT, retry_at=None)
            return outcome

    def _process(self, record: FileRecord) -> Outcome:
        config = self._config()  # once: the file keeps these settings to the end
        folder = config.folder_at(record.folder)
        if folder is None:
            # The folder left the configuration: keep the row, touch nothing.
            log.warning("folder_not_configured", folder=str(record.folder))
            return Outcome(OutcomeKind.RETRY, record,
                           retry_at=self._clock() + UNCONFIGURED_RETRY_SECONDS,
                           detail="folder no longer configured")
        scopes = (ACCOUNT, str(folder.path))
        # When this attempt starts: a refusal of a request it sends is a failed re-check of
        # a pause only if the pause began at or before this moment (``HoldBoard.pause``).
        started = self._clock()
        try:
            route = self._kept_route(record, folder)
        except InvalidRoute as exc:
            return self._after_error(record, folder, None, exc, started=started, config=config)
        # Only a step that talks to Procore waits for a pause (and only its answer lifts
        # one): a filed file's ledger line and archive move go ahead.
        asks_procore = record.state in _ASKS_PROCORE or (
            record.state is FileState.STORED and (route is None or self._filing.files(route)))
        wait_until = self.pauses.admit(scopes, started) if asks_procore else None
        if wait_until is not None:
            return Outcome(OutcomeKind.RETRY, record, retry_at=wait_until, detail="paused")
        try:
            if route is None:
                route = self._new_route(record, folder)
            record = self._advance(record, folder, route, config)
        except Stopping:
            # Resumed at the next start from the journal's state, never charged.
            log.info("upload_interrupted_by_stop")
            record = self._journal.get(record.id)
            if record.state is FileState.UPLOADING:
                record = self._journal.move(record, FileState.QUEUED, self._clock())
            return Outcome(OutcomeKind.RETRY, record, retry_at=self._clock(), detail="stopping")
        except HotfolderError as exc:
            return self._after_error(record, folder, route, exc, started=started, config=config)
        except OSError as exc:
            # Ledger or archive I/O (disk full, permission): the file stays where it is.
            return self._after_error(record, folder, route, ArchiveError(str(exc)),
                                     started=started, config=config)
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

    # --- the route -------------------------------------------------------------------------

    def _kept_route(self, record: FileRecord, folder: FolderSettings) -> Route | None:
        """The route ``record`` keeps (given before its Upload was created); for a row of a
        release before routes were kept that holds an Upload, the folder's own keys (as it
        was filed then); None: not routed yet (``_new_route``). Asks nothing of Procore.
        Raises ``InvalidRoute`` for a kept route this daemon cannot read."""
        if record.route is not None:
            try:
                return Route.from_json(record.route)
            except ValueError as exc:
                raise InvalidRoute(f"the route kept in the journal cannot be read ({exc})"
                                   ) from exc
        if (record.uuid is not None or record.ticket is not None) and folder.own_target:
            return folder_route(folder, relative_path(folder, record.path))
        return None

    def _new_route(self, record: FileRecord, folder: FolderSettings) -> Route:
        """Where the file goes by the folder's rules (or own keys) now, its project number
        looked up (the project list read only when it is not known or the number is not on
        it). Raises ``RouteError`` (no rule matched, a number on no project or on several,
        a template that renders empty) and what reading the project list raises."""
        route = route_file(folder, relative_path(folder, record.path),
                           record.observation.mtime_ns / 1e9)
        if route.project_number is not None and route.project_id is None:
            route = route.with_project(self._numbers.resolve(route.project_number).id)
        if route.rule is not None:
            log.info("file_routed", rule=route.rule, project_id=route.project_id,
                     project_number=route.project_number, destination=route.destination,
                     target=route.target.describe(), name=route.name)
        return route

    # --- the steps -------------------------------------------------------------------------

    def _advance(self, record: FileRecord, folder: FolderSettings, route: Route,
                 config: Config) -> FileRecord:
        redo_budget = 3  # association found not done -> redone; bounded within one call
        company_id = config.procore.company_id
        while record.state not in TERMINAL:
            state = record.state
            if state in (FileState.QUEUED, FileState.UPLOADING):
                record = self._transfer.store(record, folder, route, config)
            elif state is FileState.STORED and self._filing.files(route):
                self._still_as_uploaded(record, folder)
                redo_budget -= 1
                if redo_budget < 0:
                    raise FilingUnconfirmed("the filing was planned afresh 3 times in one "
                                            "try without a confirmed result")
                record = self._filing.associate(record, route)
            elif state is FileState.ASSOCIATING:
                record = self._filing.resolve(record, route)
            else:  # STORED with nothing to file, ASSOCIATED, LEDGERED (older releases)
                record = self._finishing.finish(record, folder, route, company_id)
        return record

    def _still_as_uploaded(self, record: FileRecord, folder: FolderSettings) -> None:
        """Before anything of the uploaded version is filed, the file must still be that
        version, and no writer may hold it: else it reports ``FileChanged`` (or
        ``FileOpenForWriting``) and nothing of the old version is filed (policy rule 1). A
        file that is gone is neither: its stored bytes are still filed."""
        if _changed_since(record):
            raise FileChanged("the file changed after its upload; not filed, it settles again")
        writer = self._writers.check(record.path, folder)
        if writer.open:
            raise FileOpenForWriting(f"{writer.detail} after its upload; not filed, it "
                                     "settles again once the writer lets go")

    # --- outcomes --------------------------------------------------------------------------

    def _after_error(self, record: FileRecord, folder: FolderSettings, route: Route | None,
                     exc: HotfolderError, *, started: float, config: Config) -> Outcome:
        """Apply the outcome policy (``policy.decide``) to an attempt that started at
        ``started`` and ended in ``exc`` (``route``: the file's, None when it has none yet)."""
        record = self._journal.get(record.id)
        info = _error_info(exc)
        now = self._clock()
        decision = decide(record.state, exc, record.attempts, config.daemon.max_attempts,
                          self._rand(), backoff=self._backoff, outage=self._outage)
        if decision.unsent:
            # Refused outright: Procore created nothing, so nothing needs looking up.
            record = self._journal.move(record, FileState.STORED, now, association=None)
        action = decision.action
        if action in (Action.PAUSE_FOLDER, Action.PAUSE_ALL):
            scope = ACCOUNT if action is Action.PAUSE_ALL else str(folder.path)
            paused = self.pauses.pause(scope, info, now, self._rand(), sent_at=started)
            log.info("upload_paused", scope=scope, reason=paused.reason)
            assert paused.until is not None  # a refusal's next re-check
            return self._schedule(record, now, Decision(Action.RETRY,
                                                        delay=paused.until - now),
                                  info, log_it=False)
        if action in (Action.CHANGED, Action.VANISHED):
            state = FileState(action.value)
            record = self._journal.move(record, state, now,
                                        last_error={"reason": exc.reason, "detail": exc.message})
            log.info("file_changed" if state is FileState.CHANGED else "file_vanished",
                     reason=exc.reason, detail=exc.message, uuid=record.uuid)
            return Outcome(OutcomeKind(state.value), record, detail=exc.message)
        if action is Action.COMPLETE:
            log.warning("original_vanished_after_upload", uuid=record.uuid, detail=exc.message)
            route = route or folder_route(folder, relative_path(folder, record.path))
            record = self._finishing.complete(record, route, None, why={
                "reason": exc.reason, "detail": exc.message})
            self.metrics.upload_finished(str(folder.path), "completed", record.observation.size)
            return Outcome(OutcomeKind.ARCHIVED, record)
        if action is Action.FAIL:
            if decision.resolve_first and route is not None:
                return self._fail_after_lookup(record, folder, route, exc, decision)
            attempts = record.attempts + (1 if decision.charge else 0)
            if decision.gave_up:
                info["detail"] = f"{info['detail']} (gave up after {attempts} attempts)"
            return self._fail(record, folder, exc, info=info, attempts=attempts)
        return self._schedule(record, now, decision, info,
                              local=isinstance(exc, ArchiveError))

    def _fail_after_lookup(self, record: FileRecord, folder: FolderSettings, route: Route,
                           exc: HotfolderError, decision: Decision) -> Outcome:
        """A filing with an unknown outcome ran out of tries: fail the file only once Procore
        shows it was not filed (a filed file goes on to its ledger line and archive)."""
        try:
            record = self._filing.resolve(record, route)
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
                  info: dict[str, Any], *, log_it: bool = True, local: bool = False
                  ) -> Outcome:
        """Put the row back for a try at ``now + decision.delay`` (an UPLOADING row back in
        the queue), charging an attempt when the decision says so. ``local``: only the
        archive move or the ledger failed (as for every filed row)."""
        state = FileState.QUEUED if record.state is FileState.UPLOADING else record.state
        attempts = record.attempts + (1 if decision.charge else 0)
        retry_at = now + decision.delay
        record = self._journal.move(record, state, now, attempts=attempts,
                                    next_attempt_at=retry_at, last_error=info or None)
        if log_it:
            local = local or state in (FileState.ASSOCIATED, FileState.LEDGERED)
            level = log.error if local else log.warning
            level("archive_retry_scheduled" if local else "upload_retry_scheduled",
                  retry_in=round(decision.delay, 1), attempts=attempts, **info)
        return Outcome(OutcomeKind.RETRY, record, retry_at=retry_at, detail=info.get("detail"))

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
        self._failures.file_failed(
            self._clock(), record.path, reason=str(info.get("reason", exc.reason)),
            detail=str(info.get("detail", "")), attempts=attempts, status=info.get("status"),
            request_id=info.get("request_id"), failed_path=final)
        return Outcome(OutcomeKind.FAILED, record, detail=info.get("detail"))


def _error_info(exc: HotfolderError) -> dict[str, Any]:
    """What the log, the row and the sidecar say of ``exc``: Procore's status and request id,
    a route's rules tried or project number, as each error gives them."""
    return exc.as_dict()


def _changed_since(record: FileRecord) -> bool:
    """The file at ``record.path`` is another version than the one uploaded (a file that is
    gone is not: its stored bytes are still filed)."""
    current = sourcefile.observe(record.path)
    return current is not None and not current.same_version(record.observation)
