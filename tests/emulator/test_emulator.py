"""The local Procore emulator, exercised over real HTTP with requests and requests-toolbelt."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from procore_hotfolder.emulator import Emulator
from procore_hotfolder.emulator.multipart import MultipartError, MultipartParser

from .support import COMPANY, MIB, PROJECT, Client, s3_code, wait_for

# --- tokens and authentication ---------------------------------------------------------------


def test_token_endpoint(emu: Emulator) -> None:
    url = emu.url + "/oauth/token"
    good = {"grant_type": "client_credentials", "client_id": "emulator-client"}
    ok = requests.post(url, data={**good, "client_secret": "emulator-secret"})
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 5400
    assert abs(body["created_at"] - time.time()) < 5
    assert ok.headers["x-request-id"]
    again = requests.post(url, data={**good, "client_secret": "emulator-secret"})
    assert again.status_code == 200
    assert again.json()["access_token"] != body["access_token"]
    # Procore documents form parameters only: a JSON body or HTTP Basic is not read
    as_json = requests.post(url, json={**good, "client_secret": "emulator-secret"})
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    basic = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=("emulator-client", "emulator-secret"))
    assert basic.status_code == 401
    assert basic.json()["error"] == "invalid_client"
    wrong = requests.post(url, data={**good, "client_secret": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    grant = requests.post(url, data={"grant_type": "password"})
    assert grant.status_code == 400
    assert grant.json() == {"error": "unsupported_grant_type"}
    assert emu.count(kind="token") == 6


def test_token_expiry_and_revocation(emu: Emulator) -> None:
    emu.faults.token_lifetime = 1
    client = Client(emu)
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200
    wait_for(lambda: client.call("GET", "/rest/v1.0/companies").status_code == 401)
    expired = client.call("GET", "/rest/v1.0/companies")
    assert expired.json() == {"message": "Unauthorized"}
    assert "invalid_token" in expired.headers["WWW-Authenticate"]
    emu.faults.token_lifetime = 5400
    client.token = client.new_token()
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200
    emu.faults.revoke_tokens()
    assert client.call("GET", "/rest/v1.0/companies").status_code == 401


def test_api_requires_token_and_company_header(emu: Emulator, client: Client) -> None:
    url = emu.url + "/rest/v1.0/companies"
    missing = requests.get(url, headers={"Procore-Company-Id": "1"})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    bogus = requests.get(url, headers={"Authorization": "Bearer nope", "Procore-Company-Id": "1"})
    assert bogus.status_code == 401
    assert "errors" in bogus.json()
    no_company = requests.get(url, headers={"Authorization": f"Bearer {client.token}"})
    assert no_company.status_code == 400
    assert no_company.json() == {"errors": "Missing Procore-Company-Id header!"}
    ok = client.call("GET", "/rest/v1.0/companies")
    assert ok.json() == [{"id": COMPANY, "name": f"Emulated Co {COMPANY}", "is_active": True}]
    for response in (missing, bogus, no_company, ok):
        assert response.headers["x-request-id"]
        assert {"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"} <= set(
            response.headers
        )
    assert client.call("GET", "/rest/v1.0/nothing").status_code == 404
    malformed = client.call(
        "POST", f"/rest/v1.1/projects/{PROJECT}/uploads", data=b"{not json",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert malformed.status_code == 400
    assert malformed.json() == {"errors": {"base": ["malformed"]}}


# --- uploads and storage ---------------------------------------------------------------------


@pytest.mark.parametrize("company", [8, 9, 10, 11])
@pytest.mark.parametrize("project", [PROJECT, None])
def test_upload_is_stored_with_its_sha256(emu: Emulator, company: int, project: int | None) -> None:
    client = Client(emu, company)
    data = os.urandom(300_000) + b"\r\n--" + os.urandom(1000)
    upload = client.create_upload(project, response_filename="Plan é 1.pdf", size=len(data))
    assert len(upload["uuid"]) == 26
    assert upload["uuid"] == upload["uuid"].upper()
    assert upload["status"] == "ready"
    fields = upload["fields"]
    assert {"key", "policy", "x-amz-credential", "x-amz-algorithm", "x-amz-date"} <= set(fields)
    assert fields["x-amz-credential"].endswith("/us-east-1/s3/aws4_request")
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", policy["conditions"][-1][1], len(data)] in policy["conditions"]
    response = client.store(upload, data)
    assert response.status_code in (200, 201, 204)
    assert response.headers["ETag"].startswith('"')
    if fields.get("success_action_status") == "201":
        assert response.status_code == 201
        assert "<PostResponse>" in response.text
    [record] = emu.stored_uploads()
    assert record.uuid == upload["uuid"]
    assert (record.company_id, record.project_id) == (company, project)
    assert record.stored_sha256 == hashlib.sha256(data).hexdigest()
    assert record.store_count == 1
    assert emu.stored_path(record.uuid).read_bytes() == data
    scope = f"projects/{project}" if project else f"companies/{company}"
    shown = client.call("GET", f"/rest/v1.1/{scope}/uploads/{record.uuid}")
    assert shown.json()["status"] == "complete"


def test_storage_target_differs_between_companies(emu: Emulator) -> None:
    first = Client(emu, 20).create_upload()
    second = Client(emu, 21).create_upload()
    assert first["url"] != second["url"]
    assert list(first["fields"]) != list(second["fields"])
    assert first["url"].startswith(emu.url + "/storage/")


def test_upload_access_is_limited_to_its_company_and_project(client: Client) -> None:
    upload = client.create_upload()
    uuid = upload["uuid"]
    assert client.call("GET", f"/rest/v1.1/projects/{PROJECT}/uploads/{uuid}").status_code == 200
    assert (
        client.call("GET", f"/rest/v1.1/projects/{PROJECT + 1}/uploads/{uuid}").status_code == 404
    )
    other = Client(client.emu, COMPANY + 1)
    response = other.call("GET", f"/rest/v1.1/projects/{PROJECT}/uploads/{uuid}")
    assert response.status_code == 404
    assert response.json() == {"errors": {"base": ["Not found"]}}
    wrong_company = client.call(
        "POST", "/rest/v1.1/companies/1/uploads", json={"response_filename": "a"}
    )
    assert wrong_company.status_code == 403
    assert wrong_company.json()["error"]["code"] == "forbidden"
    blank = client.call("POST", f"/rest/v1.1/projects/{PROJECT}/uploads", json={})
    assert blank.status_code == 422
    assert blank.json() == {"errors": {"response_filename": ["can't be blank"]}}
    client.emu.faults.forbidden_projects = {PROJECT}
    forbidden = client.call(
        "POST", f"/rest/v1.1/projects/{PROJECT}/uploads", json={"response_filename": "a"}
    )
    assert forbidden.status_code == 403


def _file_part(data: bytes) -> tuple[str, tuple[str, io.BytesIO, str]]:
    return ("file", ("scan.pdf", io.BytesIO(data), "application/pdf"))


def test_storage_refusals_use_s3_codes(emu: Emulator, client: Client) -> None:
    data = b"%PDF-1.7 hello"
    upload = client.create_upload(size=len(data))
    fields = list(upload["fields"].items())
    names = [name for name, _ in fields]
    ctype = next(name for name in names if name.lower() == "content-type")

    def refused(status: int, code: str, response: requests.Response) -> str:
        assert response.status_code == status, response.text
        assert s3_code(response) == code
        assert response.headers["x-amz-request-id"]
        assert "x-request-id" not in response.headers  # Procore's API header, not S3's
        return response.text

    tampered = [(n, "text/plain" if n == ctype else v) for n, v in fields]
    text = refused(403, "AccessDenied", client.store(upload, data, [*tampered, _file_part(data)]))
    assert "Policy Condition failed" in text
    bad_policy = [(n, v[:-4] + "AAA=" if n == "policy" else v) for n, v in fields]
    refused(
        403, "SignatureDoesNotMatch", client.store(upload, data, [*bad_policy, _file_part(data)])
    )
    missing = [(n, v) for n, v in fields if n != "x-amz-date"]
    refused(400, "InvalidArgument", client.store(upload, data, [*missing, _file_part(data)]))
    extra = [*fields, ("x-amz-meta-extra", "1"), _file_part(data)]
    assert "Extra input fields: x-amz-meta-extra" in refused(
        403, "AccessDenied", client.store(upload, data, extra)
    )
    key_after_file = [(n, v) for n, v in fields if n != "key"]
    late = [*key_after_file, _file_part(data), ("key", upload["fields"]["key"])]
    assert "'key'" in refused(400, "InvalidArgument", client.store(upload, data, late))
    refused(400, "InvalidArgument", client.store(upload, data, fields))  # no file at all
    big = data + b"!"
    refused(400, "EntityTooLarge", client.store(upload, big, [*fields, _file_part(big)]))
    refused(
        400, "InvalidArgument",
        client.store(upload, data, headers={"Authorization": f"Bearer {client.token}"}),
    )  # fmt: skip
    wrong_case = [(n.upper() if n == "key" else n, v) for n, v in fields]
    assert client.store(upload, data, [*wrong_case, _file_part(data)]).status_code < 300
    assert emu.uploads[upload["uuid"]].store_count == 1


def test_fields_after_the_file_are_ignored_and_repost_counts(emu: Emulator, client: Client) -> None:
    data = b"A" * 1000
    upload = client.create_upload()
    fields = [*upload["fields"].items(), _file_part(data), ("x-amz-meta-ignored", "z")]
    assert client.store(upload, data, fields).status_code < 300
    assert client.store(upload, data).status_code < 300
    assert emu.uploads[upload["uuid"]].store_count == 2


def test_expired_policy_is_refused(emu: Emulator, client: Client) -> None:
    emu.faults.upload_ttl = 0.3
    upload = client.create_upload()
    expires = emu.uploads[upload["uuid"]].expires_at
    wait_for(lambda: time.time() > expires + 0.01)
    response = client.store(upload, b"late")
    assert response.status_code == 403
    assert s3_code(response) == "AccessDenied"
    assert "Policy expired" in response.text
    assert emu.stored_uploads() == []


# --- segmented uploads -----------------------------------------------------------------------


def _segments(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_segmented_upload(emu: Emulator, client: Client) -> None:
    data = random.Random(1).randbytes(5 * MIB + 123_456)
    pieces = _segments(data, 5 * MIB)
    declared = [
        {
            "size": len(p),
            "sha256": hashlib.sha256(p).hexdigest(),
            "md5": base64.b64encode(hashlib.md5(p).digest()).decode(),
        }
        for p in pieces
    ]
    upload = client.create_upload(size=len(data), segments=declared)
    assert upload["status"] == "ready"
    assert "fields" not in upload
    segments = upload["segments"]
    assert segments[0]["headers"]["content-md5"] == declared[0]["md5"]
    for segment, d, piece in zip(segments, declared, pieces, strict=True):
        # as Procore's upload tutorial shows a segment: md5 (hex), sha256, size, url, headers
        assert set(segment) == {"md5", "sha256", "size", "url", "headers"}
        assert (segment["md5"], segment["sha256"], segment["size"]) == (
            hashlib.md5(piece).hexdigest(), d["sha256"], d["size"])
    assert "Authorization" not in segments[0]["headers"]
    # A body that does not match the declared SHA-256 is refused.
    wrong = bytes(len(pieces[1]))
    refused = requests.put(segments[1]["url"], data=wrong, headers=segments[1]["headers"])
    assert refused.status_code == 400
    assert s3_code(refused) == "XAmzContentSHA256Mismatch"
    etags = []
    for segment, piece in zip(segments, pieces, strict=True):
        response = requests.put(segment["url"], data=piece, headers=segment["headers"])
        assert response.status_code == 200, response.text
        assert response.headers["ETag"] == f'"{hashlib.md5(piece).hexdigest()}"'
        etags.append(response.headers["ETag"])
    path = f"/rest/v1.1/projects/{PROJECT}/uploads/{upload['uuid']}"
    reversed_order = client.call(
        "PATCH", path, json={"segments": [{"etag": e} for e in etags[::-1]]}
    )
    assert reversed_order.status_code == 422
    assert "errors" in reversed_order.json()
    body = {
        "segments": [
            {"etag": e.strip('"'), "size": d["size"], "sha256": d["sha256"]}
            for e, d in zip(etags, declared, strict=True)
        ]
    }
    done = client.call("PATCH", path, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "complete"
    # completed, each segment also names its etag (the tutorial's Complete Upload answer)
    assert [s["etag"] for s in done.json()["segments"]] == [e.strip('"') for e in etags]
    record = emu.uploads[upload["uuid"]]
    assert record.stored_sha256 == hashlib.sha256(data).hexdigest()
    assert record.store_count == 1
    again = client.call("PATCH", path, json={"segments": [{"etag": e} for e in etags]})
    assert again.status_code == 200
    assert record.store_count == 1
    assert emu.stored_path(record.uuid).read_bytes() == data
    late = requests.put(segments[0]["url"], data=pieces[0], headers=segments[0]["headers"])
    assert s3_code(late) == "NoSuchUpload"


def test_segmented_validation_and_expiry(emu: Emulator, client: Client) -> None:
    sha = "a" * 64
    path = f"/rest/v1.1/projects/{PROJECT}/uploads"
    small_first = client.call(
        "POST", path, json={"response_filename": "x", "segments": [{"size": 10, "sha256": sha}] * 2}
    )
    assert small_first.status_code == 422
    no_sha = client.call("POST", path, json={"response_filename": "x", "segments": [{"size": 10}]})
    assert no_sha.status_code == 422
    emu.faults.upload_ttl = 0.3
    upload = client.create_upload(
        segments=[{"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}]
    )
    segment = upload["segments"][0]
    expires = emu.uploads[upload["uuid"]].expires_at
    wait_for(lambda: time.time() > expires + 0.01)
    response = requests.put(segment["url"], data=b"abc", headers=segment["headers"])
    assert response.status_code == 403
    assert "Request has expired" in response.text
    gone = client.call("PATCH", f"{path}/{upload['uuid']}", json={"segments": [{"etag": "x"}]})
    assert gone.status_code == 410
    tampered = segment["url"].replace("partNumber=1", "partNumber=2")
    assert s3_code(requests.put(tampered, data=b"abc", headers=segment["headers"])) == (
        "SignatureDoesNotMatch"
    )


# --- documents and photos --------------------------------------------------------------------


def test_documents_files_folders_and_versions(emu: Emulator, client: Client) -> None:
    query = f"?project_id={PROJECT}"
    root = client.call("GET", "/rest/v1.0/folders" + query).json()
    assert root["is_root"] is True
    assert root["parent_id"] is None
    created = client.call(
        "POST",
        "/rest/v1.0/folders" + query,
        json={"folder": {"name": "Scans", "parent_id": root["id"]}},
    )
    assert created.status_code == 201
    folder_id = created.json()["id"]
    assert folder_id > 2**32
    first = client.upload_file(b"one")

    def new_file(uuid: str, unique: bool) -> requests.Response:
        spec = {"parent_id": folder_id, "name": "a.pdf", "upload_uuid": uuid, "unique_name": unique}
        return client.call("POST", "/rest/v1.0/files" + query, json={"file": spec})

    made = new_file(first, False)
    assert made.status_code == 201
    document = made.json()
    assert document["name"] == "a.pdf"
    assert first not in json.dumps(document)
    assert document["file_versions"][0]["number"] == 1
    second = client.upload_file(b"two")
    clash = new_file(second, False)
    assert clash.status_code == 422
    assert clash.json() == {"errors": {"name": ["has already been taken"]}}
    renamed = new_file(second, True)
    assert renamed.json()["name"] == "a (1).pdf"
    third = client.upload_file(b"three")
    version = client.call(
        "POST", f"/rest/v1.0/file_versions{query}&file_id={document['id']}",
        json={"file_version": {"upload_uuid": third}},
    )  # fmt: skip
    assert version.status_code == 201
    assert version.json()["number"] == 2
    listing = client.call("GET", f"/rest/v1.0/folders/{folder_id}{query}").json()
    versions = {f["name"]: len(f["file_versions"]) for f in listing["files"]}
    assert versions == {"a.pdf": 2, "a (1).pdf": 1}
    assert [emu.associations(u) for u in (first, second, third)] == [1, 1, 1]
    assert len(emu.documents) == 2
    unstored = client.create_upload()["uuid"]
    assert new_file(unstored, True).json() == {"errors": {"upload_uuid": ["is invalid"]}}
    other_project = client.upload_file(b"x", project=PROJECT + 1)
    assert new_file(other_project, True).status_code == 422
    missing_parent = client.call(
        "POST", "/rest/v1.0/files" + query,
        json={"file": {"parent_id": 12345, "name": "b.pdf", "upload_uuid": first}},
    )  # fmt: skip
    assert missing_parent.status_code == 404


def test_images(emu: Emulator, client: Client) -> None:
    query = f"?project_id={PROJECT}"
    uuid = client.upload_file(b"\xff\xd8 jpeg")
    empty = client.call(
        "POST", "/rest/v1.0/images" + query,
        json={"upload_uuid": uuid, "image_name": "site.jpg", "image": {}},
    )  # fmt: skip
    assert empty.status_code == 422
    made = client.call(
        "POST", "/rest/v1.0/images" + query,
        json={"upload_uuid": uuid, "image_name": "site.jpg", "image": {"image_category_id": 7}},
    )  # fmt: skip
    assert made.status_code == 201
    assert made.json()["filename"] == "site.jpg"
    assert made.json()["image_category_id"] == 7
    listed = client.call("GET", "/rest/v1.0/images" + query).json()
    assert [(i["id"], i["filename"]) for i in listed] == [(made.json()["id"], "site.jpg")]
    assert emu.associations(uuid) == 1
    assert emu.images[0]["upload_uuid"] == uuid


# --- rate limits and faults ------------------------------------------------------------------


def test_rate_limit_answers_429(emu: Emulator, client: Client) -> None:
    emu.faults.rate_limit = (3, 60)
    remaining = [
        client.call("GET", "/rest/v1.0/companies").headers["X-Rate-Limit-Remaining"]
        for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    limited = client.call("GET", "/rest/v1.0/companies")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert int(limited.headers["X-Rate-Limit-Reset"]) >= int(time.time())
    assert limited.headers["X-Rate-Limit-Limit"] == "3"
    assert client.new_token()  # token calls are not API calls
    emu.faults.rate_limit = None
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200


def test_error_drop_outage_and_scripted_faults(emu: Emulator, client: Client) -> None:
    emu.faults.seed(7)
    emu.faults.error_rate = 1
    statuses = {client.call("GET", "/rest/v1.0/companies").status_code for _ in range(5)}
    assert statuses == {500}
    emu.faults.error_rate = 0
    emu.faults.drop_rate = 1
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            client.call(
                "POST", f"/rest/v1.1/projects/{PROJECT}/uploads", json={"response_filename": "a"}
            )
    # The server logs a dropped request after closing the socket: wait for the record.
    wait_for(lambda: emu.count(status=0, kind="api") == 3)
    assert emu.uploads == {}
    emu.faults.drop_rate = 0
    emu.faults.outage = True
    outage = client.call("GET", "/rest/v1.0/companies")
    assert outage.status_code == 503
    assert outage.headers["Retry-After"] == "1"
    token = requests.post(emu.url + "/oauth/token", data={"grant_type": "client_credentials"})
    assert token.status_code == 503
    emu.faults.outage = False
    emu.faults.fail_next(2, status=502, path_contains="/uploads")
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200
    path = f"/rest/v1.1/projects/{PROJECT}/uploads"
    codes = [
        client.call("POST", path, json={"response_filename": "a"}).status_code for _ in range(3)
    ]
    assert codes == [502, 502, 201]


def test_storage_faults_never_count_as_stored(emu: Emulator, client: Client) -> None:
    upload = client.create_upload()
    emu.faults.storage_drop_rate = 1
    with pytest.raises(requests.ConnectionError):
        client.store(upload, b"x" * 100_000)
    emu.faults.storage_drop_rate = 0
    emu.faults.fail_next(1, status=503, kind="storage")
    response = client.store(upload, b"x" * 100_000)
    assert response.status_code == 503
    assert s3_code(response) == "SlowDown"
    assert emu.stored_uploads() == []
    assert client.store(upload, b"x" * 100_000).status_code < 300
    assert emu.uploads[upload["uuid"]].store_count == 1


def test_admin_endpoint(emu: Emulator, client: Client) -> None:
    uuid = client.upload_file(b"admin")
    set_faults = requests.post(
        emu.url + "/_emulator/faults", json={"error_rate": 1, "error_status": 503}
    )
    assert set_faults.status_code == 200
    assert emu.faults.error_rate == 1
    assert client.call("GET", "/rest/v1.0/companies").status_code == 503
    requests.post(emu.url + "/_emulator/faults", json={"error_rate": 0, "rate_limit": [10, 60]})
    assert emu.faults.rate_limit == (10, 60)
    assert requests.post(emu.url + "/_emulator/faults", json={"bogus": 1}).status_code == 400
    state = requests.get(emu.url + "/_emulator/state").json()
    [upload] = state["uploads"]
    assert upload["uuid"] == uuid
    assert upload["stored_sha256"] == hashlib.sha256(b"admin").hexdigest()
    assert upload["store_count"] == 1
    assert upload["associations"] == 0
    assert state["requests"]["by_status"]["503"] == 1
    logged = len(emu.request_log)
    requests.get(emu.url + "/_emulator/state")
    assert len(emu.request_log) == logged  # admin calls are not logged


# --- plumbing --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4096])
def test_multipart_parser_handles_any_chunking(chunk_size: int) -> None:
    payload = b"\r\n--boundar" + os.urandom(3000) + b"\r\n--"
    fields = [("a", "1"), ("policy", "x" * 100), ("file", ("f", io.BytesIO(payload), "x/y"))]
    encoder = MultipartEncoder(fields=fields, boundary="boundary")
    body = b"preamble\r\n" + encoder.to_string() + b"epilogue"
    parser = MultipartParser(io.BytesIO(body), len(body), b"boundary", chunk_size=chunk_size)
    seen = []
    while (part := parser.next_part()) is not None:
        seen.append((part.name, part.filename, parser.read_value(10_000)))
    assert seen == [("a", None, b"1"), ("policy", None, b"x" * 100), ("file", "f", payload)]
    broken = body[: len(body) // 2]
    parser = MultipartParser(io.BytesIO(broken), len(broken), b"boundary", chunk_size=chunk_size)
    with pytest.raises(MultipartError):
        while parser.next_part() is not None:
            parser.read_value(10_000)


def test_stop_is_idempotent_and_joins_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    emu = Emulator(data_dir=tmp_path).start()
    client = Client(emu)  # leaves a keep-alive connection open
    client.upload_file(b"keep")
    emu.stop()
    emu.stop()
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leaked == []
    assert any(tmp_path.joinpath("objects").iterdir())  # a given data_dir is kept


def test_serve_runs_until_sigterm() -> None:
    code = (
        "from procore_hotfolder.emulator import serve\n"
        "serve(port=0, ready=lambda emu: print(emu.url, flush=True))\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            response = requests.post(
                url + "/oauth/token", data={"grant_type": "client_credentials"}
            )
            assert response.status_code == 401
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_token_faults_outage_drop_and_failing_segments(emu: Emulator, client: Client) -> None:
    emu.faults.fail_next(1, status=500, kind="token")
    failed = requests.post(emu.url + "/oauth/token", data={"grant_type": "client_credentials"})
    assert failed.status_code == 500
    assert client.new_token()
    emu.faults.outage = True
    emu.faults.outage_mode = "drop"
    with pytest.raises(requests.ConnectionError):
        client.call("GET", "/rest/v1.0/companies")
    emu.faults.outage = False
    data = b"s" * 1000
    upload = client.create_upload(
        segments=[{"size": 1000, "sha256": hashlib.sha256(data).hexdigest()}]
    )
    segment = upload["segments"][0]
    emu.faults.failing_segments = {1}
    failing = requests.put(segment["url"], data=data, headers=segment["headers"])
    assert failing.status_code == 500
    assert s3_code(failing) == "InternalError"
    emu.faults.failing_segments = set()
    emu.faults.fail_next(1, status=0, kind="segment")
    with pytest.raises(requests.ConnectionError):
        requests.put(segment["url"], data=data, headers=segment["headers"])
    assert emu.uploads[upload["uuid"]].parts == {}
    ok = requests.put(segment["url"], data=data, headers=segment["headers"])
    assert ok.status_code == 200
    assert emu.uploads[upload["uuid"]].parts[1][2] == hashlib.sha256(data).hexdigest()
