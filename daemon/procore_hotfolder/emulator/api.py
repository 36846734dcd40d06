"""The emulated REST API: companies, Uploads (v1.1), Documents folders/files/versions, images.

Authentication, rate limiting, the company header and fault injection happen before these
handlers run (see ``server``); each handler gets a parsed ``ApiRequest`` and returns a
``Reply`` or raises ``ApiError``.
"""

from __future__ import annotations

import datetime
import math
import mimetypes
import re
import secrets
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from . import profiles, views
from .pagination import paginate
from .records import (
    SERVICE_ACCOUNT,
    Album,
    DocumentFile,
    FileVersion,
    Folder,
    Image,
    Project,
    UploadRecord,
    company_name,
    new_ulid,
)
from .s3 import S3Error, S3Storage
from .state import EmulatorState
from .wire import ApiError, Reply, json_reply

_SERVICE_ACCOUNT_ID = SERVICE_ACCOUNT["id"]
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NOT_FOUND = {"errors": {"base": ["Not found"]}}
_EXPIRED = {"errors": {"base": ["Upload has expired"]}}


@dataclass
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    company_id: int
    body: Any
    now: float
    raw_query: str = ""  # as sent, for the pagination links


Handler = Callable[[EmulatorState, ApiRequest, tuple[str, ...]], Reply]


def _unprocessable(field: str, message: str) -> ApiError:
    return ApiError(422, {"errors": {field: [message]}})


def _forbidden(message: str) -> ApiError:
    return ApiError(403, {"error": {"code": "forbidden", "message": message}})


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def _object(body: Any, name: str) -> dict[str, Any]:
    """``body[name]`` as an object, or a 400 error."""
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, dict):
        raise ApiError(400, {"errors": {name: ["is missing"]}})
    return value


#: Tools whose switching off makes a project refuse their routes.
TOOLS = ("documents", "photos")

_TOOL_TITLES = {"documents": "Documents", "photos": "Photos"}


def _check_company(state: EmulatorState) -> None:
    """403 while the app is disconnected from the company (every company and project).

    The message is Procore's, from its Error Code Reference ("App is not connected to this
    company", ``api_essentials/error_reference.md``); the body's shape is not documented.
    """
    if state.faults.app_disconnected:
        raise ApiError(403, {"errors": "App is not connected to this company"})


def project_for(state: EmulatorState, company_id: int, project_id: int, now: float) -> Project:
    """The project, made up on first use while ``state.auto_create`` holds; else 404.

    Procore answers 404 for a project that does not exist or that the caller may not read
    ("The requested resource does not exist, or the authenticated user does not have access
    to it", Error Code Reference).
    """
    with state.lock:
        project = state.projects.get((company_id, project_id))
        if project is None and state.auto_create and project_id not in state.removed_projects:
            project = Project(project_id, company_id, f"Emulated Project {project_id}",
                              str(project_id), True, now, auto=True)
            state.projects[(company_id, project_id)] = project
    if project is None:
        raise ApiError(404, {"errors": {"base": ["Project not found"]}})
    return project


def _check_project(
    state: EmulatorState, project_id: int, request: ApiRequest | None = None,
    tool: str | None = None,
) -> Project | None:
    """Procore's refusals for a project, in the order it would meet them: the app is not
    connected to the company (403), the project does not exist (404), the service account
    has not been granted the project (403), the tool is disabled in the project (403)."""
    _check_company(state)
    project = None
    if request is not None:
        project = project_for(state, request.company_id, project_id, request.now)
    if project_id in state.faults.forbidden_projects:
        raise _forbidden(f"You do not have access to project {project_id}")
    if tool is not None and tool in state.faults.disabled_tools.get(project_id, set()):
        title = _TOOL_TITLES.get(tool, tool)
        raise ApiError(403, {"errors": {"base": [
            f"The {title} tool is not enabled for this project"]}})
    return project


def _query_project(state: EmulatorState, request: ApiRequest, tool: str | None = None) -> int:
    project_id = _positive_int(request.query.get("project_id"))
    if project_id is None:
        raise ApiError(400, {"errors": "project_id is missing or invalid"})
    _check_project(state, project_id, request, tool)
    return project_id


def _page(state: EmulatorState, request: ApiRequest, items: list[Any]) -> Reply:
    """A paginated list answer (see ``pagination``)."""
    chosen, headers = paginate(items, request.query, base_url=state.base_url,
                               path=request.path, raw_query=request.raw_query)
    return json_reply(200, chosen, headers)


