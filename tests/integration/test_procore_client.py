"""ProcoreClient against real local HTTP servers: the project's emulator, and a tiny capture
server where the exact bytes on the wire matter. Plus the error mapping, table-driven."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from structlog.testing import capture_logs

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.errors import (
    AuthenticationError,
    Conflict,
    ContentMismatch,
    NetworkError,
    NotFound,
    PermissionDenied,
    ProcoreError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    StorageRejected,
    UnexpectedResponse,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.procore import (
    SEND_BLOCK_SIZE,
    ProcoreClient,
    SegmentSpec,
    SegmentTicket,
    UploadTarget,
    UploadTicket,
)
from procore_hotfolder.procore.error_mapping import error_from_exception, error_from_response
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.http import safe_url
from procore_hotfolder.procore.retry import RetryPolicy
from tests.conftest import CLIENT_ID, CLIENT_SECRET, COMPANY_ID

PROJECT = 77
MIB = 1024 * 1024


# --- fixtures --------------------------------------------------------------------------------



def settings_for(url: str, *, secret: str = CLIENT_SECRET) -> ProcoreSettings:
    return ProcoreSettings(api_url=url, login_url=url, company_id=COMPANY_ID, client_id=CLIENT_ID,
                           client_secret=secret, timeout_seconds=10.0)


class Sleeps:
    """A sleep that records and returns at once (the emulator needs no real waiting)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.calls.append(seconds)
        return True


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(emulator: Emulator, sleeps: Sleeps) -> Iterator[Callable[..., ProcoreClient]]:
    clients: list[ProcoreClient] = []

    def make(**kwargs: Any) -> ProcoreClient:
        settings = kwargs.pop("settings", settings_for(emulator.url))
        governor = kwargs.pop("governor", RateGovernor())
        kwargs.setdefault("sleep", sleeps)
        client = ProcoreClient(settings, governor, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., ProcoreClient]) -> ProcoreClient:
    return make_client()


PROJECT_TARGET = UploadTarget(company_id=COMPANY_ID, project_id=PROJECT)
COMPANY_TARGET = UploadTarget(company_id=COMPANY_ID, project_id=None)


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, MIB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


# --- token -----------------------------------------------------------------------------------


def test_token_is_cached(emulator: Emulator, client: ProcoreClient) -> None:
    client.ensure_token()
    list(client.get_pages("v1.0/companies"))
    list(client.get_pages("v1.0/companies"))
    assert emulator.count(kind="token") == 1


def test_short_lived_token_is_renewed_ahead_of_expiry(
        emulator: Emulator, make_client: Callable[..., ProcoreClient]) -> None:
    emulator.faults.token_lifetime = 2
    now = [1000.0]
    client = make_client(clock=lambda: now[0])
    with capture_logs() as events:
        list(client.get_pages("v1.0/companies"))
        now[0] += 1.7  # 20 % of 2 s before expiry: renew now
        list(client.get_pages("v1.0/companies"))
    assert emulator.count(kind="token") == 2
    assert emulator.count(status=401) == 0
    renewals = [e for e in events if e["event"] == "token_renewed"]
    assert [e["expires_in"] for e in renewals] == [2.0, 2.0]
    assert CLIENT_SECRET not in repr(events)


def test_401_renews_once_and_retries_once(emulator: Emulator, client: ProcoreClient) -> None:
    list(client.get_pages("v1.0/companies"))
    emulator.faults.revoke_tokens()
    list(client.get_pages("v1.0/companies"))
    assert emulator.count(status=401) == 1
    assert emulator.count(kind="token") == 2


def test_second_401_is_an_authentication_error(emulator: Emulator, client: ProcoreClient) -> None:
    client.ensure_token()
    emulator.faults.fail_next(2, status=401, kind="api")
    with pytest.raises(AuthenticationError) as caught:
        list(client.get_pages("v1.0/companies"))
    assert not caught.value.retryable
    assert emulator.count(kind="token") == 2


def test_refused_credentials_are_clear_and_not_retried(
        emulator: Emulator, make_client: Callable[..., ProcoreClient], sleeps: Sleeps) -> None:
    wrong = "wrong-secret-value"
    client = make_client(settings=settings_for(emulator.url, secret=wrong))
    with pytest.raises(AuthenticationError) as caught:
        client.ensure_token()
    assert not caught.value.retryable
    assert "client_id" in caught.value.message
    assert "invalid_client" in caught.value.message
    assert wrong not in str(caught.value)
    assert sleeps.calls == []
    assert emulator.count(kind="token") == 1


