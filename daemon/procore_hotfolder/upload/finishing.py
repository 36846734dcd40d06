"""The last step of an uploaded file, filed (ASSOCIATED) or with nothing to file (STORED):
the original moves under ``archive_dir``, then its ledger line says where it went, then the
row is ARCHIVED.

The order is what keeps the ledger true and single across a crash at any instant:

1. the journal records ``archive_path``, the name the move starts from (a taken name makes
   the move choose ``name (1)``, ``name (2)``, ...);
2. the move (``move_no_overwrite``: never an overwrite, never under a writer);
3. the ledger line, naming where the original really is (fsynced);
4. ARCHIVED, with ``final_path``.

A row that has an ``archive_path`` may have been cut short anywhere after 1; it is taken up
again from what is on disk: a ledger line for its Upload already says how it ended (3 was
done); else the original is looked for from ``archive_path`` on, by its inode (or, copied
to another filesystem, its size, mtime and SHA-256) (2 was done), or found with a second
name there (2 was half done: the move is finished), or still in place (2 is done now).

What finishing sees it only reports; the policy (``policy.decide``, rule 1) decides. When
the original cannot be archived, the ledger line of what was filed is written first
(``archived`` null; an Upload filed nowhere gets none when its original changed, since
nothing of an old version is recorded as the file), then it raises: ``FileVanished`` (the
original is gone: the upload stands, nothing to archive), ``FileChanged`` (re-saved) or
``FileOpenForWriting`` (a writer holds it): it stays in place and settles again.

Rows of releases that wrote the ledger line before the move (LEDGERED, or ASSOCIATED with a
line) are finished the same way: their line stands as written."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import FileChanged, FileOpenForWriting, FileVanished
from procore_hotfolder.files import archiver, sourcefile
from procore_hotfolder.files.clash_names import MAX_CLASHES, numbered_name
from procore_hotfolder.files.nooverwrite import move_no_overwrite
from procore_hotfolder.model import FileState, Observation, utc_iso
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.upload.routing import Route
from procore_hotfolder.watch.writers import SeenBy, Writers

log = structlog.get_logger(__name__)

_HASH_CHUNK = 1024 * 1024


class Finishing:
    """Archives the originals of uploaded journal rows and writes their ledger lines; logs
    the file's one ``upload_completed`` line (in the caller's structlog context)."""

    def __init__(self, journal: Journal, ledger: Ledger, *, clock: Callable[[], float],
                 writers: Writers) -> None:
        self._journal = journal
        self._ledger = ledger
        self._clock = clock
        self._writers = writers

    def ledger_entry(self, record: FileRecord, folder: FolderSettings, route: Route,
                     company_id: int, archived: Path | None) -> dict[str, Any]:
        """The ledger line of ``record``, filed by ``route`` (``archived``: where the
        original is, if kept)."""
        return {
            "time": utc_iso(self._clock()),
            "uuid": record.uuid,
            "company_id": company_id,
            "project_id": route.project_id,
            "source": str(record.path),
            "archived": str(archived) if archived is not None else None,
            "size": record.observation.size,
            "sha256": record.sha256,
            # A row that filed nothing (destination "none") has no resource id.
            "destination": {"kind": route.target.kind, "id": record.resource_id},
            "folder": str(folder.path),
            "rule": route.rule,  # the routing rule that matched; null: the folder's keys
            "attempts": record.attempts + 1,
        }

    def finish(self, record: FileRecord, folder: FolderSettings, route: Route,
               company_id: int) -> FileRecord:
        """STORED (nothing to file), ASSOCIATED or LEDGERED → ARCHIVED (see the module
        docstring). Raises ``FileVanished``, ``FileChanged`` or ``FileOpenForWriting`` when
        the original cannot be archived (its ledger line written first where one is due),
        ``ArchiveError`` or ``OSError`` when the move or the ledger fails (nothing written
        then; the next try takes it up again)."""
        filed = record.state is not FileState.STORED
        resumed = record.archive_path is not None or record.state is FileState.LEDGERED
        if record.archive_path is None:
            record = self._journal.move(record, record.state, self._clock(),
                                        archive_path=archiver.archive_path_for(folder,
                                                                               record.path))
        if resumed and (line := self._ledger.line_for(record.uuid or "")) is not None:
            return self._as_recorded(record, folder, route, line.get("archived"))
        try:
            final = self._move(record, folder, resumed=resumed)
        except FileChanged as exc:
            if filed or isinstance(exc, FileVanished):
                self._ledger.append(self.ledger_entry(record, folder, route, company_id, None))
            raise
        self._ledger.append(self.ledger_entry(record, folder, route, company_id, final))
        return self.complete(record, route, final)

    def complete(self, record: FileRecord, route: Route, final: Path | None,
                 *, why: dict[str, Any] | None = None) -> FileRecord:
        """→ ARCHIVED (``final``: where the original is; None: it went after its upload, and
        ``why`` says so in the row's ``last_error``)."""
        columns: dict[str, Any] = {"last_error": why} if why is not None else {}
        record = self._journal.move(record, FileState.ARCHIVED, self._clock(), final_path=final,
                                    **columns)
        log.info("upload_completed", uuid=record.uuid, size=record.observation.size,
                 sha256=record.sha256, archived=str(final) if final else None,
                 project_id=route.project_id,
                 seconds=round(self._clock() - record.created_at, 3))
        return record

    def _as_recorded(self, record: FileRecord, folder: FolderSettings, route: Route,
                     archived: object) -> FileRecord:
        """The ledger has the line already: the row ends as it says. A line without an
        archive path said the original stays (or went); one with a path was written after
        the move (or, by an older release, before it: the move is done now)."""
        if archived is None:
            if sourcefile.observe(record.path) is None:
                raise FileVanished("the original went after its upload; nothing archived")
            raise FileChanged("the ledger line says the original was not archived (it had "
                              "changed, or a writer held it); it settles again")
        return self.complete(record, route, self._move(record, folder, resumed=True))

    def _move(self, record: FileRecord, folder: FolderSettings, *, resumed: bool) -> Path:
        """Move the original to ``archive_path`` (or a free variant of it) and return where
        it is; after a restart (``resumed``) a move that was cut short is found first, and a
        half-done one finished. Raises ``FileVanished``, ``FileOpenForWriting``,
        ``FileChanged``, ``ArchiveError`` or ``OSError``; the original is then where it was
        (or gone)."""
        base = record.archive_path
        assert base is not None
        source = sourcefile.observe(record.path)
        moved = _moved_to(record, base, source) if resumed else None
        if source is None:
            if moved is None:
                raise FileVanished("the original went after its upload; nothing archived")
            return moved  # moved before a restart
        writer = self._writers.check(record.path, folder)
        if moved is not None:
            # A crash between link() and unlink() of a move: finish it, unless the original
            # is no longer the uploaded version or a writer holds it (then it stays put).
            if writer.open or not source.same_version(record.observation):
                os.unlink(moved)  # the half-done move's second name
                if writer.open:
                    raise FileOpenForWriting(f"{writer.detail}; not archived")
                raise FileChanged("the file changed since it was uploaded; not archived")
            os.unlink(record.path)
            return moved
        if writer.open:
            raise FileOpenForWriting(f"{writer.detail}; not archived")
        return move_no_overwrite(record.path, base, record.observation,
                                 guard=writer.seen_by is SeenBy.LEASE)


def _moved_to(record: FileRecord, base: Path, source: Observation | None) -> Path | None:
    """Where, from ``base`` on (``base``, ``base (1)``, ... up to the first free name), an
    earlier move put this file: the original's own inode (a same-filesystem move; while the
    original is still in place, a half-done one), or, once the original is gone, a copy with
    its size, mtime and SHA-256 (a move to another filesystem). None: not moved."""
    for number in range(MAX_CLASHES):
        name = base if number == 0 else base.with_name(numbered_name(base.name, number))
        there = sourcefile.observe(name)
        if there is None:
            return None
        if source is not None:
            if (there.ino, there.dev) == (source.ino, source.dev):
                return name
        elif there.same_version(record.observation) or _same_content(name, there, record):
            return name
    return None


def _same_content(path: Path, there: Observation, record: FileRecord) -> bool:
    """A copy of the uploaded version: same size and mtime, and the SHA-256 uploaded."""
    if record.sha256 is None or (there.size, there.mtime_ns) != (record.observation.size,
                                                                 record.observation.mtime_ns):
        return False
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                sha.update(chunk)
    except OSError:
        return False
    return sha.hexdigest() == record.sha256
