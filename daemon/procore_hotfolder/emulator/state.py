"""What the emulator remembers: tokens, Uploads, stored bytes, Documents, Photos, requests.

Everything lives in one ``EmulatorState`` guarded by one re-entrant lock (``state.lock``);
long I/O (streaming bodies, hashing parts) happens outside it.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .faults import Faults
from .s3 import S3Storage

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ACCESS_KEY = "AKIAEMULATORPROCORE1"


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


class RateWindow:
    """Fixed-window counter of API calls; restarts whenever the configured limit changes."""

    def __init__(self) -> None:
        self._config: tuple[int, float] | None = None
        self._start = 0.0
        self._count = 0

    def _roll(self, config: tuple[int, float] | None, now: float) -> tuple[int, float]:
        effective = config or (1_000_000_000, 3600.0)
        if config != self._config or now >= self._start + effective[1]:
            self._config, self._start, self._count = config, now, 0
        return effective

    def admit(self, config: tuple[int, float] | None, now: float) -> tuple[bool, dict[str, str]]:
        """Count one call if the window allows it; (admitted, rate-limit headers)."""
        limit, window = self._roll(config, now)
        admitted = self._count < limit
        if admitted:
            self._count += 1
        return admitted, self._headers(limit, window)

    def allows(self, config: tuple[int, float] | None, now: float) -> bool:
        """Whether one more call fits, without counting it."""
        limit, _ = self._roll(config, now)
        return self._count < limit

    def take(self) -> None:
        """Count one call (after ``allows``)."""
        self._count += 1

    def room(self, config: tuple[int, float] | None, now: float) -> float:
        """Share of the window's calls still left (0 = exhausted)."""
        limit, _ = self._roll(config, now)
        return max(0, limit - self._count) / limit if limit else 0.0

    def reset_at(self, config: tuple[int, float] | None, now: float) -> float:
        """When the current window ends (Unix seconds)."""
        _, window = self._roll(config, now)
        return self._start + window

    def retry_after(self, now: float) -> int:
        """Whole seconds until the current window ends (at least 1)."""
        window = (self._config or (0, 3600.0))[1]
        return max(1, math.ceil(self._start + window - now))

    def headers(self, config: tuple[int, float] | None, now: float) -> dict[str, str]:
        """Current headers without counting a call."""
        limit, window = self._roll(config, now)
        return self._headers(limit, window)

    def _headers(self, limit: int, window: float) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(max(0, limit - self._count)),
            "X-Rate-Limit-Reset": str(math.ceil(self._start + window)),
        }


