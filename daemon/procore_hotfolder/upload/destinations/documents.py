"""Documents: one document per file (or a new version of the same-named one), in the Procore
folder its target names: a path below a base folder (the project's Documents root, or a
folder id), each folder of it created when missing (the drop folder's subfolders, mirrored,
or a routing rule's ``documents_path``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, cast

import structlog

from procore_hotfolder.config import FolderSettings, NameClash, RoutingRule
from procore_hotfolder.config.rules import NAME_CLASHES
from procore_hotfolder.errors import NameClash as NameClashError
from procore_hotfolder.errors import NotFound, ProcoreError, ValidationFailed
from procore_hotfolder.model import procore_name
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.answers import as_int, as_time, is_live, is_name_clash
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.upload.destinations.folders import FolderTree
from procore_hotfolder.upload.destinations.procore_time import ProcoreClock, since
from procore_hotfolder.upload.destinations.protocol import (
    PLAN_VERSION,
    CheckReport,
    Filed,
    PlanAgain,
    Render,
    Routed,
    Sent,
    stored_id,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DocumentsTarget:
    """A Documents folder: ``path`` (folder names, each created when missing) below
    ``base_id`` (a folder id; None: the Documents root of the project, or of the company),
    and what a name already filed there leads to."""

    kind: ClassVar[str] = "documents"  # Documents.kind
    base_id: int | None
    path: tuple[str, ...] = ()
    on_name_clash: NameClash = "version"

    def describe(self) -> str:
        base = "Documents" if self.base_id is None else f"folder {self.base_id}"
        return "/".join([base, *self.path])

    def to_json(self) -> dict[str, Any]:
        return {"folder_id": self.base_id, "path": list(self.path),
                "on_name_clash": self.on_name_clash}


@dataclass(frozen=True)
class DocumentPlan:
    """Create document ``name`` in folder ``parent_id`` (None: the root), or, with
    ``version_of``, add a version to that document."""

    kind: ClassVar[str] = "documents"  # Documents.kind
    parent_id: int | None
    where: str  # the Procore folder for messages: "Documents/a/b" or "folder 42/a"
    name: str
    size: int
    unique_name: bool
    version_of: int | None
    versions_before: int  # the document's latest version number when the plan was made
    not_before: float | None
    mirrored: bool  # parent_id is a folder of the target's path (cached): a 404 means stale

    def to_json(self) -> dict[str, Any]:
        return {"v": PLAN_VERSION, "kind": self.kind, **asdict(self)}


def _target(route: Routed) -> DocumentsTarget:
    target = route.target
    if not isinstance(target, DocumentsTarget):
        raise TypeError(f"a {target.kind} target given to Documents")
    return target


class Documents:
    """One document per file (or one version of the same-named document), in the Procore
    folder its target names. Two calls a file when nothing clashes: the Upload and an
    optimistic create (``unique_name`` false); a clash or an unknown outcome costs one
    listing, shrunk to the folder's files at their latest version."""

    kind: ClassVar[str] = "documents"
    warning: ClassVar[str | None] = None

    def __init__(self, client: ProcoreClient, journal: Journal) -> None:
        self._client = client
        self._procore_time = ProcoreClock(client)
        self._tree = FolderTree(client, journal)

    @classmethod
    def filer(cls, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
              ) -> Documents:
        return cls(client, journal)

    @classmethod
    def check(cls, client: ProcoreClient, folder: FolderSettings, report: CheckReport
              ) -> None:
        """The target folder (``documents_folder_id``, else the root) of the project's
        Documents (the company's without a ``project_id``): there, not in the recycle bin,
        not read-only (Show Folder)."""
        target = folder.documents_folder_id
        where = (f"project {folder.project_id}" if folder.project_id is not None
                 else "the company's Documents")
        subject = (f"documents_folder_id {target} in {where}" if target is not None
                   else f"Documents root folder of {where}")
        try:
            raw = client.folder_listing(folder.project_id, target, files=False)
        except ProcoreError as exc:
            report.refused(exc, subject)
            return
        name = str(raw.get("name") or "") if target is not None else "root"
        if raw.get("is_deleted"):
            report.problem(f"{subject} ({name!r}) is in Procore's recycle bin")
        elif raw.get("read_only") is True:
            report.problem(f"{subject} ({name!r}) is read-only for this service account")
        else:
            report.note(f"Documents folder {name!r}" if target is not None
                        else "Documents root folder")

    @classmethod
    def folder_target(cls, folder: FolderSettings, relative: PurePosixPath
                      ) -> DocumentsTarget:
        """``documents_folder_id`` (the root when absent), the file's subfolders below it
        unless ``mirror_subfolders`` is false."""
        names = relative.parent.parts if folder.mirror_subfolders else ()
        return DocumentsTarget(folder.documents_folder_id,
                               tuple(procore_name(Path(part)) for part in names),
                               folder.on_name_clash)

    @classmethod
    def rule_target(cls, rule: RoutingRule, render: Render) -> DocumentsTarget:
        """``documents_path`` rendered, split at ``/`` (each folder name trimmed, empty ones
        dropped: ``Scans/{parent}`` at the top is ``Scans``), below ``documents_folder_id``
        (the root when absent)."""
        parts = (render(rule.documents_path) or "").split("/")
        return DocumentsTarget(rule.documents_folder_id,
                               tuple(p.strip() for p in parts if p.strip()),
                               rule.on_name_clash)

    @classmethod
    def load_target(cls, raw: Mapping[str, Any]) -> DocumentsTarget:
        clash = raw["on_name_clash"]
        if clash not in NAME_CLASHES:
            raise ValueError(f"unknown on_name_clash {clash!r}")
        path = raw["path"]
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise TypeError(f"not a folder path: {path!r}")
        return DocumentsTarget(stored_id(raw["folder_id"]), tuple(path),
                               cast(NameClash, clash))

    def plan(self, record: FileRecord, route: Routed) -> DocumentPlan:
        target = _target(route)
        names = list(target.path)
        try:
            parent = self._tree.resolve(route.project_id, target.base_id, names)
        except NotFound:
            if not names:
                raise
            # A cached folder went stale (forgotten by now): create/find the path again.
            parent = self._tree.resolve(route.project_id, target.base_id, names)
        base = ("Documents" if route.project_id is not None else "company Documents")
        if target.base_id is not None:
            base = f"folder {target.base_id}"
        return DocumentPlan(
            parent_id=parent, where="/".join([base, *names]), name=route.name,
            size=record.observation.size, unique_name=target.on_name_clash == "rename",
            version_of=None, versions_before=0, not_before=self._procore_time.not_before(),
            mirrored=bool(names))

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> DocumentPlan:
        if raw.get("v") is None:  # written before plans were versioned
            parent = as_int(raw.get("parent_id"))
            return DocumentPlan(
                parent_id=parent, where=f"folder {parent}", name=str(raw.get("name", "")),
                size=record.observation.size, unique_name=False,
                version_of=as_int(raw.get("existing_file_id")),
                versions_before=int(raw.get("versions_before") or 0), not_before=None,
                mirrored=False)
        return DocumentPlan(**{k: v for k, v in raw.items() if k not in ("v", "kind")})

    def send(self, record: FileRecord, route: Routed, plan: DocumentPlan) -> Sent:
        assert record.uuid is not None
        project = route.project_id
        try:
            if plan.version_of is not None:
                self._client.create_file_version(project, plan.version_of, record.uuid)
                return Filed(plan.version_of)
            created = self._client.create_document(project, plan.parent_id, plan.name,
                                                   record.uuid, unique_name=plan.unique_name,
                                                   description=route.description)
            return Filed(as_int(created.get("id")))
        except NotFound:
            if plan.version_of is not None:
                return PlanAgain("the document to version is gone")
            if not plan.mirrored or plan.parent_id is None:
                raise
            self._tree.forget(project, plan.parent_id)
            return PlanAgain("the cached Procore folder is gone")
        except ValidationFailed as exc:
            if plan.version_of is not None or plan.unique_name or not is_name_clash(exc):
                raise
            return self._after_clash(route, plan)

    def _after_clash(self, route: Routed, plan: DocumentPlan) -> Sent:
        """Procore refused the name (nothing was created): look at what holds it."""
        entries = self._named(route.project_id, plan.parent_id, plan.name)
        live = [e for e in entries if is_live(e)]
        if not live:
            if entries:
                # Only a document in the recycle bin holds the name: never version that;
                # let Procore give the new document a free name.
                log.warning("document_name_held_by_recycled", where=plan.where, name=plan.name)
                return _replace(plan, unique_name=True,
                                not_before=self._procore_time.not_before())
            return PlanAgain("the clashing document is gone")
        if _target(route).on_name_clash == "fail":
            raise NameClashError(f"Procore folder {plan.where} already has a document named "
                            f"{plan.name!r} (on_name_clash = fail)", status=422)
        existing = live[0]
        file_id = as_int(existing.get("id"))
        if file_id is None:
            return PlanAgain("the clashing document has no id")
        return _replace(plan, version_of=file_id, versions_before=_latest_number(existing),
                        not_before=self._procore_time.not_before())

    def _named(self, project_id: int | None, parent_id: int | None, name: str
               ) -> list[Mapping[str, Any]]:
        listing = self._client.folder_listing(project_id, parent_id, folders=False)
        return [e for e in listing.get("files") or []
                if isinstance(e, Mapping) and e.get("name") == name]

    def find(self, record: FileRecord, route: Routed, plan: DocumentPlan) -> int | None:
        """What our create (or version) made, if it ran."""
        assert record.uuid is not None
        start = since(plan.not_before, record)
        try:
            listing = self._client.folder_listing(route.project_id, plan.parent_id,
                                                  folders=False)
        except NotFound:
            if not plan.mirrored or plan.parent_id is None:
                raise
            self._tree.forget(route.project_id, plan.parent_id)
            return None  # the folder is gone, and whatever was filed in it with it
        for entry in listing.get("files") or []:
            if not isinstance(entry, Mapping) or not is_live(entry):
                continue
            ours = record.uuid in repr(entry)  # should Procore ever show upload uuids
            if plan.version_of is not None:
                if as_int(entry.get("id")) == plan.version_of and (
                        ours or _latest_number(entry) > plan.versions_before):
                    return plan.version_of
                continue
            if not _same_name(entry.get("name"), plan.name, renamed=plan.unique_name):
                continue
            if as_int(entry.get("size")) not in (None, plan.size) and not ours:
                continue
            created = as_time(entry.get("created_at"))
            if ours or created is None or created >= start:
                return as_int(entry.get("id"))
        return None


def _replace(plan: DocumentPlan, **changes: Any) -> DocumentPlan:
    return DocumentPlan(**{**asdict(plan), **changes})


def _latest_number(entry: Mapping[str, Any]) -> int:
    """The latest version number of a listed document (its ``file_versions``' highest
    ``number``; their count when Procore gives no numbers)."""
    versions = [v for v in entry.get("file_versions") or [] if isinstance(v, Mapping)]
    numbers = [n for n in (as_int(v.get("number")) for v in versions) if n is not None]
    return max(numbers) if numbers else len(versions)


def _same_name(listed: Any, ours: str, *, renamed: bool) -> bool:
    """``listed`` is ``ours``, or (``renamed``) a name Procore may have made of it: the same
    stem and extension with something in between ("plan (1).pdf")."""
    if not isinstance(listed, str):
        return False
    if listed == ours or not renamed:
        return listed == ours
    stem, dot, ext = ours.rpartition(".")
    if not dot or not stem:
        stem, ext = ours, ""
    pattern = re.escape(stem) + r".+" + (re.escape("." + ext) if ext else "")
    return re.fullmatch(pattern, listed) is not None
