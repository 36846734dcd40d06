"""Routing: which rule a file's path matches and what the templates give, as tables; the
folder's own keys for what no rule matches; the route's versioned JSON."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import FolderSettings, parse_config
from procore_hotfolder.errors import (
    AmbiguousProjectNumber,
    InvalidRoute,
    NoRuleMatched,
    RouteError,
    UnknownProjectNumber,
)
from procore_hotfolder.model import FileState
from procore_hotfolder.upload.destinations import DocumentsTarget, Nowhere, PhotosTarget
from procore_hotfolder.upload.policy import Action, decide
from procore_hotfolder.upload.routing import (
    ROUTE_VERSION,
    Route,
    file_fields,
    folder_route,
    relative_path,
    route_file,
)

DROP = Path("/srv/drop/scans")
UTC = datetime.UTC
#: 2026-03-01 14:05:09 UTC
MTIME = datetime.datetime(2026, 3, 1, 14, 5, 9, tzinfo=UTC).timestamp()

DRAWINGS = {
    "match": r"(?P<job>\d{4,6})[-_](?P<disc>[A-Z])-?(?P<sheet>\d{3})(?:_rev(?P<rev>\d+))?"
             r"[^/]*\.pdf",
    "project_number": "{job}", "destination": "documents",
    "documents_path": "03 Drawings/{disc}", "description": "Sheet {sheet} rev {rev}",
}
SCANS = {"match": r"scanner/(?P<who>[^/]+)/.*", "project_id": 77, "destination": "documents",
         "documents_path": "Scans/{parent}", "name": "{date}_{time}_{who}_{name}"}
PHOTOS = {"match": r"(?P<album>[^/]+)/[^/]+\.(?i:jpe?g)", "destination": "photos",
          "photos_album": "{album}"}


def folder(rules: list[dict[str, Any]], **keys: Any) -> FolderSettings:
    """The folder the configuration reader makes of ``keys`` and ``rules``."""
    entry: dict[str, Any] = {"path": str(DROP), **keys}
    if rules:
        entry["rules"] = rules
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": "/tmp/state"}, "folders": [entry]}
    return parse_config(raw, base_dir=Path("/"),
                        environ={"PROCORE_CLIENT_SECRET": "x"}).folders[0]


RULES = folder([DRAWINGS, SCANS, PHOTOS], project_id=5, destination="documents")


@pytest.mark.parametrize(("relative", "rule", "groups", "project", "target", "name",
                          "description"), [
    # A drawing: the number from the name, a path below the project's root.
    ("24017-A-101_rev3.pdf", 0,
     {"job": "24017", "disc": "A", "sheet": "101", "rev": "3"}, (None, "24017"),
     DocumentsTarget(None, ("03 Drawings", "A")), "24017-A-101_rev3.pdf", "Sheet 101 rev 3"),
    # Leading zeros are part of the number; a group that did not take part is empty.
    ("004217_S101.pdf", 0, {"job": "004217", "disc": "S", "sheet": "101", "rev": None},
     (None, "004217"), DocumentsTarget(None, ("03 Drawings", "S")), "004217_S101.pdf",
     "Sheet 101 rev"),
    # The whole path must match: a drawing one level down is not rule 0's; nor is .PDF.
    ("sub/24017-A-101.pdf", None, {}, (5, None), DocumentsTarget(None, ("sub",)),
     "24017-A-101.pdf", None),
    ("24017-A-101.PDF", None, {}, (5, None), DocumentsTarget(None, ()), "24017-A-101.PDF",
     None),
    # {parent} below the top, {date} and {time} of the mtime, a name with spaces.
    ("scanner/Front Desk/2026/March/SCN 0001.pdf", 1, {"who": "Front Desk"}, (77, None),
     DocumentsTarget(None, ("Scans", "scanner", "Front Desk", "2026", "March")),
     "2026-03-01_140509_Front Desk_SCN 0001.pdf", None),
    ("scanner/x/SCN_0002.pdf", 1, {"who": "x"}, (77, None),
     DocumentsTarget(None, ("Scans", "scanner", "x")), "2026-03-01_140509_x_SCN_0002.pdf",
     None),
    # Photos by album name; the rule inherits the folder's project.
    ("Level 2 pour/IMG_0042.JPG", 2, {"album": "Level 2 pour"}, (5, None),
     PhotosTarget(None, "Level 2 pour"), "IMG_0042.JPG", None),
])
def test_the_first_matching_rule_decides(relative: str, rule: int | None,
                                         groups: dict[str, str | None],
                                         project: tuple[int | None, str | None],
                                         target: object, name: str,
                                         description: str | None) -> None:
    route = route_file(RULES, relative, MTIME, tz=UTC)
    assert (route.rule, dict(route.groups)) == (rule, groups)
    assert (route.project_id, route.project_number) == project
    assert (route.target, route.name, route.description) == (target, name, description)


def test_parent_is_empty_at_the_top_and_empty_folders_are_dropped() -> None:
    rules = folder([{"match": r"[^/]*", "destination": "documents", "project_id": 1,
                     "documents_path": "Scans/{parent}/", "name": "[{parent}] {stem}.{ext}"},
                    {"match": r".*", "destination": "documents", "project_id": 1,
                     "documents_path": "Scans/{parent}", "name": "{parent}-{name}"}])
    top = route_file(rules, "plan.v2.pdf", MTIME, tz=UTC)
    assert (top.target, top.name) == (DocumentsTarget(None, ("Scans",)), "[] plan.v2.pdf")
    below = route_file(rules, "a/b/plan.pdf", MTIME, tz=UTC)
    # A "/" the name template puts in the name becomes "_": Procore names have no levels.
    assert (below.target, below.name) == (DocumentsTarget(None, ("Scans", "a", "b")),
                                          "a_b-plan.pdf")


@pytest.mark.parametrize(("relative", "fields"), [
    ("plan.pdf", {"name": "plan.pdf", "stem": "plan", "ext": "pdf", "parent": ""}),
    ("a/b/archive.tar.gz", {"name": "archive.tar.gz", "stem": "archive.tar", "ext": "gz",
                            "parent": "a/b"}),
    ("README", {"name": "README", "stem": "README", "ext": "", "parent": ""}),
    ("x/name with spaces .pdf", {"name": "name with spaces .pdf", "stem": "name with spaces ",
                                 "ext": "pdf", "parent": "x"}),
])
def test_file_fields(relative: str, fields: dict[str, str]) -> None:
    assert file_fields(relative, MTIME, UTC) == {**fields, "date": "2026-03-01",
                                                 "time": "140509"}


def test_date_and_time_follow_the_timezone() -> None:
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    assert file_fields("a.pdf", MTIME, tokyo)["date"] == "2026-03-01"
    late = datetime.datetime(2026, 3, 1, 23, 30, 0, tzinfo=UTC).timestamp()
    assert (file_fields("a.pdf", late, tokyo)["date"],
            file_fields("a.pdf", late, tokyo)["time"]) == ("2026-03-02", "083000")


def test_names_that_are_not_utf8_reach_procore_as_replacement_characters() -> None:
    relative = os.fsdecode(b"caf\xe9 24017-A-101.pdf")  # Latin-1 bytes from an old share
    rules = folder([{**DRAWINGS, "match": r"[^/]*?(?P<job>\d{5})-(?P<disc>[A-Z])-(?P<sheet>"
                     r"\d{3})[^/]*\.pdf", "name": "{job} {name}",
                     "description": "from {name}"}])
    route = route_file(rules, relative, MTIME, tz=UTC)
    assert route.name == "24017 caf\ufffd 24017-A-101.pdf"
    assert route.description == "from caf\ufffd 24017-A-101.pdf"
    route.name.encode("utf-8")  # valid UTF-8, no lone surrogate left
    json_text = str(route.to_json())
    assert "\\udc" not in json_text
    odd_group = route_file(folder([{"match": r"(?P<who>[^/]+)/.*", "destination": "photos",
                                    "project_id": 3, "photos_album": "{who}"}]),
                           os.fsdecode(b"J\xfcrg/IMG.jpg"), MTIME, tz=UTC)
    assert odd_group.target == PhotosTarget(None, "J\ufffdrg")
    assert dict(odd_group.groups) == {"who": "J\ufffdrg"}


def test_format_specs_and_literal_braces() -> None:
    rules = folder([{"match": r"(?P<n>\d+)\.pdf", "destination": "documents", "project_id": 1,
                     "name": "{{draft}} {n:0>4}.pdf"}])
    assert route_file(rules, "7.pdf", MTIME, tz=UTC).name == "{draft} 0007.pdf"


def test_the_folders_own_keys_serve_what_no_rule_matches() -> None:
    mirrored = folder([DRAWINGS], project_id=5, destination="documents",
                      documents_folder_id=42, on_name_clash="rename")
    route = route_file(mirrored, "misc/notes.txt", MTIME, tz=UTC)
    assert route == Route(rule=None, groups=(), project_id=5, project_number=None,
                          target=DocumentsTarget(42, ("misc",), "rename"), name="notes.txt")
    assert folder_route(mirrored, "misc/notes.txt") == route
    flat = folder([], project_id=5, destination="documents", mirror_subfolders=False)
    assert route_file(flat, "misc/notes.txt", MTIME).target == DocumentsTarget(None, ())
    photos = folder([], project_id=5, destination="photos", photos_album_id=7)
    assert route_file(photos, "a/b.jpg", MTIME).target == PhotosTarget(7, None)
    company = folder([], destination="none")
    assert (route_file(company, "a/b.jpg", MTIME).target,
            route_file(company, "a/b.jpg", MTIME).project_id) == (Nowhere(), None)


def test_no_rule_matched_lists_the_rules_tried() -> None:
    rules_only = folder([DRAWINGS, PHOTOS], project_id=5)
    with pytest.raises(NoRuleMatched) as caught:
        route_file(rules_only, "notes/SCN_0001.pdf", MTIME)
    error = caught.value
    assert error.reason == "no_rule_matched" and not error.retryable
    assert error.as_dict()["rules_tried"] == [
        {"rule": 0, "match": DRAWINGS["match"]}, {"rule": 1, "match": PHOTOS["match"]}]
    assert error.as_dict()["matched_against"] == "notes/SCN_0001.pdf"


@pytest.mark.parametrize(("rule", "relative"), [
    ({"match": r"(?P<x>a)?.*\.pdf", "destination": "documents", "project_id": 1,
      "name": "{x}"}, "b.pdf"),
    ({"match": r"(?P<x>a)?.*\.pdf", "destination": "documents", "project_number": " {x} "},
     "b.pdf"),
])
def test_a_template_that_renders_empty_is_an_invalid_route(rule: dict[str, Any],
                                                          relative: str) -> None:
    with pytest.raises(InvalidRoute) as caught:
        route_file(folder([rule]), relative, MTIME)
    assert caught.value.reason == "invalid_route"


def test_route_json_round_trips_and_names_its_version() -> None:
    for relative in ("24017-A-101_rev3.pdf", "Level 2/IMG_1.jpg", "sub/x.pdf"):
        route = route_file(RULES, relative, MTIME, tz=UTC)
        assert Route.from_json(route.to_json()) == route
    resolved = route_file(RULES, "24017-A-101.pdf", MTIME, tz=UTC).with_project(9_100_000_001)
    raw = resolved.to_json()
    assert raw["v"] == ROUTE_VERSION == 1
    assert raw["project"] == {"id": 9_100_000_001, "number": "24017"}
    assert raw["target"] == {"folder_id": None, "path": ["03 Drawings", "A"],
                             "on_name_clash": "version"}
    assert raw["groups"] == {"job": "24017", "disc": "A", "sheet": "101", "rev": None}
    assert Route.from_json(raw) == resolved and not resolved.needs_lookup
    unfiled = route_file(folder([], destination="none"), "a.pdf", MTIME)
    assert Route.from_json(unfiled.to_json()) == unfiled
    with pytest.raises(ValueError, match="route version 2 is not known"):
        Route.from_json({**raw, "v": 2})
    with pytest.raises(ValueError, match="route version None"):
        Route.from_json({k: v for k, v in raw.items() if k != "v"})
    with pytest.raises(ValueError, match="malformed"):
        Route.from_json({**raw, "target": {}})
    with pytest.raises(ValueError, match="unknown destination"):
        Route.from_json({**raw, "destination": "drawings"})


def test_relative_path_is_what_the_rules_see() -> None:
    assert relative_path(RULES, DROP / "a" / "b c.pdf") == "a/b c.pdf"
    with pytest.raises(ValueError):
        relative_path(RULES, Path("/elsewhere/x.pdf"))


@pytest.mark.parametrize("error", [
    NoRuleMatched("no rule", relative="a.pdf", rules_tried=[]),
    UnknownProjectNumber("none", number="1"),
    AmbiguousProjectNumber("two", number="1", project_ids=[1, 2]),
    InvalidRoute("empty name"),
])
def test_a_file_without_a_route_fails_it_does_not_pause(error: RouteError) -> None:
    """The outcome policy fails the file (to failed_dir, with the reason): nothing waits for
    Procore, and ``retry`` puts it back to be routed afresh."""
    decision = decide(FileState.QUEUED, error, attempts=0, max_attempts=5, rand=0.5)
    assert decision.action is Action.FAIL