# --- companies -------------------------------------------------------------------------------


def list_companies(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    _check_company(state)
    company = request.company_id
    return _page(state, request,
                 [{"id": company, "name": company_name(company), "is_active": True}])


# --- projects --------------------------------------------------------------------------------


def _query_company(state: EmulatorState, request: ApiRequest) -> int:
    """The ``company_id`` query parameter (required by List/Show Project); it must name the
    company of the Procore-Company-Id header."""
    _check_company(state)
    company_id = _positive_int(request.query.get("company_id"))
    if company_id is None:
        raise ApiError(400, {"errors": "company_id is missing or invalid"})
    if company_id != request.company_id:
        raise _forbidden("The company_id does not match Procore-Company-Id")
    return company_id


def _visible(state: EmulatorState, project: Project) -> bool:
    """A service account sees only the projects it has been granted ("If the user does not
    have full company admin permissions, the request will only return the projects that the
    user has been added to", List Projects in Procore's OpenAPI)."""
    return project.id not in state.faults.forbidden_projects


def list_projects(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """List Projects, ``GET /rest/v1.0/projects`` and ``/rest/v1.1/projects`` (both take
    ``company_id``, ``page``, ``per_page``, ``filters[by_status]`` Active|Inactive|All
    (default: active only, "Return a list of active Projects"), ``filters[name]``; v1.1 also
    ``filters[project_number]``)."""
    company_id = _query_company(state, request)
    status = request.query.get("filters[by_status]", "Active")
    if status not in ("Active", "Inactive", "All"):
        raise _unprocessable("filters[by_status]", "must be one of Active, Inactive, All")
    name = request.query.get("filters[name]", "").lower()
    number = request.query.get("filters[project_number]")
    with state.lock:
        projects = sorted(
            (p for p in state.projects.values() if p.company_id == company_id), key=lambda p: p.id
        )
        items = [
            views.project_view(p)
            for p in projects
            if _visible(state, p)
            and (status == "All" or p.active == (status == "Active"))
            and name in p.name.lower()
            and (number is None or p.project_number == number)
        ]
    return _page(state, request, items)


def show_project(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    """Show Project, ``GET /rest/v1.0/projects/{id}?company_id=``."""
    company_id = _query_company(state, request)
    project = project_for(state, company_id, int(args[0]), request.now)
    _check_project(state, project.id)
    with state.lock:
        return json_reply(200, views.project_view(project))


# --- uploads ---------------------------------------------------------------------------------


def _upload_scope(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> int | None:
    """The project id (None for company uploads) named by the path, after access checks."""
    scope, ident = args[0], int(args[1])
    _check_company(state)
    if scope == "companies":
        if ident != request.company_id:
            raise _forbidden("The company in the path does not match Procore-Company-Id")
        return None
    _check_project(state, ident, request)
    return ident


def _validate_segments(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise _unprocessable("segments", "must be a non-empty array")
    if len(raw) > 10_000:
        raise _unprocessable("segments", "too many segments (at most 10000)")
    segments: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _unprocessable("segments", f"segment {index} must be an object")
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise _unprocessable("segments", f"segment {index} size must be a positive integer")
        sha = item.get("sha256")
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise _unprocessable("segments", f"segment {index} sha256 must be 64 hex digits")
        if size > profiles.MAX_SEGMENT:
            raise _unprocessable("segments", f"segment {index} is larger than 5 GiB")
        if index < len(raw) - 1 and size < profiles.MIN_SEGMENT:
            raise _unprocessable("segments", f"segment {index} is smaller than 5 MiB")
        try:
            md5 = profiles.normalize_md5(item.get("md5"))
        except (TypeError, ValueError) as exc:
            raise _unprocessable("segments", f"segment {index} md5: {exc}") from exc
        segment: dict[str, Any] = {"size": size, "sha256": sha.lower()}
        if md5:
            segment["md5"] = md5
        segments.append(segment)
    return segments


def create_upload(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _upload_scope(state, request, args)
    body = request.body if isinstance(request.body, dict) else {}
    filename = body.get("response_filename")
    if not isinstance(filename, str) or not filename.strip():
        raise _unprocessable("response_filename", "can't be blank")
    size = body.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise _unprocessable("size", "must be an integer greater than or equal to 0")
    forced_type = body.get("response_content_type")
    if forced_type is not None and not isinstance(forced_type, str):
        raise _unprocessable("response_content_type", "must be a string")
    content_type = forced_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    segments = None
    if body.get("segments") is not None:
        segments = _validate_segments(body["segments"])
        total = sum(s["size"] for s in segments)
        if size is not None and size != total:
            raise _unprocessable("size", "does not match the sum of the segment sizes")
    ttl = state.faults.ttl_for_new_upload()
    uuid = new_ulid(request.now)
    record = UploadRecord(
        uuid=uuid,
        company_id=request.company_id,
        project_id=project_id,
        response_filename=filename,
        declared_size=size,
        content_type=content_type,
        segments=segments,
        created_at=request.now,
        expires_at=request.now + ttl,
        bucket=state.s3.bucket if state.s3 else profiles.bucket_for(request.company_id),
        key=profiles.key_for(request.company_id, project_id, uuid, request.now),
    )
    if state.s3 is not None:
        _target_s3(state.s3, record, body, ttl)
    elif segments is None:
        disposition = profiles.content_disposition(
            filename, bool(body.get("attachment_content_disposition"))
        )
        record.url = profiles.storage_url(state.base_url, record.bucket)
        record.fields = profiles.post_form(
            record, state.secret_key, state.access_key, disposition, ttl
        )
    else:
        record.upload_id = secrets.token_urlsafe(48)
        record.segment_views = profiles.segment_views(
            record, state.base_url, state.secret_key, state.access_key, ttl
        )
    with state.lock:
        state.uploads[uuid] = record
        state.uploads_by_key[(record.bucket, record.key)] = uuid
        state.buckets.add(record.bucket)
    return json_reply(201, views.upload_view(record))


# --- a real S3 server as storage ---------------------------------------------------------------


def _s3_unavailable(exc: S3Error) -> ApiError:
    return ApiError(502, {"errors": {"base": [f"storage backend: {exc}"]}})


def _target_s3(s3: S3Storage, record: UploadRecord, body: dict[str, Any], ttl: float) -> None:
    """Point ``record`` at the S3 server: a POST policy, or a multipart upload and its URLs."""
    if record.segments is None:
        disposition = profiles.content_disposition(
            record.response_filename, bool(body.get("attachment_content_disposition"))
        )
        record.url = s3.bucket_url
        record.fields = profiles.post_form(record, s3.secret_key, s3.access_key, disposition, ttl)
        return
    try:
        record.upload_id = s3.start_multipart(record.key, record.content_type)
    except S3Error as exc:
        raise _s3_unavailable(exc) from exc
    issued, lifetime = record.created_at, int(ttl)
    if lifetime < 1:  # handed out expired (a fault): signed as if issued that long ago
        issued, lifetime = record.created_at + ttl - 1, 1
    record.segment_views = []
    for number, segment in enumerate(record.segments, start=1):
        url = s3.part_url(record.key, record.upload_id, number, segment["sha256"],
                          when=issued, expires=lifetime)
        headers = {"x-amz-content-sha256": segment["sha256"],
                   "content-length": str(segment["size"])}
        if segment.get("md5"):
            headers["content-md5"] = segment["md5"]
        record.segment_views.append({"url": url, "headers": headers})


def _refresh_from_s3(state: EmulatorState, record: UploadRecord) -> None:
    """A form POST goes to S3 straight from the client: ask S3 whether it was stored."""
    if state.s3 is None or record.segments is not None or record.status == "complete":
        return
    try:
        size = state.s3.size_of(record.key)
    except S3Error as exc:
        raise _s3_unavailable(exc) from exc
    if size is not None:
        with state.lock:
            if record.status != "complete":
                record.status, record.stored_size, record.store_count = "complete", size, 1


def _complete_in_s3(state: EmulatorState, s3: S3Storage, record: UploadRecord,
                    declared: list[dict[str, Any]], etags: list[str]) -> Reply:
    """Complete the multipart upload in S3, which checks every part and ETag itself."""
    if len(etags) != len(declared):
        raise _unprocessable("segments", f"expected {len(declared)} segments, got {len(etags)}")
    try:
        s3.complete_multipart(record.key, record.upload_id, etags)
        size = s3.size_of(record.key)
    except S3Error as exc:
        raise _unprocessable("segments", str(exc)) from exc
    with state.lock:
        record.status = "complete"
        record.completed_etags = etags
        record.stored_size = size
        record.store_count += 1
        return json_reply(200, views.upload_view(record))



def _find_upload(
    state: EmulatorState, request: ApiRequest, project_id: int | None, uuid: str
) -> UploadRecord:
    # An Upload deleted for being left unfiled past its retention is simply gone: 404.
    state.purge_unfiled(request.now, uuid)
    with state.lock:
        record = state.uploads.get(uuid)
    if record is None or record.company_id != request.company_id or record.project_id != project_id:
        raise ApiError(404, _NOT_FOUND)
    return record


def show_upload(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    record = _find_upload(state, request, _upload_scope(state, request, args), args[2])
    _refresh_from_s3(state, record)
    with state.lock:
        return json_reply(200, views.upload_view(record))


def _strip_etag(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return str(value.strip('"'))


def complete_upload(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    record = _find_upload(state, request, _upload_scope(state, request, args), args[2])
    if record.segments is None:
        raise _unprocessable("segments", "this upload is not segmented")
    given = request.body.get("segments") if isinstance(request.body, dict) else None
    if not isinstance(given, list) or not all(isinstance(g, dict) for g in given):
        raise _unprocessable("segments", "must be an array of objects with an etag")
    etags = [_strip_etag(g.get("etag")) for g in given]
    if state.s3 is not None and record.status != "complete":
        if request.now >= record.expires_at:
            raise ApiError(410, _EXPIRED)
        return _complete_in_s3(state, state.s3, record, record.segments, etags)
    with state.lock:
        if record.status == "complete":
            if etags == record.completed_etags:
                return json_reply(200, views.upload_view(record))
            raise _unprocessable("segments", "the upload is already complete with other etags")
        if request.now >= record.expires_at:
            raise ApiError(410, _EXPIRED)
        if len(etags) != len(record.segments):
            raise _unprocessable(
                "segments", f"expected {len(record.segments)} segments, got {len(etags)}"
            )
        for number, (etag, item, declared) in enumerate(
            zip(etags, given, record.segments, strict=True), start=1
        ):
            part = record.parts.get(number)
            if part is None:
                raise _unprocessable("segments", f"segment {number} has not been uploaded")
            if etag != part[0]:
                raise _unprocessable("segments", f"segment {number} etag does not match")
            if item.get("size") is not None and item.get("size") != declared["size"]:
                raise _unprocessable("segments", f"segment {number} size does not match")
            sha = item.get("sha256")
            if sha is not None and str(sha).lower() != declared["sha256"]:
                raise _unprocessable("segments", f"segment {number} sha256 does not match")
        snapshot = dict(record.parts)
    size, sha256 = state.hash_parts(record.uuid, len(etags))
    with state.lock:
        if record.status == "complete":
            if etags == record.completed_etags:
                return json_reply(200, views.upload_view(record))
            raise _unprocessable("segments", "the upload is already complete with other etags")
        if record.parts != snapshot:
            raise ApiError(409, {"errors": {"base": ["segments changed during completion"]}})
        record.status = "complete"
        record.completed_etags = etags
        record.stored_size = size
        record.stored_sha256 = sha256
        record.store_count += 1
        return json_reply(200, views.upload_view(record))


# --- documents -------------------------------------------------------------------------------


def _root_folder(state: EmulatorState, company_id: int, project_id: int, now: float) -> Folder:
    with state.lock:
        root_id = state.root_folders.get((company_id, project_id))
        if root_id is None:
            root_id = state.next_id("folder")
            state.folders[root_id] = Folder(root_id, company_id, project_id, "Documents", None, now)
            state.root_folders[(company_id, project_id)] = root_id
        return state.folders[root_id]


def _folder(state: EmulatorState, request: ApiRequest, project_id: int, raw_id: Any) -> Folder:
    """The folder ``raw_id`` (root when None) of this project, or 404."""
    root = _root_folder(state, request.company_id, project_id, request.now)
    if raw_id is None:
        return root
    folder_id = _positive_int(raw_id)
    with state.lock:
        folder = state.folders.get(folder_id) if folder_id else None
    if folder is None or (folder.company_id, folder.project_id) != (
        request.company_id,
        project_id,
    ):
        raise ApiError(404, {"error": {"code": "not_found", "message": "Folder not found"}})
    return folder


#: The ``project_id`` of company-level Documents folders and files.
COMPANY_SCOPE = 0


def _documents_scope(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> int:
    """Whose Documents a request addresses: a project's (``?project_id=``, after the project
    checks) or, on ``/rest/v1.0/companies/{company_id}/...`` (Company Folders and Files in
    Procore's OpenAPI), the company's own: ``COMPANY_SCOPE``. Company Documents take company
    Uploads (``/rest/v1.1/companies/{id}/uploads``)."""
    if request.path.startswith("/rest/v1.0/companies/"):
        _check_company(state)
        if int(args[0]) != request.company_id:
            raise _forbidden("The company in the path does not match Procore-Company-Id")
        return COMPANY_SCOPE
    return _query_project(state, request, "documents")


def _flag(request: ApiRequest, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _listing(state: EmulatorState, request: ApiRequest, folder: Folder) -> Reply:
    """List/Show Project Folder: the folder with its children. Not paginated ("List Project
    Files and Folders" is among the endpoints that "currently do not support pagination",
    Procore's pagination page). Documented filters: ``exclude_folders``, ``exclude_files``,
    ``show_latest_file_version_only``; no name or search filter is documented for the v1.0
    project folder endpoints, so none is offered. A large request without any of those
    filters may answer 408 (``faults.listing_timeout_entries``)."""
    exclude_folders = _flag(request, "exclude_folders")
    exclude_files = _flag(request, "exclude_files")
    latest_only = _flag(request, "show_latest_file_version_only")
    limit = state.faults.listing_timeout_entries
    with state.lock:
        if (limit is not None and not (exclude_folders or exclude_files or latest_only)
                and views.listing_entries(state, folder) > limit):
            return Reply(408, b"Request Timeout", "text/plain; charset=utf-8", close=True)
        return json_reply(200, views.folder_view(
            state, folder, with_children=True, exclude_folders=exclude_folders,
            exclude_files=exclude_files, latest_only=latest_only))


def show_root(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    return _listing(state, request, _folder(state, request, project_id, None))


def show_folder(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    return _listing(state, request, _folder(state, request, project_id, args[-1]))


def delete_folder(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    """Delete Project Folder. Its id (and those below it) answer 404 afterwards; its files
    go to the recycle bin. 200 with an empty body ("void", Procore's OpenAPI)."""
    project_id = _documents_scope(state, request, args)
    folder = _folder(state, request, project_id, args[-1])
    if folder.parent_id is None:
        raise _unprocessable("base", "The root folder cannot be deleted")
    state.delete_folder(folder.id)
    return Reply(200, b"", None)


def add_folder(state: EmulatorState, company_id: int, project_id: int, name: str, *,
               parent_id: int | None, now: float) -> Folder:
    """Create a folder under ``parent_id`` (root when None). The name check and the insert
    happen under one lock, so of two racing creates of one name exactly one wins and the
    other gets 422 ``{"errors": {"name": ["has already been taken"]}}`` (Rails' uniqueness
    message in Procore's ``{"errors": {field: [...]}}`` shape). Raises ApiError."""
    if not name.strip():
        raise _unprocessable("name", "can't be blank")
    with state.lock:
        root = _root_folder(state, company_id, project_id, now)
        parent = root if parent_id is None else state.folders.get(parent_id)
        if parent is None or (parent.company_id, parent.project_id) != (company_id, project_id):
            raise ApiError(404, {"error": {"code": "not_found", "message": "Folder not found"}})
        if any(f.parent_id == parent.id and f.name == name for f in state.folders.values()):
            raise _unprocessable("name", "has already been taken")
        folder = Folder(state.next_id("folder"), company_id, project_id, name, parent.id, now)
        state.folders[folder.id] = folder
        return folder


def create_folder(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    spec = _object(request.body, "folder")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _unprocessable("name", "can't be blank")
    parent = _folder(state, request, project_id, spec.get("parent_id"))
    folder = add_folder(state, request.company_id, project_id, name, parent_id=parent.id,
                        now=request.now)
    with state.lock:
        return json_reply(201, views.folder_view(state, folder, with_children=True))


def _usable_upload(
    state: EmulatorState, request: ApiRequest, project_id: int, raw_uuid: Any
) -> UploadRecord:
    """A stored Upload of this company and project, or 422 ``upload_uuid is invalid``.

    An Upload deleted by retention is refused like one that never existed: Procore does not
    document the answer, and a plain validation error (not a 404 or 410 that says "gone")
    is the least convenient for a client, which must work out by itself that the Upload
    expired and that it has to upload the bytes again."""
    if isinstance(raw_uuid, str):
        state.purge_unfiled(request.now, raw_uuid)
    with state.lock:
        record = state.uploads.get(raw_uuid) if isinstance(raw_uuid, str) else None
    if record is not None:
        _refresh_from_s3(state, record)
    with state.lock:
        if (
            record is None
            or record.company_id != request.company_id
            or record.project_id != (project_id or None)  # COMPANY_SCOPE: company Uploads
            or record.status != "complete"
        ):
            raise _unprocessable("upload_uuid", "is invalid")
        return record


def _unique_name(taken: Container[str], name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    counter = 1
    while True:
        candidate = f"{stem} ({counter}).{ext}" if ext else f"{stem} ({counter})"
        if candidate not in taken:
            return candidate
        counter += 1


def _new_version(
    state: EmulatorState, number: int, record: UploadRecord, name: str, now: float
) -> FileVersion:
    return FileVersion(
        state.next_id("version"),
        number,
        record.uuid,
        state.next_id("prostore"),
        name,
        record.stored_size or 0,
        now,
    )


def create_file(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    spec = _object(request.body, "file")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _unprocessable("name", "can't be blank")
    parent = _folder(state, request, project_id, spec.get("parent_id"))
    with state.lock:
        record = _usable_upload(state, request, project_id, spec.get("upload_uuid"))
        if parent.id not in state.folders:  # deleted since it was looked up
            raise ApiError(404, {"error": {"code": "not_found", "message": "Folder not found"}})
        # "unique_name: Toggles automatic renaming if the file name is already taken in a
        # folder (unique_name = true). Returns a name taken error if a file name is taken in
        # a folder (unique_name = false)" (Create project File, Procore's OpenAPI). Only live
        # files take a name: one in the recycle bin does not, so its name makes a new file.
        taken = state.file_names.setdefault(parent.id, {})
        if name in taken:
            if not spec.get("unique_name"):
                raise _unprocessable("name", "has already been taken")
            name = _unique_name(taken, name)
        doc = DocumentFile(
            state.next_id("file"), request.company_id, project_id, parent.id, name, request.now
        )
        doc.versions.append(_new_version(state, 1, record, name, request.now))
        state.association_counts[record.uuid] += 1
        state.files[doc.id] = doc
        taken[name] = doc.id
        return json_reply(201, views.file_view(state, doc))


def _document(state: EmulatorState, request: ApiRequest, project_id: int, raw: Any) -> DocumentFile:
    file_id = _positive_int(raw)
    with state.lock:
        doc = state.files.get(file_id) if file_id else None
    if doc is None or (doc.company_id, doc.project_id) != (request.company_id, project_id):
        raise ApiError(404, {"errors": {"base": ["File not found"]}})
    return doc


def show_file(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    doc = _document(state, request, project_id, args[-1])
    with state.lock:
        return json_reply(200, views.file_view(
            state, doc, latest_only=_flag(request, "show_latest_version_only")))


def delete_file(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    """Delete Project File: "Delete the specified File by moving it to the recycle bin"
    (Procore's OpenAPI); 200 with an empty body. It stays visible with ``is_deleted``."""
    project_id = _documents_scope(state, request, args)
    doc = _document(state, request, project_id, args[-1])
    state.recycle_file(doc.id)
    return Reply(200, b"", None)


def create_version(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    doc = _document(state, request, project_id, request.query.get("file_id"))
    spec = _object(request.body, "file_version")
    # A file in the recycle bin still takes versions: Procore documents no refusal, and a
    # version that lands out of sight in the recycle bin is the worst case for a client
    # that cached the file id (it must check ``is_deleted`` itself).
    with state.lock:
        record = _usable_upload(state, request, project_id, spec.get("upload_uuid"))
        version = _new_version(state, len(doc.versions) + 1, record, doc.name, request.now)
        doc.versions.append(version)
        state.association_counts[record.uuid] += 1
        return json_reply(201, views.version_view(version, doc.id))


# --- photos ----------------------------------------------------------------------------------


def album_for(state: EmulatorState, request: ApiRequest, project_id: int, raw: Any) -> Album:
    """The album (image category) ``raw`` of this project; made up on first use while
    ``state.auto_create`` holds, else 422. What Procore answers for an unknown
    ``image_category_id`` is not documented: the least convenient reading is a refusal."""
    album_id = _positive_int(raw)
    if album_id is None:
        raise _unprocessable("image_category_id", "is invalid")
    with state.lock:
        album = state.albums.get(album_id)
        if album is None and state.auto_create:
            album = Album(album_id, request.company_id, project_id, f"Album {album_id}", False,
                          request.now)
            state.albums[album_id] = album
        if album is None or (album.company_id, album.project_id) != (
            request.company_id, project_id,
        ):
            raise _unprocessable("image_category", "must exist")
        return album


def create_image(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """Create Image: top-level ``upload_uuid`` and ``image_name`` and an ``image`` object with
    at least one attribute. ``image_name`` is "Required when using an upload_uuid" (Procore's
    OpenAPI), so it is refused when missing; it becomes the image's ``filename`` as given
    (Procore documents no other derivation). The answer is the ``Image`` schema, 201."""
    project_id = _query_project(state, request, "photos")
    body = request.body if isinstance(request.body, dict) else {}
    attributes = body.get("image")
    if not isinstance(attributes, dict) or not attributes:
        raise _unprocessable("image", "can't be blank")
    name = body.get("image_name")
    if not isinstance(name, str) or not name.strip():
        raise _unprocessable("image_name", "can't be blank")
    category = attributes.get("image_category_id")
    album = None if category is None else album_for(state, request, project_id, category)
    with state.lock:
        record = _usable_upload(state, request, project_id, body.get("upload_uuid"))
        image = Image(
            state.next_id("image"),
            request.company_id,
            project_id,
            name,
            album.id if album else None,
            record.uuid,
            record.stored_size or 0,
            dict(attributes),
            request.now,
        )
        state.images[image.id] = image
        state.association_counts[record.uuid] += 1
        return json_reply(201, views.image_view(state, image))


def _instant(text: str) -> tuple[float, bool]:
    """An ISO-8601 date or date-time as (Unix seconds, whether it was a bare date)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = datetime.date.fromisoformat(value)
            moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
            return moment.timestamp(), True
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, {"errors": {"filters": [f"invalid date {value!r}"]}}) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp(), False


def time_range(raw: str) -> tuple[float, float]:
    """``A...B`` (ISO-8601 dates or date-times, Procore's range form) as [start, end) over
    whole seconds, both ends included (a bare date as the end includes that whole day)."""
    first, dots, second = raw.partition("...")
    if not dots:
        second = first
    start, _ = _instant(first)
    end, whole_day = _instant(second)
    return start, end + (86_400 if whole_day else 1)


_IMAGE_SORTS = {
    "created_at": lambda i: (i.created_at, i.id),
    "updated_at": lambda i: (i.created_at, i.id),
    "taken_at": lambda i: (i.created_at, i.id),
    "id": lambda i: (i.id,),
    "filename": lambda i: (i.name, i.id),
    "size": lambda i: (i.size, i.id),
}


def list_images(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """List Images, paginated. Filters (Procore's OpenAPI): ``image_category_id`` (also
    accepted as ``filters[image_category_id]``), ``filters[created_at]`` (``A...B``),
    ``filters[uploader_id]``, ``filters[query]`` (filename and description), ``filters[id]``
    (comma-separated); ``sort`` names a field, ``-`` first for reverse. With no ``sort`` the
    order is not documented: newest first here, so pages shift while images are added."""
    project_id = _query_project(state, request, "photos")
    query = request.query
    wanted = _positive_int(query.get("filters[image_category_id]", query.get("image_category_id")))
    created = query.get("filters[created_at]")
    window = time_range(created) if created else None
    uploader = query.get("filters[uploader_id]")
    text = query.get("filters[query]", "").lower()
    ids_raw = query.get("filters[id]")
    ids = {int(v) for v in ids_raw.split(",") if v.strip().isdigit()} if ids_raw else None
    sort = query.get("sort", "-created_at")
    key = _IMAGE_SORTS.get(sort.removeprefix("-"))
    if key is None:
        raise ApiError(400, {"errors": {"sort": ["is invalid"]}})
    with state.lock:
        chosen = [
            i
            for i in state.images.values()
            if (i.company_id, i.project_id) == (request.company_id, project_id)
            and (wanted is None or i.image_category_id == wanted)
            and (window is None or window[0] <= math.floor(i.created_at) < window[1])
            and (uploader is None or uploader == str(_SERVICE_ACCOUNT_ID))
            and (not text or text in i.name.lower()
                 or text in str(i.attributes.get("description") or "").lower())
            and (ids is None or i.id in ids)
        ]
        chosen.sort(key=key, reverse=sort.startswith("-"))
        images = [views.image_view(state, i) for i in chosen]
    return _page(state, request, images)


def list_albums(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """List Image Categories (albums) of a project, ``GET /rest/v1.0/image_categories``,
    paginated, in ``position`` then id order."""
    project_id = _query_project(state, request, "photos")
    with state.lock:
        albums = sorted(
            (a for a in state.albums.values()
             if (a.company_id, a.project_id) == (request.company_id, project_id)),
            key=lambda a: (a.position, a.id),
        )
        items = [views.album_view(state, a) for a in albums]
    return _page(state, request, items)


def show_album(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _query_project(state, request, "photos")
    with state.lock:
        album = state.albums.get(int(args[0]))
        if album is None or (album.company_id, album.project_id) != (
            request.company_id, project_id,
        ):
            raise ApiError(404, {"errors": {"base": ["Image category not found"]}})
        return json_reply(200, views.album_view(state, album))


def create_album(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """Create Image Category: ``{"image_category": {"name", "private"}}``, 201."""
    project_id = _query_project(state, request, "photos")
    spec = _object(request.body, "image_category")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _unprocessable("name", "can't be blank")
    album = state.add_album(request.company_id, project_id, name, bool(spec.get("private")),
                            request.now)
    with state.lock:
        return json_reply(201, views.album_view(state, album))


# --- routing ---------------------------------------------------------------------------------

_UPLOADS = r"/rest/v1\.1/(projects|companies)/(\d+)/uploads"
_COMPANY_DOCS = r"/rest/v1\.0/companies/(\d+)"
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/rest/v1\.0/companies/?"), list_companies),
    ("GET", re.compile(r"/rest/v1\.[01]/projects/?"), list_projects),
    ("GET", re.compile(r"/rest/v1\.0/projects/(\d+)/?"), show_project),
    ("POST", re.compile(_UPLOADS + "/?"), create_upload),
    ("GET", re.compile(_UPLOADS + r"/([0-9A-Za-z]+)/?"), show_upload),
    ("PATCH", re.compile(_UPLOADS + r"/([0-9A-Za-z]+)/?"), complete_upload),
    ("GET", re.compile(r"/rest/v1\.0/folders/?"), show_root),
    ("POST", re.compile(r"/rest/v1\.0/folders/?"), create_folder),
    ("GET", re.compile(r"/rest/v1\.0/folders/(\d+)/?"), show_folder),
    ("DELETE", re.compile(r"/rest/v1\.0/folders/(\d+)/?"), delete_folder),
    ("POST", re.compile(r"/rest/v1\.0/files/?"), create_file),
    ("GET", re.compile(r"/rest/v1\.0/files/(\d+)/?"), show_file),
    ("DELETE", re.compile(r"/rest/v1\.0/files/(\d+)/?"), delete_file),
    ("POST", re.compile(r"/rest/v1\.0/file_versions/?"), create_version),
    ("GET", re.compile(_COMPANY_DOCS + r"/folders/?"), show_root),
    ("POST", re.compile(_COMPANY_DOCS + r"/folders/?"), create_folder),
    ("GET", re.compile(_COMPANY_DOCS + r"/folders/(\d+)/?"), show_folder),
    ("DELETE", re.compile(_COMPANY_DOCS + r"/folders/(\d+)/?"), delete_folder),
    ("POST", re.compile(_COMPANY_DOCS + r"/files/?"), create_file),
    ("GET", re.compile(_COMPANY_DOCS + r"/files/(\d+)/?"), show_file),
    ("DELETE", re.compile(_COMPANY_DOCS + r"/files/(\d+)/?"), delete_file),
    ("POST", re.compile(_COMPANY_DOCS + r"/file_versions/?"), create_version),
    ("POST", re.compile(r"/rest/v1\.0/images/?"), create_image),
    ("GET", re.compile(r"/rest/v1\.0/images/?"), list_images),
    ("GET", re.compile(r"/rest/v1\.0/image_categories/?"), list_albums),
    ("POST", re.compile(r"/rest/v1\.0/image_categories/?"), create_album),
    ("GET", re.compile(r"/rest/v1\.0/image_categories/(\d+)/?"), show_album),
]


def route(state: EmulatorState, request: ApiRequest) -> Reply:
    """Answer one authenticated API request."""
    for method, pattern, handler in _ROUTES:
        match = pattern.fullmatch(request.path)
        if match and method == request.method:
            try:
                return handler(state, request, match.groups())
            except ApiError as exc:
                return exc.reply
    return json_reply(404, {"errors": f"No route matches [{request.method}] {request.path}"})
