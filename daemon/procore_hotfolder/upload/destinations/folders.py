"""The Procore Documents folders that mirror a drop folder's subfolders, cached in the
journal."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import structlog

from procore_hotfolder.errors import NotFound, ValidationFailed
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.answers import as_int, is_live, is_name_clash
from procore_hotfolder.state.journal import Journal

log = structlog.get_logger(__name__)


def _scope(project_id: int | None) -> int:
    """The folder cache's key for a project's Documents, 0 for the company's (Procore's
    project ids are positive)."""
    return 0 if project_id is None else project_id


class FolderTree:
    """Procore folder ids for the drop folder's subfolders: from the journal's cache, else
    created (once per path: a lock per path in this process), else, when Procore says the
    name is taken (another user, another process), found in the parent's listing."""

    def __init__(self, client: ProcoreClient, journal: Journal) -> None:
        self._client = client
        self._journal = journal
        self._guard = threading.Lock()
        self._locks: dict[tuple[int, int, str], threading.Lock] = {}

    def _lock(self, key: tuple[int, int, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def resolve(self, project_id: int | None, base_id: int | None, names: list[str]
                ) -> int | None:
        """The id of folder ``names`` (a path below ``base_id``; None: the root)."""
        parent = base_id
        for depth in range(1, len(names) + 1):
            key = (_scope(project_id), base_id or 0, "/".join(names[:depth]))
            with self._lock(key):
                cached = self._journal.folder_id(*key)
                if cached is None:
                    try:
                        cached = self._create_or_find(project_id, parent, names[depth - 1])
                    except NotFound:
                        if depth == 1:
                            raise  # the configured folder (or the project) itself
                        # The parent, taken from the cache, is gone in Procore.
                        assert parent is not None
                        self.forget(project_id, parent)
                        raise
                    self._journal.remember_folder(*key, cached)
                    log.info("documents_folder_ready", project_id=project_id,
                             path=key[2], folder_id=cached)
            parent = cached
        return parent

    def _create_or_find(self, project_id: int | None, parent_id: int | None, name: str) -> int:
        try:
            created = self._client.create_folder(project_id, parent_id, name)
        except ValidationFailed as exc:
            if not is_name_clash(exc):
                raise
            listing = self._client.folder_listing(project_id, parent_id, files=False)
            for entry in listing.get("folders") or []:
                if isinstance(entry, Mapping) and entry.get("name") == name and is_live(entry):
                    found = as_int(entry.get("id"))
                    if found is not None:
                        return found
            raise
        folder_id = as_int(created.get("id"))
        assert folder_id is not None  # _created checked it
        return folder_id

    def forget(self, project_id: int | None, folder_id: int) -> None:
        gone = self._journal.forget_folder(_scope(project_id), folder_id)
        log.warning("documents_folder_stale", project_id=project_id, folder_id=folder_id,
                    forgotten=gone)
