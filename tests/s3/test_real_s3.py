"""The storage side judged by a real S3 server (SeaweedFS), not by our emulator's code.

The emulator hands out POST policies and presigned part URLs for SeaweedFS; the daemon's
requests go to SeaweedFS itself, which stores them or refuses them with its own error codes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from procore_hotfolder.config import ProcoreSettings, load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.emulator.s3 import S3Storage
from procore_hotfolder.errors import StorageRejected, UploadExpired
from procore_hotfolder.procore import ProcoreClient, SegmentSpec, UploadTarget, UploadTicket
from procore_hotfolder.procore.governor import RateGovernor
from tests.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    cli_env,
    run_cli,
    running_engine,
    wait_for,
    write_config,
)

MIB = 1024 * 1024
#: One company per storage profile of the emulator: each has its own set and order of fields.
COMPANIES = (4240, 4241, 4242, 4243)


def _client(emu: Emulator, company_id: int) -> ProcoreClient:
    settings = ProcoreSettings(api_url=emu.url, login_url=emu.url, company_id=company_id,
                               client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               timeout_seconds=30.0)
    return ProcoreClient(settings, RateGovernor())


@pytest.fixture
def client(s3_emulator: Emulator) -> Iterator[ProcoreClient]:
    client = _client(s3_emulator, 4242)
    yield client
    client.close()


def _stored(s3: S3Storage, emu: Emulator, uuid: str) -> bytes:
    return s3.read(emu.uploads[uuid].key)


def _with_field(ticket: UploadTicket, name: str, value: str | None) -> UploadTicket:
    """The ticket with field ``name`` set to ``value`` (added when new, dropped when None)."""
    fields = [(k, value if k == name else v) for k, v in ticket.fields if k != name or value]
    if value is not None and name not in dict(ticket.fields):
        fields.insert(0, (name, value))
    return UploadTicket(**{**ticket.__dict__, "fields": tuple(fields)})


# --- what lands in S3 ------------------------------------------------------------------------


@pytest.mark.parametrize("company_id", COMPANIES)
def test_form_post_lands_in_s3_byte_identical(s3_emulator: Emulator, s3_storage: S3Storage,
                                              company_id: int) -> None:
    data = os.urandom(300_000)
    client = _client(s3_emulator, company_id)
    try:
        ticket = client.create_upload(UploadTarget(company_id, 77), "Plan A-101 ü.pdf", len(data))
        assert ticket.url.startswith(s3_storage.endpoint)  # the daemon talks to S3 itself
        client.store_file(ticket, io.BytesIO(data), filename="Plan A-101 ü.pdf",
                          content_type=None)
    finally:
        client.close()
    assert _stored(s3_storage, s3_emulator, ticket.uuid) == data


def test_segments_land_in_s3_byte_identical(s3_emulator: Emulator, s3_storage: S3Storage,
                                            client: ProcoreClient) -> None:
    data = os.urandom(11 * MIB + 777)
    pieces = [data[i:i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    specs = [SegmentSpec(size=len(p), sha256=hashlib.sha256(p).hexdigest(),
                         md5=hashlib.md5(p, usedforsecurity=False).hexdigest()) for p in pieces]
    ticket = client.create_upload(UploadTarget(4242, 77), "model.ifc", len(data),
                                  segments=specs)
    assert all(s.url.startswith(s3_storage.endpoint) for s in ticket.segments)
    etags = [client.store_segment(segment, io.BytesIO(piece))
             for segment, piece in zip(ticket.segments, pieces, strict=True)]
    client.complete_upload(UploadTarget(4242, 77), ticket.uuid,
                           list(zip(etags, specs, strict=True)))
    assert _stored(s3_storage, s3_emulator, ticket.uuid) == data


def test_daemon_uploads_files_into_s3(tmp_path: Path, s3_emulator: Emulator,
                                      s3_storage: S3Storage) -> None:
    """The real daemon: a small file by form POST and a big one in segments, both filed in
    Documents (the emulator asks S3 whether the bytes are there before it files them)."""
    drop = tmp_path / "drop"
    (drop / "sub dir").mkdir(parents=True)
    small, big = os.urandom(200_000), os.urandom(12 * MIB + 5)
    (drop / "sub dir" / "Übersicht 1.pdf").write_bytes(small)
    (drop / "pointcloud.e57").write_bytes(big)
    config = write_config(tmp_path, s3_emulator,
                          [{"path": str(drop), "project_id": 8, "destination": "documents"}],
                          segment_threshold_mib=10, segment_size_mib=5)
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    ledger = [json.loads(line)
              for line in (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    by_name = {Path(entry["source"]).name: entry for entry in ledger}
    assert _stored(s3_storage, s3_emulator, by_name["Übersicht 1.pdf"]["uuid"]) == small
    assert _stored(s3_storage, s3_emulator, by_name["pointcloud.e57"]["uuid"]) == big
    assert (drop / ".archive" / "sub dir" / "Übersicht 1.pdf").read_bytes() == small
    assert len(s3_emulator.documents) == 2


# --- what S3 refuses, and how the daemon reports it ------------------------------------------


@pytest.mark.parametrize("size", [50_000, 11 * MIB], ids=["form POST", "segmented"])
def test_daemon_renews_an_upload_that_s3_refuses_as_expired(
        tmp_path: Path, s3_emulator: Emulator, s3_storage: S3Storage, size: int) -> None:
    """The first Upload comes expired: S3 refuses it, the daemon says so with S3's code and
    uploads the file under a fresh Upload, once."""
    drop = tmp_path / "drop"
    drop.mkdir()
    data = os.urandom(size)
    (drop / "late.pdf").write_bytes(data)
    s3_emulator.faults.expired_uploads = 1
    config = write_config(tmp_path, s3_emulator, [{"path": str(drop), "project_id": 8}],
                          segment_threshold_mib=10, segment_size_mib=5)
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (retry,) = [e for e in events if e["event"] == "upload_retry_scheduled"]
    assert retry["code"] == "AccessDenied" and retry["status"] == 403
    assert "expired" in retry["detail"]  # S3's own words
    (entry,) = [json.loads(line) for line in
                (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    first, second = s3_emulator.uploads  # created in this order
    assert entry["uuid"] == second
    assert s3_storage.size_of(s3_emulator.uploads[first].key) is None
    assert _stored(s3_storage, s3_emulator, second) == data


def _refused(client: ProcoreClient, ticket: UploadTicket, body: bytes = b"hello") -> Exception:
    with pytest.raises((UploadExpired, StorageRejected)) as caught:
        client.store_file(ticket, io.BytesIO(body), filename="t.txt", content_type=None)
    return caught.value


def _content_type_field(ticket: UploadTicket) -> str:
    return next(k for k, _ in ticket.fields if k.lower() == "content-type")


@pytest.mark.parametrize("case", ["changed", "missing", "extra"])
def test_altered_form_is_refused_by_s3_and_renews_the_upload(
        s3_emulator: Emulator, s3_storage: S3Storage, client: ProcoreClient, case: str) -> None:
    ticket = client.create_upload(UploadTarget(4242, 77), "t.txt", 5)
    name = _content_type_field(ticket)
    altered = {"changed": _with_field(ticket, name, "application/x-other"),
               "missing": _with_field(ticket, name, None),
               "extra": _with_field(ticket, "x-amz-meta-added", "1")}[case]
    error = _refused(client, altered)
    assert isinstance(error, UploadExpired)  # a new Upload is the cure, not a resend
    assert error.status == 403
    assert error.code == "AccessDenied"
    assert "Policy" in error.message  # S3's own words: "Invalid according to Policy: ..."
    assert error.as_dict()["code"] == "AccessDenied"  # what logs and sidecars carry
    assert s3_storage.size_of(s3_emulator.uploads[ticket.uuid].key) is None  # nothing stored


def test_bad_signature_is_refused_by_s3(client: ProcoreClient) -> None:
    ticket = client.create_upload(UploadTarget(4242, 77), "t.txt", 5)
    name = next(k for k, _ in ticket.fields if k.lower() == "x-amz-signature")
    error = _refused(client, _with_field(ticket, name, "0" * 64))
    assert isinstance(error, UploadExpired)
    assert error.code == "SignatureDoesNotMatch"


def test_oversized_body_is_refused_by_s3_as_permanent(client: ProcoreClient) -> None:
    ticket = client.create_upload(UploadTarget(4242, 77), "t.txt", 5)  # policy: at most 5
    error = _refused(client, ticket, body=b"hello, world")
    assert isinstance(error, StorageRejected)  # the same bytes will never fit: permanent
    assert error.status == 400
    assert error.code == "EntityTooLarge"


def test_expired_policy_is_refused_by_s3_and_renews_the_upload(
        s3_emulator: Emulator, client: ProcoreClient) -> None:
    s3_emulator.faults.upload_ttl = -60  # the policy's expiration is a minute ago
    ticket = client.create_upload(UploadTarget(4242, 77), "t.txt", 5)
    error = _refused(client, ticket)
    assert isinstance(error, UploadExpired)
    assert error.code == "AccessDenied"
    assert "expired" in error.message.lower()


def test_segment_with_another_checksum_is_refused_by_s3(client: ProcoreClient) -> None:
    data = os.urandom(5 * MIB)
    spec = SegmentSpec(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    ticket = client.create_upload(UploadTarget(4242, 77), "seg.bin", len(data), segments=[spec])
    (segment,) = ticket.segments
    forged = type(segment)(**{**segment.__dict__, "headers": (
        *((k, v) for k, v in segment.headers if k.lower() != "x-amz-content-sha256"),
        ("x-amz-content-sha256", hashlib.sha256(b"other").hexdigest()))})
    with pytest.raises(UploadExpired) as caught:
        client.store_segment(forged, io.BytesIO(data))
    assert caught.value.code == "SignatureDoesNotMatch"


def test_emulator_command_with_s3_storage(tmp_path: Path, s3_storage: S3Storage) -> None:
    """`procore-hotfolder emulator --s3-endpoint ...` as a user starts it; the daemon's upload
    lands in S3."""
    port = _free_port()
    env = {**cli_env(), "EMULATOR_S3_SECRET_KEY": s3_storage.secret_key}
    with (tmp_path / "emulator.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", "emulator", "--port", str(port),
             "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
             "--s3-endpoint", s3_storage.endpoint, "--s3-bucket", s3_storage.bucket,
             "--s3-access-key", s3_storage.access_key],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), timeout=30, message="the emulator command")
        drop = tmp_path / "drop"
        drop.mkdir()
        data = os.urandom(70_000)
        (drop / "scan.pdf").write_bytes(data)
        config = write_config(tmp_path, cast(Emulator, _Url(url)),
                              [{"path": str(drop), "project_id": 8}])
        result = run_cli("once", "-c", str(config))
        assert result.returncode == 0, result.stdout + result.stderr
        (entry,) = [json.loads(line) for line in
                    (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
        keys = s3_storage.request("GET", query=[("list-type", "2"), ("prefix", "")]).text
        (key,) = [k for k in re.findall(r"<Key>([^<]+)</Key>", keys) if entry["uuid"] in k]
        assert s3_storage.read(key) == data
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0


class _Url:
    """What ``write_config`` needs of an emulator: its URL."""

    def __init__(self, url: str) -> None:
        self.url = url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/_emulator/state", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def test_a_file_rewritten_during_a_segmented_upload_is_uploaded_again_as_it_now_is(
        tmp_path: Path, s3_emulator: Emulator, s3_storage: S3Storage,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file rewritten in place (same size, same mtime) while its segments go out: S3 refuses
    the next part (400 BadDigest: not the declared MD5). The daemon must see that the file
    changed, not that a transfer was damaged (resending the same Upload's stale segments
    would fail for ever), and upload the file again as what it now is."""
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / "model.ifc"
    path.write_bytes(os.urandom(11 * MIB))
    stat = path.stat()
    rewritten = os.urandom(11 * MIB)
    sends = {"count": 0}
    original = ProcoreClient.store_segment

    def rewriting_store_segment(self: ProcoreClient, segment: Any, body: Any) -> str:
        sends["count"] += 1
        if sends["count"] == 2:  # after the first part went out: rewrite the file in place
            with path.open("r+b") as f:
                f.write(rewritten)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return original(self, segment, body)

    monkeypatch.setattr(ProcoreClient, "store_segment", rewriting_store_segment)
    config = load_config(write_config(tmp_path, s3_emulator, [{"path": str(drop)}],
                                      segment_threshold_mib=10, segment_size_mib=5,
                                      segment_parallelism=1), environ={})
    with running_engine(config) as (_, capture):
        wait_for((drop / ".archive" / "model.ifc").exists, timeout=60, message="archived")
    changed = [e for e in capture.entries if e.get("event") == "file_changed"]
    assert changed and "changed while it was being sent" in str(changed[0]["detail"])
    (entry,) = [json.loads(line) for line in
                (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    assert entry["sha256"] == hashlib.sha256(rewritten).hexdigest()
    assert _stored(s3_storage, s3_emulator, entry["uuid"]) == rewritten
    assert (drop / ".archive" / "model.ifc").read_bytes() == rewritten
