"""Photos: one image per file, in its album (by id, or by name: created when missing) or
unsorted; the project's albums."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

import structlog

from procore_hotfolder.config import FolderSettings, RoutingRule
from procore_hotfolder.errors import NotFound, ProcoreError, UnexpectedResponse, ValidationFailed
from procore_hotfolder.model import procore_name
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.answers import as_int, as_time
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.upload.destinations.procore_time import ProcoreClock, since
from procore_hotfolder.upload.destinations.protocol import (
    PLAN_VERSION,
    CheckReport,
    Filed,
    Render,
    Routed,
    Sent,
    stored_id,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PhotosTarget:
    """A Photos album by id, or by name (created when missing); neither: unsorted."""

    kind: ClassVar[str] = "photos"  # Photos.kind
    album_id: int | None = None
    album: str | None = None

    def describe(self) -> str:
        if self.album_id is not None:
            return f"Photos album {self.album_id}"
        return f"Photos album {self.album!r}" if self.album is not None else "Photos (unsorted)"

    def to_json(self) -> dict[str, Any]:
        return {"album_id": self.album_id, "album": self.album}


def _target(route: Routed) -> PhotosTarget:
    target = route.target
    if not isinstance(target, PhotosTarget):
        raise TypeError(f"a {target.kind} target given to Photos")
    return target


@dataclass(frozen=True)
class Album:
    """A Photos album (Procore's image category)."""

    id: int
    name: str
    count: int | None
    private: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "count": self.count, "private": self.private}


def list_albums(client: ProcoreClient, project_id: int) -> list[Album]:
    """The project's Photos albums (Procore's List Image Categories, every page)."""
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


@dataclass(frozen=True)
class PhotoPlan:
    """Create one image named ``name`` in album ``album_id`` (None: unsorted)."""

    kind: ClassVar[str] = "photos"  # Photos.kind
    name: str
    album_id: int | None
    size: int
    not_before: float | None  # Procore time before the send (None: a legacy row)
    album: str | None = None  # the album's name when the target names it (found or made)

    def to_json(self) -> dict[str, Any]:
        return {"v": PLAN_VERSION, "kind": self.kind, **asdict(self)}


