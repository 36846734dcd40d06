"""`route`: where each file now waiting in the folders (or each file named) would go, without
uploading or creating anything.

For each file: the rule that matched (its index and the groups it captured) or the folder's
own keys, the project (id and number: the company's projects are listed once, as the daemon
does, to look numbers up), the destination and its target, and the name it would be filed
under; or why it would fail (``no_rule_matched``, ``unknown_project_number``, ...). Procore
is only read: the project list, the Documents folders along a target path (one Show Folder
per level, each at most once per run) to say whether the path exists or which part would be
created, and a project's albums (List Image Categories) for an album named by a rule.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procore_hotfolder.commands.discovery import describe_error
from procore_hotfolder.config import Config
from procore_hotfolder.errors import ProcoreError, RouteError
from procore_hotfolder.files import sourcefile
from procore_hotfolder.model import display_path, not_a_file_skip
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.projects import Project, list_projects
from procore_hotfolder.upload.destinations import DocumentsTarget, Nowhere, PhotosTarget
from procore_hotfolder.upload.destinations.photos import Album, list_albums
from procore_hotfolder.upload.project_numbers import ProjectNumbers
from procore_hotfolder.upload.routing import Route, relative_path, route_file
from procore_hotfolder.watch.ignore import IgnoreRules


@dataclass
class RoutePreview:
    """Where one file would go (``route``, ``project``, what of the target exists), or the
    ``problem`` it would fail with."""

    path: Path
    folder_index: int | None = None
    relative: str | None = None
    route: Route | None = None
    project: Project | None = None
    #: Documents: the folders of the target path that would be created (empty: it exists).
    missing: tuple[str, ...] = ()
    #: Photos: the album's id when it exists (None with ``album_missing``: created).
    album: Album | None = None
    album_missing: bool = False
    problem: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def routed(self) -> bool:
        return self.problem is None and self.route is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": display_path(self.path),
            "folder": None if self.folder_index is None else f"folders[{self.folder_index}]",
            "relative": None if self.relative is None else display_path(self.relative),
            "routed": self.routed,
            "route": None if self.route is None else self.route.to_json(),
            "project": None if self.project is None else self.project.to_json(),
            "documents_missing": list(self.missing),
            "album": None if self.album is None else self.album.to_json(),
            "album_missing": self.album_missing,
            "problem": self.problem,
        }


def preview_routes(config: Config, client: ProcoreClient, paths: list[str], *,
                   tz: datetime.tzinfo | None = None) -> list[RoutePreview]:
    """A preview per file: each of ``paths``, or (none given) every file now in the
    folders. Only reads Procore; raises the typed ``ProcoreError`` only when no token can
    be had (every other refusal is a file's problem, in Procore's words)."""
    client.ensure_token()
    company = config.procore.company_id
    reader = _ProcoreReader(client, ProjectNumbers(lambda: list_projects(client, company)))
    previews = [_preview(config, path, tz) for path in _files(config, paths)]
    for item in previews:
        if item.route is not None and item.problem is None:
            reader.look(item)
    return previews


def _files(config: Config, paths: list[str]) -> list[Path]:
    if paths:
        return [Path(os.path.abspath(p)) for p in paths]
    # The daemon's own scan (ignore rules, no symlink followed); its module loads watchdog,
    # which a short command loads only when it scans.
    from procore_hotfolder.watch.watcher import scan  # noqa: PLC0415

    found: list[Path] = []
    for folder in config.folders:
        found.extend(entry.path for entry in scan(folder, IgnoreRules(folder))
                     if entry.kind == "file")
    return sorted(found)


def _preview(config: Config, path: Path, tz: datetime.tzinfo | None) -> RoutePreview:
    """The route of the file at ``path`` as the folder's rules give it (no Procore yet)."""
    item = RoutePreview(path)
    folder = config.folder_for(path)
    if folder is None:
        item.problem = {"reason": "not_in_a_folder", "detail": "not inside any watched folder"}
        return item
    item.folder_index = config.folders.index(folder)
    item.relative = relative_path(folder, path)
    ignored = IgnoreRules(folder).reason(path)
    if ignored is not None:
        item.problem = {"reason": "ignored", "detail": f"ignored ({ignored}): never uploaded"}
        return item
    try:
        st = os.lstat(path)
    except OSError as exc:
        item.problem = {"reason": "not_found" if isinstance(exc, FileNotFoundError)
                        else "unreadable", "detail": exc.strerror or str(exc)}
        return item
    kind = sourcefile.classify(st)
    if kind is not None:
        item.problem = {"reason": "not_a_file", "detail": not_a_file_skip(kind)}
        return item
    try:
        item.route = route_file(folder, item.relative, st.st_mtime, tz=tz)
    except RouteError as exc:
        item.problem = exc.as_dict()
    return item


