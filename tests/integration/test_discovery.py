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
    """The line of ``folders[N]`` and the indented lines below it."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(key + " "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


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
    assert "deletes an Upload that is not filed within 7 days" in warning
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
