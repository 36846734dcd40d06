"""Documents as a tree mirror meets it: name clashes, races, the recycle bin, stale ids."""

from __future__ import annotations

import threading
from typing import Any

import requests

from procore_hotfolder.emulator import Emulator

from .support import PROJECT, Client

QUERY = f"?project_id={PROJECT}"


def new_folder(client: Client, name: str, parent: int | None = None) -> requests.Response:
    spec: dict[str, Any] = {"name": name}
    if parent is not None:
        spec["parent_id"] = parent
    return client.call("POST", "/rest/v1.0/folders" + QUERY, json={"folder": spec})


def new_file(client: Client, name: str, parent: int, data: bytes,
             unique: bool = False) -> requests.Response:
    spec = {"parent_id": parent, "name": name, "upload_uuid": client.upload_file(data),
            "unique_name": unique}
    return client.call("POST", "/rest/v1.0/files" + QUERY, json={"file": spec})


def listing(client: Client, folder: int, extra: str = "") -> dict[str, Any]:
    response = client.call("GET", f"/rest/v1.0/folders/{folder}{QUERY}{extra}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_folder_name_taken_under_the_same_parent(emu: Emulator, client: Client) -> None:
    first = new_folder(client, "Scans")
    assert first.status_code == 201
    taken = new_folder(client, "Scans")
    assert taken.status_code == 422
    assert taken.json() == {"errors": {"name": ["has already been taken"]}}
    inside = new_folder(client, "Scans", parent=first.json()["id"])
    assert inside.status_code == 201  # another parent: no clash
    assert inside.json()["name_with_path"] == "Documents/Scans/Scans"


def test_racing_folder_creates_make_exactly_one(emu: Emulator) -> None:
    clients = [Client(emu) for _ in range(8)]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []
    lock = threading.Lock()

    def create(client: Client) -> None:
        start.wait(timeout=10)
        status = new_folder(client, "2026-12").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [201] + [422] * 7
    assert [f["name"] for f in emu.folders if f["name"] == "2026-12"] == ["2026-12"]


def test_file_clash_rename_and_recycle_bin(emu: Emulator, client: Client) -> None:
    folder = new_folder(client, "Plans").json()["id"]
    first = new_file(client, "a.pdf", folder, b"one")
    assert first.status_code == 201
    assert first.json()["is_deleted"] is False
    clash = new_file(client, "a.pdf", folder, b"two")
    assert clash.status_code == 422
    assert clash.json() == {"errors": {"name": ["has already been taken"]}}
    renamed = new_file(client, "a.pdf", folder, b"two", unique=True)
    assert renamed.json()["name"] == "a (1).pdf"
    emu.recycle_document(first.json()["id"])
    files = {(f["name"], f["is_deleted"]) for f in listing(client, folder)["files"]}
    assert files == {("a.pdf", True), ("a (1).pdf", False)}
    again = new_file(client, "a.pdf", folder, b"three")  # recycled: the name is free
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert again.json()["is_deleted"] is False
    deleted = client.call("DELETE", f"/rest/v1.0/files/{again.json()['id']}{QUERY}")
    assert deleted.status_code == 200
    shown = client.call("GET", f"/rest/v1.0/files/{again.json()['id']}{QUERY}").json()
    assert shown["is_deleted"] is True
    admin = requests.post(emu.url + "/_emulator/recycle_document",
                          json={"file_id": renamed.json()["id"]})
    assert admin.status_code == 201
    assert admin.json()["is_deleted"] is True


def test_deleted_folder_goes_stale(emu: Emulator, client: Client) -> None:
    parent = new_folder(client, "Site").json()["id"]
    child = new_folder(client, "Day 1", parent).json()["id"]
    doc = new_file(client, "log.pdf", child, b"log").json()["id"]
    emu.delete_folder(parent)
    for folder in (parent, child):
        assert client.call("GET", f"/rest/v1.0/folders/{folder}{QUERY}").status_code == 404
    assert new_file(client, "more.pdf", child, b"x").status_code == 404
    assert new_folder(client, "Day 2", child).status_code == 404
    assert client.call("GET", f"/rest/v1.0/files/{doc}{QUERY}").json()["is_deleted"] is True
    assert new_folder(client, "Site").status_code == 201  # the name is free again
    other = new_folder(client, "Other").json()["id"]
    gone = client.call("DELETE", f"/rest/v1.0/folders/{other}{QUERY}")
    assert gone.status_code == 200
    assert client.call("GET", f"/rest/v1.0/folders/{other}{QUERY}").status_code == 404
    admin = requests.post(emu.url + "/_emulator/delete_folder", json={"folder_id": 1})
    assert admin.status_code == 400


def test_listing_filters_and_large_listing_timeout(emu: Emulator, client: Client) -> None:
    folder = new_folder(client, "Big").json()["id"]
    new_folder(client, "Sub", folder)
    made = new_file(client, "v.pdf", folder, b"v1").json()
    for data in (b"v2", b"v3"):
        upload = client.upload_file(data)
        client.call("POST", f"/rest/v1.0/file_versions{QUERY}&file_id={made['id']}",
                    json={"file_version": {"upload_uuid": upload}})
    full = listing(client, folder)
    assert [len(f["file_versions"]) for f in full["files"]] == [3]
    assert [f["name"] for f in full["folders"]] == ["Sub"]
    assert full["folders"][0]["folders"] == []  # nested deeper: empty arrays
    latest = listing(client, folder, "&show_latest_file_version_only=true")
    assert [v["number"] for v in latest["files"][0]["file_versions"]] == [3]
    assert listing(client, folder, "&exclude_folders=true")["folders"] == []
    assert listing(client, folder, "&exclude_files=true")["files"] == []
    assert listing(client, folder, "&exclude_files=false")["files"]
    # "Must be either true or false" (Procore's OpenAPI): another spelling is refused
    odd = client.call("GET", f"/rest/v1.0/folders/{folder}{QUERY}&exclude_files=1")
    assert odd.status_code == 400
    assert "Link" not in client.call("GET", f"/rest/v1.0/folders/{folder}{QUERY}").headers
    emu.faults.listing_timeout_entries = 3  # Sub + the file + 3 versions = 5 entries
    slow = client.call("GET", f"/rest/v1.0/folders/{folder}{QUERY}")
    assert slow.status_code == 408
    assert listing(client, folder, "&show_latest_file_version_only=true")["files"]
    emu.faults.listing_timeout_entries = None
    assert listing(client, folder)["id"] == folder


def test_company_documents(emu: Emulator, client: Client) -> None:
    base = f"/rest/v1.0/companies/{client.company}"
    root = client.call("GET", base + "/folders")
    assert root.status_code == 200
    assert root.json()["is_root"] is True
    made = client.call("POST", base + "/folders", json={"folder": {"name": "Policies"}})
    assert made.status_code == 201
    folder = made.json()["id"]
    upload = client.upload_file(b"company bytes", project=None)
    spec = {"parent_id": folder, "name": "hr.pdf", "upload_uuid": upload}
    created = client.call("POST", base + "/files", json={"file": spec})
    assert created.status_code == 201, created.text
    # A project Upload cannot be filed in company Documents, nor the other way round.
    project_upload = client.upload_file(b"project bytes")
    wrong = client.call("POST", base + "/files", json={"file": {**spec, "name": "x.pdf",
                                                                "upload_uuid": project_upload}})
    assert wrong.status_code == 422
    version = client.call("POST", f"{base}/file_versions?file_id={created.json()['id']}",
                          json={"file_version": {
                              "upload_uuid": client.upload_file(b"v2", project=None)}})
    assert version.status_code == 201
    listed = client.call("GET", f"{base}/folders/{folder}").json()
    assert [(f["name"], len(f["file_versions"])) for f in listed["files"]] == [("hr.pdf", 2)]
    assert client.call("GET", "/rest/v1.0/companies/1/folders").status_code == 403
    assert [d["project_id"] for d in emu.documents] == [None]
    # Company folders are not a project's: the project root does not show them.
    project_root = client.call("GET", f"/rest/v1.0/folders{QUERY}").json()
    assert project_root["folders"] == []
