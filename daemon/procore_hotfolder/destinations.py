"""Filing a stored Upload in Procore: Documents (mirroring the drop folder's tree) or Photos.

Procore documents no idempotency token for files, file versions or images, so a create
whose answer is lost (timeout, dropped connection, 5xx) may or may not have run. Each
destination therefore works in three steps around the journal:

1. ``plan``: decide what to send and record, before sending, what is needed to recognise
   the result afterwards (a ``Plan``: a frozen value stored as versioned JSON in the
   journal's ``association`` column, with the row moved to ASSOCIATING);
2. ``send``: one create. A definite answer ends it (filed; or "send this other plan", e.g.
   a new version after a name clash; or "plan again", e.g. a cached folder that Procore
   deleted). Any other error leaves the row ASSOCIATING;
3. ``find``: after an unknown outcome, look for what a create that ran would have made.
   Found: filed. Not found: the row goes back to STORED and is planned and sent again.

Recognising "what a create that ran made" rests on Procore's clock. Before each send the
plan records ``not_before``: a time Procore's clock had certainly reached, the ``Date`` of its
latest answer plus the time elapsed here since (``ProcoreClient.procore_time_floor``; free:
it comes from answers we receive anyway). The create runs after the send, so what it makes
has ``created_at >= not_before``; both are compared at whole seconds, as Procore writes them
(``floor(created_at) >= floor(not_before)`` holds for anything made after ``not_before``).
An older photo or document of the same name, older by more than that second, is therefore
no proof. Why not ids, which grow too: they order records only against each other, and
before the send there is no record of ours to order against, so taking a "newest id" would
cost a listing before every send. What time cannot separate: a record of the same name
(and, for photos, the same size) made by someone else in the same album or folder within
about a second before our send, while our answer was lost. When the floor errs it errs
early (never late), and that can only widen this window, never make us miss our own record.

``Filing`` is what the uploader calls: it moves the journal row and logs.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import structlog

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import (
    JournalError,
    NameClash,
    NotFound,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.journal import FileRecord, Journal
from procore_hotfolder.model import FileState
from procore_hotfolder.procore import ProcoreClient

log = structlog.get_logger(__name__)

#: Version tag of the plans written now (``"v"`` in the journal's JSON).
PLAN_VERSION = 1
#: For plans written before ``not_before`` existed (unversioned rows): how far before the
#: row's last move (our clock) a record may be and still count as the result.
LEGACY_WINDOW = 300.0
#: Sends one ``associate`` call may make (a clash costs one more: create, then version).
MAX_SENDS = 3


def display_name(path: Path) -> str:
    """The file's name as valid UTF-8 (undecodable bytes become U+FFFD) for Procore."""
    return os.fsencode(path.name).decode("utf-8", "replace")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> float | None:
    """Procore's ISO-8601 ``created_at`` as Unix seconds (None when unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _is_name_clash(error: ValidationFailed) -> bool:
    """A 422 that may say "this name is taken" (Procore: ``name has already been taken``)."""
    text = error.message.lower()
    return "taken" in text or ("name" in text and "exist" in text)


def _live(entry: Mapping[str, Any]) -> bool:
    """Not in Procore's recycle bin."""
    return not entry.get("is_deleted")


# --- plans -----------------------------------------------------------------------------------


