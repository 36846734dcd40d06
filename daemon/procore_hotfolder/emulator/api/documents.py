"""Documents, of a project or of the company: folders (list, show, create, delete), files
(create, show, delete to the recycle bin) and file versions."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from .. import views
from ..records import DocumentFile, FileVersion, Folder, UploadRecord
from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply
from .access import check_company, query_project
from .request import ApiRequest, body_object, flag, forbidden, positive_int, unprocessable
from .uploads import usable_upload


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
    folder_id = positive_int(raw_id)
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
        check_company(state)
        if int(args[0]) != request.company_id:
            raise forbidden("The company in the path does not match Procore-Company-Id")
        return COMPANY_SCOPE
    return query_project(state, request, "documents")


def _listing(state: EmulatorState, request: ApiRequest, folder: Folder) -> Reply:
    """List/Show Project Folder: the folder with its children. Not paginated ("List Project
    Files and Folders" is among the endpoints that "currently do not support pagination",
    Procore's pagination page). Documented filters: ``exclude_folders``, ``exclude_files``,
    ``show_latest_file_version_only``; no name or search filter is documented for the v1.0
    project folder endpoints, so none is offered. A large request without any of those
    filters may answer 408 (``faults.listing_timeout_entries``)."""
    exclude_folders = flag(request, "exclude_folders")
    exclude_files = flag(request, "exclude_files")
    latest_only = flag(request, "show_latest_file_version_only")
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
        raise unprocessable("base", "The root folder cannot be deleted")
    state.delete_folder(folder.id)
    return Reply(200, b"", None)


def add_folder(state: EmulatorState, company_id: int, project_id: int, name: str, *,
               parent_id: int | None, now: float) -> Folder:
    """Create a folder under ``parent_id`` (root when None). The name check and the insert
    happen under one lock, so of two racing creates of one name exactly one wins and the
    other gets 422 ``{"errors": {"name": ["has already been taken"]}}`` (Rails' uniqueness
    message in Procore's ``{"errors": {field: [...]}}`` shape). Raises ApiError."""
    if not name.strip():
        raise unprocessable("name", "can't be blank")
    with state.lock:
        root = _root_folder(state, company_id, project_id, now)
        parent = root if parent_id is None else state.folders.get(parent_id)
        if parent is None or (parent.company_id, parent.project_id) != (company_id, project_id):
            raise ApiError(404, {"error": {"code": "not_found", "message": "Folder not found"}})
        if any(f.parent_id == parent.id and f.name == name for f in state.folders.values()):
            raise unprocessable("name", "has already been taken")
        folder = Folder(state.next_id("folder"), company_id, project_id, name, parent.id, now)
        state.folders[folder.id] = folder
        return folder


def create_folder(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _documents_scope(state, request, args)
    spec = body_object(request.body, "folder")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise unprocessable("name", "can't be blank")
    parent = _folder(state, request, project_id, spec.get("parent_id"))
    folder = add_folder(state, request.company_id, project_id, name, parent_id=parent.id,
                        now=request.now)
    with state.lock:
        return json_reply(201, views.folder_view(state, folder, with_children=True))


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
    spec = body_object(request.body, "file")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise unprocessable("name", "can't be blank")
    # ``description``: a string of the ``file`` object in Procore's OpenAPI for Create File;
    # anything else is refused (the least convenient reading of an undocumented case).
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise unprocessable("description", "is invalid")
    parent = _folder(state, request, project_id, spec.get("parent_id"))
    with state.lock:
        record = usable_upload(state, request, project_id, spec.get("upload_uuid"))
        if parent.id not in state.folders:  # deleted since it was looked up
            raise ApiError(404, {"error": {"code": "not_found", "message": "Folder not found"}})
        # "unique_name: Toggles automatic renaming if the file name is already taken in a
        # folder (unique_name = true). Returns a name taken error if a file name is taken in
        # a folder (unique_name = false)" (Create project File, Procore's OpenAPI). Only live
        # files take a name: one in the recycle bin does not, so its name makes a new file.
        taken = state.file_names.setdefault(parent.id, {})
        if name in taken:
            if not spec.get("unique_name"):
                raise unprocessable("name", "has already been taken")
            name = _unique_name(taken, name)
        doc = DocumentFile(
            state.next_id("file"), request.company_id, project_id, parent.id, name, request.now,
            description=description,
        )
        doc.versions.append(_new_version(state, 1, record, name, request.now))
        state.association_counts[record.uuid] += 1
        state.files[doc.id] = doc
        taken[name] = doc.id
        return json_reply(201, views.file_view(state, doc))


def _document(state: EmulatorState, request: ApiRequest, project_id: int, raw: Any) -> DocumentFile:
    file_id = positive_int(raw)
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
            state, doc, latest_only=flag(request, "show_latest_version_only")))


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
    spec = body_object(request.body, "file_version")
    # A file in the recycle bin still takes versions: Procore documents no refusal, and a
    # version that lands out of sight in the recycle bin is the worst case for a client
    # that cached the file id (it must check ``is_deleted`` itself).
    with state.lock:
        record = usable_upload(state, request, project_id, spec.get("upload_uuid"))
        version = _new_version(state, len(doc.versions) + 1, record, doc.name, request.now)
        doc.versions.append(version)
        state.association_counts[record.uuid] += 1
        return json_reply(201, views.version_view(version, doc.id))