@dataclass
class RateDecision:
    """What the rate windows made of one API call."""

    admitted: bool
    window: str  # "hourly" or "spike": whose headers these are
    headers: dict[str, str]
    retry_after: int = 0


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
        self.rate = RateWindow()  # the hourly window (Faults.rate_limit)
        self.spike = RateWindow()  # the 10-second spike window (Faults.spike_limit)
        self.rate_limited: Counter[str] = Counter()  # window name -> 429s it caused
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

    # --- rate limits ---------------------------------------------------------------------

    def _windows(self) -> list[tuple[str, RateWindow, tuple[int, float] | None]]:
        windows = [("hourly", self.rate, self.faults.rate_limit)]
        if self.faults.spike_limit is not None:
            windows.append(("spike", self.spike, self.faults.spike_limit))
        return windows

    def admit_call(self, now: float) -> RateDecision:
        """Count one API call against both windows, or refuse it (429).

        Procore: "Every response carries X-Rate-Limit-* for the window closest to
        exhaustion" (our spec, from Procore's rate-limiting pages). Closest = the smaller
        share of calls left. A refused call gets the headers of the window that refused it
        (of both, the one that resets later) and counts against neither: Procore does not
        say whether refused calls count.
        """
        with self.lock:
            windows = self._windows()
            refused = [w for w in windows if not w[1].allows(w[2], now)]
            if refused:
                name, window, config = max(refused, key=lambda w: w[1].reset_at(w[2], now))
                self.rate_limited[name] += 1
                return RateDecision(False, name, window.headers(config, now),
                                    max(1, math.ceil(window.reset_at(config, now) - now)))
            for _, window, _ in windows:
                window.take()
            return self._closest(windows, now)

    def rate_headers(self, now: float) -> dict[str, str]:
        """The headers of the window closest to exhaustion, without counting a call."""
        with self.lock:
            return self._closest(self._windows(), now).headers

    @staticmethod
    def _closest(windows: list[tuple[str, RateWindow, tuple[int, float] | None]],
                 now: float) -> RateDecision:
        name, window, config = min(windows, key=lambda w: w[1].room(w[2], now))
        return RateDecision(True, name, window.headers(config, now))

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

    # --- views -----------------------------------------------------------------------------

    def associations(self, uuid: str) -> int:
        """File versions (a new file counts through its first version) and images using it."""
        with self.lock:
            return self.association_counts[uuid]

    def path_of(self, folder: Folder) -> str:
        """``name_with_path``: the folder's names from the root down, joined by "/"."""
        names: list[str] = []
        current: Folder | None = folder
        while current is not None:
            names.append(current.name)
            current = self.folders.get(current.parent_id) if current.parent_id else None
        return "/".join(reversed(names))

    def folder_view(self, folder: Folder, with_children: bool, *, exclude_folders: bool = False,
                    exclude_files: bool = False, latest_only: bool = False) -> dict[str, Any]:
        """A folder as List/Show Project Folder show it (the ``Folder`` schema of Procore's
        OpenAPI). Children listed inside a listing carry empty ``folders``/``files``: "For any
        folders that are nested more deeply an empty array [] will be returned" (List
        project folders and files). Files in the recycle bin are listed, with ``is_deleted``
        true. ``exclude_folders``/``exclude_files`` empty those arrays;
        ``latest_only`` (``show_latest_file_version_only``) keeps each file's last version.
        """
        root = self.root_folders.get((folder.company_id, folder.project_id)) == folder.id
        subfolders = [f for f in self.folders.values() if f.parent_id == folder.id]
        files = [d for d in self.files.values() if d.parent_id == folder.id]
        view: dict[str, Any] = {
            "id": folder.id,
            "name": folder.name,
            "parent_id": folder.parent_id,
            "name_with_path": self.path_of(folder),
            "is_root": root,
            "is_deleted": False,
            "is_recycle_bin": False,
            "private": False,
            "read_only": False,
            "is_tracked": False,
            "has_children": bool(subfolders or files),
            "has_children_files": bool(files),
            "has_children_folders": bool(subfolders),
            "created_at": iso_time(folder.created_at),
            "updated_at": iso_time(folder.created_at),
            "folders": [],
            "files": [],
        }
        if with_children:
            if not exclude_folders:
                view["folders"] = [self.folder_view(f, with_children=False) for f in subfolders]
            if not exclude_files:
                view["files"] = [self.file_view(d, latest_only=latest_only) for d in files]
        return view

    def listing_entries(self, folder: Folder) -> int:
        """How big an unfiltered listing of ``folder`` is: subfolders, files and versions."""
        entries = sum(1 for f in self.folders.values() if f.parent_id == folder.id)
        for doc in self.files.values():
            if doc.parent_id == folder.id:
                entries += 1 + len(doc.versions)
        return entries

    def file_view(self, doc: DocumentFile, *, latest_only: bool = False) -> dict[str, Any]:
        """A file as Procore shows it (the project ``File`` schema: ``is_deleted`` is true
        while it is in the recycle bin)."""
        latest = doc.versions[-1]
        parent = self.folders.get(doc.parent_id)
        path = f"{self.path_of(parent)}/{doc.name}" if parent else doc.name
        versions = doc.versions[-1:] if latest_only else doc.versions
        return {
            "id": doc.id,
            "name": doc.name,
            "parent_id": doc.parent_id,
            "name_with_path": path,
            "size": latest.size,
            "description": None,
            "private": False,
            "is_tracked": False,
            "checked_out_until": None,
            "checked_out_by": None,
            "file_type": doc.name.rpartition(".")[2].upper() if "." in doc.name else None,
            "is_deleted": doc.deleted,
            "created_at": iso_time(doc.created_at),
            "updated_at": iso_time(latest.created_at),
            "file_versions": [self.version_view(v, doc.id) for v in versions],
        }

    def version_view(self, version: FileVersion, file_id: int) -> dict[str, Any]:
        return {
            "id": version.id,
            "number": version.number,
            "file_id": file_id,
            "created_at": iso_time(version.created_at),
            "prostore_file": {
                "id": version.prostore_file_id,
                "name": version.name,
                "size": version.size,
                "filename": version.name,
            },
        }

    def image_view(self, image: Image) -> dict[str, Any]:
        """An image as Procore's API shows it: the ``Image`` schema of Procore's OpenAPI, which
        List, Show and Create Image all return (see ``docs/Image.md`` of the generated
        procore_sdk, ``ProjectManagementPhotosImagesApi``). There is NO ``name``, NO
        ``image_name`` and NO upload uuid; ``filename`` is the ``image_name`` the create named.
        """
        album = self.albums.get(image.image_category_id or 0)
        stamp = iso_time(image.created_at)
        return {
            "id": image.id,
            "url": f"{self.base_url}/photos/{image.id}/original",
            "thumbnail_url": f"{self.base_url}/photos/{image.id}/thumbnail",
            "size": image.size,
            "filename": image.name,
            "description": image.attributes.get("description"),
            "taken_at": None,
            "created_at": stamp,
            "updated_at": stamp,
            "location": None,
            "image_category_id": image.image_category_id,
            "image_category_name": album.name if album else None,
            "image_category_private": album.private if album else False,
            "permanently_deleted": False,
            "private": bool(image.attributes.get("private", False)),
            "starred": bool(image.attributes.get("starred", False)),
            "width": None,
            "height": None,
            "origin_id": None,
            "daily_log_header_id": None,
            "gps_lat": None,
            "gps_long": None,
            "uploader": dict(SERVICE_ACCOUNT),
            "trades": [],
            "comments_count": 0,
        }

    def project_view(self, project: Project) -> dict[str, Any]:
        """A project as List/Show Project show it (a subset of the ``Project`` schema of
        Procore's OpenAPI: ``id``, ``name``, ``display_name``, ``project_number``, ``active``,
        ``company`` {id, name}, timestamps and a few nullable details)."""
        stamp = iso_time(project.created_at)
        number = project.project_number
        return {
            "id": project.id,
            "name": project.name,
            "display_name": f"{number} - {project.name}" if number else project.name,
            "project_number": number,
            "active": project.active,
            "is_demo": False,
            "address": None,
            "city": None,
            "state_code": None,
            "country_code": None,
            "zip": None,
            "time_zone": None,
            "origin_id": None,
            "origin_data": None,
            "origin_code": None,
            "parent_job_id": None,
            "photo_id": None,
            "created_at": stamp,
            "updated_at": stamp,
            "company": {"id": project.company_id, "name": company_name(project.company_id)},
        }

    def album_view(self, album: Album) -> dict[str, Any]:
        """An album as List/Show Image Category show it (the ``ImageCategory`` schema of
        Procore's OpenAPI: id, name, count, cover_photo, private, position, timestamps)."""
        stamp = iso_time(album.created_at)
        count = sum(1 for i in self.images.values() if i.image_category_id == album.id)
        return {
            "id": album.id,
            "name": album.name,
            "count": count,
            "cover_photo": None,
            "private": album.private,
            "position": album.position,
            "created_at": stamp,
            "updated_at": stamp,
        }

    def documents(self) -> list[dict[str, Any]]:
        """Every Documents file as the API shows it, plus ``project_id`` and ``upload_uuids``
        (emulator-only keys for tests; the API itself never reveals upload uuids)."""
        with self.lock:
            out = []
            for doc in self.files.values():
                view = self.file_view(doc)
                view["project_id"] = doc.project_id or None  # None: company Documents
                view["company_id"] = doc.company_id
                view["upload_uuids"] = [v.upload_uuid for v in doc.versions]
                out.append(view)
            return out

    def image_list(self) -> list[dict[str, Any]]:
        """Every image as the API shows it, plus emulator-only ``project_id``/``upload_uuid``."""
        with self.lock:
            out = []
            for image in self.images.values():
                view = self.image_view(image)
                view["project_id"] = image.project_id
                view["company_id"] = image.company_id
                view["upload_uuid"] = image.upload_uuid
                out.append(view)
            return out

    def folder_list(self) -> list[dict[str, Any]]:
        """Every folder (without children) plus its ``project_id``."""
        with self.lock:
            out = []
            for folder in self.folders.values():
                view = self.folder_view(folder, with_children=False)
                view["project_id"] = folder.project_id or None  # None: company Documents
                out.append(view)
            return out

    def summary(self) -> dict[str, Any]:
        """The admin endpoint's JSON view of everything."""
        with self.lock:
            uploads = [
                {
                    "uuid": r.uuid,
                    "company_id": r.company_id,
                    "project_id": r.project_id,
                    "response_filename": r.response_filename,
                    "declared_size": r.declared_size,
                    "segmented": r.segments is not None,
                    "status": r.status,
                    "store_count": r.store_count,
                    "stored_size": r.stored_size,
                    "stored_sha256": r.stored_sha256,
                    "associations": self.associations(r.uuid),
                    "created_at": r.created_at,
                }
                for r in self.uploads.values()
            ]
            by_status = Counter(str(r.status) for r in self.request_log)
            by_kind = Counter(r.kind for r in self.request_log)
            return {
                "uploads": uploads,
                "purged_uploads": sorted(self.purged_uploads),
                "documents": self.documents(),
                "images": self.image_list(),
                "folders": self.folder_list(),
                "requests": {
                    "total": len(self.request_log),
                    "by_status": dict(by_status),
                    "by_kind": dict(by_kind),
                },
                "faults": self.faults.snapshot(),
            }

    def upload_dict(self, record: UploadRecord) -> dict[str, Any]:
        """The dataclass as plain data (for tests that want everything)."""
        return asdict(record)