class Albums:
    """Photos albums by name, each found or created once per project and name however many
    workers ask at once (a lock per name in this process) and kept in the journal.

    Procore documents no uniqueness of album names and no idempotency for Create Image
    Category, so an album is looked for (List Image Categories, every page) before it is
    created, the lowest id taken when several carry the name; a create whose answer is lost
    is looked for again before anything else happens (and a crash after it is found at the
    next look): never a second album of one name from us. Cost: once per project and name,
    one listing (a page per 100 albums), plus the create when it is missing."""

    def __init__(self, client: ProcoreClient, journal: Journal) -> None:
        self._client = client
        self._journal = journal
        self._guard = threading.Lock()
        self._locks: dict[tuple[int, str], threading.Lock] = {}

    def _lock(self, key: tuple[int, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def resolve(self, project_id: int, name: str) -> int:
        """The id of the project's album ``name``; raises the typed ``ProcoreError``."""
        with self._lock((project_id, name)):
            cached = self._journal.album_id(project_id, name)
            if cached is not None:
                return cached
            album_id = self._look(project_id, name)
            if album_id is None:
                album_id = self._create(project_id, name)
            self._journal.remember_album(project_id, name, album_id)
            log.info("photos_album_ready", project_id=project_id, album=name,
                     album_id=album_id)
            return album_id

    def forget(self, project_id: int, name: str) -> None:
        """Procore refused the cached album: look it up (or create it) afresh next time."""
        self._journal.forget_album(project_id, name)
        log.warning("photos_album_stale", project_id=project_id, album=name)

    def _look(self, project_id: int, name: str) -> int | None:
        ids = [a.id for a in list_albums(self._client, project_id) if a.name == name]
        return min(ids) if ids else None

    def _create(self, project_id: int, name: str) -> int:
        try:
            created = self._client.create_album(project_id, name)
        except ProcoreError as exc:
            if exc.not_run:
                raise
            # Refused, or the answer lost after the create ran: only a look tells.
            try:
                found = self._look(project_id, name)
            except ProcoreError:
                raise exc from None
            if found is None:
                raise
            log.info("photos_album_found_after_lost_answer", project_id=project_id,
                     album=name, album_id=found)
            return found
        album_id = as_int(created.get("id"))
        if album_id is None:
            raise UnexpectedResponse("Create Image Category answered without an id")
        return album_id


class Photos:
    """One image per file, in its album (or unsorted)."""

    kind: ClassVar[str] = "photos"
    warning: ClassVar[str | None] = None

    def __init__(self, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
                 ) -> None:
        self._client = client
        self._journal = journal
        self._clock = clock
        self._procore_time = ProcoreClock(client)
        self._albums = Albums(client, journal)
        # Two rows resolving at once must not both claim the same new image.
        self._claiming = threading.Lock()

    @classmethod
    def filer(cls, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
              ) -> Photos:
        return cls(client, journal, clock)

    @classmethod
    def check(cls, client: ProcoreClient, folder: FolderSettings, report: CheckReport
              ) -> None:
        """The album (``photos_album_id``) is among the project's albums; without one,
        photos go unsorted. (The configuration requires a ``project_id`` for Photos.)"""
        project_id = folder.project_id
        assert project_id is not None
        try:
            albums = list_albums(client, project_id)
        except ProcoreError as exc:
            report.refused(exc, f"Photos albums of project {project_id}")
            return
        target = folder.photos_album_id
        if target is None:
            report.note("Photos, no album (unsorted)")
            return
        album = next((a for a in albums if a.id == target), None)
        if album is None:
            report.problem(
                f"photos_album_id {target} is not among the {len(albums)} albums of project "
                f"{project_id} (`procore-hotfolder albums {project_id}` lists them)")
        else:
            report.note(f"Photos album {album.name!r}")

    @classmethod
    def folder_target(cls, folder: FolderSettings, relative: PurePosixPath) -> PhotosTarget:
        """``photos_album_id`` (unsorted when absent)."""
        return PhotosTarget(folder.photos_album_id)

    @classmethod
    def rule_target(cls, rule: RoutingRule, render: Render) -> PhotosTarget:
        """``photos_album_id``, or ``photos_album`` rendered (a name; empty: unsorted)."""
        return PhotosTarget(rule.photos_album_id, render(rule.photos_album) or None)

    @classmethod
    def load_target(cls, raw: Mapping[str, Any]) -> PhotosTarget:
        album = raw["album"]
        if album is not None and not isinstance(album, str):
            raise TypeError(f"not an album name: {album!r}")
        return PhotosTarget(stored_id(raw["album_id"]), album)

    def plan(self, record: FileRecord, route: Routed) -> PhotoPlan:
        target = _target(route)
        album_id = target.album_id
        if album_id is None and target.album is not None:
            assert route.project_id is not None  # configuration: Photos need a project
            album_id = self._albums.resolve(route.project_id, target.album)
        return PhotoPlan(name=route.name, album_id=album_id, size=record.observation.size,
                         not_before=self._procore_time.not_before(), album=target.album)

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> PhotoPlan:
        if raw.get("v") is None:  # written before plans were versioned
            return PhotoPlan(name=str(raw.get("name", procore_name(record.path))),
                             album_id=as_int(raw.get("album_id")),
                             size=record.observation.size, not_before=None)
        album = raw.get("album")
        return PhotoPlan(name=str(raw["name"]), album_id=as_int(raw.get("album_id")),
                         size=int(raw["size"]), not_before=raw.get("not_before"),
                         album=album if isinstance(album, str) else None)

    def send(self, record: FileRecord, route: Routed, plan: PhotoPlan) -> Sent:
        assert record.uuid is not None and route.project_id is not None
        try:
            image = self._client.create_image(route.project_id, record.uuid, plan.name,
                                              plan.album_id, description=route.description)
        except (NotFound, ValidationFailed):
            if plan.album is not None:
                # An album found or made by name (and kept) that Procore refuses now, deleted
                # perhaps: the next try (``retry``) looks it up afresh.
                self._albums.forget(route.project_id, plan.album)
            raise
        return Filed(as_int(image.get("id")))

    def find(self, record: FileRecord, route: Routed, plan: PhotoPlan) -> int | None:
        """An image of this album with this ``filename`` (and size) created since the send
        and not filed for another row: what our create made if it ran.

        Until that image is found the listing is read to its end, whatever order it comes
        in: Procore does not promise to honour ``sort`` or ``filters[created_at]``, and no
        order seen in a listing proves the rest of it older (equal timestamps say nothing;
        the order of concurrent creates' ids and ``created_at`` may disagree by a second).
        Cost, one API call per page of 100: with the date filter honoured, the album's
        images since ``not_before`` (usually one page; with the sort honoured too, ours is
        on the first); without it, up to the whole album."""
        assert route.project_id is not None
        start = since(plan.not_before, record)
        images = self._client.images_since(route.project_id, plan.album_id, start,
                                           self._procore_time.until(self._clock()))
        with self._claiming:
            for image in _created_since(images, start):
                if image.get("filename") != plan.name:
                    continue
                if as_int(image.get("size")) not in (None, plan.size):
                    continue
                if "image_category_id" in image and as_int(image["image_category_id"]) != \
                        plan.album_id:
                    continue
                image_id = as_int(image.get("id"))
                if image_id is None or self._journal.image_claimed(image_id, record.id):
                    continue
                return image_id
        return None


def _created_since(items: Iterable[Mapping[str, Any]], start: float
                   ) -> Iterator[Mapping[str, Any]]:
    """The items created at or after ``start`` (or whose ``created_at`` is unreadable), in
    the order given; every item is looked at, whatever the order."""
    for item in items:
        created = as_time(item.get("created_at"))
        if created is None or created >= start:
            yield item
