"""The uploader's outcome policy as applied, against a fake Procore client (no HTTP).

Each row: a destination, what the fake client does at one step, and what must become of the
file: the journal state and outcome it ends in, whether it is charged an attempt, whether the
folder or the account is paused, and where the original is. Real journal, ledger and files in
``tmp_path``; the clock is a number the test moves.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from procore_hotfolder.config import Config, Current, parse_config
from procore_hotfolder.errors import (
    AuthenticationError,
    NetworkError,
    NotFound,
    PermissionDenied,
    ProcoreError,
    RequestTimeout,
    ServerError,
    Stopping,
    ValidationFailed,
)
from procore_hotfolder.files import sourcefile
from procore_hotfolder.model import FileState
from procore_hotfolder.procore import SegmentSpec, SegmentTicket, UploadTicket
from procore_hotfolder.procore.projects import Project
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.upload import finishing as finishing_module
from procore_hotfolder.upload.holds import ACCOUNT
from procore_hotfolder.upload.outcome import Outcome, OutcomeKind
from procore_hotfolder.upload.project_numbers import ProjectNumbers
from procore_hotfolder.upload.uploader import Uploader

Step = Callable[["FakeClient"], Any]


class FakeClient:
    """Answers like Procore, except where ``faults`` (step name -> action) says otherwise.

    An action is an exception to raise, or a callable run before answering (to change the
    file at that moment, say)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.faults: dict[str, list[Any]] = {}
        self.calls: list[str] = []
        self.documents: dict[int, dict[str, Any]] = {}
        self.images: list[dict[str, Any]] = []
        self.segment_puts: list[tuple[str, dict[str, Any]]] = []  # thread name, contextvars
        self._next = 100
        self.ticket_created_at = 0.0  # Procore's clock at create: 0 = never reusable here
        self.upload_status = "ready"  # what Show Upload says of the bytes
        self.sent: list[tuple[Any, ...]] = []  # what reached Procore where: (call, project, ...)
        self.folders: dict[tuple[int | None, str], int] = {}

    def create_folder(self, project_id: int | None, parent_id: int | None, name: str
                      ) -> Mapping[str, Any]:
        self._step("create_folder")
        self._next += 1
        self.folders[(project_id, name)] = self._next
        return {"id": self._next}

    def _step(self, name: str) -> None:
        self.calls.append(name)
        actions = self.faults.get(name)
        if not actions:
            return
        action = actions.pop(0) if len(actions) > 1 else actions[0]
        if isinstance(action, BaseException):
            raise action
        action()

    def create_upload(self, target: Any, filename: str, size: int,
                      segments: list[SegmentSpec] | None = None, **_: Any) -> UploadTicket:
        self._step("create_upload")
        self.sent.append(("create_upload", target.project_id, filename))
        self._next += 1
        tickets = tuple(SegmentTicket(number=n, url=f"https://storage.invalid/{n}", headers=())
                        for n in range(1, len(segments or ()) + 1))
        return UploadTicket(uuid=f"UUID{self._next}", url="https://storage.invalid/",
                            fields=(("key", "k"),), segments=tickets,
                            created_at=self.ticket_created_at)

    def store_segment(self, segment: SegmentTicket, body: Any) -> str:
        while body.read(65536):
            pass
        self._step("store_segment")
        self.segment_puts.append((threading.current_thread().name,
                                  structlog.contextvars.get_contextvars()))
        return f"etag{segment.number}"

    def complete_upload(self, target: object, uuid: str, parts: Any) -> None:
        self._step("complete_upload")

    def store_file(self, ticket: UploadTicket, body: Any, **_: Any) -> None:
        while body.read(65536):
            pass
        self._step("store_file")

    def show_upload(self, target: object, uuid: str) -> Mapping[str, Any]:
        self._step("show_upload")
        return {"uuid": uuid, "status": self.upload_status}

    def upload_is_stored(self, target: object, uuid: str) -> bool:
        return self.show_upload(target, uuid)["status"] == "complete"

    def procore_time_floor(self) -> float:
        return 0.0  # every document counts as made after the send

    def folder_listing(self, project_id: int | None, folder_id: int | None,
                       **_: Any) -> Mapping[str, Any]:
        self._step("list_folder")
        return {"id": 1, "folders": [], "files": list(self.documents.values())}

    def create_document(self, project_id: int, parent_id: int | None, name: str,
                        upload_uuid: str, **extra: Any) -> Mapping[str, Any]:
        self._step("create_document")
        self.sent.append(("create_document", project_id, parent_id, name,
                          extra.get("description")))
        self._next += 1
        self.documents[self._next] = {"id": self._next, "name": name,
                                      "file_versions": [{"upload_uuid": upload_uuid}]}
        return {"id": self._next}

    def create_file_version(self, project_id: int, file_id: int,
                            upload_uuid: str) -> Mapping[str, Any]:
        self._step("create_file_version")
        return {"id": file_id}

    def create_image(self, project_id: int, upload_uuid: str, image_name: str,
                     album_id: int | None, **_: Any) -> Mapping[str, Any]:
        self._step("create_image")
        self._next += 1
        self.images.append({"id": self._next, "filename": image_name})
        return {"id": self._next}


def _config(tmp_path: Path, destination: str) -> Config:
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state"), "max_attempts": 3},
           "folders": [{"path": str(tmp_path / "drop"), "destination": destination,
                        **({"project_id": 7} if destination != "none" else {})}]}
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})


class GivesUpAfter:
    """A run mode's answer that gives up on a file after ``tries`` tries (as `once` does)."""

    unexpected_error_retry_seconds = 7.0

    def __init__(self, tries: int) -> None:
        self.tries = tries
        self.asked: list[int] = []

    def gives_up(self, record: FileRecord) -> bool:
        self.asked.append(record.id)
        return len(self.asked) >= self.tries


