"""The pure parts of filing: which listed record may be ours, and the plans' JSON; and
Photos' look after a lost answer against a List Images that honours neither sort nor date
filter."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.config import Config, parse_config
from procore_hotfolder.config import Destination as ConfigDestination
from procore_hotfolder.errors import NetworkError, NotFound, ProcoreError, ValidationFailed
from procore_hotfolder.files import sourcefile
from procore_hotfolder.model import FileState, utc_iso
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.destinations import (
    KINDS,
    PLAN_VERSION,
    DocumentPlan,
    Filing,
    PhotoPlan,
    Photos,
    PhotosTarget,
    destination_for,
    log_warnings,
)
from procore_hotfolder.upload.destinations.documents import _latest_number, _same_name
from procore_hotfolder.upload.destinations.photos import Albums, _created_since
from procore_hotfolder.upload.routing import Route, folder_route


def _items(*created: str) -> Iterator[Mapping[str, Any]]:
    return iter([{"id": i, "created_at": c} for i, c in enumerate(created)])


T = 1_800_000_000  # 2027-01-15T08:00:00Z


def test_every_item_is_looked_at_whatever_the_order() -> None:
    """No order proves the rest older: equal timestamps (two items in one second) least of
    all, and a strictly older item neither."""
    listed = _items("2027-01-15T07:59:00Z", "2027-01-15T07:59:00Z", "2027-01-15T07:58:00Z",
                    "2027-01-15T08:00:05Z", "2027-01-15T08:00:00Z", "2027-01-15T07:00:00Z",
                    "2027-01-15T09:00:00Z", "not a time")
    assert [i["id"] for i in _created_since(listed, T)] == [3, 4, 6, 7]


class _Listing:
    """List Images that honours neither ``sort`` nor ``filters[created_at]`` (Procore
    promises neither): every image of the album, in the order given."""

    def __init__(self, images: list[dict[str, Any]]) -> None:
        self.images = images

    def procore_time_floor(self) -> float | None:
        return None

    def images_since(self, project_id: int, album_id: int | None, since: float, until: float
                     ) -> Iterator[Mapping[str, Any]]:
        assert (project_id, album_id, since) == (3, 5, T)
        return iter(self.images)


def _image(image_id: int, created: float, name: str = "IMG_0001.jpg", size: int = 1234
           ) -> dict[str, Any]:
    return {"id": image_id, "filename": name, "size": size, "image_category_id": 5,
            "created_at": utc_iso(created)}


# The album after a lost answer to our Create Image (sent at T + 0.4, Procore's clock):
# three older images of the same name and size made in one second, one made in the second
# of our send, ours, and one of the same name but another size (someone else's).
ALBUM = [_image(1, T - 100), _image(2, T - 100), _image(3, T - 100),
         _image(4, T, name="other.jpg"), _image(5, T + 1), _image(6, T + 1, size=99)]
ORDERS = {
    "oldest-first": [1, 2, 3, 4, 5, 6],
    "newest-first": [6, 5, 4, 3, 2, 1],
    "shuffled": [2, 3, 6, 1, 5, 4],
    "older-last": [4, 6, 5, 1, 2, 3],
}


@pytest.mark.parametrize("order", list(ORDERS.values()), ids=list(ORDERS))
def test_a_lost_create_image_is_found_whatever_order_list_images_answers_in(
        tmp_path: Path, order: list[int]) -> None:
    config = parse_config(
        {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                     "company_id": 1, "client_id": "id"},
         "daemon": {"state_dir": str(tmp_path / "state")},
         "folders": [{"path": str(tmp_path / "drop"), "destination": "photos",
                      "project_id": 3, "photos_album_id": 5}]},
        base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})
    folder = config.folders[0]
    folder.path.mkdir()
    photo = folder.path / "IMG_0001.jpg"
    photo.write_bytes(b"\xff\xd8" * 617)
    observation = sourcefile.observe(photo)
    assert observation is not None
    journal = Journal.open(config.daemon.state_dir)
    try:
        [record] = journal.enqueue([(folder.path, photo, observation)], T)
        by_id = {i["id"]: i for i in ALBUM}
        listing = _Listing([by_id[n] for n in order])
        photos = Photos(listing, journal, lambda: T + 5.0)  # type: ignore[arg-type]
        plan = PhotoPlan(name="IMG_0001.jpg", album_id=5, size=1234, not_before=T + 0.4)
        assert photos.find(record, folder_route(folder, "IMG_0001.jpg"), plan) == 5
    finally:
        journal.close()


def test_renamed_names_match_only_when_procore_may_have_renamed() -> None:
    assert _same_name("plan.pdf", "plan.pdf", renamed=False)
    assert not _same_name("plan (1).pdf", "plan.pdf", renamed=False)
    assert _same_name("plan (1).pdf", "plan.pdf", renamed=True)
    assert not _same_name("plan (1).dwg", "plan.pdf", renamed=True)
    assert not _same_name("other.pdf", "plan.pdf", renamed=True)
    assert _same_name("README (2)", "README", renamed=True)


def test_latest_version_number_from_numbers_else_count() -> None:
    assert _latest_number({"file_versions": [{"number": 3}]}) == 3  # latest only
    assert _latest_number({"file_versions": [{}, {}]}) == 2
    assert _latest_number({}) == 0



def test_plans_carry_their_version_and_kind() -> None:
    photo = PhotoPlan(name="a.jpg", album_id=7, size=10, not_before=1.5)
    assert photo.to_json() == {"v": PLAN_VERSION, "kind": "photos", "name": "a.jpg",
                               "album_id": 7, "size": 10, "not_before": 1.5, "album": None}
    document = DocumentPlan(parent_id=None, where="Documents", name="x.pdf", size=1,
                            unique_name=False, version_of=None, versions_before=0,
                            not_before=None, mirrored=False)
    raw = document.to_json()
    assert raw["v"] == PLAN_VERSION and raw["kind"] == "documents"
    assert DocumentPlan(**{k: v for k, v in raw.items() if k not in ("v", "kind")}) == document


# --- the destination seam ------------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[3] / "daemon" / "procore_hotfolder"


def _folders_config(tmp_path: Path) -> Config:
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state")},
           "folders": [{"path": str(tmp_path / kind), "destination": kind, "project_id": 7}
                       for kind in ("documents", "photos", "none")]}
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})


def test_every_destination_the_configuration_accepts_is_a_class_here() -> None:
    assert set(KINDS) == set(get_args(ConfigDestination))
    assert all(destination.kind == name for name, destination in KINDS.items())


def test_no_module_outside_destinations_compares_destination_names() -> None:
    """Adding a destination touches ``upload/destinations/`` (and its Procore calls, and the
    configuration's list of names): nothing else asks a folder's destination by its name."""
    switch = re.compile(r"\.destination\s*(==|!=|in\s)"
                        r"|destination.*(==|!=)\s*\"(none|documents|photos)\"")
    found = [f"{path.relative_to(PACKAGE)}:{n}"
             for path in sorted(PACKAGE.rglob("*.py"))
             if not path.is_relative_to(PACKAGE / "upload" / "destinations")
             and not path.is_relative_to(PACKAGE / "config")
             and not path.is_relative_to(PACKAGE / "emulator")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if switch.search(line)]
    assert found == []


def test_each_destination_says_whether_it_files_and_what_it_warns(tmp_path: Path) -> None:
    config = _folders_config(tmp_path)
    journal = Journal.open(config.daemon.state_dir)
    try:
        filing = Filing(journal, object(), clock=lambda: 0.0)  # type: ignore[arg-type]
        assert [filing.files(folder_route(f, "a.pdf")) for f in config.folders] == [
            True, True, False]
    finally:
        journal.close()
    assert [destination_for(f).warning for f in config.folders] == [None, None, (
        "destination is none: these uploads are filed nowhere in Procore, which deletes them "
        "after 7 days")]
    with capture_logs() as logs:
        log_warnings(config)
    assert [(e["event"], e["destination"], e["folder"]) for e in logs] == [
        ("destination_warning", "none", "folders[2]")]


class _Report:
    def __init__(self) -> None:
        self.said: list[str] = []

    def note(self, text: str) -> None:
        self.said.append(f"note: {text}")

    def problem(self, text: str) -> None:
        self.said.append(f"problem: {text}")

    def refused(self, error: ProcoreError, subject: str) -> None:
        self.said.append(f"refused: {subject}: {error.status}")


class _Procore:
    """Show Folder and List Image Categories as ``check`` reads them."""

    def __init__(self, folder: Mapping[str, Any] | ProcoreError,
                 albums: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.albums = albums

    def folder_listing(self, project_id: int | None, folder_id: int | None, **_: Any
                       ) -> Mapping[str, Any]:
        if isinstance(self.folder, ProcoreError):
            raise self.folder
        return self.folder

    def get_pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        assert path == "v1.0/image_categories" and params == {"project_id": 7}
        return iter(self.albums)


@pytest.mark.parametrize(("folder", "albums", "kind", "said"), [
    ({"id": 1, "name": "root"}, [], "documents", ["note: Documents root folder"]),
    ({"id": 1, "is_deleted": True}, [], "documents",
     ["problem: Documents root folder of project 7 ('root') is in Procore's recycle bin"]),
    ({"id": 1, "read_only": True}, [], "documents",
     ["problem: Documents root folder of project 7 ('root') is read-only for this service "
      "account"]),
    (NotFound("gone", status=404), [], "documents",
     ["refused: Documents root folder of project 7: 404"]),
    ({}, [{"id": 5, "name": "Site"}], "photos", ["note: Photos, no album (unsorted)"]),
    ({}, [], "none", []),
], ids=["documents-ok", "documents-recycled", "documents-read-only", "documents-refused",
        "photos-unsorted", "none-asks-nothing"])
def test_what_each_destination_checks_in_procore(
        tmp_path: Path, folder: Mapping[str, Any] | ProcoreError, albums: list[dict[str, Any]],
        kind: str, said: list[str]) -> None:
    [settings] = [f for f in _folders_config(tmp_path).folders if f.destination == kind]
    report = _Report()
    destination_for(settings).check(_Procore(folder, albums), settings,  # type: ignore[arg-type]
                                    report)
    assert report.said == said


def test_what_run_warns_for_a_folder_of_rules_and_its_rules(tmp_path: Path) -> None:
    """A folder of rules only has no destination of its own to warn about; a rule that
    files nowhere is named."""
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state")},
           "folders": [{"path": str(tmp_path / "scans"), "rules": [
               {"match": r".*\.pdf", "destination": "documents", "project_id": 7},
               {"match": r".*\.xml", "destination": "none", "project_id": 7}]}]}
    config = parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})
    with capture_logs() as logs:
        log_warnings(config)
    assert [(e["event"], e["destination"], e["folder"]) for e in logs] == [
        ("destination_warning", "none", "folders[0].rules[1]")]


# --- albums by name --------------------------------------------------------------------------


class _Albums:
    """List and Create Image Category of one project; ``create`` says what the create does:
    "made" (answers), "lost-after" (runs, its answer lost), "lost-before" (dropped before it
    ran), "not-run" (connection refused: certainly not run), "refused" (422)."""

    def __init__(self, albums: list[dict[str, Any]], create: str) -> None:
        self.albums = albums
        self.create = create
        self.calls: list[str] = []

    def get_pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        assert path == "v1.0/image_categories" and params == {"project_id": 7}
        self.calls.append("list")
        return iter(list(self.albums))

    def create_album(self, project_id: int, name: str) -> Mapping[str, Any]:
        self.calls.append("create")
        if self.create in ("made", "lost-after"):
            self.albums.append({"id": 50, "name": name})
        if self.create == "made":
            return {"id": 50, "name": name}
        if self.create == "not-run":
            raise NetworkError("connection refused", not_run=True)
        if self.create == "refused":
            raise ValidationFailed("name is invalid", status=422)
        raise NetworkError("connection dropped")


@pytest.mark.parametrize(("albums", "create", "calls", "found"), [
    # Kept from an earlier file: nothing asked.
    ("kept", "made", [], 9),
    # There already (twice: the lowest id), not there (made), made but the answer lost
    # (found by the second look: never a second create), dropped before it ran, refused.
    ([{"id": 9, "name": "Level 2"}, {"id": 4, "name": "Level 2"}, {"id": 3, "name": "L2"}],
     "made", ["list"], 4),
    ([{"id": 3, "name": "Level 1"}], "made", ["list", "create"], 50),
    ([], "lost-after", ["list", "create", "list"], 50),
    ([], "lost-before", ["list", "create", "list"], NetworkError),
    ([], "not-run", ["list", "create"], NetworkError),
    ([], "refused", ["list", "create", "list"], ValidationFailed),
], ids=["kept", "there", "missing", "lost-after-it-ran", "lost-before-it-ran", "not-run",
        "refused"])
def test_an_album_by_name_is_looked_for_then_made_once(
        tmp_path: Path, albums: list[dict[str, Any]] | str, create: str, calls: list[str],
        found: int | type[Exception]) -> None:
    journal = Journal.open(tmp_path)
    try:
        if albums == "kept":
            journal.remember_album(7, "Level 2", 9)
            albums = []
        procore = _Albums(list(albums), create)
        resolver = Albums(procore, journal)  # type: ignore[arg-type]
        if isinstance(found, int):
            assert resolver.resolve(7, "Level 2") == found
            assert journal.album_id(7, "Level 2") == found  # kept for the next file
        else:
            with pytest.raises(found):
                resolver.resolve(7, "Level 2")
            assert journal.album_id(7, "Level 2") is None
        assert procore.calls == calls
        assert sum(1 for a in procore.albums if a["name"] == "Level 2") <= 2
    finally:
        journal.close()


def test_a_named_album_procore_refuses_is_looked_up_afresh(tmp_path: Path) -> None:
    """Deleted in Procore after it was kept: the image is refused, the kept id forgotten, and
    the next try finds (or makes) the album again."""
    journal = Journal.open(tmp_path)

    class Refusing(_Albums):
        def procore_time_floor(self) -> float | None:
            return None

        def create_image(self, *_: Any, **__: Any) -> Mapping[str, Any]:
            raise ValidationFailed("image_category must exist", status=422)

    try:
        journal.remember_album(7, "Level 2", 9)
        procore = Refusing([{"id": 11, "name": "Level 2"}], "made")
        photos = Photos(procore, journal, lambda: T)  # type: ignore[arg-type]
        record = _stored_photo(tmp_path, journal)
        route = Route(rule=0, groups=(), project_id=7, project_number=None,
                      target=PhotosTarget(None, "Level 2"), name="IMG_1.jpg")
        plan = photos.plan(record, route)
        assert (plan.album_id, plan.album) == (9, "Level 2")
        with pytest.raises(ValidationFailed):
            photos.send(record, route, plan)
        assert journal.album_id(7, "Level 2") is None
        assert photos.plan(record, route).album_id == 11
    finally:
        journal.close()


def _stored_photo(tmp_path: Path, journal: Journal) -> Any:
    photo = tmp_path / "IMG_1.jpg"
    photo.write_bytes(b"\xff\xd8" * 10)
    observation = sourcefile.observe(photo)
    assert observation is not None
    [record] = journal.enqueue([(tmp_path, photo, observation)], T)
    return journal.move(record, FileState.UPLOADING, T, uuid="UUID1")