class Plan(Protocol):
    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PhotoPlan:
    """Create one image named ``name`` in album ``album_id`` (None: unsorted)."""

    kind: ClassVar[str] = "photos"
    name: str
    album_id: int | None
    size: int
    not_before: float | None  # Procore time before the send (None: a legacy row)

    def to_json(self) -> dict[str, Any]:
        return {"v": PLAN_VERSION, "kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class DocumentPlan:
    """Create document ``name`` in folder ``parent_id`` (None: the root), or, with
    ``version_of``, add a version to that document."""

    kind: ClassVar[str] = "documents"
    parent_id: int | None
    where: str  # the Procore folder for messages: "Documents/a/b" or "folder 42/a"
    name: str
    size: int
    unique_name: bool
    version_of: int | None
    versions_before: int  # the document's latest version number when the plan was made
    not_before: float | None
    mirrored: bool  # parent_id is a mirrored (cached) folder: a 404 means it went stale

    def to_json(self) -> dict[str, Any]:
        return {"v": PLAN_VERSION, "kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Filed:
    """The send filed the Upload as Procore resource ``resource_id``."""

    resource_id: int | None


@dataclass(frozen=True)
class PlanAgain:
    """Nothing was filed and the plan no longer holds (a folder went): plan afresh."""

    why: str


Sent = Filed | PlanAgain | PhotoPlan | DocumentPlan  # a plan: send it next


class Destination(Protocol):
    """How one kind of destination plans, sends and finds out after a lost answer."""

    def plan(self, record: FileRecord, folder: FolderSettings) -> Plan: ...

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> Plan: ...

    def send(self, record: FileRecord, folder: FolderSettings, plan: Any) -> Sent: ...

    def find(self, record: FileRecord, folder: FolderSettings, plan: Any) -> int | None: ...


class _Clock:
    """``not_before`` values (Procore's clock floor) and listing bounds."""

    def __init__(self, client: ProcoreClient) -> None:
        self._client = client

    def not_before(self) -> float | None:
        return self._client.procore_time_floor()

    def until(self, local_now: float) -> float:
        """An upper bound for listings: a day past Procore's (or our) present."""
        return (self._client.procore_time_floor() or local_now) + 86400.0


def _since(plan_not_before: float | None, record: FileRecord) -> float:
    """The whole second from which a record may be the result of the plan's send."""
    if plan_not_before is not None:
        return float(math.floor(plan_not_before))
    # A legacy row: our clock and a wide window.
    return float(math.floor(record.updated_at - LEGACY_WINDOW))


# --- Photos ----------------------------------------------------------------------------------


class Photos:
    """One image per file, in the folder's album."""

    def __init__(self, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
                 ) -> None:
        self._client = client
        self._journal = journal
        self._clock = clock
        self._procore_time = _Clock(client)
        # Two rows resolving at once must not both claim the same new image.
        self._claiming = threading.Lock()

    def plan(self, record: FileRecord, folder: FolderSettings) -> PhotoPlan:
        return PhotoPlan(name=display_name(record.path), album_id=folder.photos_album_id,
                         size=record.observation.size,
                         not_before=self._procore_time.not_before())

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> PhotoPlan:
        if raw.get("v") is None:  # written before plans were versioned
            return PhotoPlan(name=str(raw.get("name", display_name(record.path))),
                             album_id=_int(raw.get("album_id")),
                             size=record.observation.size, not_before=None)
        return PhotoPlan(name=str(raw["name"]), album_id=_int(raw.get("album_id")),
                         size=int(raw["size"]), not_before=raw.get("not_before"))

    def send(self, record: FileRecord, folder: FolderSettings, plan: PhotoPlan) -> Sent:
        assert record.uuid is not None and folder.project_id is not None
        image = self._client.create_image(folder.project_id, record.uuid, plan.name,
                                          plan.album_id)
        return Filed(_int(image.get("id")))

    def find(self, record: FileRecord, folder: FolderSettings, plan: PhotoPlan) -> int | None:
        """An image of this album with this ``filename`` (and size) created since the send
        and not filed for another row: what our create made if it ran."""
        assert folder.project_id is not None
        since = _since(plan.not_before, record)
        images = self._client.images_since(folder.project_id, plan.album_id, since,
                                           self._procore_time.until(self._clock()))
        with self._claiming:
            for image in _newer_than(images, since):
                if image.get("filename") != plan.name:
                    continue
                if _int(image.get("size")) not in (None, plan.size):
                    continue
                if "image_category_id" in image and _int(image["image_category_id"]) != \
                        plan.album_id:
                    continue
                image_id = _int(image.get("id"))
                if image_id is None or self._journal.image_claimed(image_id, record.id):
                    continue
                return image_id
        return None


def _newer_than(items: Iterator[Mapping[str, Any]], since: float
                ) -> Iterator[Mapping[str, Any]]:
    """The items created at or after ``since``. Stops at an older item once the items are
    seen to come newest first (``sort=-created_at`` honoured: an item no newer than the one
    before it, and none newer); a server that ignored both the filter and the sort is read
    to the end."""
    previous: float | None = None
    descending: bool | None = None  # unknown until two dated items were seen
    for item in items:
        created = _time(item.get("created_at"))
        if created is not None:
            if previous is not None and created > previous:
                descending = False
            elif previous is not None and descending is None:
                descending = True
            previous = created
        if created is not None and created < since:
            if descending:
                return
            continue
        yield item


# --- Documents -------------------------------------------------------------------------------


def _scope(project_id: int | None) -> int:
    """The folder cache's key for a project's Documents, 0 for the company's (Procore's
    project ids are positive)."""
    return 0 if project_id is None else project_id


class _FolderTree:
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
            if not _is_name_clash(exc):
                raise
            listing = self._client.folder_listing(project_id, parent_id, files=False)
            for entry in listing.get("folders") or []:
                if isinstance(entry, Mapping) and entry.get("name") == name and _live(entry):
                    found = _int(entry.get("id"))
                    if found is not None:
                        return found
            raise
        folder_id = _int(created.get("id"))
        assert folder_id is not None  # _created checked it
        return folder_id

    def forget(self, project_id: int | None, folder_id: int) -> None:
        gone = self._journal.forget_folder(_scope(project_id), folder_id)
        log.warning("documents_folder_stale", project_id=project_id, folder_id=folder_id,
                    forgotten=gone)


class Documents:
    """One document per file (or one version of the same-named document), in the Procore
    folder that mirrors the file's subfolder. Two calls a file when nothing clashes: the
    Upload and an optimistic create (``unique_name`` false); a clash or an unknown outcome
    costs one listing, shrunk to the folder's files at their latest version."""

    def __init__(self, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
                 ) -> None:
        self._client = client
        self._clock = clock
        self._procore_time = _Clock(client)
        self._tree = _FolderTree(client, journal)

    def plan(self, record: FileRecord, folder: FolderSettings) -> DocumentPlan:
        names: list[str] = []
        if folder.mirror_subfolders:
            relative = record.path.relative_to(record.folder).parent
            names = [display_name(Path(part)) for part in relative.parts]
        try:
            parent = self._tree.resolve(folder.project_id, folder.documents_folder_id, names)
        except NotFound:
            if not names:
                raise
            # A cached folder went stale (forgotten by now): create/find the path again.
            parent = self._tree.resolve(folder.project_id, folder.documents_folder_id, names)
        base = ("Documents" if folder.project_id is not None else "company Documents")
        if folder.documents_folder_id is not None:
            base = f"folder {folder.documents_folder_id}"
        return DocumentPlan(
            parent_id=parent, where="/".join([base, *names]), name=display_name(record.path),
            size=record.observation.size, unique_name=folder.on_name_clash == "rename",
            version_of=None, versions_before=0, not_before=self._procore_time.not_before(),
            mirrored=bool(names))

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> DocumentPlan:
        if raw.get("v") is None:  # written before plans were versioned
            parent = _int(raw.get("parent_id"))
            return DocumentPlan(
                parent_id=parent, where=f"folder {parent}", name=str(raw.get("name", "")),
                size=record.observation.size, unique_name=False,
                version_of=_int(raw.get("existing_file_id")),
                versions_before=int(raw.get("versions_before") or 0), not_before=None,
                mirrored=False)
        return DocumentPlan(**{k: v for k, v in raw.items() if k not in ("v", "kind")})

    def send(self, record: FileRecord, folder: FolderSettings, plan: DocumentPlan) -> Sent:
        assert record.uuid is not None
        project = folder.project_id
        try:
            if plan.version_of is not None:
                self._client.create_file_version(project, plan.version_of, record.uuid)
                return Filed(plan.version_of)
            created = self._client.create_document(project, plan.parent_id, plan.name,
                                                   record.uuid, unique_name=plan.unique_name)
            return Filed(_int(created.get("id")))
        except NotFound:
            if plan.version_of is not None:
                return PlanAgain("the document to version is gone")
            if not plan.mirrored or plan.parent_id is None:
                raise
            self._tree.forget(project, plan.parent_id)
            return PlanAgain("the cached Procore folder is gone")
        except ValidationFailed as exc:
            if plan.version_of is not None or plan.unique_name or not _is_name_clash(exc):
                raise
            return self._after_clash(folder, plan)

    def _after_clash(self, folder: FolderSettings, plan: DocumentPlan) -> Sent:
        """Procore refused the name (nothing was created): look at what holds it."""
        entries = self._named(folder.project_id, plan.parent_id, plan.name)
        live = [e for e in entries if _live(e)]
        if not live:
            if entries:
                # Only a document in the recycle bin holds the name: never version that;
                # let Procore give the new document a free name.
                log.warning("document_name_held_by_recycled", where=plan.where, name=plan.name)
                return _replace(plan, unique_name=True,
                                not_before=self._procore_time.not_before())
            return PlanAgain("the clashing document is gone")
        if folder.on_name_clash == "fail":
            raise NameClash(f"Procore folder {plan.where} already has a document named "
                            f"{plan.name!r} (on_name_clash = fail)", status=422)
        existing = live[0]
        file_id = _int(existing.get("id"))
        if file_id is None:
            return PlanAgain("the clashing document has no id")
        return _replace(plan, version_of=file_id, versions_before=_latest_number(existing),
                        not_before=self._procore_time.not_before())

    def _named(self, project_id: int | None, parent_id: int | None, name: str
               ) -> list[Mapping[str, Any]]:
        listing = self._client.folder_listing(project_id, parent_id, folders=False)
        return [e for e in listing.get("files") or []
                if isinstance(e, Mapping) and e.get("name") == name]

    def find(self, record: FileRecord, folder: FolderSettings, plan: DocumentPlan
             ) -> int | None:
        """What our create (or version) made, if it ran."""
        assert record.uuid is not None
        since = _since(plan.not_before, record)
        try:
            listing = self._client.folder_listing(folder.project_id, plan.parent_id,
                                                  folders=False)
        except NotFound:
            if not plan.mirrored or plan.parent_id is None:
                raise
            self._tree.forget(folder.project_id, plan.parent_id)
            return None  # the folder is gone, and whatever was filed in it with it
        for entry in listing.get("files") or []:
            if not isinstance(entry, Mapping) or not _live(entry):
                continue
            ours = record.uuid in repr(entry)  # should Procore ever show upload uuids
            if plan.version_of is not None:
                if _int(entry.get("id")) == plan.version_of and (
                        ours or _latest_number(entry) > plan.versions_before):
                    return plan.version_of
                continue
            if not _same_name(entry.get("name"), plan.name, renamed=plan.unique_name):
                continue
            if _int(entry.get("size")) not in (None, plan.size) and not ours:
                continue
            created = _time(entry.get("created_at"))
            if ours or created is None or created >= since:
                return _int(entry.get("id"))
        return None


def _replace(plan: DocumentPlan, **changes: Any) -> DocumentPlan:
    return DocumentPlan(**{**asdict(plan), **changes})


def _latest_number(entry: Mapping[str, Any]) -> int:
    """The latest version number of a listed document (its ``file_versions``' highest
    ``number``; their count when Procore gives no numbers)."""
    versions = [v for v in entry.get("file_versions") or [] if isinstance(v, Mapping)]
    numbers = [n for n in (_int(v.get("number")) for v in versions) if n is not None]
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


# --- the uploader's entry points ---------------------------------------------------------------


class Filing:
    """Files stored Uploads through their folder's destination, moving the journal row."""

    def __init__(self, journal: Journal, client: ProcoreClient, *,
                 clock: Callable[[], float]) -> None:
        self._journal = journal
        self._clock = clock
        self._destinations: dict[str, Destination] = {
            "documents": Documents(client, journal, clock),
            "photos": Photos(client, journal, clock),
        }

    def _for(self, folder: FolderSettings) -> Destination:
        return self._destinations[folder.destination]

    def associate(self, record: FileRecord, folder: FolderSettings, bound: Any) -> FileRecord:
        """STORED → ASSOCIATED (filed), or back to STORED (plan again later).

        Errors propagate; with the row ASSOCIATING when the outcome of a send is unknown
        (the next call of ``resolve`` finds out before anything is sent again).
        """
        destination = self._for(folder)
        plan = destination.plan(record, folder)
        record = self._journal.move(record, FileState.ASSOCIATING, self._clock(),
                                    association=plan.to_json())
        for _ in range(MAX_SENDS):
            # An error propagates with the row ASSOCIATING; the outcome policy moves it back
            # to STORED when the refusal was certain (a 4xx), else ``resolve`` looks first.
            sent = destination.send(record, folder, plan)
            if isinstance(sent, Filed):
                bound.info("upload_filed", uuid=record.uuid, kind=plan.kind,
                           resource_id=sent.resource_id)
                return self._journal.move(record, FileState.ASSOCIATED, self._clock(),
                                          resource_id=sent.resource_id)
            if isinstance(sent, PlanAgain):
                bound.info("association_replanned", uuid=record.uuid, why=sent.why)
                return self._journal.move(record, FileState.STORED, self._clock(),
                                          association=None)
            plan = sent  # certainly nothing filed yet: record the next request, then send
            bound.info("association_next", uuid=record.uuid, plan=plan.to_json())
            record = self._journal.move(record, FileState.ASSOCIATING, self._clock(),
                                        association=plan.to_json())
        raise UploadExpired("association kept changing its plan; retrying")

    def resolve(self, record: FileRecord, folder: FolderSettings, bound: Any) -> FileRecord:
        """ASSOCIATING after an unknown outcome: ASSOCIATED when what the send would have
        made is found, else STORED (to be sent again). Never sends."""
        destination = self._for(folder)
        if record.association is None:
            raise JournalError(f"journal row {record.id} is associating without a plan")
        plan = destination.load(record.association, record)
        found = destination.find(record, folder, plan)
        if found is not None:
            bound.info("association_confirmed", uuid=record.uuid, resource_id=found)
            return self._journal.move(record, FileState.ASSOCIATED, self._clock(),
                                      resource_id=found)
        bound.info("association_not_found_retrying", uuid=record.uuid)
        return self._journal.move(record, FileState.STORED, self._clock(), association=None)
