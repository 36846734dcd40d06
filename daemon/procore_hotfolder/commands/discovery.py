"""What the service account sees in Procore: projects, Documents folders, Photos albums (read
by ``destinations.photos.list_albums``); and the online part of ``check``, one folder of the
configuration at a time: its project (or company) here, its target by its destination.

Read calls only. Every list is read page by page as Procore paginates it
(``ProcoreClient.get_pages``); a Documents folder is one Show Folder call per folder that
has subfolders. Errors stay the typed ``ProcoreError``; ``describe_error`` says them in
Procore's words (status, message, request id) with the usual fix for a 403 or a 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.errors import NotFound, PermissionDenied, ProcoreError
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.answers import as_int
from procore_hotfolder.procore.projects import Project, list_projects, show_project
from procore_hotfolder.upload.destinations import destination_for
from procore_hotfolder.upload.destinations.photos import Album

#: Procore's usual cause of a 403 for a service account, and where an admin fixes it.
FORBIDDEN_HINT = (
    "the service account is not granted this project or the tool is off: a company admin "
    "adds the project to the app's service account in Procore (Company Admin > App "
    "Management, or the Directory's project access for the service account) and checks that "
    "the tool is enabled in the project; Procore resets a service account's projects on every "
    "update of the app")
NOT_FOUND_HINT = "not found, or not visible to this service account"


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderNode:
    """A Documents folder and its subfolders; ``path`` is its place below the root."""

    id: int | None
    name: str
    path: str
    children: tuple[FolderNode, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": self.path,
                "folders": [child.to_json() for child in self.children]}

    def walk(self, depth: int = 0) -> Iterable[tuple[int, FolderNode]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class FolderCheck:
    """The outcome of checking one configured folder: problems fail ``check``, warnings not."""

    index: int
    folder: FolderSettings
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: How the daemon sees this folder's writers (``writers.Sight.summary``).
    writers: str = ""

    @property
    def key(self) -> str:
        return f"folders[{self.index}]"

    # --- what the folder's destination reports (``destinations.CheckReport``) ----------

    def note(self, text: str) -> None:
        self.notes.append(text)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def refused(self, error: ProcoreError, subject: str) -> None:
        self.problems.append(describe_error(error, subject))

    def lines(self) -> list[str]:
        """One line for the folder, then one per problem and warning."""
        head = f"{self.key} {self.folder.path}: "
        if self.problems:
            head += "PROBLEM"
        elif self.warnings:
            head += "ok, with a warning"
        else:
            head += "ok"
        if self.notes:
            head += f" ({'; '.join(self.notes)})"
        return ([head] + ([f"  {self.writers}"] if self.writers else [])
                + [f"  problem: {p}" for p in self.problems]
                + [f"  warning: {w}" for w in self.warnings])


# --- reading Procore -------------------------------------------------------------------------


def projects_by_name(client: ProcoreClient, company_id: int) -> list[Project]:
    """The company's projects this service account can see (``list_projects``: Procore's
    List Projects, active ones), sorted by name."""
    projects = list_projects(client, company_id)
    return sorted(projects, key=lambda p: (p.name.lower(), p.id))


def company_visible(client: ProcoreClient, company_id: int) -> bool:
    """Whether List Companies names ``company_id`` for this service account."""
    return any(as_int(raw.get("id")) == company_id for raw in client.get_pages("v1.0/companies"))


def _children(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    folders = raw.get("folders")
    if not isinstance(folders, list):
        return []
    return [f for f in folders if isinstance(f, Mapping) and as_int(f.get("id")) is not None
            and not f.get("is_deleted")]


def show_folder(client: ProcoreClient, project_id: int | None,
                folder_id: int | None) -> Mapping[str, Any]:
    """Show Folder (the root when ``folder_id`` is None; the company's Documents when
    ``project_id`` is None), with its subfolders and without its files."""
    return client.folder_listing(project_id, folder_id, files=False)


def folder_tree(client: ProcoreClient, project_id: int, *,
                max_depth: int | None = None) -> FolderNode:
    """The project's Documents folder tree from the root (one Show Folder call per folder
    that has subfolders; ``max_depth`` 1 lists the root's folders only)."""

    def build(raw: Mapping[str, Any], name: str, path: str, depth: int) -> FolderNode:
        nodes = []
        for child in sorted(_children(raw), key=lambda f: str(f.get("name", "")).lower()):
            child_id = as_int(child.get("id"))
            assert child_id is not None
            child_name = str(child.get("name") or child_id)
            child_path = f"{path}{child_name}/"
            if (max_depth is not None and depth + 1 >= max_depth) \
                    or child.get("has_children_folders") is False:
                nodes.append(FolderNode(child_id, child_name, child_path))
            else:
                nodes.append(build(show_folder(client, project_id, child_id), child_name,
                                   child_path, depth + 1))
        return FolderNode(as_int(raw.get("id")), name, path, tuple(nodes))

    return build(show_folder(client, project_id, None), "(root)", "/", 0)


