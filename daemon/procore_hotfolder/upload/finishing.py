"""The last steps of a filed (or unfiled) Upload: ASSOCIATED → LEDGERED
→ ARCHIVED. The ledger line is written before the move, with the archive path chosen and
recorded in the journal first, so a crash between the two finds both again: the ledger is
not written twice, a half-done move (linked, not yet unlinked) is finished."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import FileChanged, FileOpenForWriting
from procore_hotfolder.files import archiver, sourcefile
from procore_hotfolder.files.clash_names import free_name
from procore_hotfolder.files.nooverwrite import move_no_overwrite
from procore_hotfolder.model import FileState, utc_iso
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.watch.writers import SeenBy, Writers

log = structlog.get_logger(__name__)


class Finishing:
    """Writes the ledger line and archives the original of journal rows; logs the file's
    one ``upload_completed`` line (in the caller's structlog context)."""

    def __init__(self, journal: Journal, ledger: Ledger, *, clock: Callable[[], float],
                 writers: Writers) -> None:
        self._journal = journal
        self._ledger = ledger
        self._clock = clock
        self._writers = writers

    def ledger_entry(self, record: FileRecord, folder: FolderSettings, company_id: int,
                     archived: Path | None) -> dict[str, Any]:
        """The ledger line of ``record`` (``archived``: where the original goes, if kept)."""
        return {
            "time": utc_iso(self._clock()),
            "uuid": record.uuid,
            "company_id": company_id,
            "project_id": folder.project_id,
            "source": str(record.path),
            "archived": str(archived) if archived is not None else None,
            "size": record.observation.size,
            "sha256": record.sha256,
            # A row that filed nothing (destination "none") has no resource id.
            "destination": {"kind": folder.destination, "id": record.resource_id},
            "folder": str(folder.path),
            "attempts": record.attempts + 1,
        }

    def write_ledger(self, record: FileRecord, folder: FolderSettings, company_id: int
                     ) -> FileRecord:
        """STORED (nothing to file) or ASSOCIATED → LEDGERED; or on to ARCHIVED (the
        original went) or CHANGED (it was re-saved since its upload). Raises ``OSError``
        when the ledger cannot be written."""
        now = self._clock()
        current = sourcefile.observe(record.path)
        if current is None or not current.same_version(record.observation):
            # Filed, but the original changed (or went) since: record what was uploaded and
            # archive nothing; a changed file settles again and is uploaded as what it is now.
            if not self._ledger.contains_uuid(record.uuid or ""):
                self._ledger.append(self.ledger_entry(record, folder, company_id, None))
            record = self._journal.move(record, FileState.LEDGERED, now)
            if current is None:
                log.warning("original_vanished_after_upload", uuid=record.uuid)
                return self._finish(record, folder, None)
            log.info("file_changed", uuid=record.uuid,
                     detail="the file changed after it was filed; it settles again")
            return self._journal.move(record, FileState.CHANGED, now, final_path=None)
        recovering = record.archive_path is not None
        target = record.archive_path or free_name(
            archiver.archive_path_for(folder, record.path))
        if not recovering:
            record = self._journal.move(record, record.state, now, archive_path=target)
        if not (recovering and self._ledger.contains_uuid(record.uuid or "")):
            self._ledger.append(self.ledger_entry(record, folder, company_id, target))
        return self._journal.move(record, FileState.LEDGERED, now)

    def archive(self, record: FileRecord, folder: FolderSettings) -> FileRecord:
        """LEDGERED → ARCHIVED (moved, or gone already), or CHANGED when the original was
        re-saved, or is held open by a writer, before or during the move (a writer that
        opens it during the move gets it back in place: ``move_no_overwrite``'s guard).
        Raises ``ArchiveError``/``OSError`` when the move fails."""
        target = record.archive_path
        assert target is not None
        source_now = sourcefile.observe(record.path)
        target_now = sourcefile.observe(target)
        if source_now is None:
            # Crash after the move, or the original went away after its upload.
            final = target if target_now is not None else None
            if final is None:
                log.warning("original_vanished_after_upload", uuid=record.uuid)
            return self._finish(record, folder, final)
        try:
            writer = self._writers.check(record.path, folder)
            if writer.open:
                raise FileOpenForWriting(f"{writer.detail}; not archived")
            if target_now is not None and (target_now.ino, target_now.dev) == (
                    source_now.ino, source_now.dev):
                # Crash between link() and unlink() of a move: finish it.
                os.unlink(record.path)
                return self._finish(record, folder, target)
            final = move_no_overwrite(record.path, target, record.observation,
                                      guard=writer.seen_by is SeenBy.LEASE)
        except FileChanged as exc:
            if target_now is not None and (target_now.ino, target_now.dev) == (
                    source_now.ino, source_now.dev):
                os.unlink(target)  # the half-done move's second name: the file stays put
            log.warning("file_changed_before_archive", uuid=record.uuid, reason=exc.reason,
                        detail=exc.message)
            return self._journal.move(record, FileState.CHANGED, self._clock(),
                                      last_error={"reason": exc.reason, "detail": exc.message})
        return self._finish(record, folder, final)

    def _finish(self, record: FileRecord, folder: FolderSettings, final: Path | None
                ) -> FileRecord:
        record = self._journal.move(record, FileState.ARCHIVED, self._clock(), final_path=final)
        log.info("upload_completed", uuid=record.uuid, size=record.observation.size,
                 sha256=record.sha256, archived=str(final) if final else None,
                 project_id=folder.project_id,
                 seconds=round(self._clock() - record.created_at, 3))
        return record
