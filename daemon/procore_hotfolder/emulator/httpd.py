"""The emulator's HTTP plumbing: a threaded server that tracks its connections, and a handler
that reads request bodies, sends ``Reply`` values, drops connections, logs every request
and hands it to the token, API, storage or admin side (faults first: see ``gates``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from . import admin, gates
from .records import RequestRecord
from .state import EmulatorState
from .wire import ApiError, DropConnection, Reply, json_reply, new_request_id

log = logging.getLogger("procore_hotfolder.emulator")

MAX_API_BODY = 10 << 20


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server that tracks its connections so ``close_all()`` can end them."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, RequestHandler)

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


class RequestHandler(BaseHTTPRequestHandler):
    """One connection's requests; implements ``gates.Exchange``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "ProcoreEmulator/1.0"
    timeout = 300
    server: EmulatorHTTPServer

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

    def content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        value = int(raw) if raw.strip().isdigit() else -1
        if value < 0:
            self.close_connection = True
            raise ApiError(400, {"errors": "invalid Content-Length"})
        return value

    def read_body(self) -> bytes:
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
        length = self.content_length() or 0
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
                    reply = gates.answer_token(self.state, self)
                elif kind == "storage":
                    reply = gates.answer_storage(self.state, self, unquote(path), split.query,
                                                 started)
                else:
                    reply = gates.answer_api(self.state, self, path, split.query)
            except ApiError as exc:
                reply = exc.reply
            if kind != "storage":
                # Procore's API answers carry x-request-id; S3 answers carry its own
                # x-amz-request-id and x-amz-id-2 (``wire.s3_error``) and not this one.
                reply.headers["x-request-id"] = new_request_id()
            if kind == "api":
                gates.add_rate_headers(self.state, reply)
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

    # --- admin -----------------------------------------------------------------------------

    def _admin(self, path: str) -> None:
        try:
            reply = admin.answer(self.state, self.command, path, self.read_body)
        except DropConnection:
            self._drop()
            return
        self._send(reply)
