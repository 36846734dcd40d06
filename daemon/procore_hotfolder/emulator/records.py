"""What the emulator keeps, as plain records: Uploads, Documents folders, files and versions,
images, projects, albums, tokens and the requests it answered; and the ids it hands out."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

def new_ulid(now: float) -> str:
    """A 26-character uppercase ULID: 48-bit milliseconds then 80 random bits."""
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass
class RequestRecord:
    """One request as the emulator answered it; ``status`` 0 means the connection was dropped."""

    method: str
    path: str
    status: int
    time: float
    kind: str
    query: str = ""  # e.g. partNumber=3&uploadId=... for segment PUTs


@dataclass
class UploadRecord:
    """One Upload. The first block of fields is the public contract; the rest is bookkeeping."""

    uuid: str
    company_id: int
    project_id: int | None
    response_filename: str
    declared_size: int | None
    content_type: str
    segments: list[dict[str, Any]] | None
    created_at: float
    status: str = "ready"
    store_count: int = 0
    stored_size: int | None = None
    stored_sha256: str | None = None
    parts: dict[int, tuple[str, int, str]] = field(default_factory=dict)
    # --- emulator bookkeeping ---
    expires_at: float = 0.0
    bucket: str = ""
    key: str = ""
    upload_id: str = ""
    url: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    segment_views: list[dict[str, Any]] = field(default_factory=list)
    completed_etags: list[str] | None = None


@dataclass
class Folder:
    id: int
    company_id: int
    project_id: int
    name: str
    parent_id: int | None
    created_at: float


@dataclass
class FileVersion:
    id: int
    number: int
    upload_uuid: str
    prostore_file_id: int
    name: str
    size: int
    created_at: float


@dataclass
class DocumentFile:
    id: int
    company_id: int
    project_id: int
    parent_id: int
    name: str
    created_at: float
    versions: list[FileVersion] = field(default_factory=list)
    deleted: bool = False  # in the recycle bin
    description: str | None = None


@dataclass
class Image:
    id: int
    company_id: int
    project_id: int
    name: str
    image_category_id: int | None
    upload_uuid: str
    size: int
    attributes: dict[str, Any]
    created_at: float


@dataclass
class Project:
    """A project of a company; ``auto`` when the emulator made it up on first use."""

    id: int
    company_id: int
    name: str
    project_number: str | None
    active: bool
    created_at: float
    auto: bool = False


@dataclass
class Album:
    """A Photos album, which Procore's API calls an Image Category."""

    id: int
    company_id: int
    project_id: int
    name: str
    private: bool
    created_at: float
    position: int = 0


#: The user behind the emulator's tokens (a Developer Managed Service Account), as Procore
#: shows it in ``uploader`` / ``created_by`` objects.
SERVICE_ACCOUNT = {"id": 9_600_000_001, "name": "Procore Hotfolder (service account)",
                   "login": "hotfolder-service-account@example.invalid"}


@dataclass
class Token:
    value: str
    expires_at: float
    generation: int


def company_name(company_id: int) -> str:
    return f"Emulated Co {company_id}"


def iso_time(when: float) -> str:
    """``2026-11-19T23:48:15Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
