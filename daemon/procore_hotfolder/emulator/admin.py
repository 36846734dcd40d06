"""The admin API under ``/_emulator/``, for driving an emulator in another process: the state
(``GET /_emulator/state``), the faults (``GET``/``POST /_emulator/faults``) and the set-up of a
company (``POST`` to ``projects``, ``albums``, ``folders``, ``recycle_document``,
``delete_folder``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from . import inspection, views
from .api.documents import add_folder
from .state import EmulatorState
from .wire import ApiError, Reply, json_reply


def answer(state: EmulatorState, method: str, path: str, read_body: Callable[[], bytes]) -> Reply:
    """The answer to an admin request (400 for a malformed one, 404 for an unknown route).
    Raises DropConnection when ``read_body`` does."""
    try:
        raw = read_body()
        if path == "/_emulator/state" and method == "GET":
            return json_reply(200, inspection.summary(state))
        if path == "/_emulator/faults" and method == "POST":
            state.faults.update(_json_object(raw))
            return json_reply(200, state.faults.snapshot())
        if path == "/_emulator/faults" and method == "GET":
            return json_reply(200, state.faults.snapshot())
        if path in _SETUP and method == "POST":
            return json_reply(201, _SETUP[path](state, _json_object(raw)))
        return json_reply(404, {"errors": "unknown emulator admin route"})
    except ApiError as exc:
        return exc.reply
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return json_reply(400, {"errors": str(exc)})


def _setup_project(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    project = state.add_project(
        int(spec["company_id"]), str(spec["name"]),
        None if spec.get("project_number") is None else str(spec["project_number"]),
        active=bool(spec.get("active", True)),
        project_id=None if spec.get("id") is None else int(spec["id"]),
    )
    with state.lock:
        return views.project_view(project)


def _setup_album(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    album = state.add_album(int(spec["company_id"]), int(spec["project_id"]), str(spec["name"]),
                            bool(spec.get("private", False)))
    with state.lock:
        return views.album_view(state, album)


def _setup_folder(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    parent = spec.get("parent_id")
    folder = add_folder(state, int(spec["company_id"]), int(spec["project_id"]),
                        str(spec["name"]), parent_id=None if parent is None else int(parent),
                        now=time.time())
    with state.lock:
        view = views.folder_view(state, folder, with_children=False)
        view["project_id"] = folder.project_id
        return view


def _recycle_document(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    state.recycle_file(int(spec["file_id"]))
    with state.lock:
        return views.file_view(state, state.files[int(spec["file_id"])])


def _delete_folder(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    state.delete_folder(int(spec["folder_id"]))
    return {"deleted": int(spec["folder_id"])}


#: Admin set-up routes (POST a JSON object; 201 with the created thing as the API shows it).
_SETUP: dict[str, Callable[[EmulatorState, dict[str, Any]], dict[str, Any]]] = {
    "/_emulator/projects": _setup_project,
    "/_emulator/albums": _setup_album,
    "/_emulator/folders": _setup_folder,
    "/_emulator/recycle_document": _recycle_document,
    "/_emulator/delete_folder": _delete_folder,
}


def _json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from an admin request body; raises ValueError/TypeError otherwise."""
    values = json.loads(raw or b"{}")
    if not isinstance(values, dict):
        raise TypeError("expected a JSON object")
    return values
