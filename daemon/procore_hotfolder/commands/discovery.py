"""What the service account sees in Procore: projects, Documents folders, Photos albums; and
the online part of ``check``, one folder of the configuration at a time.

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
from procore_hotfolder.errors import NotFound, PermissionDenied, ProcoreError, UnexpectedResponse
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.answers import as_int

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
class Project:
    id: int
    name: str
    project_number: str | None
    active: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "project_number": self.project_number,
                "active": self.active}


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


@dataclass(frozen=True)
class Album:
    id: int
    name: str
    count: int | None
    private: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "count": self.count, "private": self.private}


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


def _project(raw: Mapping[str, Any]) -> Project | None:
    project_id = as_int(raw.get("id"))
    if project_id is None:
        return None
    number = raw.get("project_number")
    active = raw.get("active")
    return Project(id=project_id, name=str(raw.get("name") or ""),
                   project_number=str(number) if number not in (None, "") else None,
                   active=active if isinstance(active, bool) else None)


def list_projects(client: ProcoreClient, company_id: int) -> list[Project]:
    """The company's projects this service account can see (Procore's List Projects:
    active ones), sorted by name."""
    projects = [p for raw in client.get_pages("v1.0/projects", {"company_id": company_id})
                if (p := _project(raw)) is not None]
    return sorted(projects, key=lambda p: (p.name.lower(), p.id))


def show_project(client: ProcoreClient, company_id: int, project_id: int) -> Project:
    """Procore's Show Project; raises ``NotFound``/``PermissionDenied`` and the like."""
    raw = client.get_object(f"v1.0/projects/{int(project_id)}", {"company_id": company_id})
    project = _project(raw)
    if project is None:
        raise UnexpectedResponse(f"Show Project {project_id} answered without an id")
    return project


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


def list_albums(client: ProcoreClient, project_id: int) -> list[Album]:
    """The project's Photos albums (Procore's List Image Categories)."""
    albums = []
    for raw in client.get_pages("v1.0/image_categories", {"project_id": project_id}):
        album_id = as_int(raw.get("id"))
        if album_id is None:
            continue
        private = raw.get("private")
        albums.append(Album(id=album_id, name=str(raw.get("name") or ""),
                            count=as_int(raw.get("count")),
                            private=private if isinstance(private, bool) else None))
    return albums


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
    reachable, the destination exists, and, where a read can tell, may be filed into."""
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
        if folder.destination == "documents":  # the company's Documents
            _check_documents(client, folder, None, result)
        return
    project_id = folder.project_id
    try:
        project = show_project(client, company_id, project_id)
    except ProcoreError as exc:
        result.problems.append(describe_error(exc, f"project {project_id}"))
        return
    result.notes.append(f"project {project_id} {project.name!r}")
    if project.active is False:
        result.warnings.append(f"project {project_id} is inactive in Procore")
    if folder.destination == "documents":
        _check_documents(client, folder, project_id, result)
    elif folder.destination == "photos":
        _check_photos(client, folder, project_id, result)


def _check_documents(client: ProcoreClient, folder: FolderSettings, project_id: int | None,
                     result: FolderCheck) -> None:
    target = folder.documents_folder_id
    where = f"project {project_id}" if project_id is not None else "the company's Documents"
    subject = (f"documents_folder_id {target} in {where}" if target is not None
               else f"Documents root folder of {where}")
    try:
        raw = show_folder(client, project_id, target)
    except ProcoreError as exc:
        result.problems.append(describe_error(exc, subject))
        return
    name = str(raw.get("name") or "") if target is not None else "root"
    if raw.get("is_deleted"):
        result.problems.append(f"{subject} ({name!r}) is in Procore's recycle bin")
    elif raw.get("read_only") is True:
        result.problems.append(f"{subject} ({name!r}) is read-only for this service account")
    else:
        result.notes.append(f"Documents folder {name!r}" if target is not None
                            else "Documents root folder")


def _check_photos(client: ProcoreClient, folder: FolderSettings, project_id: int,
                  result: FolderCheck) -> None:
    try:
        albums = list_albums(client, project_id)
    except ProcoreError as exc:
        result.problems.append(describe_error(exc, f"Photos albums of project {project_id}"))
        return
    target = folder.photos_album_id
    if target is None:
        result.notes.append("Photos, no album (unsorted)")
        return
    album = next((a for a in albums if a.id == target), None)
    if album is None:
        result.problems.append(
            f"photos_album_id {target} is not among the {len(albums)} albums of project "
            f"{project_id} (`procore-hotfolder albums {project_id}` lists them)")
    else:
        result.notes.append(f"Photos album {album.name!r}")


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
