"""One settled file through the upload steps, resuming from whatever step the journal holds.

``Uploader.process(record)`` advances a journal row as far as it can: upload the bytes (one
form POST, or segments for large files), file the Upload in Documents or Photos, write the
ledger line, archive the original. Every step is committed to the journal before the next
begins, so a crash at any instant resumes at the step that was running. Errors are sorted
here, once: an outage waits without charging the file, a transient error is charged and
retried with backoff, a permanent error (or too many attempts) moves the file to
``failed_dir`` with a sidecar that says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder import archiver, sourcefile
from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.destinations import Filing, display_name
from procore_hotfolder.errors import (
    ArchiveError,
    ContentMismatch,
    FileChanged,
    FileRefused,
    HotfolderError,
    ProcoreError,
    Stopping,
    UploadExpired,
)
from procore_hotfolder.journal import FileRecord, Journal
from procore_hotfolder.ledger import Ledger
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.model import (
    TERMINAL,
    Backoff,
    FileState,
    segment_size_for,
    ticket_reusable,
    utc_iso,
)
from procore_hotfolder.pauses import ACCOUNT, PauseBoard
from procore_hotfolder.policy import DEFAULT_BACKOFF, Action, Decision, decide
from procore_hotfolder.procore import ProcoreClient, SegmentSpec, UploadTarget, UploadTicket

log = structlog.get_logger(__name__)

_READ_CHUNK = 1024 * 1024
PROGRESS_EVERY_SECONDS = 5.0
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


@dataclass
class Progress:
    """Bytes sent for the files being uploaded now (shared with `status`), and when each
    file's upload last moved (read or sent a block: the service's watchdog looks)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[str, dict[str, float]] = field(default_factory=dict)
    moved: dict[str, float] = field(default_factory=dict)  # path -> time.monotonic()

    def update(self, path: Path, sent: int, total: int, started: float) -> None:
        with self.lock:
            self.files[str(path)] = {"sent": sent, "total": total, "started": started}
            self.moved[str(path)] = time.monotonic()

    def touch(self, path: Path) -> None:
        """The upload of ``path`` moved without sending (e.g. a hashing pass)."""
        with self.lock:
            self.moved[str(path)] = time.monotonic()

    def last_moved(self, path: Path) -> float | None:
        with self.lock:
            return self.moved.get(str(path))

    def done(self, path: Path) -> None:
        with self.lock:
            self.files.pop(str(path), None)
            self.moved.pop(str(path), None)

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {k: dict(v) for k, v in self.files.items()}


class HashingReader:
    """A file-like over a slice of the file that hashes what is read.

    ``seek(0)`` starts over with a fresh slice and hash, so the client can resend the same
    body after a failed attempt without reading the file into memory. ``len()`` is what is
    left to read (what requests-toolbelt sizes a body by).
    """

    def __init__(self, open_slice: Callable[[], Any],
                 on_read: Callable[[int], None] | None = None,
                 stopping: Callable[[], bool] | None = None) -> None:
        self._open_slice = open_slice
        self._on_read = on_read
        self._stopping = stopping
        self.seek(0)

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise OSError("HashingReader can only start over (seek(0))")
        self._source = self._open_slice()
        self._total = len(self._source)
        self._sha = hashlib.sha256()
        self.bytes_read = 0
        return 0

    def tell(self) -> int:
        return self.bytes_read

    @property
    def len(self) -> int:
        return max(0, self._total - self.bytes_read)

    def __len__(self) -> int:
        return self.len

    def read(self, size: int = -1) -> bytes:
        if self._stopping is not None and self._stopping():
            # Abort the transfer: the journal resumes this file at the next start.
            raise Stopping("stopping: upload interrupted")
        data: bytes = self._source.read(size)
        self._sha.update(data)
        self.bytes_read += len(data)
        if self._on_read is not None and data:
            self._on_read(self.bytes_read)
        return data

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _segment_changed(index: int) -> FileChanged:
    return FileChanged(f"segment {index + 1} changed while it was being sent")


