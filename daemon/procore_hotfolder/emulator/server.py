"""The emulator's HTTP front: one threaded server for token, API, storage and admin routes.

``Emulator`` runs it in a background thread (tests, ``demo``); ``serve()`` runs it until a
signal arrives (``procore-hotfolder emulator``). Faults are applied here, before a request
reaches the API or storage logic, so those stay plain request-to-answer functions.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import api, inspection, storage, views
from .api.documents import add_folder
from .faults import DROP, Faults
from .multipart import drain_stream
from .records import RequestRecord, UploadRecord
from .s3 import S3Storage
from .state import EmulatorState
from .wire import ApiError, DropConnection, Reply, json_reply, new_request_id, s3_error

log = logging.getLogger("procore_hotfolder.emulator")

MAX_API_BODY = 10 << 20
_S3_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    408: "RequestTimeout",
    500: "InternalError",
    503: "SlowDown",
}


class _Server(ThreadingHTTPServer):
    """Threaded server that tracks its connections so ``close_all()`` can end them."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="procore-emulator-connection",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection error", exc_info=True)

    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_all(self, timeout: float) -> None:
        """Shut down every open connection and join its thread."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "ProcoreEmulator/1.0"
    timeout = 300
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    # --- plumbing --------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Never the query string: presigned URLs carry signatures.
        log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    @property
    def state(self) -> EmulatorState:
        return self.server.state

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        value = int(raw) if raw.strip().isdigit() else -1
        if value < 0:
            self.close_connection = True
            raise ApiError(400, {"errors": "invalid Content-Length"})
        return value

    def _read_body(self) -> bytes:
        """The whole (small) request body, chunked or not."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(pieces)
                total += size
                if total > MAX_API_BODY:
                    self.close_connection = True
                    raise ApiError(413, {"errors": "request body too large"})
                pieces.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self._content_length() or 0
        if length > MAX_API_BODY:
            self.close_connection = True
            raise ApiError(413, {"errors": "request body too large"})
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise DropConnection
        return body

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        has_body = reply.status not in (204, 304) and reply.status >= 200
        if reply.content_type and has_body:
            self.send_header("Content-Type", reply.content_type)
        if has_body:
            self.send_header("Content-Length", str(len(reply.body)))
        if reply.close:
            self.send_header("Connection", "close")
        self.end_headers()
        if has_body and reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _drop_after_body(self, read: Callable[[], object]) -> DropConnection:
        """Maybe read the body first (chosen at random), then tell the caller to drop."""
        if self.state.faults.choice(2):
            with contextlib.suppress(ApiError, DropConnection, OSError, ValueError):
                read()
        return DropConnection()

    # --- dispatch --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        started = time.time()
        split = urlsplit(self.path)
        path = split.path
        if path.startswith("/_emulator/"):
            self._admin(path)
            return
        if path == "/oauth/token":
            kind = "token"
        elif path.startswith("/storage/"):
            kind = "storage"
        else:
            kind = "api"
        status = 0
        logged = False

        def record() -> None:
            nonlocal logged
            if not logged:
                logged = True
                self.state.log_request(
                    RequestRecord(self.command, path, status, started, kind, split.query))

        try:
            try:
                if kind == "token":
                    reply = self._token()
                elif kind == "storage":
                    reply = self._storage(unquote(path), split.query, started)
                else:
                    reply = self._api(path, split.query)
            except ApiError as exc:
                reply = exc.reply
            reply.headers["x-request-id"] = new_request_id()
            if kind == "api" and "X-Rate-Limit-Limit" not in reply.headers:
                reply.headers.update(self.state.rates.headers(time.time()))
            status = reply.status
            record()  # before the answer leaves: a client that has it finds it in the log
            self._send(reply)
        except DropConnection:
            self._drop()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("emulator request failed")
            self.close_connection = True
            if not logged:
                status = 500
            with contextlib.suppress(OSError):
                self._send(json_reply(500, {"errors": "emulator internal error"}))
        finally:
            record()

    def _outage(self) -> Reply:
        if self.state.faults.outage_mode == "drop":
            raise DropConnection
        self.close_connection = True  # the body may be unread
        return json_reply(503, {"errors": "Service Unavailable: maintenance"}, {"Retry-After": "1"})

    def _injected_error(self, status: int) -> Reply:
        """An injected failure in one of the body shapes Procore uses (JSON ``errors``,
        JSON ``error`` object, plain text, empty), worded for its status."""
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        if status == 429:
            # As from a spent spike window: its headers, not the roomy hourly window's.
            limit = self.state.faults.spike_limit
            headers.update({"X-Rate-Limit-Limit": str(limit[0] if limit else 25),
                            "X-Rate-Limit-Remaining": "0",
                            "X-Rate-Limit-Reset": str(math.ceil(time.time() + 1))})
        phrase = _phrase(status)
        shape = self.state.faults.choice(4)
        if shape == 0:
            reply = json_reply(status, {"errors": phrase}, headers)
        elif shape == 1:
            code = phrase.lower().replace(" ", "_")
            body = {"error": {"code": code, "message": f"{phrase}: please try again"}}
            reply = json_reply(status, body, headers)
        elif shape == 2:
            reply = Reply(status, phrase.encode(), "text/plain; charset=utf-8", headers)
        else:
            reply = Reply(status, b"", None, headers)
        # A request cut off for running too long leaves the connection closed behind it.
        reply.close = status == 408
        return reply

    # --- token -----------------------------------------------------------------------------

    def _token(self) -> Reply:
        faults = self.state.faults
        if faults.outage:
            return self._outage()
        scripted = faults.take_scripted("token", "/oauth/token")
        if scripted == DROP:
            raise self._drop_after_body(self._read_body)
        raw = self._read_body()
        if scripted is not None:
            return self._injected_error(scripted)
        if faults.chance(faults.token_error_rate):
            return self._injected_error(faults.error_status)
        if self.command != "POST":
            return json_reply(404, {"error": "not_found"})
        params = _token_params(raw, self.headers.get("Content-Type", ""))
        if params is None:
            return json_reply(400, {"error": "invalid_request", "error_description": "malformed"})
        basic = _basic_credentials(self.headers.get("Authorization", ""))
        if basic:
            params.setdefault("client_id", basic[0])
            params.setdefault("client_secret", basic[1])
        grant = params.get("grant_type")
        if not grant:
            return json_reply(
                400, {"error": "invalid_request", "error_description": "grant_type is missing"}
            )
        if grant != "client_credentials":
            return json_reply(400, {"error": "unsupported_grant_type"})
        if (params.get("client_id"), params.get("client_secret")) != (
            self.state.client_id,
            self.state.client_secret,
        ):
            return json_reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed due to unknown client, "
                    "no client authentication included, or unsupported authentication method.",
                },
            )
        now = time.time()
        token = self.state.issue_token(now)
        body = {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": int(faults.token_lifetime),
            "created_at": int(now),
        }
        return json_reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # --- API -------------------------------------------------------------------------------

    def _api(self, path: str, query: str) -> Reply:
        state = self.state
        faults = state.faults
        if faults.outage:
            return self._outage()
        if faults.delay_seconds > 0:
            time.sleep(faults.delay_seconds)
        scripted = faults.take_scripted("api", path)
        if scripted == DROP or faults.chance(faults.drop_rate):
            raise self._drop_after_body(self._read_body)
        raw = self._read_body()
        if scripted is not None:
            return self._injected_error(scripted)
        if faults.chance(faults.error_rate):
            return self._injected_error(faults.error_status)
        if faults.chance(faults.timeout_rate):
            return self._injected_error(408)
        problem = _bearer_problem(state, self.headers.get("Authorization", ""))
        if problem is not None:
            return problem
        now = time.time()
        decision = state.rates.admit(now)
        limits = decision.headers
        if not decision.admitted:
            # Procore's rate-limiting page: 429 with the three headers and the body "You have
            # surpassed the max number of requests for an hour. Please wait until your limit
            # resets." (plain text). The spike window's wording is not documented.
            period = "an hour" if decision.window == "hourly" else "this period"
            text = (f"You have surpassed the max number of requests for {period}. "
                    "Please wait until your limit resets.")
            return Reply(429, text.encode(), "text/plain; charset=utf-8",
                         {**limits, "Retry-After": str(decision.retry_after)})
        company_raw = self.headers.get("Procore-Company-Id")
        if company_raw is None or not company_raw.strip():
            return json_reply(400, {"errors": "Missing Procore-Company-Id header!"}, limits)
        company = company_raw.strip()
        if not company.isdigit() or int(company) <= 0:
            return json_reply(400, {"errors": "Invalid Procore-Company-Id header"}, limits)
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return json_reply(400, {"errors": {"base": ["malformed"]}}, limits)
        request = api.ApiRequest(
            self.command, path, dict(parse_qsl(query)), int(company), body, now, query
        )
        reply = api.route(state, request)
        reply.headers.update(limits)
        return reply

    # --- storage ---------------------------------------------------------------------------

    def _storage(self, path: str, query: str, started: float) -> Reply:
        faults = self.state.faults
        length = self._content_length()
        request = storage.StorageRequest(
            self.command, path, parse_qsl(query, keep_blank_values=True),
            self.headers, self.rfile, length, started,
        )  # fmt: skip
        is_part = self.command == "PUT"
        if faults.storage_delay_seconds > 0:
            time.sleep(faults.storage_delay_seconds)
        scripted = faults.take_scripted("segment" if is_part else "storage", path)

        def drain() -> None:
            drain_stream(self.rfile, length or 0)

        if scripted == DROP or faults.chance(faults.storage_drop_rate):
            raise self._drop_after_body(drain)
        if scripted is not None or faults.chance(faults.storage_error_rate):
            status = scripted if scripted is not None else 500
            reply = s3_error(status, _S3_CODES.get(status, "InternalError"), "Injected failure.")
            return storage.discard_body(request, reply)
        return storage.answer(self.state, request)

    # --- admin -----------------------------------------------------------------------------

    def _admin(self, path: str) -> None:
        try:
            raw = self._read_body()
            if path == "/_emulator/state" and self.command == "GET":
                reply = json_reply(200, inspection.summary(self.state))
            elif path == "/_emulator/faults" and self.command == "POST":
                self.state.faults.update(_json_object(raw))
                reply = json_reply(200, self.state.faults.snapshot())
            elif path == "/_emulator/faults" and self.command == "GET":
                reply = json_reply(200, self.state.faults.snapshot())
            elif path in _SETUP and self.command == "POST":
                reply = json_reply(201, _SETUP[path](self.state, _json_object(raw)))
            else:
                reply = json_reply(404, {"errors": "unknown emulator admin route"})
        except ApiError as exc:
            reply = exc.reply
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            reply = json_reply(400, {"errors": str(exc)})
        except DropConnection:
            self._drop()
            return
        self._send(reply)