class Rig:
    def __init__(self, tmp_path: Path, destination: str, limit: GivesUpAfter | None = None
                 ) -> None:
        self.config = _config(tmp_path, destination)
        self.folder = self.config.folders[0]
        self.folder.path.mkdir()
        self.file = self.folder.path / "scan.pdf"
        self.file.write_bytes(b"%PDF-1.7 first version\n")
        self.journal = Journal.open(self.config.daemon.state_dir)
        self.ledger = Ledger(self.config.daemon.state_dir)
        self.client = FakeClient(self.file)
        self.writer_fds: list[int] = []
        self.now = 1_000_000.0
        self.current = Current(self.config)
        self.uploader = Uploader(self.current, self.journal, self.ledger,
                                 self.client,  # type: ignore[arg-type]
                                 clock=lambda: self.now, rand=lambda: 0.5, limit=limit)
        observation = sourcefile.observe(self.file)
        assert observation is not None
        self.record = self.journal.enqueue([(self.folder.path, self.file, observation)],
                                           self.now)[0]

    def at_archive_move(self, action: Callable[[], None]) -> None:
        """Run ``action`` once finishing has recorded the archive path, just before it
        moves the original (the journal's move that sets ``archive_path``)."""
        move = self.journal.move

        def then_act(record: FileRecord, target: FileState, now: float,
                     **columns: Any) -> FileRecord:
            moved = move(record, target, now, **columns)
            if "archive_path" in columns:
                action()
            return moved

        self.journal.move = then_act  # type: ignore[method-assign]

    def remove(self) -> None:
        self.file.unlink()

    def process(self) -> Outcome:
        outcome = self.uploader.process(self.journal.get(self.record.id))
        self.record = outcome.record
        return outcome

    def rewrite(self) -> None:
        self.file.write_bytes(b"%PDF-1.7 second, longer version\n")

    def open_writer(self) -> None:
        """A writer (a stalled copy) opens the file for writing and writes nothing yet."""
        self.writer_fds.append(os.open(self.file, os.O_WRONLY | os.O_APPEND))

    def close(self) -> None:
        for fd in self.writer_fds:
            os.close(fd)
        self.journal.close()

    def row(self) -> FileRecord:
        return self.journal.get(self.record.id)

    def ledger_lines(self) -> list[dict[str, Any]]:
        path = self.config.daemon.state_dir / "uploads.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def paused(self) -> set[str]:
        return {p.scope for p in self.uploader.pauses.current(self.now)}


def _http(cls: type[ProcoreError], status: int) -> ProcoreError:
    return cls(f"Procore answered HTTP {status}: refused", status=status)


CASES = [
    # id, destination, step, action, -> state, outcome, attempts, paused, original kept
    ("none-ok", "none", None, None, FileState.ARCHIVED, "archived", 0, None, False),
    ("documents-ok", "documents", None, None, FileState.ARCHIVED, "archived", 0, None, False),
    ("project-403-pauses-folder", "documents", "create_upload", _http(PermissionDenied, 403),
     FileState.QUEUED, "retry", 0, "folder", True),
    ("project-404-pauses-folder", "documents", "create_upload", _http(NotFound, 404),
     FileState.QUEUED, "retry", 0, "folder", True),
    ("login-refused-pauses-all", "documents", "create_upload",
     _http(AuthenticationError, 401), FileState.QUEUED, "retry", 0, ACCOUNT, True),
    ("documents-403-back-to-stored", "documents", "create_document",
     _http(PermissionDenied, 403), FileState.STORED, "retry", 0, "folder", True),
    ("408-retried-charged", "documents", "create_upload", _http(RequestTimeout, 408),
     FileState.QUEUED, "retry", 1, None, True),
    ("500-retried-charged", "none", "store_file", _http(ServerError, 500),
     FileState.QUEUED, "retry", 1, None, True),
    ("422-fails", "none", "create_upload", _http(ValidationFailed, 422),
     FileState.FAILED, "failed", 1, None, False),
    ("lost-filing-answer-stays-associating", "documents", "create_document",
     NetworkError("connection dropped"), FileState.ASSOCIATING, "retry", 0, None, True),
    # a stop is a control signal: resumed at the next start, never charged or failed
    ("stop-while-storing-requeued", "none", "store_file", Stopping("stopping"),
     FileState.QUEUED, "retry", 0, None, True),
    ("stop-while-filing-stays-associating", "documents", "create_document",
     Stopping("stopping"), FileState.ASSOCIATING, "retry", 0, None, True),
    ("changed-after-store-settles-again", "documents", "store_file", "rewrite",
     FileState.CHANGED, "changed", 0, None, True),
    ("changed-after-filing-settles-again", "documents", "create_document", "rewrite",
     FileState.CHANGED, "changed", 0, None, True),
    # a writer holds the file open (a copy that stalled longer than the settle time)
    ("writer-holds-it-nothing-uploaded", "documents", "before", "writer",
     FileState.CHANGED, "changed", 0, None, True),
    ("writer-back-during-upload-nothing-filed", "documents", "store_file", "writer",
     FileState.CHANGED, "changed", 0, None, True),
    ("writer-back-during-upload-nothing-recorded", "none", "store_file", "writer",
     FileState.CHANGED, "changed", 0, None, True),
    ("writer-back-after-filing-not-archived", "documents", "create_document", "writer",
     FileState.CHANGED, "changed", 0, None, True),
]


