"""Filing an Upload where people find it: Documents (folders, files, file versions; a
project's or the company's) and Photos (images), and the listings that find out what is
already there.

The POSTs that file an Upload (a Documents file, a file version, an image) are never
repeated when their outcome is unknown (timeout, dropped connection, 5xx): the error goes to
the caller, which looks first. They are repeated only when the request certainly did not run
(connection refused, 429, 401).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.model import utc_iso
from procore_hotfolder.procore.api import Api
from procore_hotfolder.procore.http import read_object, unexpected


class FilingRequests:
    """Documents and Photos requests (thread-safe)."""

    def __init__(self, settings: ProcoreSettings, api: Api) -> None:
        self._api = api
        self.reconfigure(settings)

    def reconfigure(self, settings: ProcoreSettings) -> None:
        """Use the company of ``settings`` for the company's Documents from now on."""
        self._company_id = int(settings.company_id)

    def _documents(self, project_id: int | None, tail: str) -> tuple[str, dict[str, Any]]:
        """Path and query of a Documents endpoint: the project's (``?project_id=``) or,
        without a project, the company's (``companies/{id}/...``, Procore's Company Folders
        and Files, which take company Uploads)."""
        if project_id is None:
            return f"v1.0/companies/{self._company_id}/{tail}", {}
        return f"v1.0/{tail}", {"project_id": project_id}

    def folder_listing(
        self, project_id: int | None, folder_id: int | None, *, files: bool = True,
        folders: bool = True,
    ) -> Mapping[str, Any]:
        """One Documents folder (the root when ``folder_id`` is None) with its children;
        the company's Documents when ``project_id`` is None.

        Shrunk as Procore's Show Folder allows: only the latest version of each file
        (``show_latest_file_version_only``), and without the child folders (``files``
        only: ``exclude_folders``) or the files (``folders`` only: ``exclude_files``).
        Procore documents no name filter for folder listings. Raises ``NotFound`` for a
        folder that is gone (or not visible to us).
        """
        tail = "folders" if folder_id is None else f"folders/{int(folder_id)}"
        path, params = self._documents(project_id, tail)
        params["show_latest_file_version_only"] = "true"
        if not folders:
            params["exclude_folders"] = "true"
        if not files:
            params["exclude_files"] = "true"
        response = self._api.call("GET", path, params=params, idempotent=True)
        return read_object(response, "folder")

    def create_folder(self, project_id: int | None, parent_id: int | None, name: str
                      ) -> Mapping[str, Any]:
        """Create Documents folder ``name`` in ``parent_id`` (the root when None).

        Repeated by the request scope even when the outcome is unknown: a repeat of a create
        that did run answers 422 "has already been taken" (``ValidationFailed``), which the
        caller resolves by listing the parent, so no second folder can come of it.
        """
        folder: dict[str, Any] = {"name": name}
        if parent_id is not None:
            folder["parent_id"] = parent_id
        path, params = self._documents(project_id, "folders")
        response = self._api.call("POST", path, params=params, json_body={"folder": folder},
                                  idempotent=True)
        return self._created(response, "folder")

    def create_document(
        self, project_id: int | None, parent_id: int | None, name: str, upload_uuid: str,
        *, unique_name: bool = False, description: str | None = None,
    ) -> Mapping[str, Any]:
        """File the Upload in Documents (root folder when ``parent_id`` is None; the
        company's Documents when ``project_id`` is None), with ``description`` when given
        (the ``file`` object's ``description``, a string in Procore's OpenAPI for Create
        File).

        Not repeated when the outcome is unknown: a ``NetworkError``/``ServerError`` means
        "maybe created"; look before trying again.
        """
        file: dict[str, Any] = {"name": name, "upload_uuid": upload_uuid,
                                "unique_name": unique_name}
        if parent_id is not None:
            file["parent_id"] = parent_id
        if description is not None:
            file["description"] = description
        path, params = self._documents(project_id, "files")
        response = self._api.call("POST", path, params=params, json_body={"file": file},
                                  idempotent=False)
        return self._created(response, "file")

    def create_file_version(
        self, project_id: int | None, file_id: int, upload_uuid: str,
    ) -> Mapping[str, Any]:
        """Add the Upload as a new version of Documents file ``file_id`` (not repeated when
        the outcome is unknown)."""
        path, params = self._documents(project_id, "file_versions")
        response = self._api.call(
            "POST", path, params={**params, "file_id": file_id},
            json_body={"file_version": {"upload_uuid": upload_uuid}}, idempotent=False)
        return self._created(response, "file version")

    def create_image(
        self, project_id: int, upload_uuid: str, image_name: str, album_id: int | None,
        *, description: str | None = None,
    ) -> Mapping[str, Any]:
        """Add the Upload to Photos (album ``album_id``, else unsorted), with
        ``description`` when given; not repeated when the outcome is unknown.

        Procore requires an ``image`` object with at least one attribute. With an album it
        is ``image_category_id``; without one (and no description) it is ``description:
        ""``: the value a new photo has anyway, valid for the string field, and it changes
        nothing the user sees (unlike ``private``, whose project default we must not
        override, or a null album id, which a strict schema may reject as not an integer).
        """
        image: dict[str, Any] = {"description": description or ""}
        if album_id is not None:
            image = {"image_category_id": album_id}
            if description is not None:
                image["description"] = description
        response = self._api.call(
            "POST", "v1.0/images", params={"project_id": project_id},
            json_body={"upload_uuid": upload_uuid, "image_name": image_name, "image": image},
            idempotent=False)
        return self._created(response, "image")

    def create_album(self, project_id: int, name: str) -> Mapping[str, Any]:
        """Create Photos album ``name`` in the project: Procore's Create Image Category,
        ``POST /rest/v1.0/image_categories?project_id=`` with ``{"image_category": {"name":
        ...}}`` (Procore's OpenAPI: ``project_id`` a required query parameter, the body's
        ``image_category`` required with its ``name``; ``private`` is left out: Procore's
        default, false). 201 returns the album with its ``id``.

        Not repeated when the outcome is unknown: Procore documents no uniqueness of album
        names, so a repeat of a create that ran may make a second album of the same name.
        The caller looks for the name in the project's albums (List Image Categories) before
        it creates again.
        """
        response = self._api.call(
            "POST", "v1.0/image_categories", params={"project_id": project_id},
            json_body={"image_category": {"name": name}}, idempotent=False)
        return self._created(response, "album")

    def images_since(
        self, project_id: int, album_id: int | None, since: float, until: float,
    ) -> Iterator[Mapping[str, Any]]:
        """Images of the project (of album ``album_id`` when given) created in
        ``[since, until]`` (Unix seconds) as far as Procore honours the filter, in no
        promised order.

        List Images, filtered by album (``image_category_id``) and ``filters[created_at]``,
        sorted ``-created_at``, every page (``get_pages`` follows ``Link``; one API call per
        page). Procore's documentation names the sort and the date filter but does not
        promise either is honoured: the caller checks each item's ``created_at`` and reads
        to the end. Lazy. Items carry ``id``, ``filename``, ``size``,
        ``image_category_id``, ``created_at``; not the image name sent nor the upload uuid.
        """
        params: dict[str, Any] = {
            "project_id": project_id, "sort": "-created_at",
            "filters[created_at]": f"{utc_iso(since)}...{utc_iso(until)}",
        }
        if album_id is not None:
            params["image_category_id"] = album_id
        return self._api.get_pages("v1.0/images", params)

    @staticmethod
    def _created(response: requests.Response, what: str) -> Mapping[str, Any]:
        data = read_object(response, what)
        if "id" not in data:
            raise unexpected(response, f"Procore created the {what} but its answer has no id")
        return data
