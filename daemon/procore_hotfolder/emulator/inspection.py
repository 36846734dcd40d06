"""The emulator's own views for tests and the admin API: everything it holds, with the keys
the API never reveals (upload uuids, project and company ids), and ``GET /_emulator/state``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import views
from .state import EmulatorState


def documents(state: EmulatorState) -> list[dict[str, Any]]:
    """Every Documents file as the API shows it, plus ``project_id`` and ``upload_uuids``
    (emulator-only keys for tests; the API itself never reveals upload uuids)."""
    with state.lock:
        out = []
        for doc in state.files.values():
            view = views.file_view(state, doc)
            view["project_id"] = doc.project_id or None  # None: company Documents
            view["company_id"] = doc.company_id
            view["upload_uuids"] = [v.upload_uuid for v in doc.versions]
            out.append(view)
        return out


def image_list(state: EmulatorState) -> list[dict[str, Any]]:
    """Every image as the API shows it, plus emulator-only ``project_id``/``upload_uuid``."""
    with state.lock:
        out = []
        for image in state.images.values():
            view = views.image_view(state, image)
            view["project_id"] = image.project_id
            view["company_id"] = image.company_id
            view["upload_uuid"] = image.upload_uuid
            out.append(view)
        return out


def folder_list(state: EmulatorState) -> list[dict[str, Any]]:
    """Every folder (without children) plus its ``project_id``."""
    with state.lock:
        out = []
        for folder in state.folders.values():
            view = views.folder_view(state, folder, with_children=False)
            view["project_id"] = folder.project_id or None  # None: company Documents
            out.append(view)
        return out


def summary(state: EmulatorState) -> dict[str, Any]:
    """The admin endpoint's JSON view of everything."""
    with state.lock:
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
                "associations": state.associations(r.uuid),
                "created_at": r.created_at,
            }
            for r in state.uploads.values()
        ]
        by_status = Counter(str(r.status) for r in state.request_log)
        by_kind = Counter(r.kind for r in state.request_log)
        return {
            "uploads": uploads,
            "purged_uploads": sorted(state.purged_uploads),
            "documents": documents(state),
            "images": image_list(state),
            "folders": folder_list(state),
            "requests": {
                "total": len(state.request_log),
                "by_status": dict(by_status),
                "by_kind": dict(by_kind),
            },
            "faults": state.faults.snapshot(),
        }