# --- errors in Procore's words ---------------------------------------------------------------


def describe_error(exc: ProcoreError, subject: str) -> str:
    """``subject: HTTP 403: <Procore's message> (request id X): <usual fix>``."""
    message = exc.message
    text = f"{subject}: "
    if exc.status:
        text += f"HTTP {exc.status}: "
        message = message.removeprefix(f"Procore answered HTTP {exc.status}: ")
    text += message
    if exc.request_id:
        text += f" (request id {exc.request_id})"
    if isinstance(exc, PermissionDenied) or exc.status == 403:
        text += f"; {FORBIDDEN_HINT}"
    elif isinstance(exc, NotFound) or exc.status == 404:
        text += f"; {NOT_FOUND_HINT}"
    return text


# --- check, one configured folder ------------------------------------------------------------


def check_folder_online(client: ProcoreClient, config: Config, result: FolderCheck) -> None:
    """Add to ``result`` what Procore says about its folder: the project (or the company) is
    reachable, and what the folder's destination finds of its target (``check``)."""
    folder = result.folder
    company_id = config.procore.company_id
    if folder.project_id is None:
        try:
            if company_visible(client, company_id):
                result.notes.append(f"company {company_id} reachable")
            else:
                result.problems.append(
                    f"company {company_id} is not among the companies this service account "
                    "can see (List Companies): is the app installed in this company?")
        except ProcoreError as exc:
            result.problems.append(describe_error(exc, f"company {company_id}"))
    else:
        project_id = folder.project_id
        try:
            project = show_project(client, company_id, project_id)
        except ProcoreError as exc:
            result.problems.append(describe_error(exc, f"project {project_id}"))
            return
        result.notes.append(f"project {project_id} {project.name!r}")
        if project.active is False:
            result.warnings.append(f"project {project_id} is inactive in Procore")
    destination_for(folder).check(client, folder, result)


# --- formatting for people -------------------------------------------------------------------


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows,
                                                                        strict=False)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def format_projects(projects: list[Project]) -> str:
    if not projects:
        return ("no projects visible to this service account (a company admin grants them "
                "in Procore: Company Admin > App Management)")
    rows = [(str(p.id), p.project_number or "-", p.name + ("" if p.active is not False
                                                           else " (inactive)"))
            for p in projects]
    return _table(("ID", "NUMBER", "NAME"), rows)


def format_tree(tree: FolderNode) -> str:
    rows = [("(root)" if depth == 0 else str(node.id),
             "/ (root: leave documents_folder_id out)" if depth == 0
             else "  " * (depth - 1) + node.name + "/")
            for depth, node in tree.walk()]
    return _table(("ID", "FOLDER"), rows)


def format_albums(albums: list[Album]) -> str:
    if not albums:
        return "no albums in this project (photos go to Unsorted: leave photos_album_id out)"
    rows = [(str(a.id), "-" if a.count is None else str(a.count),
             a.name + (" (private)" if a.private else "")) for a in albums]
    return _table(("ID", "PHOTOS", "ALBUM"), rows)
