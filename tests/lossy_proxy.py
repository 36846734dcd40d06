"""An HTTP proxy on 127.0.0.1 in front of the emulator's API that can lose answers.

``lose_answers(n, "POST", "/images")``: the next n matching requests reach the emulator and
run there (the image is created), then the proxy closes the client's connection without
passing the answer on: the "timeout after the create ran" that Procore can produce and
that the emulator's own scripted drops (which never run the request) do not. Everything
else passes through unchanged, ``Date`` included.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host",
                         "content-length", "proxy-connection", "te", "upgrade"})


class LossyProxy:
    """See the module docstring. ``lost`` lists (method, path) of the answers lost so far."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        assert parts.hostname is not None and parts.port is not None
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._rules: list[list[Any]] = []  # [remaining, method, path_contains]
        self.lost: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    reply_headers = answer.getheaders()
                    status = answer.status
                except (OSError, http.client.HTTPException):
                    self._drop()  # the emulator dropped it: so do we
                    return
                finally:
                    upstream.close()
                if proxy._take(self.command, self.path):
                    self._drop()
                    return
                self.send_response_only(status)
                for name, value in reply_headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="lossy-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LossyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def lose_answers(self, count: int, method: str, path_contains: str) -> None:
        with self._lock:
            self._rules.append([count, method, path_contains])

    def _take(self, method: str, path: str) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule[1] == method and rule[2] in path.split("?", maxsplit=1)[0]:
                    rule[0] -= 1
                    if rule[0] <= 0:
                        self._rules.remove(rule)
                    self.lost.append((method, path))
                    return True
        return False
