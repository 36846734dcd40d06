"""Filing in Procore against the emulator: Documents that mirror the drop folder's tree
(folders created once, cached, re-found), name clashes, Photos and Documents exactly once
when answers are lost, and the API calls each file costs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.emulator import Emulator, RequestRecord
from tests.conftest import COMPANY_ID, run_cli, wait_for, write_config
from tests.lossy_proxy import LossyProxy

PROJECT = 5


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[LossyProxy]:
    lossy = LossyProxy(emulator.url).start()
    try:
        yield lossy
    finally:
        lossy.stop()


def _config(tmp_path: Path, emu: Emulator, folders: list[dict[str, Any]],
            proxy: LossyProxy | None = None, **daemon: Any) -> Path:
    path = write_config(tmp_path, emu, [{k: str(v) if isinstance(v, Path) else v
                                         for k, v in f.items()} for f in folders], **daemon)
    if proxy is not None:  # the API through the proxy; tokens and storage direct
        text = path.read_text().replace(f'api_url = "{emu.url}"', f'api_url = "{proxy.url}"')
        path.write_text(text)
    return path


def _drop(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _once(config: Path, expect: int = 0) -> None:
    result = run_cli("once", "-c", str(config))
    assert result.returncode == expect, result.stdout + result.stderr


def _api(emu: Emulator, since: int = 0) -> list[RequestRecord]:
    return [r for r in emu.request_log[since:] if r.kind == "api"]


def _calls(records: list[RequestRecord], method: str, prefix: str) -> int:
    return sum(1 for r in records if r.method == method and r.path.startswith(prefix))


def _folder_paths(emu: Emulator, project: int = PROJECT) -> dict[int, str]:
    """Folder id -> its path below the root ("" for the root), for one project."""
    folders = {f["id"]: f for f in emu.folders if f["project_id"] == project}

    def path_of(folder_id: int) -> str:
        folder = folders[folder_id]
        if folder.get("is_root") or folder.get("parent_id") is None:
            return ""
        parent = path_of(folder["parent_id"])
        return f"{parent}/{folder['name']}" if parent else folder["name"]

    return {folder_id: path_of(folder_id) for folder_id in folders}


def _documents(emu: Emulator, project: int = PROJECT) -> dict[str, dict[str, Any]]:
    """Live documents by their path ("a/b/x.pdf"), recycled ones as "(recycled) a/b/x.pdf";
    fails on two documents of one path."""
    paths = _folder_paths(emu, project)
    out: dict[str, dict[str, Any]] = {}
    for doc in emu.documents:
        if doc["project_id"] != project or doc["parent_id"] not in paths:
            continue  # another project's, or gone with its folder
        where = paths[doc["parent_id"]]
        key = f"{where}/{doc['name']}" if where else doc["name"]
        if doc.get("is_deleted"):
            key = f"(recycled) {key}"
        assert key not in out, f"two documents at {key}"
        out[key] = doc
    return out


# --- Documents: the tree ---------------------------------------------------------------------


def test_documents_mirror_the_tree_folders_created_once_by_four_workers_and_cached(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    files = {f"tower-a/RFIs/RFI-{i:03}.pdf": os.urandom(2000 + i) for i in range(12)}
    files.update({"site1/plan.pdf": b"plan of site 1", "site2/plan.pdf": b"plan of site 2",
                  "top.pdf": b"top level"})
    _drop(drop, files)
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents"}], workers=4)
    emulator.faults.delay_seconds = 0.05  # the four workers meet in the new folders

    _once(config)

    documents = _documents(emulator)
    assert sorted(documents) == sorted(files)  # site1/plan.pdf and site2/plan.pdf apart
    for relative, doc in documents.items():
        assert len(doc["upload_uuids"]) == 1, relative
        (record,) = [r for r in emulator.stored_uploads() if r.uuid == doc["upload_uuids"][0]]
        assert record.stored_sha256 == hashlib.sha256(files[relative]).hexdigest()
    assert sorted(p for p in _folder_paths(emulator).values() if p) == [
        "site1", "site2", "tower-a", "tower-a/RFIs"]
    first = _api(emulator)
    assert _calls(first, "POST", "/rest/v1.0/folders") == 4  # one create per folder
    assert _calls(first, "GET", "/rest/v1.0/folders") == 0  # no listing at all

    # A restart (a new process) files into the same folders from the journal's cache.
    seen = len(emulator.request_log)
    _drop(drop, {"tower-a/RFIs/RFI-100.pdf": b"later", "site2/later.pdf": b"later too"})
    _once(config)
    again = _api(emulator, seen)
    assert _calls(again, "POST", "/rest/v1.0/folders") == 0
    assert _calls(again, "GET", "/rest/v1.0/folders") == 0
    assert {"tower-a/RFIs/RFI-100.pdf", "site2/later.pdf"} <= set(_documents(emulator))
    assert len(again) == 2 * 2  # create Upload + create document, per file


def test_flat_when_mirror_subfolders_is_off(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    _drop(drop, {"a/one.pdf": b"1", "b/two.pdf": b"2"})
    target = emulator.create_folder(COMPANY_ID, PROJECT, "Inbox")
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents",
                                           "documents_folder_id": target,
                                           "mirror_subfolders": False}])
    _once(config)
    assert sorted(_documents(emulator)) == ["Inbox/one.pdf", "Inbox/two.pdf"]
    assert _calls(_api(emulator), "POST", "/rest/v1.0/folders") == 0


def test_a_folder_another_user_created_first_is_found_not_duplicated(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    base = emulator.create_folder(COMPANY_ID, PROJECT, "Drawings")
    theirs = emulator.create_folder(COMPANY_ID, PROJECT, "site", parent_id=base)
    _drop(drop, {f"site/sheet-{i}.pdf": os.urandom(100 + i) for i in range(6)})
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents",
                                           "documents_folder_id": base}], workers=4)
    _once(config)
    paths = _folder_paths(emulator)
    assert sorted(p for p in paths.values() if p) == ["Drawings", "Drawings/site"]
    documents = _documents(emulator)
    assert len(documents) == 6
    assert {doc["parent_id"] for doc in documents.values()} == {theirs}
    log = _api(emulator)
    assert _calls(log, "POST", "/rest/v1.0/folders") == 1  # 422 has already been taken
    assert _calls(log, "GET", "/rest/v1.0/folders") == 1  # the parent listed once


def test_a_stale_cached_folder_is_forgotten_and_created_again(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    _drop(drop, {"a/b/x.pdf": b"first"})
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents"}])
    _once(config)
    old = {p: i for i, p in _folder_paths(emulator).items()}
    emulator.delete_folder(old["a/b"])  # a user deleted it in Procore
    seen = len(emulator.request_log)

    _drop(drop, {"a/b/y.pdf": b"second"})
    _once(config)

    new = {p: i for i, p in _folder_paths(emulator).items()}
    assert new["a"] == old["a"] and new["a/b"] != old["a/b"]
    assert "a/b/y.pdf" in _documents(emulator)
    log = _api(emulator, seen)
    assert [(r.method, r.status) for r in log if r.path.startswith("/rest/v1.0/files")] == [
        ("POST", 404), ("POST", 201)]
    assert _calls(log, "POST", "/rest/v1.0/folders") == 1  # only b again; a still cached


# --- Documents: name clashes -----------------------------------------------------------------


@pytest.mark.parametrize("policy", ["version", "rename", "fail"])
def test_name_clash_follows_on_name_clash(tmp_path: Path, emulator: Emulator,
                                          policy: str) -> None:
    drop = tmp_path / "drop"
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents",
                                           "on_name_clash": policy}])
    _drop(drop, {"x/plan.pdf": b"first plan"})
    _once(config)
    (first,) = _documents(emulator).values()
    seen = len(emulator.request_log)

    _drop(drop, {"x/plan.pdf": b"second plan, longer"})
    _once(config, expect=1 if policy == "fail" else 0)

    second = next(r.uuid for r in emulator.stored_uploads()
                  if r.stored_sha256 == hashlib.sha256(b"second plan, longer").hexdigest())
    documents = _documents(emulator)
    log = _api(emulator, seen)
    if policy == "version":
        assert list(documents) == ["x/plan.pdf"]
        assert documents["x/plan.pdf"]["upload_uuids"] == [first["upload_uuids"][0], second]
        # Upload, the refused create, one listing of x, the version.
        assert len(log) == 4
        assert _calls(log, "GET", "/rest/v1.0/folders/") == 1
    elif policy == "rename":
        assert len(documents) == 2 and "x/plan.pdf" in documents
        (renamed,) = [k for k in documents if k != "x/plan.pdf"]
        assert renamed.startswith("x/plan") and renamed.endswith(".pdf")
        assert documents[renamed]["upload_uuids"] == [second]
        assert len(log) == 2
    else:
        assert list(documents) == ["x/plan.pdf"]
        assert emulator.associations(second) == 0
        failed = tmp_path / "drop" / ".failed" / "x" / "plan.pdf"
        wait_for(failed.exists, message="the clashing file in failed_dir")
        sidecar = json.loads(failed.with_name("plan.pdf.error.json").read_text())
        assert sidecar["reason"] == "name_clash"
        assert "Documents/x" in sidecar["detail"] and "plan.pdf" in sidecar["detail"]


def test_a_recycled_document_of_that_name_gets_no_version(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents"}])
    _drop(drop, {"plan.pdf": b"old plan"})
    _once(config)
    (old,) = _documents(emulator).values()
    emulator.recycle_document(old["id"])  # a user moved it to the recycle bin

    _drop(drop, {"plan.pdf": b"new plan"})
    _once(config)

    documents = _documents(emulator)
    assert sorted(documents) == ["(recycled) plan.pdf", "plan.pdf"]
    assert documents["(recycled) plan.pdf"]["upload_uuids"] == old["upload_uuids"]
    assert documents["plan.pdf"]["upload_uuids"] == [_stored_uuid(emulator, b"new plan")]


# --- exactly once when answers are lost ------------------------------------------------------


def _stored_uuid(emu: Emulator, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (uuid,) = [r.uuid for r in emu.stored_uploads() if r.stored_sha256 == digest]
    return uuid


def _ledger(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]


def _photos(emu: Emulator, filename: str) -> list[dict[str, Any]]:
    return [i for i in emu.images if i["filename"] == filename]


def test_photo_filed_once_when_the_answer_is_lost_after_the_create_ran(
        tmp_path: Path, emulator: Emulator, proxy: LossyProxy) -> None:
    drop = tmp_path / "drop"
    album = emulator.create_album(COMPANY_ID, PROJECT, "Site")
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "photos",
                                           "photos_album_id": album}], proxy=proxy)
    data = os.urandom(30_000)
    _drop(drop, {"IMG_0001.jpg": data})
    proxy.lose_answers(1, "POST", "/rest/v1.0/images")

    _once(config)

    uuid = _stored_uuid(emulator, data)
    assert proxy.lost == [("POST", f"/rest/v1.0/images?project_id={PROJECT}")]
    assert emulator.associations(uuid) == 1
    (image,) = _photos(emulator, "IMG_0001.jpg")
    (entry,) = _ledger(tmp_path)
    assert entry["destination"] == {"kind": "photos", "id": image["id"]}


def test_an_older_photo_of_the_same_name_and_size_is_no_proof(
        tmp_path: Path, emulator: Emulator, proxy: LossyProxy) -> None:
    album = emulator.create_album(COMPANY_ID, PROJECT, "Site")
    settings = {"project_id": PROJECT, "destination": "photos", "photos_album_id": album}
    # Another installation (another journal: nothing of it is known to ours) filed IMG.jpg
    # a minute ago.
    other = tmp_path / "other"
    other.mkdir()
    first = os.urandom(20_000)
    _drop(other / "drop", {"IMG.jpg": first})
    _once(_config(other, emulator, [{"path": other / "drop", **settings}]))
    with emulator.lock:
        for image in emulator.state.images.values():
            image.created_at -= 60
    # Ours: the same name and size; its create is dropped before it runs (the emulator's
    # own drop), so only the older photo matches name and size.
    drop = tmp_path / "drop"
    config = _config(tmp_path, emulator, [{"path": drop, **settings}], proxy=proxy)
    second = os.urandom(20_000)
    _drop(drop, {"b/IMG.jpg": second})
    emulator.faults.fail_next(1, status=0, kind="api", path_contains="/images")
    _once(config)
    # And a third, whose answer is lost after the create ran.
    third = os.urandom(20_000)
    _drop(drop, {"c/IMG.jpg": third})
    proxy.lose_answers(1, "POST", "/rest/v1.0/images")
    _once(config)

    assert len(proxy.lost) == 1
    uuids = [_stored_uuid(emulator, data) for data in (first, second, third)]
    assert [emulator.associations(u) for u in uuids] == [1, 1, 1]
    photos = _photos(emulator, "IMG.jpg")
    assert len(photos) == 3
    ours = sorted(e["destination"]["id"] for e in _ledger(tmp_path))
    theirs = [e["destination"]["id"] for e in _ledger(other)]
    assert sorted(ours + theirs) == sorted(p["id"] for p in photos)  # each its own image


def test_document_and_version_filed_once_when_answers_are_lost(
        tmp_path: Path, emulator: Emulator, proxy: LossyProxy) -> None:
    drop = tmp_path / "drop"
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents"}], proxy=proxy)
    _drop(drop, {"x/report.pdf": b"report v1"})
    proxy.lose_answers(1, "POST", "/rest/v1.0/folders")  # the folder create ran
    proxy.lose_answers(1, "POST", "/rest/v1.0/files")  # and so did the document's
    _once(config)
    _drop(drop, {"x/report.pdf": b"report v2"})
    proxy.lose_answers(1, "POST", "/rest/v1.0/file_versions")
    _once(config)

    assert len(proxy.lost) == 3
    assert sorted(p for p in _folder_paths(emulator).values() if p) == ["x"]
    documents = _documents(emulator)
    assert list(documents) == ["x/report.pdf"]
    uuids = [_stored_uuid(emulator, b"report v1"), _stored_uuid(emulator, b"report v2")]
    assert documents["x/report.pdf"]["upload_uuids"] == uuids
    assert [emulator.associations(u) for u in uuids] == [1, 1]


def test_renamed_document_found_after_a_lost_answer(
        tmp_path: Path, emulator: Emulator, proxy: LossyProxy) -> None:
    drop = tmp_path / "drop"
    config = _config(tmp_path, emulator, [{"path": drop, "project_id": PROJECT,
                                           "destination": "documents",
                                           "on_name_clash": "rename"}], proxy=proxy)
    _drop(drop, {"plan.pdf": b"one"})
    _once(config)
    _drop(drop, {"plan.pdf": b"two"})
    proxy.lose_answers(1, "POST", "/rest/v1.0/files")
    _once(config)
    documents = _documents(emulator)
    assert len(documents) == 2
    assert [emulator.associations(_stored_uuid(emulator, d)) for d in (b"one", b"two")] == [1, 1]


# --- API economy -----------------------------------------------------------------------------


def calls_per_file(emu: Emulator, project: int, files: int) -> float:
    """API calls (no token, no storage) naming ``project``, per file."""
    calls = [r for r in _api(emu) if f"/projects/{project}/" in r.path
             or f"project_id={project}" in r.query]
    return len(calls) / files


def test_api_calls_per_file_at_the_floor(tmp_path: Path, emulator: Emulator) -> None:
    n = 6
    plan = {"none": (11, {}), "photos": (12, {"photos_album_id": emulator.create_album(
        COMPANY_ID, 12, "Site")}), "documents": (13, {}), "documents mirrored": (14, {})}
    folders = []
    for label, (project, extra) in plan.items():
        root = tmp_path / label.replace(" ", "-")
        sub = "one-new-folder/" if label == "documents mirrored" else ""
        _drop(root, {f"{sub}file-{i}.bin": os.urandom(500 + i) for i in range(n)})
        folders.append({"path": root, "project_id": project,
                        "destination": label.split()[0], **extra})
    config = _config(tmp_path, emulator, folders, workers=4)
    _once(config)
    measured = {label: calls_per_file(emulator, project, n)
                for label, (project, _) in plan.items()}
    assert measured == {"none": 1.0, "photos": 2.0, "documents": 2.0,
                        "documents mirrored": 2.0 + 1 / n}


def test_company_documents_without_a_project(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    _drop(drop, {"policies/hr.pdf": b"company-wide", "policies/safety.pdf": b"also"})
    config = _config(tmp_path, emulator, [{"path": drop, "destination": "documents"}])
    _once(config)
    folders = {f["id"]: f for f in emulator.folders if f["project_id"] is None}
    (policies,) = [i for i, f in folders.items() if f["name"] == "policies"]
    documents = [d for d in emulator.documents if d["project_id"] is None]
    assert sorted(d["name"] for d in documents) == ["hr.pdf", "safety.pdf"]
    assert {d["parent_id"] for d in documents} == {policies}
    prefix = f"/rest/v1.0/companies/{COMPANY_ID}/"
    log = _api(emulator)
    assert _calls(log, "POST", prefix + "folders") == 1
    assert _calls(log, "POST", prefix + "files") == 2
    assert _calls(log, "POST", "/rest/v1.1/companies/") == 2  # company Uploads
