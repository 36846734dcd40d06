"""`projects`, `folders`, `albums` and the per-folder online `check`, run as an operator runs
them, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from procore_hotfolder.emulator import Emulator
from tests.conftest import CLIENT_ID, CLIENT_SECRET, COMPANY_ID, run_cli, write_config


class Api:
    """Procore's documented calls, made the way an admin's script would: to set up what the
    commands under test then find."""

    def __init__(self, emulator: Emulator) -> None:
        self.url = emulator.url
        token = requests.post(f"{self.url}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}, timeout=10).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}",
                        "Procore-Company-Id": str(COMPANY_ID)}

    def post(self, path: str, params: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.url}/rest/{path}", params=params, json=body,
                                 headers=self.headers, timeout=10)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def folder(self, project_id: int, name: str, parent_id: int | None = None) -> int:
        body: dict[str, Any] = {"name": name}
        if parent_id is not None:
            body["parent_id"] = parent_id
        return int(self.post("v1.0/folders", {"project_id": project_id},
                             {"folder": body})["id"])

    def album(self, project_id: int, name: str) -> int:
        return int(self.post("v1.0/image_categories", {"project_id": project_id},
                             {"image_category": {"name": name}})["id"])


def folder_config(tmp_path: Path, emulator: Emulator, folders: list[dict[str, Any]]) -> Path:
    for index, folder in enumerate(folders):
        folder.setdefault("path", str(tmp_path / f"drop{index}"))
        Path(folder["path"]).mkdir(exist_ok=True)
    return write_config(tmp_path, emulator, folders)


def lines_of(stdout: str, key: str) -> list[str]:
    """The line of ``folders[N]`` and the indented lines below it, but for the line that
    says how the folder's writers are seen (every folder has one: checked here)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(key + " "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    writers = [line for line in block if line.startswith("  writers ")]
    assert len(writers) == 1, block
    return [line for line in block if line not in writers]


# --- folders ---------------------------------------------------------------------------------


def test_folders_prints_the_tree_with_ids_and_json(tmp_path: Path, emulator: Emulator) -> None:
    api = Api(emulator)
    drawings = api.folder(11, "Drawings")
    arch = api.folder(11, "Architectural", drawings)
    level2 = api.folder(11, "Level 2", arch)
    specs = api.folder(11, "Specs")
    config = folder_config(tmp_path, emulator, [{"project_id": 11}])

    text = run_cli("folders", "11", "-c", str(config))
    assert text.returncode == 0, text.stderr
    header, *lines = text.stdout.splitlines()
    column = header.index("FOLDER")  # the tree column: indentation shows the nesting
    rows = [(line[:column].strip(), line[column:]) for line in lines]
    assert rows[0][0] == "(root)"
    assert rows[1:] == [
        (str(drawings), "Drawings/"), (str(arch), "  Architectural/"),
        (str(level2), "    Level 2/"), (str(specs), "Specs/")]

    as_json = run_cli("folders", "11", "--json", "-c", str(config))
    assert as_json.returncode == 0, as_json.stderr
    tree = json.loads(as_json.stdout)
    (drawings_node, specs_node) = tree["folders"]
    assert (drawings_node["id"], drawings_node["path"]) == (drawings, "/Drawings/")
    assert drawings_node["folders"][0]["folders"][0] == {
        "id": level2, "name": "Level 2", "path": "/Drawings/Architectural/Level 2/",
        "folders": []}
    assert specs_node["id"] == specs

    shallow = json.loads(run_cli("folders", "11", "--json", "--depth", "1",
                                 "-c", str(config)).stdout)
    assert [f["id"] for f in shallow["folders"]] == [drawings, specs]
    assert shallow["folders"][0]["folders"] == []


def test_folders_of_a_forbidden_project_names_the_admin_setting(tmp_path: Path,
                                                                emulator: Emulator) -> None:
    emulator.faults.forbidden_projects.add(13)
    config = folder_config(tmp_path, emulator, [{"project_id": 13}])
    result = run_cli("folders", "13", "-c", str(config))
    assert result.returncode == 1
    assert "project 13: HTTP 403" in result.stderr
    assert "App Management" in result.stderr and "request id" in result.stderr
    assert result.stdout == ""