@pytest.mark.parametrize(("destination", "step", "action", "state", "kind", "attempts",
                          "paused", "kept"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_outcome_table(tmp_path: Path, request: pytest.FixtureRequest, destination: str,
                       step: str | None, action: Any, state: FileState, kind: str,
                       attempts: int, paused: str | None, kept: bool) -> None:
    rig = Rig(tmp_path, destination)
    request.addfinalizer(rig.close)
    action = {"rewrite": rig.rewrite, "writer": rig.open_writer}.get(action, action)
    if step == "before":
        action()
    elif step is not None:
        rig.client.faults[step] = [action]
    outcome = rig.process()
    assert (outcome.kind, rig.row().state, rig.row().attempts) == (kind, state, attempts)
    scope = {"folder": str(rig.folder.path), ACCOUNT: ACCOUNT}.get(paused or "")
    assert rig.paused() == ({scope} if scope else set())
    assert rig.file.exists() is kept
    failed = list(rig.folder.failed_dir.glob("*.error.json")) \
        if rig.folder.failed_dir.exists() else []
    assert bool(failed) is (kind == "failed")


@pytest.mark.parametrize("fault", [_http(ServerError, 500), NetworkError("dropped"),
                                   _http(PermissionDenied, 403)],
                         ids=["charged", "outage", "pause"])
def test_the_run_mode_decides_when_a_retry_is_left_in_the_journal(
        tmp_path: Path, request: pytest.FixtureRequest, fault: ProcoreError) -> None:
    """Every try that asks for another asks the run mode once; when it gives up, the row is
    left queued in the journal (its retry time kept for the daemon), not tried again."""
    limit = GivesUpAfter(tries=2)
    rig = Rig(tmp_path, "none", limit)
    request.addfinalizer(rig.close)
    rig.client.faults["create_upload"] = [fault]
    first = rig.process()
    assert first.kind is OutcomeKind.RETRY and first.retry_at == rig.row().next_attempt_at
    assert first.retry_at is not None
    rig.now = first.retry_at
    second = rig.process()
    assert (second.kind, second.retry_at) == (OutcomeKind.LEFT, None)
    assert rig.row().state is FileState.QUEUED and rig.row().next_attempt_at >= rig.now
    assert limit.asked == [rig.record.id] * 2


def test_a_defect_is_logged_and_tried_again_as_the_run_mode_says(tmp_path: Path) -> None:
    """An exception no step expected never leaves ``process``: ``worker_error`` in the log,
    the row untouched, tried again after the run mode's ``unexpected_error_retry_seconds``,
    or left in the journal once the run mode gives up."""
    rig = Rig(tmp_path, "none", GivesUpAfter(tries=2))
    try:
        rig.client.faults["create_upload"] = [RuntimeError("a defect")]
        with capture_logs() as logs:
            first = rig.process()
        assert (first.kind, first.retry_at) == (OutcomeKind.RETRY, rig.now + 7.0)
        [error] = [e for e in logs if e["event"] == "worker_error"]
        assert error["log_level"] == "error" and rig.row().state is FileState.QUEUED
        assert rig.process().kind is OutcomeKind.LEFT
        assert rig.row().attempts == 0
    finally:
        rig.close()


# The original moving on after it settled (policy rule 1), one row per moment: when it
# happens (a client step it happens in; "stored": the filing refused with a 403 first, the
# change made before the next try; "archive": once finishing chose the archive path, before
# the move), what happens to it, and what must follow: the row's end, the reason its
# last_error names, the documents filed, the ledger line (its "archived"), the original kept.
MOVED_ON = [
    # id, destination, moment, change, -> state, kind, reason, filed, ledger, kept
    ("re-saved-while-uploading", "documents", "store_file", "rewrite",
     FileState.CHANGED, "changed", "changed", 0, None, True),
    ("re-saved-before-filing", "documents", "stored", "rewrite",
     FileState.CHANGED, "changed", "changed", 0, None, True),
    ("re-saved-after-filing", "documents", "create_document", "rewrite",
     FileState.CHANGED, "changed", "changed", 1, "null", True),
    ("re-saved-before-the-archive-move", "documents", "archive", "rewrite",
     FileState.CHANGED, "changed", "changed", 1, "null", True),
    ("re-saved-before-the-archive-move-nothing-filed", "none", "archive", "rewrite",
     FileState.CHANGED, "changed", "changed", 0, None, True),
    ("writer-before-filing", "documents", "stored", "writer",
     FileState.CHANGED, "changed", "open_for_writing", 0, None, True),
    ("writer-before-the-archive-move", "documents", "archive", "writer",
     FileState.CHANGED, "changed", "open_for_writing", 1, "null", True),
    ("writer-before-the-archive-move-nothing-filed", "none", "archive", "writer",
     FileState.CHANGED, "changed", "open_for_writing", 0, None, True),
    ("gone-before-the-upload", "documents", "before", "remove",
     FileState.VANISHED, "vanished", "vanished", 0, None, False),
    ("gone-before-filing", "documents", "stored", "remove",
     FileState.ARCHIVED, "archived", "vanished", 1, "null", False),
    ("gone-after-filing", "documents", "create_document", "remove",
     FileState.ARCHIVED, "archived", "vanished", 1, "null", False),
    ("gone-before-the-archive-move", "documents", "archive", "remove",
     FileState.ARCHIVED, "archived", "vanished", 1, "null", False),
    ("gone-before-the-archive-move-nothing-filed", "none", "archive", "remove",
     FileState.ARCHIVED, "archived", "vanished", 0, "null", False),
]


@pytest.mark.parametrize(
    ("destination", "moment", "change", "state", "kind", "reason", "filed", "ledger", "kept"),
    [c[1:] for c in MOVED_ON], ids=[c[0] for c in MOVED_ON])
def test_the_original_moving_on(tmp_path: Path, request: pytest.FixtureRequest,
                                destination: str, moment: str, change: str, state: FileState,
                                kind: str, reason: str | None, filed: int, ledger: str | None,
                                kept: bool) -> None:
    rig = Rig(tmp_path, destination)
    request.addfinalizer(rig.close)
    act = {"rewrite": rig.rewrite, "writer": rig.open_writer, "remove": rig.remove}[change]
    if moment == "before":
        act()
    elif moment == "stored":
        rig.client.faults["create_document"] = [_http(PermissionDenied, 403)]
        assert rig.process().kind == "retry" and rig.row().state is FileState.STORED
        rig.client.faults.clear()
        rig.uploader.pauses.lift((ACCOUNT, str(rig.folder.path)), rig.now)
        act()
    elif moment == "archive":
        rig.at_archive_move(act)
    else:
        rig.client.faults[moment] = [act]
    outcome = rig.process()
    row = rig.row()
    assert (row.state, outcome.kind) == (state, kind)
    assert (row.last_error or {}).get("reason") == reason
    assert len(rig.client.documents) == filed
    lines = rig.ledger_lines()
    assert [line["archived"] or "null" for line in lines] == ([ledger] if ledger else [])
    assert rig.file.exists() is kept
    assert not rig.folder.archive_dir.exists() or not any(rig.folder.archive_dir.iterdir())
    assert row.final_path is None


def test_a_writer_is_never_uploaded_filed_or_archived_under(tmp_path: Path) -> None:
    """The three moments: at the upload (no Upload created), after it (nothing filed or put
    in the ledger), after filing (not moved: the original stays for the writer)."""
    for step, calls_before in (("before", 0), ("store_file", 1), ("create_document", 1)):
        (tmp_path / step).mkdir()
        rig = Rig(tmp_path / step, "documents")
        try:
            if step == "before":
                rig.open_writer()
            else:
                rig.client.faults[step] = [rig.open_writer]
            assert rig.process().kind == "changed"
            assert rig.client.calls.count("create_upload") == calls_before
            filed = step == "create_document"
            assert rig.client.calls.count("create_document") == int(filed)
            assert len(rig.ledger_lines()) == int(filed)
            assert rig.file.exists() and not rig.folder.archive_dir.exists()
            assert rig.row().last_error["reason"] == "open_for_writing"
        finally:
            rig.close()


def test_changed_after_store_files_nothing_of_the_old_version(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "documents")
    rig.client.faults["store_file"] = [rig.rewrite]
    assert rig.process().kind == "changed"
    assert "create_document" not in rig.client.calls and rig.ledger_lines() == []
    assert rig.file.read_bytes().startswith(b"%PDF-1.7 second")


def test_changed_after_filing_is_in_the_ledger_and_not_archived(tmp_path: Path) -> None:
    """The old version is in Procore (ledger line, archived null); the original stays, and its
    row is finished, so the new version settles and is uploaded as a new row: no loop."""
    rig = Rig(tmp_path, "documents")
    rig.client.faults["create_document"] = [rig.rewrite]
    assert rig.process().kind == "changed"
    [line] = rig.ledger_lines()
    assert line["archived"] is None and line["destination"]["kind"] == "documents"
    observation = sourcefile.observe(rig.file)
    assert observation is not None
    again = rig.journal.enqueue([(rig.folder.path, rig.file, observation)], rig.now)
    assert len(again) == 1  # a fresh row for the new version: the old one is terminal


def test_a_paused_folder_files_are_not_tried_until_the_recheck(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "documents")
    rig.client.faults["create_upload"] = [_http(PermissionDenied, 403), _http(PermissionDenied,
                                                                              403)]
    first = rig.process()
    assert first.retry_at is not None
    calls = len(rig.client.calls)
    rig.now += 1
    assert rig.process().kind == "retry" and len(rig.client.calls) == calls  # not even tried
    rig.now = first.retry_at
    rig.client.faults["create_upload"] = []
    assert rig.process().kind == "archived"  # the re-check went through: pause lifted
    assert rig.paused() == set()
    assert not rig.folder.failed_dir.exists()


def test_refusals_in_flight_when_the_pause_began_do_not_back_it_off(tmp_path: Path) -> None:
    """Three workers start at once; Procore, which has just stopped granting the project,
    refuses all three. One pause, its first re-check ~20 s away (not 80 s: the other two
    refusals answer requests sent before the pause began, they are no re-checks)."""
    rig = Rig(tmp_path, "documents")
    records = [rig.record]
    for n in (2, 3):
        path = rig.folder.path / f"scan{n}.pdf"
        path.write_bytes(b"%PDF-1.7 another scan\n" * n)
        observation = sourcefile.observe(path)
        assert observation is not None
        records += rig.journal.enqueue([(rig.folder.path, path, observation)], rig.now)
    all_sent = threading.Barrier(len(records))
    sent_at = rig.now

    def refused() -> None:
        all_sent.wait(timeout=10)  # every attempt has started ...
        rig.now = sent_at + 1.0    # ... and the answers come back a second later
        raise _http(PermissionDenied, 403)

    rig.client.faults["create_upload"] = [refused]
    outcomes: list[Outcome] = []
    workers = [threading.Thread(target=lambda r=r: outcomes.append(rig.uploader.process(r)))
               for r in records]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert [o.kind for o in outcomes] == ["retry"] * 3
    [paused] = rig.uploader.pauses.current(rig.now)
    assert paused.checks == 0
    assert paused.until - paused.since == 20.0  # rand 0.5: CHECK_BACKOFF's first delay
    assert {o.retry_at for o in outcomes} == {paused.until}
    assert all(rig.journal.get(r.id).attempts == 0 for r in records)


def test_repeated_transient_errors_fail_after_max_attempts(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "none")
    rig.client.faults["create_upload"] = [_http(ServerError, 500)]
    kinds = []
    for _ in range(3):
        kinds.append(rig.process().kind)
        rig.now = rig.row().next_attempt_at
    assert kinds == ["retry", "retry", "failed"]
    sidecar = json.loads(next(rig.folder.failed_dir.glob("*.error.json")).read_text())
    assert sidecar["attempts"] == 3 and "gave up after 3 attempts" in sidecar["detail"]
    assert sidecar["status"] == 500


def test_a_lost_filing_answer_out_of_tries_is_looked_up_before_failing(
        tmp_path: Path) -> None:
    """Filed on Procore but every answer lost: the look finds the document, the file is
    archived, never failed."""
    rig = Rig(tmp_path, "documents")

    def filed_then_dropped() -> None:
        raise NetworkError("connection dropped")

    rig.client.faults["create_document"] = [filed_then_dropped]
    original = rig.client.create_document

    def create(*args: Any, **kwargs: Any) -> Mapping[str, Any]:
        rig.client.faults.pop("create_document", None)
        original(*args, **kwargs)  # Procore files it ...
        raise ServerError("Procore answered HTTP 500", status=500)  # ... the answer is lost

    rig.client.create_document = create  # type: ignore[method-assign]
    rig.process()
    assert rig.row().state is FileState.ASSOCIATING
    rig.now = rig.row().next_attempt_at
    assert rig.process().kind == "archived"
    assert len(rig.client.documents) == 1
    assert os.listdir(rig.folder.archive_dir) == ["scan.pdf"]


def test_re_saved_while_stored_is_not_filed(tmp_path: Path) -> None:
    """Bytes stored, the filing refused (folder paused), the file re-saved meanwhile: the
    next try files nothing of the old version; the row ends changed, the file settles again."""
    rig = Rig(tmp_path, "documents")
    rig.client.faults["create_document"] = [_http(PermissionDenied, 403)]
    rig.process()
    assert rig.row().state is FileState.STORED
    rig.rewrite()
    rig.client.faults.clear()
    rig.now = rig.row().next_attempt_at
    assert rig.process().kind == "changed"
    assert rig.client.calls.count("create_document") == 1 and rig.ledger_lines() == []


def test_a_pause_holds_back_only_steps_that_ask_procore(tmp_path: Path) -> None:
    """A filed file is archived during a pause of its folder, and that local step (no answer
    from Procore) does not lift the pause."""
    rig = Rig(tmp_path, "documents")
    rig.client.faults["create_document"] = []
    finishing = rig.uploader._finishing
    original = finishing.finish

    def disk_full(*args: Any) -> Any:
        finishing.finish = original  # type: ignore[method-assign]
        raise OSError(28, "No space left on device")

    finishing.finish = disk_full  # type: ignore[method-assign]
    assert rig.process().kind == "retry"
    assert rig.row().state is FileState.ASSOCIATED
    rig.uploader.pauses.pause(str(rig.folder.path), {"reason": "permission", "detail": "x"},
                              rig.now, 0.5, sent_at=rig.now)
    rig.now = rig.row().next_attempt_at
    assert rig.process().kind == "archived"
    assert rig.paused() == {str(rig.folder.path)}


@pytest.mark.parametrize("destination", ["none", "documents"])
def test_a_full_archive_disk_keeps_the_file_and_retries_the_archive(
        tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
        destination: str) -> None:
    """Only the local step failed: the row stays stored (filed), nothing in the ledger yet,
    the log says it is the archive that is retried; the next try archives it."""
    rig = Rig(tmp_path, destination)
    request.addfinalizer(rig.close)

    def disk_full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(finishing_module, "move_no_overwrite", disk_full)
    with capture_logs() as logs:
        assert rig.process().kind == "retry"
    [line] = [e for e in logs if e["event"].endswith("_retry_scheduled")]
    assert (line["event"], line["log_level"]) == ("archive_retry_scheduled", "error")
    assert rig.row().state in (FileState.STORED, FileState.ASSOCIATED)
    assert rig.file.exists() and rig.ledger_lines() == []
    monkeypatch.undo()
    rig.now = rig.row().next_attempt_at
    assert rig.process().kind == "archived"
    [entry] = rig.ledger_lines()
    assert entry["archived"] == str(rig.folder.archive_dir / "scan.pdf")


def test_every_line_of_a_file_carries_its_path_and_file_id(tmp_path: Path) -> None:
    """The file's context is bound once (structlog contextvars) around its work, and gone
    after it."""
    rig = Rig(tmp_path, "documents")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as events:
        assert rig.process().kind == "archived"
    names = [e["event"] for e in events]
    assert {"upload_created", "upload_filed", "upload_completed"} <= set(names)
    assert all((e["path"], e["file_id"]) == (str(rig.file), rig.record.id) for e in events)
    assert structlog.contextvars.get_contextvars() == {}


def test_segment_puts_run_in_the_files_context(tmp_path: Path) -> None:
    """Segments are sent from a thread pool; each PUT still sees the file's context."""
    rig = Rig(tmp_path, "none")
    daemon = replace(rig.config.daemon, segment_threshold_bytes=1, segment_size_bytes=8,
                     segment_parallelism=2)
    rig.current.set(replace(rig.config, daemon=daemon))
    assert rig.process().kind == "archived"
    assert len(rig.client.segment_puts) == 3  # 23 bytes in segments of 8
    for thread, context in rig.client.segment_puts:
        assert thread.startswith("segment")
        assert context == {"path": str(rig.file), "file_id": rig.record.id}
    assert rig.client.calls.count("complete_upload") == 1


def test_a_name_clash_in_documents_adds_a_version(tmp_path: Path) -> None:
    """Procore refuses the name (default on_name_clash "version"): the clashing document is
    looked up and the Upload becomes its new version."""
    rig = Rig(tmp_path, "documents")
    rig.client.documents[7] = {"id": 7, "name": "scan.pdf",
                               "file_versions": [{"number": 1}]}
    rig.client.faults["create_document"] = [
        ValidationFailed("Procore answered HTTP 422: name: has already been taken",
                         status=422)]
    assert rig.process().kind == "archived"
    assert rig.client.calls.count("create_file_version") == 1
    assert rig.ledger_lines()[0]["destination"] == {"kind": "documents", "id": 7}


def test_a_filing_that_keeps_being_planned_again_says_so(tmp_path: Path) -> None:
    """The name is taken, the document to version is gone, again and again: the try ends
    as ``filing_unconfirmed`` (nothing expired), tried again at once, nothing filed."""
    rig = Rig(tmp_path, "documents")
    try:
        rig.client.documents[7] = {"id": 7, "name": "scan.pdf", "file_versions": []}
        rig.client.faults["create_document"] = [
            ValidationFailed("Procore answered HTTP 422: name: has already been taken",
                             status=422)]
        rig.client.faults["create_file_version"] = [_http(NotFound, 404)]
        with capture_logs() as logs:
            outcome = rig.process()
        assert outcome.kind is OutcomeKind.RETRY and outcome.retry_at == rig.now
        assert rig.row().state is FileState.STORED and rig.row().attempts == 1
        assert rig.row().last_error["reason"] == "filing_unconfirmed"
        [line] = [e for e in logs if e["event"] == "upload_retry_scheduled"]
        assert line["reason"] == "filing_unconfirmed"
        assert rig.client.calls.count("create_document") == 3 and rig.ledger_lines() == []
    finally:
        rig.close()


@pytest.mark.parametrize(("error", "kind", "event"), [
    (_http(ValidationFailed, 422), "failed", "upload_failed"),
    (_http(ServerError, 502), "retry", "upload_retry_scheduled"),
], ids=["failed", "retried"])
def test_a_request_that_ran_out_of_tries_is_described_with_its_history(
        tmp_path: Path, error: ProcoreError, kind: str, event: str) -> None:
    """When a request's tries ran out, the log line (and a failed file's sidecar) say what
    each try met, not only the last answer."""
    rig = Rig(tmp_path, "none")
    error.history = ("1: server: Procore answered HTTP 502", "2: network: connection reset")
    rig.client.faults["create_upload"] = [error]
    with capture_logs() as logs:
        assert rig.process().kind == kind
    [line] = [e for e in logs if e["event"] == event]
    assert line["history"] == list(error.history) and line["reason"] == error.reason
    if kind == "failed":
        [sidecar] = rig.folder.failed_dir.glob("*.error.json")
        assert json.loads(sidecar.read_text())["history"] == list(error.history)
    else:
        assert line["attempts"] == 1 and rig.row().last_error["history"] == list(error.history)


def test_a_ticket_of_an_unknown_form_means_a_new_upload_not_a_crash(tmp_path: Path) -> None:
    """A journal row written by a newer release (then downgraded): its stored ticket is not
    guessed at; the bytes go to a new Upload, and the log says why."""
    rig = Rig(tmp_path, "none")
    rig.journal.move(rig.record, FileState.UPLOADING, rig.now, uuid="UUIDOLD",
                     ticket=json.dumps({"v": 99, "uuid": "UUIDOLD"}))
    with capture_logs() as logs:
        outcome = rig.process()
    assert outcome.kind == "archived" and rig.client.calls.count("create_upload") == 1
    assert rig.row().uuid != "UUIDOLD"
    [warning] = [e for e in logs if e["event"] == "journal_value_unreadable"]
    assert warning["what"] == "ticket" and "99" in warning["error"]


def test_a_file_keeps_the_settings_it_started_with(tmp_path: Path) -> None:
    """The pipeline asks ``config.Current`` once per file: a reload during an attempt (here,
    down to one attempt) applies from the next file on, not to this attempt's outcome."""
    rig = Rig(tmp_path, "none")

    def reload_then_fail() -> None:
        rig.current.set(replace(rig.config, daemon=replace(rig.config.daemon, max_attempts=1)))
        raise ServerError("Procore answered HTTP 500: try later", status=500)

    rig.client.faults["create_upload"] = [reload_then_fail]
    assert rig.process().kind is OutcomeKind.RETRY  # 1 of the 3 attempts it started with
    assert rig.row().attempts == 1


def test_a_folder_added_by_a_reload_is_processed(tmp_path: Path) -> None:
    """No part of the pipeline keeps its own copy of the folders: once the reload sets the
    configuration, a row of the added folder goes through (it used to wait an hour as
    ``folder_not_configured``)."""
    rig = Rig(tmp_path, "none")
    assert rig.process().kind is OutcomeKind.ARCHIVED  # under the configuration it started with
    added = replace(rig.folder, path=tmp_path / "added", archive_dir=tmp_path / "added-archive",
                    failed_dir=tmp_path / "added-failed")
    added.path.mkdir()
    scan = added.path / "plan.pdf"
    scan.write_bytes(b"%PDF-1.7 in the added folder\n")
    observation = sourcefile.observe(scan)
    assert observation is not None
    (record,) = rig.journal.enqueue([(added.path, scan, observation)], rig.now)
    rig.current.set(replace(rig.config, folders=(*rig.config.folders, added)))
    assert rig.uploader.process(record).kind is OutcomeKind.ARCHIVED


def _commits_of_one_file(tmp_path: Path, destination: str) -> int:
    tmp_path.mkdir()
    rig = Rig(tmp_path, destination)
    try:
        commits = 0
        transaction = rig.journal._transaction

        @contextmanager
        def counted() -> Iterator[Any]:
            nonlocal commits
            with transaction() as db:
                yield db
            commits += 1

        rig.journal._transaction = counted  # type: ignore[method-assign]
        assert rig.process().kind == "archived"
        return commits
    finally:
        rig.close()


def test_journal_commits_per_file(tmp_path: Path) -> None:
    """Every journal commit is an fsync (WAL, ``synchronous=FULL``): count them, from the
    settled row to ARCHIVED (the batched enqueue aside)."""
    counts = {d: _commits_of_one_file(tmp_path / d, d) for d in ("none", "documents",
                                                                  "photos")}
    # Upload created (its ticket), bytes stored (with their SHA-256), archive path chosen,
    # archived (the ledger line between the last two); filing: the plan before the send,
    # the filed record after it. Before issue 20: 6 and 8 (the SHA-256 and STORED apart,
    # LEDGERED between the ledger line and the move).
    assert counts == {"none": 4, "documents": 6, "photos": 6}


class Told:
    """Who hears of the files that failed for good (the engine's alerts, in the daemon)."""

    def __init__(self) -> None:
        self.failures: list[tuple[float, Path, dict[str, Any]]] = []

    def file_failed(self, now: float, path: Path, **fields: Any) -> None:
        self.failures.append((now, path, fields))


def _telling(rig: Rig) -> Told:
    told = Told()
    rig.uploader = Uploader(rig.current, rig.journal, rig.ledger,
                            rig.client,  # type: ignore[arg-type]
                            clock=lambda: rig.now, rand=lambda: 0.5, failures=told)
    return told


@pytest.mark.parametrize(("destination", "step", "action", "kind"),
                         [(c[1], c[2], c[3], c[5]) for c in CASES], ids=[c[0] for c in CASES])
def test_only_a_file_failed_for_good_is_told(tmp_path: Path, request: pytest.FixtureRequest,
                                             destination: str, step: str | None, action: Any,
                                             kind: str) -> None:
    """The outcome table again: a failure is told, once; an upload, a retry, a pause, a
    changed file are not."""
    rig = Rig(tmp_path, destination)
    request.addfinalizer(rig.close)
    told = _telling(rig)
    action = {"rewrite": rig.rewrite, "writer": rig.open_writer}.get(action, action)
    if step == "before":
        action()
    elif step is not None:
        rig.client.faults[step] = [action]
    outcome = rig.process()
    assert outcome.kind == kind
    assert len(told.failures) == (1 if kind == "failed" else 0)


def test_a_failure_is_told_with_procores_reason_request_id_and_where_the_file_is(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    rig = Rig(tmp_path, "none")
    request.addfinalizer(rig.close)
    told = _telling(rig)
    rig.client.faults["create_upload"] = [ValidationFailed(
        "Procore answered HTTP 422: File name contains invalid characters", status=422,
        request_id="7c2e91d0-req")]
    rig.process()
    [(now, path, fields)] = told.failures
    assert (now, path) == (rig.now, rig.file)
    assert fields == {"reason": "validation",
                      "detail": "Procore answered HTTP 422: File name contains invalid "
                                "characters",
                      "attempts": 1, "status": 422, "request_id": "7c2e91d0-req",
                      "failed_path": rig.folder.failed_dir / "scan.pdf"}


def test_a_file_given_up_on_or_never_uploadable_is_told_too(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    rig = Rig(tmp_path, "none")
    request.addfinalizer(rig.close)
    told = _telling(rig)
    rig.client.faults["create_upload"] = [_http(ServerError, 500)]
    for _ in range(3):
        rig.process()
        rig.now = rig.row().next_attempt_at
    empty = rig.folder.path / "empty.pdf"
    empty.write_bytes(b"")
    observation = sourcefile.observe(empty)
    assert observation is not None
    rig.uploader.fail_unsettled(rig.folder, empty, observation, "empty", "stayed empty")
    [(_, _, gave_up), (_, path, never)] = told.failures
    assert gave_up["attempts"] == 3 and gave_up["status"] == 500
    assert gave_up["detail"].endswith("(gave up after 3 attempts)")
    assert path == empty and never["reason"] == "empty" and never["attempts"] == 0
    assert never["failed_path"] == rig.folder.failed_dir / "empty.pdf"


# --- routed files ------------------------------------------------------------------------------

#: The rule of the folder: drawings by job number to "Drawings/<job>" in that job's project.
DRAWINGS = {"match": r"(?P<job>\d+)-(?P<sheet>\d+)\.pdf", "project_number": "{job}",
            "destination": "documents", "documents_path": "Drawings/{job}",
            "description": "Sheet {sheet}"}
#: The same files, after a reload, to project 9's root.
MOVED = {"match": r"\d+-\d+\.pdf", "project_id": 9, "destination": "documents"}
PROJECTS = [Project(id=7, name="Tower", project_number="24017", active=True),
            Project(id=8, name="Depot", project_number="0042", active=True)]


def _routed_config(tmp_path: Path, rule: dict[str, Any], *, own_keys: bool = False
                   ) -> Config:
    """A folder of the one ``rule`` (with ``own_keys``: its own project 5's Documents root
    for what the rule does not match)."""
    own = {"destination": "documents", "project_id": 5} if own_keys else {}
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state"), "max_attempts": 3},
           "folders": [{"path": str(tmp_path / "drop"), **own, "rules": [rule]}]}
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})


ROUTED = [
    # id, file name, what happens before the last try, -> state, what reached Procore (the
    # Upload's project and name; the document's project, folder, name and description: the
    # folder "Drawings/<job>" is made as ids 102 and 103)
    ("by-number", "24017-101.pdf", None, FileState.ARCHIVED,
     [("create_upload", 7, "24017-101.pdf"),
      ("create_document", 7, 103, "24017-101.pdf", "Sheet 101")]),
    ("leading-zero", "0042-7.pdf", None, FileState.ARCHIVED,
     [("create_upload", 8, "0042-7.pdf"), ("create_document", 8, 103, "0042-7.pdf", "Sheet 7")]),
    # A reload that changes the rules while the file is half filed: it goes where its Upload
    # is. One that comes before its Upload: the new rules route it.
    ("reload-after-upload-keeps-route", "24017-101.pdf", "reload-when-stored",
     FileState.ARCHIVED, [("create_upload", 7, "24017-101.pdf"),
                          ("create_document", 7, 103, "24017-101.pdf", "Sheet 101")]),
    ("reload-before-upload-reroutes", "24017-101.pdf", "reload-when-queued",
     FileState.ARCHIVED, [("create_upload", 9, "24017-101.pdf"),
                          ("create_document", 9, None, "24017-101.pdf", None)]),
    # A row of an older release (an Upload, no route): filed by the folder's own keys.
    ("older-row-by-folder-keys", "24017-101.pdf", "older-row", FileState.ARCHIVED,
     [("create_document", 5, None, "24017-101.pdf", None)]),
    # No route: failed (to failed_dir, with what the sidecar needs), nothing sent.
    ("no-rule-matched", "notes.txt", None, FileState.FAILED, []),
    ("unknown-number", "24099-1.pdf", None, FileState.FAILED, []),
    ("unreadable-kept-route", "24017-101.pdf", "unreadable-route", FileState.FAILED, []),
]


@pytest.mark.parametrize(("name", "before", "state", "sent"),
                         [c[1:] for c in ROUTED], ids=[c[0] for c in ROUTED])
def test_a_file_goes_where_its_route_says(tmp_path: Path, name: str, before: str | None,
                                          state: FileState, sent: list[tuple[Any, ...]]
                                          ) -> None:
    config = _routed_config(tmp_path, DRAWINGS, own_keys=before == "older-row")
    folder = config.folders[0]
    folder.path.mkdir()
    path = folder.path / name
    path.write_bytes(b"%PDF-1.7 drawing\n")
    journal = Journal.open(config.daemon.state_dir)
    client = FakeClient(path)
    current = Current(config)
    numbers = ProjectNumbers(lambda: PROJECTS)
    uploader = Uploader(current, journal, Ledger(config.daemon.state_dir),
                        client,  # type: ignore[arg-type]
                        clock=lambda: 1_000_000.0, rand=lambda: 0.5, numbers=numbers)
    observation = sourcefile.observe(path)
    assert observation is not None
    [record] = journal.enqueue([(folder.path, path, observation)], 1_000_000.0)
    try:
        if before == "reload-when-stored":
            client.faults["create_document"] = [ServerError("busy", status=503)]
            assert uploader.process(record).kind is OutcomeKind.RETRY
            # Half filed: an Upload in project 7, its filing's outcome unknown.
            assert journal.get(record.id).state is FileState.ASSOCIATING
            client.faults.clear()
            current.set(_routed_config(tmp_path, MOVED))
        elif before == "reload-when-queued":
            current.set(_routed_config(tmp_path, MOVED))
        elif before == "older-row":
            record = journal.move(record, FileState.UPLOADING, 1.0, uuid="OLD1")
            record = journal.move(record, FileState.STORED, 2.0, sha256="0" * 64)
        elif before == "unreadable-route":
            record = journal.move(record, FileState.UPLOADING, 1.0, uuid="NEW1",
                                  route={"v": 99})
            record = journal.move(record, FileState.STORED, 2.0, sha256="0" * 64)
        outcome = uploader.process(journal.get(record.id))
        row = journal.get(record.id)
        assert (row.state, outcome.kind.value) == (state, state.value)
        assert client.sent == sent
        if state is FileState.ARCHIVED:
            [line] = [json.loads(x) for x in (config.daemon.state_dir / "uploads.jsonl")
                      .read_text().splitlines()]
            assert (line["project_id"], line["rule"]) == (sent[-1][1], row.route and
                                                          row.route["rule"])
            if before != "older-row":
                assert row.route is not None and row.route["project"]["id"] == sent[0][1]
        else:
            sidecar = json.loads((folder.failed_dir / f"{name}.error.json").read_text())
            assert sidecar["reason"] == {"notes.txt": "no_rule_matched",
                                         "24099-1.pdf": "unknown_project_number"}.get(
                name, "invalid_route")
            if name == "notes.txt":
                assert sidecar["rules_tried"] == [{"rule": 0, "match": DRAWINGS["match"]}]
            if name == "24099-1.pdf":
                assert sidecar["project_number"] == "24099"
    finally:
        journal.close()


@pytest.mark.parametrize(("stored", "sends"), [(False, 2), (True, 1)],
                         ids=["sent-again", "found-stored"])
def test_a_retried_single_post_resumes_its_upload(tmp_path: Path, request: pytest.FixtureRequest,
                                                  stored: bool, sends: int) -> None:
    """A POST whose answer was lost puts the row back in the queue with its Upload; the next
    try reuses that Upload (still fresh): sends the bytes again, or, when Show Upload says
    they are stored, only hashes the file. Either way the file ends stored and archived."""
    rig = Rig(tmp_path, "none")
    request.addfinalizer(rig.close)
    rig.client.ticket_created_at = rig.now  # fresh: reusable at the next try
    rig.client.faults["store_file"] = [NetworkError("connection dropped"), lambda: None]
    assert rig.process().kind is OutcomeKind.RETRY
    assert rig.row().state is FileState.QUEUED and rig.row().ticket
    rig.client.upload_status = "complete" if stored else "ready"
    rig.now = rig.row().next_attempt_at
    assert rig.process().kind is OutcomeKind.ARCHIVED
    assert rig.client.calls.count("create_upload") == 1
    assert rig.client.calls.count("store_file") == sends