class _ProcoreReader:
    """The Procore reads of one run, each made at most once: the project list, the
    Documents folders along the target paths, a project's albums."""

    def __init__(self, client: ProcoreClient, numbers: ProjectNumbers) -> None:
        self._client = client
        self._numbers = numbers
        self._listings: dict[tuple[int | None, int | None], Mapping[str, Any]] = {}
        self._albums: dict[int, list[Album]] = {}

    def look(self, item: RoutePreview) -> None:
        """Fill in ``item``'s project and what of its target exists, or its problem."""
        route = item.route
        assert route is not None
        try:
            project_id = self._project(item, route)
            if item.problem is not None:
                return
            if isinstance(route.target, DocumentsTarget):
                item.missing = self._missing(project_id, route.target)
            elif isinstance(route.target, PhotosTarget):
                assert project_id is not None  # configuration: photos need a project
                self._album(item, project_id, route.target)
        except RouteError as exc:
            item.problem = exc.as_dict()
        except ProcoreError as exc:
            subject = "Procore" if item.project is None else f"project {item.project.id}"
            item.problem = {**exc.as_dict(), "detail": describe_error(exc, subject)}

    def _project(self, item: RoutePreview, route: Route) -> int | None:
        if route.project_number is not None and route.project_id is None:
            item.project = self._numbers.resolve(route.project_number)
            item.route = route.with_project(item.project.id)
            return item.project.id
        if route.project_id is None:
            return None  # the company's Documents
        item.project = self._numbers.project(route.project_id)
        if item.project is None:
            item.problem = {"reason": "project_not_listed", "detail": (
                f"project {route.project_id} is not among the active projects this service "
                "account can see (`procore-hotfolder projects`): Procore would refuse its "
                "uploads (the folder would pause)")}
        return route.project_id

    def _listing(self, project_id: int | None, folder_id: int | None) -> Mapping[str, Any]:
        key = (project_id, folder_id)
        if key not in self._listings:
            self._listings[key] = self._client.folder_listing(project_id, folder_id,
                                                              files=False)
        return self._listings[key]

    def _missing(self, project_id: int | None, target: DocumentsTarget) -> tuple[str, ...]:
        """The folders of ``target.path`` that do not exist yet (the first missing one and
        all below it). A base folder id is looked at even without a path (it must exist)."""
        if not target.path:
            if target.base_id is not None:
                self._listing(project_id, target.base_id)
            return ()
        current = target.base_id
        for depth, name in enumerate(target.path):
            children = self._listing(project_id, current).get("folders") or []
            found = next((c for c in children if isinstance(c, Mapping)
                          and c.get("name") == name and not c.get("is_deleted")), None)
            if found is None or not isinstance(found.get("id"), int):
                return target.path[depth:]
            current = int(found["id"])
        return ()

    def _album(self, item: RoutePreview, project_id: int, target: PhotosTarget) -> None:
        if target.album_id is None and target.album is None:
            return  # unsorted
        if project_id not in self._albums:
            self._albums[project_id] = list_albums(self._client, project_id)
        albums = self._albums[project_id]
        if target.album_id is not None:
            item.album = next((a for a in albums if a.id == target.album_id), None)
            if item.album is None:
                item.problem = {"reason": "album_not_found", "detail": (
                    f"photos_album_id {target.album_id} is not among the {len(albums)} albums "
                    f"of project {project_id}")}
            return
        item.album = next((a for a in albums if a.name == target.album), None)
        item.album_missing = item.album is None


# --- for people --------------------------------------------------------------------------


def format_routes(config: Config, previews: list[RoutePreview]) -> str:
    """One block per folder, one per file below it; the count at the end."""
    lines: list[str] = []
    shown: int | None = -1
    for item in previews:
        if item.folder_index != shown:
            shown = item.folder_index
            if shown is None:
                lines.append("outside the watched folders")
            else:
                lines.append(f"folders[{shown}] {display_path(config.folders[shown].path)}")
        lines.append("  " + display_path(item.relative if item.relative is not None
                                         else item.path))
        lines.extend("    " + line for line in _describe(item))
    failing = sum(1 for item in previews if not item.routed)
    lines.append(f"{len(previews)} file(s): {len(previews) - failing} routed, {failing} would "
                 "fail" if previews else "no files waiting in the folders")
    return "\n".join(lines)


def _describe(item: RoutePreview) -> list[str]:
    route = item.route
    lines: list[str] = []
    if route is not None:
        if route.rule is None:
            lines.append("no rule matched: the folder's own keys")
        else:
            groups = ", ".join(f"{k}={'' if v is None else v}" for k, v in route.groups)
            lines.append(f"rule {route.rule}" + (f" ({groups})" if groups else ""))
        lines.append(_project_line(item, route))
        lines.append(_target_line(item, route))
        lines.append(f"uploaded as {route.name!r}" if isinstance(route.target, Nowhere)
                     else f"filed as {route.name!r}")
        if route.description:
            lines.append(f"description {route.description!r}")
    if item.problem is not None:
        lines.append(f"FAILS: {item.problem.get('reason')}: {item.problem.get('detail')}")
        lines.extend(f"  tried rule {t['rule']}: {t['match']}"
                     for t in item.problem.get("rules_tried") or [])
    return lines


def _project_line(item: RoutePreview, route: Route) -> str:
    if item.project is not None:
        number = item.project.project_number
        return (f"project {item.project.id}, number {number if number is not None else '-'}"
                f" ({item.project.name})")
    if route.project_number is not None:
        return f"project number {route.project_number}"
    return f"project {route.project_id}" if route.project_id is not None else \
        "the company (no project)"


def _target_line(item: RoutePreview, route: Route) -> str:
    target = route.target
    if isinstance(target, DocumentsTarget):
        if item.problem is not None:
            state = ""
        elif not item.missing:
            state = " (exists)"
        else:
            state = f" ({'/'.join(item.missing)} would be created)"
        clash = f"; a name already there: {target.on_name_clash}"
        return f"documents: {target.describe()}{state}{clash}"
    if isinstance(target, PhotosTarget):
        if target.album is not None:
            state = " (would be created)" if item.album_missing else (
                f" (exists, id {item.album.id})" if item.album is not None else "")
            return f"photos: album {target.album!r}{state}"
        return f"photos: {target.describe()}"
    return "not filed (destination none): Procore deletes the upload after 7 days"


def routes_json(previews: list[RoutePreview]) -> dict[str, Any]:
    failing = sum(1 for item in previews if not item.routed)
    return {"files": [item.to_json() for item in previews],
            "routed": len(previews) - failing, "failing": failing}


