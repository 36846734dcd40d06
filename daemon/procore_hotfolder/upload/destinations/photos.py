"""Photos: one image per file, in the folder's album (or unsorted); the project's albums."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import ProcoreError
from procore_hotfolder.model import procore_name
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.answers import as_int, as_time
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.upload.destinations.procore_time import ProcoreClock, since
from procore_hotfolder.upload.destinations.protocol import PLAN_VERSION, CheckReport, Filed, Sent


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

    def to_json(self) -> dict[str, Any]:
        return {"v": PLAN_VERSION, "kind": self.kind, **asdict(self)}


class Photos:
    """One image per file, in the folder's album."""

    kind: ClassVar[str] = "photos"
    warning: ClassVar[str | None] = None

    def __init__(self, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
                 ) -> None:
        self._client = client
        self._journal = journal
        self._clock = clock
        self._procore_time = ProcoreClock(client)
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

    def plan(self, record: FileRecord, folder: FolderSettings) -> PhotoPlan:
        return PhotoPlan(name=procore_name(record.path), album_id=folder.photos_album_id,
                         size=record.observation.size,
                         not_before=self._procore_time.not_before())

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> PhotoPlan:
        if raw.get("v") is None:  # written before plans were versioned
            return PhotoPlan(name=str(raw.get("name", procore_name(record.path))),
                             album_id=as_int(raw.get("album_id")),
                             size=record.observation.size, not_before=None)
        return PhotoPlan(name=str(raw["name"]), album_id=as_int(raw.get("album_id")),
                         size=int(raw["size"]), not_before=raw.get("not_before"))

    def send(self, record: FileRecord, folder: FolderSettings, plan: PhotoPlan) -> Sent:
        assert record.uuid is not None and folder.project_id is not None
        image = self._client.create_image(folder.project_id, record.uuid, plan.name,
                                          plan.album_id)
        return Filed(as_int(image.get("id")))

    def find(self, record: FileRecord, folder: FolderSettings, plan: PhotoPlan) -> int | None:
        """An image of this album with this ``filename`` (and size) created since the send
        and not filed for another row: what our create made if it ran.

        Until that image is found the listing is read to its end, whatever order it comes
        in: Procore does not promise to honour ``sort`` or ``filters[created_at]``, and no
        order seen in a listing proves the rest of it older (equal timestamps say nothing;
        the order of concurrent creates' ids and ``created_at`` may disagree by a second).
        Cost, one API call per page of 100: with the date filter honoured, the album's
        images since ``not_before`` (usually one page; with the sort honoured too, ours is
        on the first); without it, up to the whole album."""
        assert folder.project_id is not None
        start = since(plan.not_before, record)
        images = self._client.images_since(folder.project_id, plan.album_id, start,
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
