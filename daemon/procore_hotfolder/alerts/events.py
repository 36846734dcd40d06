"""What a person is told about: the alert events as typed values, and what the engine reports.

Four events, as the product contract names them: ``FileFailed`` (a file moved to its failed
folder, or failed in place), ``FolderPaused`` (a pause that has lasted ``paused_minutes``),
``FolderResumed`` (the end of a pause whose ``FolderPaused`` went out) and ``BacklogStuck``
(the oldest waiting file past ``oldest_waiting_minutes``). They are facts only: how a person
reads them, and their JSON form, are ``alerts.message``'s. Times are wall-clock Unix seconds.

``HeldFolder`` is what the engine reports of a pause: a folder (None: every folder) held back
since a time, for a reason in Procore's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HeldFolder:
    """A pause in force: ``folder`` waits (None: every folder, e.g. a refused login) since
    ``since`` (wall clock) because of ``reason`` (``permission``, ``not_found``,
    ``authentication``, ``unavailable``, ``network``, ``folder_unavailable``), ``detail``
    being Procore's words (for ``folder_unavailable``, what the daemon found)."""

    folder: Path | None
    reason: str
    detail: str
    since: float


@dataclass(frozen=True)
class FileFailed:
    """A file failed for good at ``time``: it sits in ``failed_path`` (None: failed in place,
    at ``path``) with its ``.error.json``."""

    time: float
    path: Path
    reason: str
    detail: str
    attempts: int
    status: int | None
    request_id: str | None
    failed_path: Path | None

    kind = "file_failed"

    @property
    def where(self) -> Path:
        """Where the file is now."""
        return self.failed_path or self.path


@dataclass(frozen=True)
class FolderPaused:
    """``folder`` (None: every folder) has been paused since ``since``, for ``reason``."""

    folder: Path | None
    reason: str
    detail: str
    since: float

    kind = "folder_paused"


@dataclass(frozen=True)
class FolderResumed:
    """The pause of ``folder`` that began at ``since`` was over by ``resumed``."""

    folder: Path | None
    reason: str
    since: float
    resumed: float

    kind = "folder_resumed"


@dataclass(frozen=True)
class BacklogStuck:
    """``path``, the oldest file waiting to be uploaded, has waited since ``waiting_since``
    (``age_seconds`` at ``time``)."""

    time: float
    path: Path
    waiting_since: float

    kind = "backlog_stuck"

    @property
    def age_seconds(self) -> float:
        return self.time - self.waiting_since


AlertEvent = FileFailed | FolderPaused | FolderResumed | BacklogStuck