def _setup_project(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    project = state.add_project(
        int(spec["company_id"]), str(spec["name"]),
        None if spec.get("project_number") is None else str(spec["project_number"]),
        active=bool(spec.get("active", True)),
        project_id=None if spec.get("id") is None else int(spec["id"]),
    )
    with state.lock:
        return views.project_view(project)


def _setup_album(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    album = state.add_album(int(spec["company_id"]), int(spec["project_id"]), str(spec["name"]),
                            bool(spec.get("private", False)))
    with state.lock:
        return views.album_view(state, album)


def _setup_folder(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    parent = spec.get("parent_id")
    folder = add_folder(state, int(spec["company_id"]), int(spec["project_id"]),
                        str(spec["name"]), parent_id=None if parent is None else int(parent),
                        now=time.time())
    with state.lock:
        view = views.folder_view(state, folder, with_children=False)
        view["project_id"] = folder.project_id
        return view


def _recycle_document(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    state.recycle_file(int(spec["file_id"]))
    with state.lock:
        return views.file_view(state, state.files[int(spec["file_id"])])


def _delete_folder(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    state.delete_folder(int(spec["folder_id"]))
    return {"deleted": int(spec["folder_id"])}


#: Admin set-up routes (POST a JSON object; 201 with the created thing as the API shows it).
_SETUP: dict[str, Callable[[EmulatorState, dict[str, Any]], dict[str, Any]]] = {
    "/_emulator/projects": _setup_project,
    "/_emulator/albums": _setup_album,
    "/_emulator/folders": _setup_folder,
    "/_emulator/recycle_document": _recycle_document,
    "/_emulator/delete_folder": _delete_folder,
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from an admin request body; raises ValueError/TypeError otherwise."""
    values = json.loads(raw or b"{}")
    if not isinstance(values, dict):
        raise TypeError("expected a JSON object")
    return values


def _token_params(raw: bytes, content_type: str) -> dict[str, str] | None:
    text = raw.decode("utf-8", "replace")
    if "json" in content_type.lower() or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): str(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True))


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (unquote(user), unquote(password)) if colon else None


def _bearer_problem(state: EmulatorState, header: str) -> Reply | None:
    """None when the Authorization header holds a valid token, else the 401 answer."""
    scheme, _, value = header.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    problem = state.check_token(token, time.time())
    if problem is None:
        return None
    if problem == "missing":
        body: Any = {"error": {"code": "unauthorized", "message": "Missing access token"}}
        description = "The access token is missing"
    elif problem == "invalid":
        body = {"errors": "Invalid access token"}
        description = "The access token is invalid"
    else:
        body = {"message": "Unauthorized"}
        description = "The access token expired"
    challenge = (
        f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{description}"'
    )
    return json_reply(401, body, {"WWW-Authenticate": challenge})


class Emulator:
    """A local Procore on ``host:port``; see the package docstring for the full contract."""

    def __init__(
        self,
        client_id: str = "emulator-client",
        client_secret: str = "emulator-secret",  # noqa: S107 - the emulator's demo secret
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        *,
        s3: S3Storage | None = None,
        api_latency_seconds: float = 0.0,
    ) -> None:
        """``api_latency_seconds`` delays every API answer (not token or storage requests),
        for benchmarks of a simulated round trip; it is ``faults.delay_seconds``."""
        self.host = host
        self.port = port
        self.faults = Faults()
        if api_latency_seconds < 0:
            raise ValueError("api_latency_seconds must be >= 0")
        self.faults.delay_seconds = float(api_latency_seconds)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="procore-emulator-")
            directory = Path(self._tempdir.name)
        else:
            directory = Path(data_dir)
            directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory
        self.state = EmulatorState(self.faults, client_id, client_secret, directory, s3)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        if self._stopped:
            raise RuntimeError("a stopped Emulator cannot be restarted")
        server = _Server((self.host, self.port), self.state)
        self._server = server
        self.port = int(server.server_address[1])
        self.state.base_url = self.url
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="procore-emulator",
            daemon=True,
        )
        self._thread.start()
        log.info("procore emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, join threads, remove an own data dir."""
        if self._stopped:
            return
        self._stopped = True
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_all(timeout=5.0)
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r})"

    @property
    def url(self) -> str:
        """``http://host:port``: both the login and the API base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- inspection ------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        return self.state.lock

    @property
    def uploads(self) -> dict[str, UploadRecord]:
        """uuid -> UploadRecord (live; hold ``lock`` while reading)."""
        return self.state.uploads

    def stored_uploads(self) -> list[UploadRecord]:
        """Uploads whose bytes were stored completely."""
        with self.lock:
            return [r for r in self.state.uploads.values() if r.status == "complete"]

    def stored_path(self, uuid: str) -> Path:
        """The file holding an Upload's stored bytes (segments assembled)."""
        return self.state.stored_path(uuid)

    def associations(self, uuid: str) -> int:
        """How many Documents file versions and images use this Upload."""
        return self.state.associations(uuid)

    @property
    def documents(self) -> list[dict[str, Any]]:
        return inspection.documents(self.state)

    @property
    def images(self) -> list[dict[str, Any]]:
        return inspection.image_list(self.state)

    @property
    def folders(self) -> list[dict[str, Any]]:
        return inspection.folder_list(self.state)

    def open_connections(self) -> int:
        """Client connections the emulator is still handling (a request may be in flight)."""
        server = self._server
        return 0 if server is None else server.open_connections()

    @property
    def request_log(self) -> list[RequestRecord]:
        with self.lock:
            return list(self.state.request_log)

    def count(self, status: int | None = None, kind: str | None = None) -> int:
        """Requests answered with ``status`` (0 = dropped) of ``kind`` (token/api/storage)."""
        return self.state.count(status, kind)

    def summary(self) -> dict[str, Any]:
        """What ``GET /_emulator/state`` returns."""
        return inspection.summary(self.state)

    @property
    def rate_limited(self) -> dict[str, int]:
        """429s the rate windows gave so far, by window ("hourly", "spike"); injected 429s
        (``fail_next(status=429)``) are not in it but are in ``count(status=429)``."""
        with self.lock:
            return dict(self.state.rates.refused)

    def purge_unfiled_uploads(self) -> list[str]:
        """Delete now every Upload left unfiled past ``faults.upload_retention``; their uuids.
        (The API also deletes such an Upload lazily, whenever a request names it.)"""
        return self.state.purge_unfiled(time.time())

    @property
    def purged_uploads(self) -> dict[str, float]:
        """uuid -> Unix time at which retention deleted the Upload."""
        with self.lock:
            return dict(self.state.purged_uploads)

    # --- refusals --------------------------------------------------------------------------

    def refuse_project(self, project_id: int, reason: str = "not_granted",
                       tool: str | None = None) -> None:
        """From now on the project answers 403: ``reason`` "not_granted" (the service
        account has not been granted it; it also drops out of List Projects) or
        "tool_disabled" with ``tool`` "documents" or "photos". See ``Faults.refuse_project``.
        """
        self.faults.refuse_project(project_id, reason, tool)

    def allow_project(self, project_id: int, tool: str | None = None) -> None:
        """Lift the project's refusals (just ``tool``'s when given)."""
        self.faults.allow_project(project_id, tool)

    def disconnect_app(self) -> None:
        """The app is no longer connected to the company: every company and project call
        answers 403 "App is not connected to this company" until ``connect_app``."""
        self.faults.app_disconnected = True

    def connect_app(self) -> None:
        self.faults.app_disconnected = False

    # --- setting up a company --------------------------------------------------------------

    @property
    def auto_create(self) -> bool:
        """True (the default): any project or album id a client names exists, made up on
        first use. False: only those created below exist; others answer 404 (422 for an
        album named in Create Image)."""
        return self.state.auto_create

    @auto_create.setter
    def auto_create(self, value: bool) -> None:
        self.state.auto_create = bool(value)

    def create_project(self, company_id: int, name: str, project_number: str | None = None,
                       *, active: bool = True, project_id: int | None = None) -> int:
        """Create a project (a fresh id above 2**32 unless ``project_id``); returns its id."""
        return self.state.add_project(company_id, name, project_number, active=active,
                                      project_id=project_id).id

    def remove_project(self, company_id: int, project_id: int) -> None:
        """Delete a project: it answers 404 from now on, even while ``auto_create`` holds."""
        self.state.remove_project(company_id, project_id)

    def create_album(self, company_id: int, project_id: int, name: str, *,
                     private: bool = False) -> int:
        """Create a Photos album (image category); returns its id."""
        return self.state.add_album(company_id, project_id, name, private).id

    def create_folder(self, company_id: int, project_id: int, name: str,
                      parent_id: int | None = None) -> int:
        """Create a Documents folder (under the root when ``parent_id`` is None; ``project_id``
        0, ``api.documents.COMPANY_SCOPE``, for company Documents); returns its id. Raises
        ``ApiError`` (422) when the name is taken under that parent."""
        return add_folder(self.state, company_id, project_id, name, parent_id=parent_id,
                          now=time.time()).id

    def recycle_document(self, file_id: int) -> None:
        """Move a Documents file to the recycle bin (as Delete Project File does): it stays
        listed with ``is_deleted`` true and its name is free for a new file."""
        self.state.recycle_file(file_id)

    def delete_folder(self, folder_id: int) -> None:
        """Delete a Documents folder and its subfolders: a cached id answers 404 from now
        on; their files go to the recycle bin."""
        self.state.delete_folder(folder_id)

    @property
    def projects(self) -> list[dict[str, Any]]:
        """Every project as Show Project shows it."""
        with self.lock:
            return [views.project_view(p) for p in self.state.projects.values()]


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    client_id: str = "emulator-client",
    client_secret: str = "emulator-secret",  # noqa: S107 - the emulator's demo secret
    *,
    ready: Callable[[Emulator], object] | None = None,
    data_dir: str | Path | None = None,
    s3: S3Storage | None = None,
    api_latency_seconds: float = 0.0,
) -> None:
    """Serve the emulator until SIGINT/SIGTERM (or KeyboardInterrupt); ``ready(emulator)`` is
    called once it accepts connections. Raises OSError when the address cannot be bound."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    with Emulator(client_id, client_secret, host, port, data_dir, s3=s3,
                  api_latency_seconds=api_latency_seconds) as emulator:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        try:
            if ready is not None:
                ready(emulator)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            log.info("procore emulator stopping")
