"""Which handler answers which method and path of the REST API."""

from __future__ import annotations

import re

from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply
from .documents import (
    create_file,
    create_folder,
    create_version,
    delete_file,
    delete_folder,
    show_file,
    show_folder,
    show_root,
)
from .photos import create_album, create_image, list_albums, list_images, show_album
from .projects import list_companies, list_projects, show_project
from .request import ApiRequest, Handler
from .uploads import complete_upload, create_upload, show_upload

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
