"""Records as Procore's API shows them: the schemas of Procore's OpenAPI, one function each.

Call them with ``state.lock`` held: they read the state's tables.
"""

from __future__ import annotations

import base64
from typing import Any

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
    iso_time,
)
from .state import EmulatorState


def upload_view(record: UploadRecord) -> dict[str, Any]:
    """An Upload as Create/Show/Complete Upload answer it: ``uuid`` and ``status``, plus the
    segments for a segmented Upload, or the form POST's ``url`` and ``fields`` while a
    single-request one is still ready.

    Each segment as "Working with Direct File Uploads" shows it (``procore/documentation``
    ``tutorials/tutorial_uploads.md``, steps 2 and 4): ``md5`` (hex, only when the create
    declared one), ``sha256``, ``size``, the PUT ``url`` and its ``headers``; once the
    Upload is complete also the ``etag`` the completion named."""
    view: dict[str, Any] = {"uuid": record.uuid, "status": record.status}
    if record.segments is not None:
        etags = record.completed_etags if record.status == "complete" else None
        segments: list[dict[str, Any]] = []
        for number, (declared, target) in enumerate(
            zip(record.segments, record.segment_views, strict=True)
        ):
            segment: dict[str, Any] = {}
            if etags is not None and number < len(etags):
                segment["etag"] = etags[number]
            if declared.get("md5"):
                segment["md5"] = base64.b64decode(declared["md5"]).hex()
            segment.update(sha256=declared["sha256"], size=declared["size"],
                           url=target["url"], headers=dict(target["headers"]))
            segments.append(segment)
        view["segments"] = segments
    elif record.status == "ready":
        view["url"] = record.url
        view["fields"] = dict(record.fields)
    return view


def path_of(state: EmulatorState, folder: Folder) -> str:
    """``name_with_path``: the folder's names from the root down, joined by "/"."""
    names: list[str] = []
    current: Folder | None = folder
    while current is not None:
        names.append(current.name)
        current = state.folders.get(current.parent_id) if current.parent_id else None
    return "/".join(reversed(names))


def folder_view(state: EmulatorState, folder: Folder, with_children: bool, *,
                exclude_folders: bool = False, exclude_files: bool = False,
                latest_only: bool = False) -> dict[str, Any]:
    """A folder as List/Show Project Folder show it (the ``Folder`` schema of Procore's
    OpenAPI). Children listed inside a listing carry empty ``folders``/``files``: "For any
    folders that are nested more deeply an empty array [] will be returned" (List
    project folders and files). Files in the recycle bin are listed, with ``is_deleted``
    true. ``exclude_folders``/``exclude_files`` empty those arrays;
    ``latest_only`` (``show_latest_file_version_only``) keeps each file's last version.
    """
    root = state.root_folders.get((folder.company_id, folder.project_id)) == folder.id
    subfolders = [f for f in state.folders.values() if f.parent_id == folder.id]
    files = [d for d in state.files.values() if d.parent_id == folder.id]
    view: dict[str, Any] = {
        "id": folder.id,
        "name": folder.name,
        "parent_id": folder.parent_id,
        "name_with_path": path_of(state, folder),
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
            view["folders"] = [folder_view(state, f, with_children=False) for f in subfolders]
        if not exclude_files:
            view["files"] = [file_view(state, d, latest_only=latest_only) for d in files]
    return view


def listing_entries(state: EmulatorState, folder: Folder) -> int:
    """How big an unfiltered listing of ``folder`` is: subfolders, files and versions."""
    entries = sum(1 for f in state.folders.values() if f.parent_id == folder.id)
    for doc in state.files.values():
        if doc.parent_id == folder.id:
            entries += 1 + len(doc.versions)
    return entries


def file_view(state: EmulatorState, doc: DocumentFile, *,
              latest_only: bool = False) -> dict[str, Any]:
    """A file as Procore shows it (the project ``File`` schema: ``is_deleted`` is true
    while it is in the recycle bin)."""
    latest = doc.versions[-1]
    parent = state.folders.get(doc.parent_id)
    path = f"{path_of(state, parent)}/{doc.name}" if parent else doc.name
    versions = doc.versions[-1:] if latest_only else doc.versions
    return {
        "id": doc.id,
        "name": doc.name,
        "parent_id": doc.parent_id,
        "name_with_path": path,
        "size": latest.size,
        "description": doc.description,
        "private": False,
        "is_tracked": False,
        "checked_out_until": None,
        "checked_out_by": None,
        "file_type": doc.name.rpartition(".")[2].upper() if "." in doc.name else None,
        "is_deleted": doc.deleted,
        "created_at": iso_time(doc.created_at),
        "updated_at": iso_time(latest.created_at),
        "file_versions": [version_view(v, doc.id) for v in versions],
    }


def version_view(version: FileVersion, file_id: int) -> dict[str, Any]:
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


def image_view(state: EmulatorState, image: Image) -> dict[str, Any]:
    """An image as Procore's API shows it: the ``Image`` schema of Procore's OpenAPI, which
    List, Show and Create Image all return (see ``docs/Image.md`` of the generated
    procore_sdk, ``ProjectManagementPhotosImagesApi``). There is NO ``name``, NO
    ``image_name`` and NO upload uuid; ``filename`` is the ``image_name`` the create named.
    """
    album = state.albums.get(image.image_category_id or 0)
    stamp = iso_time(image.created_at)
    return {
        "id": image.id,
        "url": f"{state.base_url}/photos/{image.id}/original",
        "thumbnail_url": f"{state.base_url}/photos/{image.id}/thumbnail",
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


def project_view(project: Project) -> dict[str, Any]:
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


def album_view(state: EmulatorState, album: Album) -> dict[str, Any]:
    """An album as List/Show Image Category show it (the ``ImageCategory`` schema of
    Procore's OpenAPI: id, name, count, cover_photo, private, position, timestamps)."""
    stamp = iso_time(album.created_at)
    count = sum(1 for i in state.images.values() if i.image_category_id == album.id)
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
