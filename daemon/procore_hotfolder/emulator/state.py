"""What the emulator remembers: tokens, Uploads, stored bytes, Documents, Photos, requests.

Everything lives in one ``EmulatorState`` guarded by one re-entrant lock (``state.lock``);
long I/O (streaming bodies, hashing parts) happens outside it. The records are in
``records``, how the API shows them in ``views``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

from .faults import Faults
from .rates import RateLimits
from .records import (
    Album,
    DocumentFile,
    Folder,
    Image,
    Project,
    RequestRecord,
    Token,
    UploadRecord,
)
from .s3 import S3Storage

ACCESS_KEY = "AKIAEMULATORPROCORE1"


class EmulatorState:
    """All of the emulator's data; read or change it with ``lock`` held."""

    def __init__(self, faults: Faults, client_id: str, client_secret: str, data_dir: Path,
                 s3: S3Storage | None = None) -> None:
        self.faults = faults
        self.s3 = s3  # a real S3 server as storage instead of the emulator's own
        self.client_id = client_id
        self.client_secret = client_secret
        self.data_dir = data_dir
        self.secret_key = secrets.token_hex(20)  # signs storage policies and segment URLs
        self.access_key = ACCESS_KEY
        self.base_url = ""
        self.lock = threading.RLock()
        self.tokens: dict[str, Token] = {}
        self.uploads: dict[str, UploadRecord] = {}
        self.uploads_by_key: dict[tuple[str, str], str] = {}
        self.buckets: set[str] = set()
        self.root_folders: dict[tuple[int, int], int] = {}
        self.folders: dict[int, Folder] = {}
        self.files: dict[int, DocumentFile] = {}
        # folder id -> name -> id of the LIVE file of that name (recycled ones are not here)
        self.file_names: dict[int, dict[str, int]] = {}
        self.images: dict[int, Image] = {}
        # (company id, project id) -> Project. Keyed by company as well, so that a test may
        # use one project id under several companies without them meeting.
        self.projects: dict[tuple[int, int], Project] = {}
        self.albums: dict[int, Album] = {}
        # True: any project or album id a client names exists (made up on first use), as the
        # emulator always behaved. False: only those created through ``create_project`` /
        # ``create_album`` (or the admin API) exist; everything else answers 404.
        self.auto_create = True
        self.removed_projects: set[int] = set()  # 404 even while auto_create holds
        self.request_log: list[RequestRecord] = []
        self.rates = RateLimits(faults, self.lock)
        self.association_counts: Counter[str] = Counter()  # upload uuid -> versions + images
        self._assembled: set[str] = set()
        self.purged_uploads: dict[str, float] = {}  # uuid -> when retention deleted it
        # Ids above 2**32 on purpose: clients must not squeeze them into 32 bits.
        self._ids = {
            "folder": itertools.count(4_300_000_001),
            "file": itertools.count(5_100_000_001),
            "version": itertools.count(6_200_000_001),
            "prostore": itertools.count(7_300_000_001),
            "image": itertools.count(8_400_000_001),
            "project": itertools.count(9_100_000_001),
            "album": itertools.count(9_200_000_001),
        }
        for sub in ("objects", "parts", "tmp"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)

    def next_id(self, kind: str) -> int:
        with self.lock:
            return next(self._ids[kind])

    # --- set-up (Python and admin API) ----------------------------------------------------

    def add_project(self, company_id: int, name: str, project_number: str | None = None, *,
                    active: bool = True, project_id: int | None = None,
                    now: float | None = None) -> Project:
        """Create (or replace) a project of ``company_id``."""
        with self.lock:
            ident = project_id if project_id is not None else self.next_id("project")
            project = Project(ident, company_id, name, project_number, active,
                              time.time() if now is None else now)
            self.projects[(company_id, ident)] = project
            self.removed_projects.discard(ident)
            return project

    def add_album(self, company_id: int, project_id: int, name: str, private: bool = False,
                  now: float | None = None) -> Album:
        """Create an album (image category) in a project."""
        with self.lock:
            position = sum(1 for a in self.albums.values()
                           if (a.company_id, a.project_id) == (company_id, project_id))
            album = Album(self.next_id("album"), company_id, project_id, name, private,
                          time.time() if now is None else now, position)
            self.albums[album.id] = album
            return album

    def recycle_file(self, file_id: int) -> None:
        """Move a Documents file to the recycle bin: it stays listed with ``is_deleted`` true,
        and its name is free again in its folder. Raises KeyError for an unknown file."""
        with self.lock:
            doc = self.files[file_id]
            if not doc.deleted:
                doc.deleted = True
                names = self.file_names.get(doc.parent_id, {})
                if names.get(doc.name) == doc.id:
                    del names[doc.name]

    def delete_folder(self, folder_id: int) -> None:
        """Delete a folder and everything below it: its id (and theirs) answer 404 from now
        on, and their files go to the recycle bin. Raises KeyError for an unknown folder,
        ValueError for a project's root folder."""
        with self.lock:
            folder = self.folders[folder_id]
            if folder.parent_id is None:
                raise ValueError("a project's root folder cannot be deleted")
            doomed = {folder_id}
            grew = True
            while grew:
                below = {f.id for f in self.folders.values() if f.parent_id in doomed}
                grew = not below <= doomed
                doomed |= below
            for doc in self.files.values():
                if doc.parent_id in doomed:
                    doc.deleted = True
            for gone in doomed:
                del self.folders[gone]
                self.file_names.pop(gone, None)

    def remove_project(self, company_id: int, project_id: int) -> None:
        """Make a project not exist (404), even while ``auto_create`` holds."""
        with self.lock:
            self.projects.pop((company_id, project_id), None)
            self.removed_projects.add(project_id)

    # --- files on disk ---------------------------------------------------------------------

    def object_path(self, uuid: str) -> Path:
        return self.data_dir / "objects" / uuid

    def part_path(self, uuid: str, number: int) -> Path:
        return self.data_dir / "parts" / f"{uuid}.{number}"

    def temp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def stored_path(self, uuid: str) -> Path:
        """The stored bytes of a complete Upload (segments are assembled on first use)."""
        with self.lock:
            record = self.uploads[uuid]
            if record.status != "complete":
                raise KeyError(f"upload {uuid} has no stored bytes")
            target = self.object_path(uuid)
            if record.segments is not None and uuid not in self._assembled:
                tmp = self.temp_dir() / f"assemble-{uuid}"
                with tmp.open("wb") as out:
                    for number in range(1, len(record.segments) + 1):
                        with self.part_path(uuid, number).open("rb") as part:
                            shutil.copyfileobj(part, out, 1 << 20)
                os.replace(tmp, target)
                self._assembled.add(uuid)
            return target

    def hash_parts(self, uuid: str, count: int) -> tuple[int, str]:
        """(size, sha256) of parts 1..count concatenated; called without the lock."""
        digest = hashlib.sha256()
        size = 0
        for number in range(1, count + 1):
            with self.part_path(uuid, number).open("rb") as part:
                while chunk := part.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        return size, digest.hexdigest()

    # --- retention of unfiled Uploads --------------------------------------------------------

    def _unfiled_past_retention(self, record: UploadRecord, now: float) -> bool:
        return (self.association_counts[record.uuid] == 0
                and now >= record.created_at + self.faults.upload_retention)

    def purge_unfiled(self, now: float, uuid: str | None = None) -> list[str]:
        """Delete Uploads (all, or just ``uuid``) that no Documents file, version or image
        uses ``faults.upload_retention`` seconds after their creation ("An Upload not
        associated to a resource within a week is deleted by Procore"); their uuids.

        Deletion is lazy: the API calls this for an Upload it is about to use, and tests may
        call it (``Emulator.purge_unfiled_uploads``) to sweep everything.
        """
        with self.lock:
            candidates = [self.uploads[uuid]] if uuid in self.uploads else (
                [] if uuid is not None else list(self.uploads.values()))
            purged = [r.uuid for r in candidates if self._unfiled_past_retention(r, now)]
            for gone in purged:
                record = self.uploads.pop(gone)
                self.uploads_by_key.pop((record.bucket, record.key), None)
                self.purged_uploads[gone] = now
                self._assembled.discard(gone)
                self.object_path(gone).unlink(missing_ok=True)
                for number in record.parts:
                    self.part_path(gone, number).unlink(missing_ok=True)
            return purged

    # --- tokens ----------------------------------------------------------------------------

    def issue_token(self, now: float) -> Token:
        token = Token(
            secrets.token_urlsafe(32),
            now + float(self.faults.token_lifetime),
            self.faults.token_generation,
        )
        with self.lock:
            expired = [k for k, t in self.tokens.items() if t.expires_at < now - 3600]
            for key in expired:
                del self.tokens[key]
            self.tokens[token.value] = token
        return token

    def check_token(self, value: str, now: float) -> str | None:
        """None when valid, else "missing", "invalid" or "expired"."""
        if not value:
            return "missing"
        with self.lock:
            token = self.tokens.get(value)
        if token is None:
            return "invalid"
        if token.generation != self.faults.token_generation or now >= token.expires_at:
            return "expired"
        return None

    # --- requests --------------------------------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        with self.lock:
            self.request_log.append(record)

    def count(self, status: int | None = None, kind: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.request_log
                if (status is None or r.status == status) and (kind is None or r.kind == kind)
            )

    def associations(self, uuid: str) -> int:
        """File versions (a new file counts through its first version) and images using it."""
        with self.lock:
            return self.association_counts[uuid]