def test_discovery_config_error_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[procore]\ncompany_id = 0\n")
    for args in (["projects"], ["folders", "1"], ["albums", "1"]):
        result = run_cli(*args, "-c", str(bad))
        assert result.returncode == 78, args
        assert "procore.company_id" in result.stderr


def test_discovery_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("folders").returncode == 2
    assert run_cli("albums", "not-a-number").returncode == 2


def test_discovery_with_refused_credentials(tmp_path: Path, emulator: Emulator) -> None:
    config = folder_config(tmp_path, emulator, [{"project_id": 11}])
    (tmp_path / "client-secret").write_text("wrong-secret\n")
    result = run_cli("folders", "11", "-c", str(config))
    assert result.returncode == 1
    assert "client credentials" in result.stderr
    assert "wrong-secret" not in result.stdout + result.stderr


# --- check, per folder -----------------------------------------------------------------------


def test_check_names_each_folder_and_each_problem(tmp_path: Path, emulator: Emulator) -> None:
    api = Api(emulator)
    target = api.folder(21, "Scans")
    emulator.faults.forbidden_projects.add(22)
    config = folder_config(tmp_path, emulator, [
        {"project_id": 21, "destination": "documents", "documents_folder_id": target},
        {"project_id": 21, "destination": "documents", "documents_folder_id": 987654},
        {"project_id": 22, "destination": "documents"},
        {"project_id": 21, "destination": "none"},
        {"destination": "none"},
    ])
    result = run_cli("check", "-c", str(config))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr

    ok = lines_of(out, "folders[0]")
    assert ok == [f"folders[0] {tmp_path / 'drop0'}: ok (project 21 {_name(21)!r}; "
                  "Documents folder 'Scans')"]
    (head, problem) = lines_of(out, "folders[1]")
    assert head.endswith("PROBLEM (project 21 " + repr(_name(21)) + ")")
    assert "documents_folder_id 987654 in project 21: HTTP 404" in problem
    assert "not visible to this service account" in problem
    (head, problem) = lines_of(out, "folders[2]")
    assert "PROBLEM" in head and "project 22: HTTP 403" in problem
    assert "App Management" in problem and "request id" in problem
    (head, warning) = lines_of(out, "folders[3]")
    assert "ok, with a warning" in head
    assert "deletes them after 7 days" in warning
    (head, warning) = lines_of(out, "folders[4]")
    assert f"company {COMPANY_ID} reachable" in head and "7 days" in warning
    assert "2 problem(s) found" in out


def test_check_offline_is_per_folder_too(tmp_path: Path, emulator: Emulator) -> None:
    good = tmp_path / "good"
    good.mkdir()
    config = write_config(tmp_path, emulator, [
        {"path": str(good), "project_id": 1, "destination": "documents"},
        {"path": str(tmp_path / "absent"), "project_id": 1, "destination": "documents"}])
    result = run_cli("check", "--offline", "-c", str(config))
    assert result.returncode == 1
    assert lines_of(result.stdout, "folders[0]") == [f"folders[0] {good}: ok"]
    (head, problem) = lines_of(result.stdout, "folders[1]")
    assert "PROBLEM" in head and problem.startswith("  problem: folders[1].path:")
    assert emulator.count(kind="token") == 0


def _name(project_id: int) -> str:
    return f"Emulated Project {project_id}"


# --- projects and albums, page after page ----------------------------------------------------


def test_projects_lists_every_page_with_ids_names_numbers(tmp_path: Path,
                                                          emulator: Emulator) -> None:
    emulator.auto_create = False
    made = {emulator.create_project(COMPANY_ID, f"Site {n:03d}", f"P-{n:03d}")
            for n in range(130)}
    hidden = emulator.create_project(COMPANY_ID, "Not granted", "X-1")
    emulator.faults.forbidden_projects.add(hidden)
    config = folder_config(tmp_path, emulator, [{"destination": "none"}])

    listed = run_cli("projects", "--json", "-c", str(config))
    assert listed.returncode == 0, listed.stderr
    projects = json.loads(listed.stdout)
    assert {p["id"] for p in projects} == made  # more than one page, none twice
    assert len(projects) == 130
    first = next(p for p in projects if p["name"] == "Site 000")
    assert first["project_number"] == "P-000"
    pages = [r for r in emulator.request_log if r.path.rstrip("/").endswith("/projects")]
    assert len(pages) >= 2  # Procore's Link header was followed

    text = run_cli("projects", "-c", str(config))
    header, *rows = text.stdout.splitlines()
    assert header.split() == ["ID", "NUMBER", "NAME"]
    assert len(rows) == 130
    assert rows[0].split(None, 2) == [str(first["id"]), "P-000", "Site 000"]
    assert "Not granted" not in text.stdout