def test_token_endpoint_5xx_is_retried(emulator: Emulator, client: ProcoreClient,
                                       sleeps: Sleeps) -> None:
    emulator.faults.fail_next(2, status=502, kind="token")
    client.ensure_token()
    assert len(sleeps.calls) == 2
    assert emulator.count(kind="token") == 3


def test_token_renewal_is_shared_by_threads(emulator: Emulator, client: ProcoreClient) -> None:
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            list(client.get_pages("v1.0/companies"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert emulator.count(kind="token") == 1


def test_a_refused_api_call_raises_a_typed_error(emulator: Emulator, client: ProcoreClient) -> None:
    emulator.faults.fail_next(1, status=403, kind="api")
    with pytest.raises(PermissionDenied):
        list(client.get_pages("v1.0/companies"))


# --- uploads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [PROJECT_TARGET, COMPANY_TARGET], ids=["project", "company"])
def test_create_upload(emulator: Emulator, client: ProcoreClient, target: UploadTarget) -> None:
    before = time.time()
    ticket = client.create_upload(target, "scan.pdf", 1234, content_type="application/pdf")
    assert ticket.url
    assert ticket.segments == ()
    assert any(name == "policy" for name, _ in ticket.fields)
    assert before <= ticket.created_at <= time.time()
    with emulator.lock:
        record = emulator.uploads[ticket.uuid]
        assert record.project_id == target.project_id
        assert record.company_id == COMPANY_ID
        assert record.response_filename == "scan.pdf"
    assert UploadTicket.from_json(ticket.to_json()) == ticket


def test_store_file_streams_a_multi_megabyte_file(emulator: Emulator, client: ProcoreClient,
                                                  tmp_path: Path) -> None:
    size = 6 * MIB + 12345
    path = tmp_path / "big.bin"
    expected = write_random(path, size)
    ticket = client.create_upload(PROJECT_TARGET, "big.bin", size)
    with path.open("rb") as file:
        body = RecordedReads(file)
        # the storage endpoint refuses any Authorization header: success proves none was sent
        client.store_file(ticket, body, filename="big.bin", content_type=None)
    with emulator.lock:
        record = emulator.uploads[ticket.uuid]
        assert record.stored_sha256 == expected
        assert record.stored_size == size
        assert record.store_count == 1
    assert sum(body.reads) == size
    assert len(body.reads) > 1 and max(body.reads) <= SEND_BLOCK_SIZE  # streamed, in blocks


class RecordedReads:
    """A file whose reads are counted (what requests sizes a body by: ``fileno``)."""

    def __init__(self, file: io.BufferedReader) -> None:
        self._file = file
        self.reads: list[int] = []

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if data:
            self.reads.append(len(data))
        return data


def test_storage_5xx_then_success_rewinds_the_body(emulator: Emulator, client: ProcoreClient,
                                                   tmp_path: Path, sleeps: Sleeps) -> None:
    path = tmp_path / "a.bin"
    expected = write_random(path, 300_000)
    ticket = client.create_upload(PROJECT_TARGET, "a.bin", 300_000)
    emulator.faults.fail_next(1, status=500, kind="storage")
    emulator.faults.fail_next(1, status=0, kind="storage")  # then a dropped connection
    with path.open("rb") as body:
        client.store_file(ticket, body, filename="a.bin", content_type=None)
    assert len(sleeps.calls) == 2
    with emulator.lock:
        assert emulator.uploads[ticket.uuid].stored_sha256 == expected


def test_api_5xx_and_dropped_connection_then_success(emulator: Emulator, client: ProcoreClient,
                                                     sleeps: Sleeps) -> None:
    client.ensure_token()
    emulator.faults.fail_next(1, status=500, kind="api")
    emulator.faults.fail_next(1, status=0, kind="api")
    emulator.faults.fail_next(1, status=503, kind="api")
    ticket = client.create_upload(PROJECT_TARGET, "x.txt", 3)
    assert ticket.uuid
    assert len(sleeps.calls) == 3


def test_retries_are_bounded_by_the_policy(emulator: Emulator,
                                           make_client: Callable[..., ProcoreClient],
                                           sleeps: Sleeps) -> None:
    client = make_client(policy=RetryPolicy(tries=3))
    client.ensure_token()
    emulator.faults.fail_next(5, status=502, kind="api")
    with pytest.raises(ServerError) as caught:
        client.show_upload(PROJECT_TARGET, "01NOPE")
    assert caught.value.status == 502
    assert len(sleeps.calls) == 2


def test_when_tries_run_out_the_error_keeps_the_history(
        emulator: Emulator, make_client: Callable[..., ProcoreClient]) -> None:
    client = make_client(policy=RetryPolicy(tries=3))
    client.ensure_token()
    emulator.faults.fail_next(1, status=503, kind="api")
    emulator.faults.fail_next(1, status=0, kind="api")
    emulator.faults.fail_next(1, status=502, kind="api")
    with capture_logs() as events, pytest.raises(ServerError) as caught:
        client.show_upload(PROJECT_TARGET, "01NOPE")
    assert caught.value.status == 502
    history = caught.value.history
    assert len(history) == 2
    assert history[0].startswith("1: unavailable: ") and "503" in history[0]
    assert history[1].startswith("2: network: ")
    retries = [e for e in events if e["event"] == "request_retry"]
    assert [e["reason"] for e in retries] == ["unavailable", "network"]


def test_token_failed_logs_the_history(emulator: Emulator,
                                       make_client: Callable[..., ProcoreClient]) -> None:
    client = make_client(policy=RetryPolicy(tries=2))
    emulator.faults.fail_next(2, status=502, kind="token")
    with capture_logs() as events, pytest.raises(ServerError):
        client.ensure_token()
    failed = [e for e in events if e["event"] == "token_failed"]
    assert len(failed) == 1
    assert failed[0]["attempt"] == 2
    assert len(failed[0]["history"]) == 1
    assert failed[0]["history"][0].startswith("1: server_error: ")


def test_segmented_upload_round_trip(emulator: Emulator, client: ProcoreClient) -> None:
    first = os.urandom(5 * MIB)
    second = os.urandom(1000)
    specs = [SegmentSpec(len(first), hashlib.sha256(first).hexdigest(),
                         hashlib.md5(first).hexdigest()),
             SegmentSpec(len(second), hashlib.sha256(second).hexdigest())]
    ticket = client.create_upload(PROJECT_TARGET, "seg.bin", len(first) + len(second),
                                  segments=specs)
    assert [s.number for s in ticket.segments] == [1, 2]
    etags = [client.store_segment(ticket.segments[0], io.BytesIO(first)),
             client.store_segment(ticket.segments[1], second)]
    assert all('"' not in etag for etag in etags)
    assert not client.upload_is_stored(PROJECT_TARGET, ticket.uuid)  # "ready" until complete
    done = client.complete_upload(PROJECT_TARGET, ticket.uuid, list(zip(etags, specs,
                                                                        strict=True)))
    assert done["status"] == "complete"
    assert client.upload_is_stored(PROJECT_TARGET, ticket.uuid)
    with emulator.lock:
        assert emulator.uploads[ticket.uuid].stored_sha256 == hashlib.sha256(
            first + second).hexdigest()
    # a repeat (say, after a lost answer) is recognised as done
    again = client.complete_upload(PROJECT_TARGET, ticket.uuid, list(zip(etags, specs,
                                                                         strict=True)))
    assert again["status"] == "complete"
    assert UploadTicket.from_json(ticket.to_json()) == ticket


def test_segment_with_other_bytes_is_a_content_mismatch(emulator: Emulator,
                                                        client: ProcoreClient) -> None:
    data = os.urandom(2000)
    spec = SegmentSpec(len(data), hashlib.sha256(data).hexdigest())
    ticket = client.create_upload(PROJECT_TARGET, "s.bin", len(data), segments=[spec])
    changed = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(ContentMismatch) as caught:
        client.store_segment(ticket.segments[0], changed)
    assert caught.value.code == "XAmzContentSHA256Mismatch"
    assert caught.value.retryable
    assert "?" not in str(caught.value)


def test_show_and_complete_unknown_upload_is_expired(client: ProcoreClient) -> None:
    with pytest.raises(UploadExpired):
        client.show_upload(PROJECT_TARGET, "01UNKNOWN")


# --- storage errors --------------------------------------------------------------------------


def tampered(ticket: UploadTicket, name: str, value: str) -> UploadTicket:
    fields = tuple((k, value if k == name else v) for k, v in ticket.fields)
    return UploadTicket(ticket.uuid, ticket.url, fields, ticket.segments, ticket.created_at)


def test_tampered_field_is_refused_by_storage_as_upload_expired(
        emulator: Emulator, client: ProcoreClient, sleeps: Sleeps) -> None:
    ticket = client.create_upload(PROJECT_TARGET, "t.txt", 5)
    key = next(v for k, v in ticket.fields if k == "key")
    bad = tampered(ticket, "key", key + "-changed")
    with pytest.raises(UploadExpired) as caught:
        client.store_file(bad, io.BytesIO(b"hello"), filename="t.txt", content_type=None)
    error = caught.value
    assert error.status == 403
    assert error.code == "AccessDenied"
    assert error.request_id
    assert sleeps.calls == []  # not a request-level retry: a new Upload is the cure
    text = str(error) + repr(error.as_dict())
    policy = next(v for k, v in ticket.fields if k == "policy")
    signature = next(v for k, v in ticket.fields if k.lower() == "x-amz-signature")
    assert policy not in text
    assert signature not in text


def test_expired_policy_is_upload_expired(emulator: Emulator, client: ProcoreClient) -> None:
    emulator.faults.expired_uploads = 1
    ticket = client.create_upload(PROJECT_TARGET, "t.txt", 5)
    with pytest.raises(UploadExpired) as caught:
        client.store_file(ticket, io.BytesIO(b"hello"), filename="t.txt", content_type=None)
    assert caught.value.code == "AccessDenied"
    assert "expired" in caught.value.message.lower()


# --- wire details (capture server) -----------------------------------------------------------


class Capture(http.server.BaseHTTPRequestHandler):
    """Records each request's method, path, headers and body; answers from ``replies``."""

    # Each test gets a subclass with lists of its own (see ``capture``).
    requests_seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []
    replies: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.requests_seen.append((self.command, self.path, dict(self.headers), body))
        status, headers, payload = (self.replies.pop(0) if self.replies
                                    else (204, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_GET = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[str, type[Capture]]]:
    handler = type("Handler", (Capture,), {"requests_seen": [], "replies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_form_fields_keep_their_order_and_file_comes_last(
        capture: tuple[str, type[Capture]], client: ProcoreClient) -> None:
    url, handler = capture
    fields = (("key", "companies/1/x"), ("Content-Type", "image/jpeg"),
              ("acl", "private"), ("policy", "eyJ..."), ("x-amz-signature", "abc"),
              ("Content-Disposition", 'inline; filename="a.jpg"'))
    ticket = UploadTicket("01X", f"{url}/bucket?sig=1", fields, (), time.time())
    client.store_file(ticket, io.BytesIO(b"JPEGDATA"), filename="a.jpg", content_type=None)
    [(method, path, headers, body)] = handler.requests_seen
    assert method == "POST"
    assert path == "/bucket?sig=1"
    assert "Authorization" not in headers
    names = re.findall(rb'Content-Disposition: form-data; name="([^"]+)"', body)
    assert [n.decode() for n in names] == [k for k, _ in fields] + ["file"]
    file_part = body.split(b'name="file"')[1]
    assert b"Content-Type: image/jpeg" in file_part  # taken from the Content-Type field
    assert b"JPEGDATA" in file_part
    assert headers["Content-Length"] == str(len(body))


def test_segment_put_sends_exactly_the_ticket_headers(
        capture: tuple[str, type[Capture]], client: ProcoreClient) -> None:
    url, handler = capture
    handler.replies.append((200, {"ETag": '"abc123"'}, b""))
    segment = SegmentTicket(1, f"{url}/b/k?partNumber=1&X-Amz-Signature=zz",
                            (("x-amz-content-sha256", "f" * 64), ("content-length", "4")))
    assert client.store_segment(segment, io.BytesIO(b"data")) == "abc123"
    [(method, _path, headers, body)] = handler.requests_seen
    assert method == "PUT"
    assert body == b"data"
    sent = {k.lower() for k in headers}
    assert sent - {"host", "accept-encoding"} == {
        "x-amz-content-sha256", "content-length", "user-agent"}


def test_storage_answer_without_etag_is_unexpected(
        capture: tuple[str, type[Capture]], client: ProcoreClient) -> None:
    url, handler = capture
    handler.replies.append((200, {}, b""))
    with pytest.raises(UnexpectedResponse):
        client.store_segment(SegmentTicket(1, f"{url}/b/k", ()), b"x")


def test_create_upload_without_uuid_is_unexpected(
        capture: tuple[str, type[Capture]], sleeps: Sleeps) -> None:
    url, handler = capture
    token = json.dumps({"access_token": "tok", "expires_in": 100}).encode()
    handler.replies.extend([(200, {"Content-Type": "application/json"}, token),
                            (201, {"Content-Type": "application/json"},
                             b'{"url": "http://x/", "fields": {}}')])
    client = ProcoreClient(settings_for(url), RateGovernor(), sleep=sleeps)
    try:
        with pytest.raises(UnexpectedResponse):
            client.create_upload(PROJECT_TARGET, "a", 1)
        _, _, headers, _ = handler.requests_seen[1]
        assert headers["Authorization"] == "Bearer tok"
        assert headers["Procore-Company-Id"] == str(COMPANY_ID)
    finally:
        client.close()


# --- association -----------------------------------------------------------------------------


def test_documents_and_photos(emulator: Emulator, client: ProcoreClient) -> None:
    root = client.folder_listing(PROJECT, None)
    assert "folders" in root or "files" in root
    made = client.create_folder(PROJECT, None, "RFIs")
    assert isinstance(made["id"], int)
    with pytest.raises(ValidationFailed, match="taken"):
        client.create_folder(PROJECT, None, "RFIs")
    listed = client.folder_listing(PROJECT, None, files=False)
    assert [f["id"] for f in listed["folders"] if f["name"] == "RFIs"] == [made["id"]]
    ticket = client.create_upload(PROJECT_TARGET, "doc.pdf", 5)
    client.store_file(ticket, io.BytesIO(b"%PDF-"), filename="doc.pdf", content_type=None)
    document = client.create_document(PROJECT, None, "doc.pdf", ticket.uuid)
    assert isinstance(document["id"], int)
    version_ticket = client.create_upload(PROJECT_TARGET, "doc.pdf", 5)
    client.store_file(version_ticket, io.BytesIO(b"%PDF2"), filename="doc.pdf",
                      content_type=None)
    client.create_file_version(PROJECT, document["id"], version_ticket.uuid)
    photo = client.create_upload(PROJECT_TARGET, "site.jpg", 4)
    client.store_file(photo, io.BytesIO(b"\xff\xd8\xff\xe0"), filename="site.jpg",
                      content_type="image/jpeg")
    image = client.create_image(PROJECT, photo.uuid, "site.jpg", None)
    assert image["id"]
    floor = client.procore_time_floor()
    assert floor is not None and floor <= time.time() + 1
    listed = list(client.images_since(PROJECT, None, floor - 60, floor + 60))
    assert any(str(i.get("id")) == str(image["id"]) for i in listed)
    assert emulator.associations(ticket.uuid) == 1
    assert emulator.associations(photo.uuid) == 1


def test_association_post_is_not_repeated_when_the_outcome_is_unknown(
        emulator: Emulator, client: ProcoreClient, sleeps: Sleeps) -> None:
    ticket = client.create_upload(PROJECT_TARGET, "doc.pdf", 5)
    client.store_file(ticket, io.BytesIO(b"%PDF-"), filename="doc.pdf", content_type=None)
    for status, error in ((500, ServerError), (0, NetworkError)):
        emulator.faults.fail_next(1, status=status, kind="api", path_contains="/files")
        with pytest.raises(error):
            client.create_document(PROJECT, None, "doc.pdf", ticket.uuid)
    assert sleeps.calls == []
    assert emulator.associations(ticket.uuid) == 0


def test_association_post_is_repeated_after_a_429(emulator: Emulator,
                                                  client: ProcoreClient) -> None:
    ticket = client.create_upload(PROJECT_TARGET, "doc.pdf", 5)
    client.store_file(ticket, io.BytesIO(b"%PDF-"), filename="doc.pdf", content_type=None)
    emulator.faults.fail_next(1, status=429, kind="api", path_contains="/files")
    client.create_document(PROJECT, None, "doc.pdf", ticket.uuid)  # 429: surely not run
    assert emulator.associations(ticket.uuid) == 1


# --- rate limits -----------------------------------------------------------------------------


def test_429_pauses_every_worker_then_succeeds(emulator: Emulator,
                                               make_client: Callable[..., ProcoreClient]) -> None:
    governor = RateGovernor()
    client = make_client(governor=governor)
    client.ensure_token()
    emulator.faults.fail_next(1, status=429, kind="api")  # Retry-After: 1
    start = time.monotonic()
    list(client.get_pages("v1.0/companies"))
    assert time.monotonic() - start >= 0.9  # the governor held the retry back


@pytest.mark.slow
def test_paced_workers_stay_under_the_limit(emulator: Emulator,
                                            make_client: Callable[..., ProcoreClient]) -> None:
    emulator.faults.rate_limit = (10, 5.0)
    client = make_client(governor=RateGovernor())
    client.ensure_token()
    calls = 0
    lock = threading.Lock()
    deadline = time.monotonic() + 14.0
    failures: list[BaseException] = []

    def worker() -> None:
        nonlocal calls
        while time.monotonic() < deadline:
            try:
                client.show_upload(PROJECT_TARGET, "01NONE")
            except UploadExpired:
                pass  # 404: an answered, counted call
            except BaseException as exc:
                failures.append(exc)
                return
            with lock:
                calls += 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    print(f"calls={calls} 429s={emulator.count(status=429)}")
    assert emulator.count(status=429) <= 1  # the hourly window slides (the default)
    # the emulator's rounded-up reset lets at most ~10 calls per 6 s through
    assert calls >= 18


# --- network errors --------------------------------------------------------------------------


def test_unreachable_server_is_a_network_error_and_pauses_workers(sleeps: Sleeps) -> None:
    reported: list[tuple[str, float, float]] = []
    governor = RateGovernor(on_pause=lambda *pause: reported.append(pause))
    client = ProcoreClient(settings_for("http://127.0.0.1:9"), governor,
                           policy=RetryPolicy(tries=2), sleep=sleeps)
    try:
        with pytest.raises(NetworkError) as caught:
            client.ensure_token()
    finally:
        client.close()
    assert caught.value.retryable
    assert caught.value.outage
    assert "refused" in caught.value.message
    assert len(sleeps.calls) == 1
    assert [reason for reason, _, _ in reported] == ["network"]


def test_a_refused_connection_surely_did_not_run_a_timeout_may_have() -> None:
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post("http://127.0.0.1:9/rest/v1.0/images", timeout=5)
    assert error_from_exception(refused.value).not_run
    assert not error_from_exception(requests.ReadTimeout("read timed out")).not_run


def test_error_from_exception_hides_the_query_string() -> None:
    url = "https://s3.example.com/bucket/key?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA"
    exc = requests.exceptions.ConnectionError(f"Max retries exceeded with url: {url}")
    error = error_from_exception(exc, url=url)
    assert isinstance(error, NetworkError)
    assert "deadbeef" not in str(error)
    assert "AKIA" not in str(error)
    assert error.url == "https://s3.example.com/bucket/key"
    assert safe_url(url) == "https://s3.example.com/bucket/key"
    timeout = error_from_exception(requests.exceptions.ReadTimeout("read timed out"))
    assert "timeout" in timeout.message


# --- error mapping, table-driven -------------------------------------------------------------


def response(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None,
             url: str = "https://api.example.com/rest/v1.1/projects/1/uploads?x=1"
             ) -> requests.Response:
    built = requests.Response()
    built.status_code = status
    built._content = body.encode() if isinstance(body, str) else body
    built.headers.update(headers or {})
    built.url = url
    built.reason = "Reason"
    return built


S3_XML = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
          "<Message>{message}</Message><RequestId>REQ123</RequestId></Error>")


@pytest.mark.parametrize(
    ("status", "body", "headers", "storage", "cls", "detail", "code"),
    [
        (422, '{"errors": {"base": ["Bad thing"], "name": ["is taken", "is long"]}}', {},
         False, ValidationFailed, "Bad thing; name: is taken; is long", None),
        (400, '{"errors": "Missing Procore-Company-Id header!"}', {}, False, ValidationFailed,
         "Missing Procore-Company-Id header!", None),
        (403, '{"error": {"code": "forbidden", "message": "No access to project"}}', {},
         False, PermissionDenied, "No access to project", "forbidden"),
        (401, '{"error": "invalid_token", "error_description": "The token expired"}', {},
         False, AuthenticationError, "invalid_token: The token expired", "invalid_token"),
        (404, '{"message": "Not Found"}', {}, False, NotFound, "Not Found", None),
        (409, "conflicting   plain\ntext", {}, False, Conflict, "conflicting plain text", None),
        (410, "", {}, False, UploadExpired, "Reason", None),
        (502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
         {"Content-Type": "text/html"}, False, ServerError, "502 Bad Gateway", None),
        (503, "", {"Retry-After": "30"}, False, ServiceUnavailable, "Reason", None),
        (500, '["one", "two"]', {}, False, ServerError, "one; two", None),
        (418, "teapot", {}, False, ProcoreError, "teapot", None),
        (403, S3_XML.format(code="AccessDenied", message="Request has expired"), {}, True,
         UploadExpired, "AccessDenied: Request has expired", "AccessDenied"),
        (403, S3_XML.format(code="AccessDenied",
                            message="Invalid according to Policy: Policy expired."), {}, True,
         UploadExpired, "Policy expired", "AccessDenied"),
        (403, S3_XML.format(code="SignatureDoesNotMatch", message="The signature..."), {},
         True, UploadExpired, "SignatureDoesNotMatch", "SignatureDoesNotMatch"),
        (400, S3_XML.format(code="EntityTooLarge", message="too large"), {}, True,
         StorageRejected, "EntityTooLarge: too large", "EntityTooLarge"),
        (400, S3_XML.format(code="EntityTooSmall", message="too small"), {}, True,
         StorageRejected, "EntityTooSmall", "EntityTooSmall"),
        (400, S3_XML.format(code="MalformedPOSTRequest", message="bad"), {}, True,
         StorageRejected, "MalformedPOSTRequest", "MalformedPOSTRequest"),
        (400, S3_XML.format(code="InvalidArgument", message="bad"), {}, True,
         StorageRejected, "InvalidArgument", "InvalidArgument"),
        (400, S3_XML.format(code="InvalidDigest", message="bad"), {}, True,
         StorageRejected, "InvalidDigest", "InvalidDigest"),
        (400, S3_XML.format(code="XAmzContentSHA256Mismatch", message="differs"), {}, True,
         ContentMismatch, "XAmzContentSHA256Mismatch", "XAmzContentSHA256Mismatch"),
        (400, S3_XML.format(code="BadDigest", message="differs"), {}, True,
         ContentMismatch, "BadDigest", "BadDigest"),
        (400, S3_XML.format(code="IncompleteBody", message="short"), {}, True,
         ContentMismatch, "IncompleteBody", "IncompleteBody"),
        (503, S3_XML.format(code="SlowDown", message="slow down"), {}, True,
         ServiceUnavailable, "SlowDown", "SlowDown"),
        (403, "", {}, True, UploadExpired, "Reason", None),
    ],
)
def test_error_from_response(status: int, body: str, headers: dict[str, str], storage: bool,
                             cls: type[ProcoreError], detail: str, code: str | None) -> None:
    error = error_from_response(response(status, body, headers), storage=storage, now=0.0)
    assert type(error) is cls
    assert detail in error.message
    assert error.status == status
    assert error.code == code
    assert error.url == "https://api.example.com/rest/v1.1/projects/1/uploads"
    assert "x=1" not in error.message
    if storage and body:
        assert error.request_id == "REQ123"


def test_error_keeps_request_id_and_retry_after() -> None:
    error = error_from_response(response(503, "", {"x-request-id": "abc", "Retry-After": "12"}),
                                now=0.0)
    assert error.request_id == "abc"
    assert error.retry_after == 12.0
    assert error.as_dict()["request_id"] == "abc"
    amz = error_from_response(response(500, "", {"x-amz-request-id": "S3ID"}), storage=True)
    assert amz.request_id == "S3ID"


def test_429_waits_for_the_later_of_retry_after_and_reset() -> None:
    later_reset = error_from_response(
        response(429, "{}", {"Retry-After": "2", "X-Rate-Limit-Reset": "110"}), now=100.0)
    assert isinstance(later_reset, RateLimited)
    assert later_reset.retry_after == 10.0
    later_retry = error_from_response(
        response(429, "{}", {"Retry-After": "20", "X-Rate-Limit-Reset": "110"}), now=100.0)
    assert later_retry.retry_after == 20.0
    assert later_retry.outage


def test_long_bodies_are_shortened_and_secrets_scrubbed() -> None:
    body = "x" * 5000
    assert len(error_from_response(response(500, body)).message) < 400
    leaky = ("failed for https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abc123 "
             "policy=eyJzZWNyZXQ access_token=tok999")
    message = error_from_response(response(400, leaky)).message
    for secret in ("abc123", "eyJzZWNyZXQ", "tok999"):
        assert secret not in message