def _sha256_of(source: Any) -> str:
    """SHA-256 (hex) of everything ``source.read()`` gives."""
    sha = hashlib.sha256()
    while chunk := source.read(_READ_CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


class _ProgressLog:
    """Logs ``upload_progress`` every few seconds for long uploads and feeds ``Progress``."""

    def __init__(self, path: Path, total: int, progress: Progress, clock: Callable[[], float],
                 bound: Any) -> None:
        self._path = path
        self._total = total
        self._progress = progress
        self._clock = clock
        self._log = bound
        self._started = clock()
        self._last = self._started
        self._lock = threading.Lock()
        self._sent = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self._sent += delta
            self.set(self._sent)

    def set(self, sent: int) -> None:
        now = self._clock()
        self._progress.update(self._path, sent, self._total, self._started)
        if now - self._last >= PROGRESS_EVERY_SECONDS:
            self._last = now
            elapsed = max(now - self._started, 1e-6)
            self._log.info("upload_progress", bytes=sent, total=self._total,
                           percent=round(100.0 * sent / max(self._total, 1), 1),
                           rate_mib_s=round(sent / elapsed / 1048576, 2))


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
        stopping: Callable[[], bool] | None = None,
        pauses: PauseBoard | None = None,
    ) -> None:
        self._config = config
        self._journal = journal
        self._ledger = ledger
        self._client = client
        self._progress = progress or Progress()
        self._clock = clock
        self._rand = rand
        self._backoff = backoff
        self._stopping = stopping or (lambda: False)
        self._folders = {f.path: f for f in config.folders}
        self._filing = Filing(journal, client, clock=clock)
        self.pauses = pauses or PauseBoard()

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` for every file taken from now on; files in progress keep the
        settings they started with."""
        self._folders = {f.path: f for f in config.folders}
        self._config = config
        self._client.reconfigure(config.procore)

    # --- entry point -----------------------------------------------------------------------

    def process(self, record: FileRecord) -> Outcome:
        """Advance ``record`` as far as possible; never raises for a file's own troubles."""
        folder = self._folders.get(record.folder)
        bound = log.bind(path=str(record.path), file_id=record.id)
        if folder is None:
            # The folder left the configuration: keep the row, touch nothing.
            bound.warning("folder_not_configured", folder=str(record.folder))
            return Outcome("retry", record, retry_at=self._clock() + UNCONFIGURED_RETRY_SECONDS,
                           detail="folder no longer configured")
        scopes = (ACCOUNT, str(folder.path))
        # Only a step that talks to Procore waits for a pause (and only its answer lifts
        # one): a filed file's ledger line and archive move go ahead.
        asks_procore = record.state in _ASKS_PROCORE or (
            record.state is FileState.STORED and folder.destination != "none")
        wait_until = self.pauses.admit(scopes, self._clock()) if asks_procore else None
        if wait_until is not None:
            return Outcome("retry", record, retry_at=wait_until, detail="paused")
        try:
            record = self._advance(record, folder, bound)
        except Stopping:
            # Resumed at the next start from the journal's state, never charged.
            bound.info("upload_interrupted_by_stop")
            record = self._journal.get(record.id)
            if record.state is FileState.UPLOADING:
                record = self._journal.move(record, FileState.QUEUED, self._clock())
            return Outcome("retry", record, retry_at=self._clock(), detail="stopping")
        except HotfolderError as exc:
            return self._after_error(record, folder, exc, bound)
        except OSError as exc:
            # Ledger or archive I/O (disk full, permission): the file stays where it is.
            return self._after_error(record, folder, ArchiveError(str(exc)), bound)
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
        bound = log.bind(path=str(path), file_id=rows[0].id)
        self._fail(rows[0], folder, FileRefused(detail, reason=reason), bound, attempts=0)

    # --- the steps -------------------------------------------------------------------------

    def _advance(self, record: FileRecord, folder: FolderSettings, bound: Any) -> FileRecord:
        redo_budget = 3  # association found not done -> redone; bounded within one call
        while record.state not in TERMINAL:
            state = record.state
            if state in (FileState.QUEUED, FileState.UPLOADING):
                record = self._upload(record, folder, bound)
            elif state is FileState.STORED:
                if _changed_since(record):
                    # Re-saved after its bytes were stored: file nothing of the old version;
                    # the new one settles and is uploaded (and filed) as what it now is.
                    raise FileChanged("the file changed after its upload; not filed, it "
                                      "settles again")
                if folder.destination == "none":
                    record = self._write_ledger(record, folder, bound)
                else:
                    redo_budget -= 1
                    if redo_budget < 0:
                        raise UploadExpired("association could not be confirmed; retrying")
                    record = self._filing.associate(record, folder, bound)
            elif state is FileState.ASSOCIATING:
                record = self._filing.resolve(record, folder, bound)
            elif state is FileState.ASSOCIATED:
                record = self._write_ledger(record, folder, bound)
            elif state is FileState.LEDGERED:
                record = self._archive(record, folder, bound)
        return record

    def _target(self, folder: FolderSettings) -> UploadTarget:
        return UploadTarget(company_id=self._config.procore.company_id,
                            project_id=folder.project_id)

    def _upload(self, record: FileRecord, folder: FolderSettings, bound: Any) -> FileRecord:
        with sourcefile.open_for_upload(record.path, record.observation) as opened:
            size = record.observation.size
            if size >= self._config.daemon.segment_threshold_bytes:
                record = self._upload_segmented(record, folder, opened, bound)
            else:
                record = self._upload_single(record, folder, opened, bound)
            if not opened.unchanged():
                raise FileChanged("the file changed while it was being uploaded")
            return self._journal.move(record, FileState.STORED, self._clock())

    def _reusable_ticket(self, record: FileRecord, segmented: bool) -> UploadTicket | None:
        if not record.ticket:
            return None
        ticket = UploadTicket.from_json(record.ticket)
        if bool(ticket.segments) != segmented or not ticket_reusable(ticket.created_at,
                                                                      self._clock()):
            return None
        return ticket

    def _new_ticket(
        self, record: FileRecord, folder: FolderSettings, bound: Any,
        segments: Sequence[SegmentSpec] | None = None,
    ) -> tuple[FileRecord, UploadTicket]:
        ticket = self._client.create_upload(
            self._target(folder), display_name(record.path), record.observation.size,
            content_type=folder.response_content_type, segments=segments)
        record = self._journal.move(record, FileState.UPLOADING, self._clock(),
                                    uuid=ticket.uuid, ticket=ticket.to_json())
        if segments:
            self._journal.clear_parts(record.id)  # parts of an older Upload are worthless
        bound.info("upload_created", uuid=ticket.uuid, size=record.observation.size,
                   segments=len(ticket.segments) or None)
        return record, ticket

    def _already_stored(self, folder: FolderSettings, ticket: UploadTicket, bound: Any) -> bool:
        """Best effort: does Show Upload say the bytes of a resumed Upload are stored?"""
        try:
            shown = self._client.show_upload(self._target(folder), ticket.uuid)
        except ProcoreError as exc:
            bound.info("upload_show_failed", uuid=ticket.uuid, **exc.as_dict())
            return False
        return str(shown.get("status", "")).lower() in ("complete", "completed", "stored")

    def _forget_ticket(self, record: FileRecord) -> FileRecord:
        self._journal.clear_parts(record.id)
        return self._journal.move(self._journal.get(record.id), FileState.UPLOADING,
                                  self._clock(), ticket=None)

    def _upload_single(self, record: FileRecord, folder: FolderSettings,
                       opened: sourcefile.OpenedFile, bound: Any) -> FileRecord:
        ticket = self._reusable_ticket(record, segmented=False)
        if ticket is None:
            record, ticket = self._new_ticket(record, folder, bound)
        else:
            bound.info("upload_resumed", uuid=ticket.uuid)
            if self._already_stored(folder, ticket, bound):
                # Stored before a crash lost the answer: hash the file, do not send it again.
                reader = HashingReader(opened.reader, stopping=self._stopping,
                                       on_read=lambda _: self._progress.touch(record.path))
                while reader.read(_READ_CHUNK):
                    pass
                return self._journal.move(record, FileState.UPLOADING, self._clock(),
                                          sha256=reader.hexdigest())
        size = record.observation.size
        meter = _ProgressLog(record.path, size, self._progress, self._clock,
                             bound.bind(uuid=ticket.uuid))
        reader = HashingReader(opened.reader, on_read=meter.set, stopping=self._stopping)
        try:
            self._client.store_file(ticket, reader, filename=display_name(record.path),
                                    content_type=folder.response_content_type)
        except UploadExpired:
            self._forget_ticket(record)
            raise
        if reader.bytes_read != size:
            raise FileChanged(f"read {reader.bytes_read} bytes, expected {size}")
        return self._journal.move(record, FileState.UPLOADING, self._clock(),
                                  sha256=reader.hexdigest())

    def _segment_specs(self, record: FileRecord, opened: sourcefile.OpenedFile
                       ) -> tuple[list[SegmentSpec], str]:
        """Per-segment SHA-256/MD5 and the whole file's SHA-256, in one pass.

        MD5 (the slowest of the three) runs on a thread of its own, one block behind: hashlib
        lets go of the GIL, so a second core cuts the pass from about 2.6 s to 1.5 s per GiB.
        """
        if record.segments and record.sha256:
            return [SegmentSpec(**s) for s in json.loads(record.segments)], record.sha256
        seg_size = segment_size_for(record.observation.size,
                                    self._config.daemon.segment_size_bytes)
        whole = hashlib.sha256()
        specs: list[SegmentSpec] = []
        offset = 0
        size = record.observation.size
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="md5") as md5_thread:
            while offset < size:
                length = min(seg_size, size - offset)
                sha = hashlib.sha256()
                md5 = hashlib.md5(usedforsecurity=False)
                pending: Future[None] | None = None
                reader = opened.reader(offset, length)
                remaining = length
                while remaining > 0:
                    chunk = reader.read(min(_READ_CHUNK, remaining))
                    if not chunk:
                        raise FileChanged("the file got shorter while it was being read")
                    if pending is not None:
                        pending.result()
                    pending = md5_thread.submit(md5.update, chunk)
                    self._progress.touch(record.path)
                    sha.update(chunk)
                    whole.update(chunk)
                    remaining -= len(chunk)
                if pending is not None:
                    pending.result()
                specs.append(SegmentSpec(size=length, sha256=sha.hexdigest(),
                                         md5=md5.hexdigest()))
                offset += length
        return specs, whole.hexdigest()

    def _upload_segmented(self, record: FileRecord, folder: FolderSettings,
                          opened: sourcefile.OpenedFile, bound: Any) -> FileRecord:
        specs, whole = self._segment_specs(record, opened)
        if not record.segments or record.state is not FileState.UPLOADING:
            # Also when resuming a row that a retry or a stop put back in the queue.
            record = self._journal.move(
                record, FileState.UPLOADING, self._clock(), sha256=whole,
                segments=json.dumps([s.__dict__ for s in specs]))
        ticket = self._reusable_ticket(record, segmented=True)
        if ticket is None or len(ticket.segments) != len(specs):
            record, ticket = self._new_ticket(record, folder, bound, segments=specs)
        else:
            bound.info("upload_resumed", uuid=ticket.uuid)
        done = self._journal.parts(record.id)
        offsets = []
        offset = 0
        for spec in specs:
            offsets.append(offset)
            offset += spec.size
        meter = _ProgressLog(record.path, record.observation.size, self._progress,
                             self._clock, bound.bind(uuid=ticket.uuid))
        meter.add(sum(specs[i].size for i in done if i < len(specs)))
        todo = [i for i in range(len(specs)) if i not in done]

        def send(index: int) -> tuple[int, str]:
            body = HashingReader(lambda: opened.reader(offsets[index], specs[index].size),
                                 stopping=self._stopping,
                                 on_read=lambda _: self._progress.touch(record.path))
            declared = specs[index].sha256
            try:
                etag = self._client.store_segment(ticket.segments[index], body)
            except ContentMismatch:
                # Storage got other bytes than declared: the file changed (upload it again as
                # what it now is), or they were damaged on the way (send the segment again).
                if _sha256_of(opened.reader(offsets[index], specs[index].size)) != declared:
                    raise _segment_changed(index) from None
                raise
            if body.hexdigest() != declared:
                # Not every S3 checks a presigned part against its declared hash: we do.
                raise _segment_changed(index)
            self._journal.record_part(record.id, index, etag)
            meter.add(specs[index].size)
            return index, etag

        if todo:
            workers = max(1, min(self._config.daemon.segment_parallelism, len(todo)))
            with ThreadPoolExecutor(max_workers=workers,
                                    thread_name_prefix="segment") as pool:
                futures = [pool.submit(send, i) for i in todo]
                errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                first = errors[0]
                if isinstance(first, UploadExpired):
                    self._forget_ticket(record)
                raise first  # type: ignore[misc]
        done = self._journal.parts(record.id)
        parts = [(done[i], specs[i]) for i in range(len(specs))]
        try:
            self._client.complete_upload(self._target(folder), ticket.uuid, parts)
        except UploadExpired:
            self._forget_ticket(record)
            raise
        bound.info("upload_segments_completed", uuid=ticket.uuid, segments=len(specs))
        return self._journal.get(record.id)

    # --- ledger and archive ----------------------------------------------------------------

    def _ledger_entry(self, record: FileRecord, folder: FolderSettings,
                      archived: Path | None) -> dict[str, Any]:
        kind = folder.destination
        return {
            "time": utc_iso(self._clock()),
            "uuid": record.uuid,
            "company_id": self._config.procore.company_id,
            "project_id": folder.project_id,
            "source": str(record.path),
            "archived": str(archived) if archived is not None else None,
            "size": record.observation.size,
            "sha256": record.sha256,
            "destination": {"kind": kind, "id": record.resource_id if kind != "none" else None},
            "folder": str(folder.path),
            "attempts": record.attempts + 1,
        }

    def _write_ledger(self, record: FileRecord, folder: FolderSettings, bound: Any) -> FileRecord:
        now = self._clock()
        current = sourcefile.observe(record.path)
        if current is None or not _same_version(current, record.observation):
            # Filed, but the original changed (or went) since: record what was uploaded and
            # archive nothing; a changed file settles again and is uploaded as what it is now.
            if not self._ledger.contains_uuid(record.uuid or ""):
                self._ledger.append(self._ledger_entry(record, folder, None))
            record = self._journal.move(record, FileState.LEDGERED, now)
            if current is None:
                bound.warning("original_vanished_after_upload", uuid=record.uuid)
                return self._finish(record, None, bound)
            bound.info("file_changed", uuid=record.uuid,
                       detail="the file changed after it was filed; it settles again")
            return self._journal.move(record, FileState.CHANGED, now, final_path=None)
        recovering = record.archive_path is not None
        target = record.archive_path or archiver.free_name(
            archiver.archive_path_for(folder, record.path))
        if not recovering:
            record = self._journal.move(record, record.state, now, archive_path=target)
        if not (recovering and self._ledger.contains_uuid(record.uuid or "")):
            self._ledger.append(self._ledger_entry(record, folder, target))
        return self._journal.move(record, FileState.LEDGERED, now)

    def _archive(self, record: FileRecord, folder: FolderSettings, bound: Any) -> FileRecord:
        target = record.archive_path
        assert target is not None
        source_now = sourcefile.observe(record.path)
        target_now = sourcefile.observe(target)
        if source_now is None:
            # Crash after the move, or the original went away after its upload.
            final = target if target_now is not None else None
            if final is None:
                bound.warning("original_vanished_after_upload", uuid=record.uuid)
            return self._finish(record, final, bound)
        if target_now is not None and (target_now.ino, target_now.dev) == (
                source_now.ino, source_now.dev):
            # Crash between link() and unlink() of a move: finish it.
            os.unlink(record.path)
            return self._finish(record, target, bound)
        try:
            final = archiver.move_no_overwrite(record.path, target, record.observation)
        except FileChanged:
            bound.warning("file_changed_before_archive", uuid=record.uuid)
            return self._journal.move(record, FileState.CHANGED, self._clock())
        return self._finish(record, final, bound)

    def _finish(self, record: FileRecord, final: Path | None, bound: Any) -> FileRecord:
        record = self._journal.move(record, FileState.ARCHIVED, self._clock(), final_path=final)
        bound.info("upload_completed", uuid=record.uuid, size=record.observation.size,
                   sha256=record.sha256, archived=str(final) if final else None,
                   project_id=self._folders[record.folder].project_id,
                   seconds=round(self._clock() - record.created_at, 3))
        return record

    # --- outcomes --------------------------------------------------------------------------

    def _after_error(self, record: FileRecord, folder: FolderSettings, exc: HotfolderError,
                     bound: Any) -> Outcome:
        """Apply the outcome policy (``policy.decide``) to an attempt that ended in ``exc``."""
        record = self._journal.get(record.id)
        info = _error_info(exc)
        now = self._clock()
        decision = decide(record.state, exc, record.attempts, self._config.daemon.max_attempts,
                          self._rand(), backoff=self._backoff)
        if decision.unsent:
            # Refused outright: Procore created nothing, so nothing needs looking up.
            record = self._journal.move(record, FileState.STORED, now, association=None)
        action = decision.action
        if action in (Action.PAUSE_FOLDER, Action.PAUSE_ALL):
            scope = ACCOUNT if action is Action.PAUSE_ALL else str(folder.path)
            paused = self.pauses.pause(scope, info, now, self._rand())
            bound.info("upload_paused", scope=scope, reason=paused.reason)
            return self._schedule(record, now, Decision(Action.RETRY,
                                                        delay=paused.next_check - now),
                                  info, bound, log_it=False)
        if action in (Action.CHANGED, Action.VANISHED):
            state = FileState(action.value)
            record = self._journal.move(record, state, now,
                                        last_error={"reason": exc.reason, "detail": exc.message})
            bound.info("file_changed" if state is FileState.CHANGED else "file_vanished",
                       detail=exc.message)
            return Outcome(state.value, record, detail=exc.message)
        if action is Action.FAIL:
            if decision.resolve_first:
                return self._fail_after_lookup(record, folder, exc, decision, bound)
            attempts = record.attempts + (1 if decision.charge else 0)
            if decision.gave_up:
                info["detail"] = f"{info['detail']} (gave up after {attempts} attempts)"
            return self._fail(record, folder, exc, bound, info=info, attempts=attempts)
        return self._schedule(record, now, decision, info, bound)

    def _fail_after_lookup(self, record: FileRecord, folder: FolderSettings,
                           exc: HotfolderError, decision: Decision, bound: Any) -> Outcome:
        """A filing with an unknown outcome ran out of tries: fail the file only once Procore
        shows it was not filed (a filed file goes on to its ledger line and archive)."""
        try:
            record = self._filing.resolve(record, folder, bound)
        except HotfolderError as lookup:
            retry = Decision(Action.RETRY, charge=True,
                             delay=self._backoff.delay(record.attempts + 1, rand=self._rand()))
            return self._schedule(record, self._clock(), retry, _error_info(lookup), bound)
        if record.state is FileState.ASSOCIATED:
            return self._schedule(record, self._clock(), Decision(Action.RETRY), {}, bound)
        attempts = record.attempts + 1
        info = {**_error_info(exc), "detail": f"{exc.message} (gave up after {attempts} "
                "attempts)"}
        return self._fail(record, folder, exc, bound, info=info, attempts=attempts)

    def _schedule(self, record: FileRecord, now: float, decision: Decision,
                  info: dict[str, Any], bound: Any, *, log_it: bool = True) -> Outcome:
        """Put the row back for a try at ``now + decision.delay`` (an UPLOADING row back in
        the queue), charging an attempt when the decision says so."""
        state = FileState.QUEUED if record.state is FileState.UPLOADING else record.state
        attempts = record.attempts + (1 if decision.charge else 0)
        retry_at = now + decision.delay
        record = self._journal.move(record, state, now, attempts=attempts,
                                    next_attempt_at=retry_at, last_error=info or None)
        if log_it:
            local = state in (FileState.ASSOCIATED, FileState.LEDGERED)
            level = bound.error if local else bound.warning
            level("archive_retry_scheduled" if local else "upload_retry_scheduled",
                  retry_in=round(decision.delay, 1), attempts=attempts, **info)
        return Outcome("retry", record, retry_at=retry_at, detail=info.get("detail"))

    def _fail(self, record: FileRecord, folder: FolderSettings, exc: HotfolderError,
              bound: Any, *, info: dict[str, Any] | None = None,
              attempts: int | None = None) -> Outcome:
        record = self._journal.get(record.id)
        info = dict(info or _error_info(exc))
        attempts = attempts if attempts is not None else record.attempts + 1
        sidecar = {**info, "attempts": attempts,
                   "time": utc_iso(self._clock()),
                   "source": str(record.path)}
        if record.uuid:
            sidecar["uuid"] = record.uuid
        final = archiver.move_to_failed(folder, record.path, sidecar)
        record = self._journal.move(record, FileState.FAILED, self._clock(), final_path=final,
                                    attempts=attempts, last_error=sidecar)
        bound.error("upload_failed", failed_path=str(final) if final else None,
                    kept_in_place=final is None, attempts=attempts, **info)
        self.metrics.upload_finished(str(folder.path), "failed", record.observation.size)
        return Outcome("failed", record, detail=info.get("detail"))


def _error_info(exc: HotfolderError) -> dict[str, Any]:
    if isinstance(exc, ProcoreError):
        return exc.as_dict()
    return {"reason": exc.reason, "detail": exc.message}


def _same_version(a: sourcefile.Observation, b: sourcefile.Observation) -> bool:
    return (a.size, a.mtime_ns, a.ino, a.dev) == (b.size, b.mtime_ns, b.ino, b.dev)


def _changed_since(record: FileRecord) -> bool:
    """The file at ``record.path`` is another version than the one uploaded (a file that is
    gone is not: its stored bytes are still filed)."""
    current = sourcefile.observe(record.path)
    return current is not None and not _same_version(current, record.observation)

