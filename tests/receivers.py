"""Real receivers of alerts for the tests, each on a free 127.0.0.1 port, stopped and joined:

- ``SmtpReceiver``: a real SMTP server (aiosmtpd), optionally with STARTTLS (a self-signed
  certificate made by ``make_certificate``) and login; it keeps every mail it was given and
  every command it was sent.
- ``WebhookReceiver``: a real HTTP server (``http.server``) that keeps every POST; it can be
  told to answer 500, or to be down (its port refusing connections), and to come back on the
  same port.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "procore-hotfolder test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _Listening(Controller):
    """aiosmtpd's controller on a socket bound beforehand to a free port (it has no port 0)."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._listener.getsockname()[1],
                         **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._listener)


class SmtpReceiver:
    """A real SMTP server on 127.0.0.1; ``mails`` holds what it received, ``commands`` the
    SMTP verbs it was sent (EHLO, STARTTLS, AUTH, MAIL, ...)."""

    def __init__(self, *, certificate: tuple[Path, Path] | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.mails: list[Mail] = []
        self.commands: list[str] = []
        self.logins: list[tuple[str, bool]] = []
        self._login = login
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, certificate))
            kwargs.update(tls_context=context, require_starttls=True)
        if login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=certificate is not None)
        self._controller = _Listening(self, **kwargs)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self._login == (user, password)
        with self._lock:
            self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False)  # False: the server answers 535

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        self._saw("EHLO")
        session.host_name = hostname  # a handler of EHLO must (aiosmtpd)
        return responses

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        self._saw("STARTTLS")
        return True

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self._saw("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.commands.append("DATA")
            self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), raw,
                                   parsed))
        await asyncio.sleep(0)
        return "250 Message accepted for delivery"

    def _saw(self, verb: str) -> None:
        with self._lock:
            self.commands.append(verb)


# --- HTTP ---------------------------------------------------------------------------------


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _State:
    answer: int = 200
    posts: list[Post] = field(default_factory=list)
    refused: int = 0  # answers other than 2xx given
    lock: threading.Lock = field(default_factory=threading.Lock)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that keeps the JSON of every POST answered 200."""

    def __init__(self) -> None:
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def url(self, path: str = "/hooks/T000/B000/s3cr3t-token") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def posts(self) -> list[Post]:
        with self._state.lock:
            return list(self._state.posts)

    @property
    def refused(self) -> int:
        with self._state.lock:
            return self._state.refused

    def answer(self, status: int) -> None:
        """Answer every later POST with ``status`` (200 keeps them)."""
        self._state.answer = status

    def start(self) -> WebhookReceiver:
        state = self._state

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with state.lock:
                    status = state.answer
                    if status == 200:
                        state.posts.append(Post(self.path, dict(self.headers.items()),
                                                json.loads(body)))
                    else:
                        state.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = False
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="webhook-receiver")
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: connections to the port are refused until ``start`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    stop = down

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