def test_albums_lists_every_page_and_json(tmp_path: Path, emulator: Emulator) -> None:
    ids = [emulator.create_album(COMPANY_ID, 31, f"Album {n:03d}") for n in range(105)]
    private = emulator.create_album(COMPANY_ID, 31, "Owner only", private=True)
    config = folder_config(tmp_path, emulator, [{"project_id": 31, "destination": "photos"}])

    listed = json.loads(run_cli("albums", "31", "--json", "-c", str(config)).stdout)
    assert [a["id"] for a in listed if a["id"] != private] == ids
    assert {"id": private, "name": "Owner only", "count": 0, "private": True} in listed

    text = run_cli("albums", "31", "-c", str(config))
    assert text.returncode == 0
    header, *rows = text.stdout.splitlines()
    assert header.split() == ["ID", "PHOTOS", "ALBUM"]
    assert len(rows) == 106
    assert f"{private}  " in next(r for r in rows if "Owner only (private)" in r)


def test_albums_of_a_project_that_does_not_exist(tmp_path: Path, emulator: Emulator) -> None:
    emulator.auto_create = False
    config = folder_config(tmp_path, emulator, [{"destination": "none"}])
    result = run_cli("albums", "404404", "-c", str(config))
    assert result.returncode == 1
    assert "project 404404: HTTP 404" in result.stderr
    assert "not found, or not visible to this service account" in result.stderr


def test_check_photos_album_and_inactive_project(tmp_path: Path, emulator: Emulator) -> None:
    emulator.auto_create = False
    site = emulator.create_project(COMPANY_ID, "Tower A", "A-1")
    old = emulator.create_project(COMPANY_ID, "Closed job", "Z-9", active=False)
    album = emulator.create_album(COMPANY_ID, site, "Progress")
    config = folder_config(tmp_path, emulator, [
        {"project_id": site, "destination": "photos", "photos_album_id": album},
        {"project_id": site, "destination": "photos", "photos_album_id": album + 1000},
        {"project_id": site, "destination": "photos"},
        {"project_id": old, "destination": "documents"},
        {"project_id": 999999, "destination": "documents"},
    ])
    result = run_cli("check", "-c", str(config))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert lines_of(out, "folders[0]")[0].endswith(
        f"ok (project {site} 'Tower A'; Photos album 'Progress')")
    (head, problem) = lines_of(out, "folders[1]")
    assert "PROBLEM" in head
    assert f"photos_album_id {album + 1000} is not among the 1 albums" in problem
    assert f"procore-hotfolder albums {site}" in problem
    assert lines_of(out, "folders[2]")[0].endswith(
        f"ok (project {site} 'Tower A'; Photos, no album (unsorted))")
    (head, warning) = lines_of(out, "folders[3]")
    assert "ok, with a warning" in head and "inactive" in warning
    (head, problem) = lines_of(out, "folders[4]")
    assert "project 999999: HTTP 404" in problem


def test_check_of_company_level_folders(tmp_path: Path, emulator: Emulator) -> None:
    """Without a project_id, Documents are the company's (Company Folders and Files), and
    check looks at that folder; Photos exist only in projects: a configuration error."""
    config = folder_config(tmp_path, emulator, [{"destination": "documents"}])
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    (head, *notes) = lines_of(result.stdout, "folders[0]")
    assert "ok" in head
    assert any("company" in line for line in [head, *notes])
    config = folder_config(tmp_path, emulator, [{"destination": "photos"}])
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 78
    assert "folders[0].destination: 'photos' needs a project_id" in result.stderr
