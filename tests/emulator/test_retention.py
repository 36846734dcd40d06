"""Uploads left unfiled past their retention are deleted, as Procore deletes them."""

from __future__ import annotations

import requests

from procore_hotfolder.emulator import Emulator

from .support import PROJECT, Client, wait_for

QUERY = f"?project_id={PROJECT}"


def test_default_retention_is_a_week(emu: Emulator) -> None:
    assert emu.faults.upload_retention == 7 * 86_400


def test_unfiled_upload_is_deleted_after_retention(emu: Emulator, client: Client) -> None:
    emu.faults.upload_retention = 0.3
    filed = client.upload_file(b"filed")
    made = client.call("POST", "/rest/v1.0/files" + QUERY, json={"file": {
        "name": "kept.pdf", "upload_uuid": filed}})
    assert made.status_code == 201
    unfiled = client.upload_file(b"unfiled")
    show = f"/rest/v1.1/projects/{PROJECT}/uploads/{unfiled}"
    assert client.call("GET", show).status_code == 200
    wait_for(lambda: client.call("GET", show).status_code == 404)
    assert client.call("GET", show).json() == {"errors": {"base": ["Not found"]}}
    assert unfiled in emu.purged_uploads
    assert unfiled not in emu.uploads
    late = client.call("POST", "/rest/v1.0/files" + QUERY, json={"file": {
        "name": "late.pdf", "upload_uuid": unfiled}})
    assert late.status_code == 422
    assert late.json() == {"errors": {"upload_uuid": ["is invalid"]}}
    image = client.call("POST", "/rest/v1.0/images" + QUERY, json={
        "upload_uuid": unfiled, "image_name": "late.jpg", "image": {"description": ""}})
    assert image.status_code == 422
    # The filed one stays, and may take more versions.
    assert client.call("GET", f"/rest/v1.1/projects/{PROJECT}/uploads/{filed}"
                       ).status_code == 200
    assert emu.associations(filed) == 1


def test_sweep_and_admin_view(emu: Emulator, client: Client) -> None:
    unfiled = client.upload_file(b"sweep me")
    assert emu.purge_unfiled_uploads() == []  # a week has not passed
    requests.post(emu.url + "/_emulator/faults", json={"upload_retention": 0})
    assert emu.purge_unfiled_uploads() == [unfiled]
    assert not emu.stored_uploads()
    state = requests.get(emu.url + "/_emulator/state").json()
    assert state["purged_uploads"] == [unfiled]
    assert state["uploads"] == []
