"""Routing against the emulator: project numbers found among more projects than one page
holds (leading zeros kept, several companies, ambiguous and unknown numbers), an album
created by name, and `route` and `explain` run as an operator runs them, reading Procore
and changing nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from procore_hotfolder.config import Config, load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.errors import AmbiguousProjectNumber, UnknownProjectNumber
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.projects import list_projects
from procore_hotfolder.upload.project_numbers import ProjectNumbers
from tests.conftest import CLIENT_ID, CLIENT_SECRET, COMPANY_ID, cli_env, run_cli, write_config

#: More projects than one page of List Projects (the client asks 100 a page).
FILLERS = 130
#: 2026-03-01 14:05:09 UTC, the modification time of every sample file.
MTIME = 1772373909


class Company:
    """The emulator's company: fillers first, so that every project a test looks for is on
    the second page."""

    def __init__(self, emulator: Emulator) -> None:
        emulator.auto_create = False
        for n in range(FILLERS):
            emulator.create_project(COMPANY_ID, f"Filler {n}", f"F-{n}")
        self.tower = emulator.create_project(COMPANY_ID, "Tower A", "24017")
        self.depot = emulator.create_project(COMPANY_ID, "Depot", "0042")
        self.yard = emulator.create_project(COMPANY_ID, "Yard", "42")
        self.twins = [emulator.create_project(COMPANY_ID, f"Twin {n}", "31000")
                      for n in (1, 2)]
        emulator.create_project(COMPANY_ID, "Closed", "55555", active=False)
        emulator.create_project(COMPANY_ID + 1, "Other company's", "24018")
        emulator.create_project(COMPANY_ID + 1, "Other company's depot", "0042")
        self.drawings = emulator.create_folder(COMPANY_ID, self.tower, "03 Drawings")
        self.level2 = emulator.create_album(COMPANY_ID, self.tower, "Level 2")


def client_for(emulator: Emulator, tmp_path: Path) -> tuple[ProcoreClient, Config]:
    config = load_config(write_config(tmp_path, emulator, [{"path": str(tmp_path / "drop")}]))
    return ProcoreClient(config.procore, RateGovernor()), config


def api_calls(emulator: Emulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.request_log if r.path.startswith("/rest/")]


def test_project_numbers_on_the_second_page(tmp_path: Path, emulator: Emulator) -> None:
    company = Company(emulator)
    client, config = client_for(emulator, tmp_path)
    try:
        numbers = ProjectNumbers(lambda: list_projects(client, config.procore.company_id))
        assert numbers.resolve("0042").id == company.depot  # not the other company's
        assert numbers.resolve("42").id == company.yard
        assert numbers.resolve("24017").id == company.tower
        listing = api_calls(emulator)
        assert listing == [("GET", "/rest/v1.0/projects")] * 2  # two pages, read once
        for _ in range(20):
            numbers.resolve("24017")
        assert len(api_calls(emulator)) == 2  # a routed file costs no call once it is read
        with pytest.raises(AmbiguousProjectNumber) as ambiguous:
            numbers.resolve("31000")
        assert ambiguous.value.project_ids == sorted(company.twins)
        for number in ("24018", "55555", "042"):  # another company's, inactive, near miss
            with pytest.raises(UnknownProjectNumber):
                numbers.resolve(number)
        assert len(api_calls(emulator)) == 2  # misses right after a reading: not read again
    finally:
        client.close()


def test_create_album_by_name(tmp_path: Path, emulator: Emulator) -> None:
    company = Company(emulator)
    client, _ = client_for(emulator, tmp_path)
    try:
        made = client.create_album(company.tower, "Level 3")
    finally:
        client.close()
    token = requests.post(f"{emulator.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, timeout=10).json()["access_token"]
    listed = requests.get(f"{emulator.url}/rest/v1.0/image_categories",
                          params={"project_id": company.tower}, timeout=10,
                          headers={"Authorization": f"Bearer {token}",
                                   "Procore-Company-Id": str(COMPANY_ID)}).json()
    assert [(a["id"], a["name"]) for a in listed] == [(company.level2, "Level 2"),
                                                      (made["id"], "Level 3")]
    assert api_calls(emulator)[0] == ("POST", "/rest/v1.0/image_categories")


# --- route and explain -----------------------------------------------------------------------

SAMPLE = [
    "24017-A-101_rev3.pdf", "0042-S-201.pdf", "42-M-301.pdf", "31000-E-100.pdf",
    "24018-A-100.pdf", "55555-A-100.pdf", "photos/Level 2/IMG_0001.jpg",
    "photos/Level 3/IMG_0002.jpg", "SCN_0001.pdf", "notes.txt", "Tower.0001.rvt",
]


def scanner_config(tmp_path: Path, emulator: Emulator, company: Company) -> Path:
    drop = tmp_path / "scans"
    for relative in SAMPLE:
        (drop / relative).parent.mkdir(parents=True, exist_ok=True)
        (drop / relative).write_bytes(b"%PDF-1.7 sample\n")
        os.utime(drop / relative, (MTIME, MTIME))
    return write_config(tmp_path, emulator, [{
        "path": str(drop), "archive_dir": "Archive", "failed_dir": "Failed",
        "destination": None,  # rules only: what no rule matches fails
        "rules": [
            {"match": r"(?P<job>\d{2,6})[-_](?P<disc>[A-Z])-?(?P<sheet>\d{3})[^/]*\.pdf",
             "project_number": "{job}", "destination": "documents",
             "documents_path": "03 Drawings/{disc}", "description": "Sheet {sheet}"},
            {"match": r"photos/(?P<album>[^/]+)/[^/]+\.jpg", "project_number": "24017",
             "destination": "photos", "photos_album": "{album}"},
            {"match": r"SCN_\d+\.pdf", "project_id": company.depot,
             "destination": "documents", "documents_path": "Scans/{date}",
             "name": "{date}_{time}_{name}"},
        ]}])


def utc_env() -> dict[str, str]:
    env = cli_env()
    env["TZ"] = "UTC"  # {date} and {time} are the machine's local time
    return env


def test_route_previews_every_waiting_file_reading_only(tmp_path: Path,
                                                        emulator: Emulator) -> None:
    company = Company(emulator)
    config = scanner_config(tmp_path, emulator, company)
    before = len(emulator.request_log)

    result = run_cli("route", "-c", str(config), env=utc_env())

    assert result.returncode == 1, result.stderr  # some would fail
    blocks = _blocks(result.stdout)
    assert blocks["24017-A-101_rev3.pdf"] == [
        "rule 0 (job=24017, disc=A, sheet=101)",
        f"project {company.tower}, number 24017 (Tower A)",
        "documents: Documents/03 Drawings/A (A would be created); a name already there: "
        "version",
        "filed as '24017-A-101_rev3.pdf'", "description 'Sheet 101'"]
    assert blocks["0042-S-201.pdf"][1] == f"project {company.depot}, number 0042 (Depot)"
    assert blocks["0042-S-201.pdf"][2].startswith(
        "documents: Documents/03 Drawings/S (03 Drawings/S would be created)")
    assert blocks["42-M-301.pdf"][1] == f"project {company.yard}, number 42 (Yard)"
    assert blocks["31000-E-100.pdf"][-1].startswith(
        "FAILS: ambiguous_project_number: 2 projects carry the project number '31000'")
    assert blocks["24018-A-100.pdf"][-1].startswith("FAILS: unknown_project_number")
    assert blocks["55555-A-100.pdf"][-1].startswith("FAILS: unknown_project_number")
    assert blocks["photos/Level 2/IMG_0001.jpg"][2] == \
        f"photos: album 'Level 2' (exists, id {company.level2})"
    assert blocks["photos/Level 3/IMG_0002.jpg"][2] == "photos: album 'Level 3' (would be created)"
    assert blocks["SCN_0001.pdf"][0] == "rule 2"
    assert blocks["SCN_0001.pdf"][2:4] == [
        "documents: Documents/Scans/2026-03-01 (Scans/2026-03-01 would be created); a name "
        "already there: version", "filed as '2026-03-01_140509_SCN_0001.pdf'"]
    assert blocks["notes.txt"][0].startswith("FAILS: no_rule_matched")
    assert [line.strip() for line in blocks["notes.txt"][1:]] == [
        "tried rule 0: (?P<job>\\d{2,6})[-_](?P<disc>[A-Z])-?(?P<sheet>\\d{3})[^/]*\\.pdf",
        "tried rule 1: photos/(?P<album>[^/]+)/[^/]+\\.jpg", "tried rule 2: SCN_\\d+\\.pdf"]
    assert "Tower.0001.rvt" not in blocks  # a Revit backup is never uploaded
    assert result.stdout.splitlines()[-1] == "10 file(s): 6 routed, 4 would fail"

    calls = [(r.method, r.path) for r in emulator.request_log[before:]]
    assert {method for method, path in calls if path.startswith("/rest/")} == {"GET"}
    assert calls.count(("GET", "/rest/v1.0/projects")) == 2  # the list, both pages, once
    assert calls.count(("GET", "/rest/v1.0/image_categories")) == 1
    assert [p for _, p in calls if not p.startswith("/rest/")] == ["/oauth/token"]
    assert emulator.uploads == {}
    # Nothing created (a project's root folder is the emulator's own record of it).
    assert [f["name"] for f in emulator.folders if not f["is_root"]] == ["03 Drawings"]


def test_route_json_and_named_files(tmp_path: Path, emulator: Emulator) -> None:
    company = Company(emulator)
    config = scanner_config(tmp_path, emulator, company)
    drop = tmp_path / "scans"
    emulator.create_folder(COMPANY_ID, company.tower, "A", parent_id=company.drawings)

    good = run_cli("route", "-c", str(config), str(drop / "24017-A-101_rev3.pdf"),
                   str(drop / "photos/Level 2/IMG_0001.jpg"), "--json", env=utc_env())
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads(good.stdout)
    assert (report["routed"], report["failing"]) == (2, 0)
    drawing, photo = report["files"]
    assert drawing["route"] == {
        "v": 1, "rule": 0, "groups": {"job": "24017", "disc": "A", "sheet": "101"},
        "project": {"id": company.tower, "number": "24017"}, "destination": "documents",
        "target": {"folder_id": None, "path": ["03 Drawings", "A"], "on_name_clash": "version"},
        "name": "24017-A-101_rev3.pdf", "description": "Sheet 101"}
    assert drawing["documents_missing"] == []  # the path exists now
    assert drawing["project"]["project_number"] == "24017"
    assert photo["album"]["id"] == company.level2 and not photo["album_missing"]

    bad = run_cli("route", "-c", str(config), str(drop / "notes.txt"),
                  str(drop / "Tower.0001.rvt"), str(tmp_path / "elsewhere.pdf"), "--json")
    assert bad.returncode == 1
    problems = [f["problem"] for f in json.loads(bad.stdout)["files"]]
    assert [p["reason"] for p in problems] == ["no_rule_matched", "ignored", "not_in_a_folder"]
    assert problems[0]["matched_against"] == "notes.txt"
    assert [t["rule"] for t in problems[0]["rules_tried"]] == [0, 1, 2]


def test_explain_names_the_rule(tmp_path: Path, emulator: Emulator) -> None:
    company = Company(emulator)
    config = scanner_config(tmp_path, emulator, company)
    drop = tmp_path / "scans"
    explained = run_cli("explain", "-c", str(config), str(drop / "24017-A-101_rev3.pdf"))
    assert explained.returncode == 0
    assert explained.stdout.splitlines()[1] == (
        "  route: rule 0 matches (job=24017, disc=A, sheet=101): documents Documents/03 "
        "Drawings/A in project number 24017, as '24017-A-101_rev3.pdf' (`procore-hotfolder "
        "route` looks the project and target up)")
    unmatched = run_cli("explain", "-c", str(config), str(drop / "notes.txt"))
    assert "route: none: no_rule_matched" in unmatched.stdout
    assert emulator.request_log == []  # explain never asks Procore


def test_check_and_status_of_a_folder_of_rules_only(tmp_path: Path, emulator: Emulator) -> None:
    company = Company(emulator)
    config = scanner_config(tmp_path, emulator, company)
    checked = run_cli("check", "--offline", "-c", str(config))
    assert checked.returncode == 0, checked.stdout
    assert "3 routing rule(s): `procore-hotfolder route` shows where each file goes" in \
        checked.stdout
    assert "destination is none" not in checked.stdout  # its files are routed, not unfiled
    status = run_cli("status", "-c", str(config))
    assert f"{tmp_path / 'scans'}  (routed by 3 routing rule(s), watch " in status.stdout
    assert "WARNING" not in status.stdout
    assert json.loads(run_cli("status", "--json", "-c", str(config)).stdout)["folders"][0][
        "destination"] is None


def _blocks(stdout: str) -> dict[str, list[str]]:
    """Each file's lines of `route`'s text, by its path below the folder."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("    "):
            current.append(line[4:])
        elif line.startswith("  "):
            current = blocks.setdefault(line[2:], [])
    return blocks

