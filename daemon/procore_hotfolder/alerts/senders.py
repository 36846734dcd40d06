"""The channels an alert goes out by: a webhook, e-mail over SMTP, a command. One class each.

Every sender has ``channel`` (its name in logs), ``describe()`` (what ``check`` prints: never a
webhook's path or a password), ``send(message)``, which returns once the channel took the
message or raises ``AlertDeliveryFailed`` (saying whether trying again may help, and never
quoting a secret), and ``check(online)``, the problems ``check`` reports, each naming its key.
A send is bounded in time (``timeout``); retrying is the delivery loop's, not the sender's.

- ``WebhookSender`` POSTs the message's JSON body (no redirects followed: a POST is not
  re-sent elsewhere); 2xx is taken, 408, 429 and 5xx are worth another try, other answers not.
  Online ``check`` resolves the URL's host (or its proxy's), sending nothing.
- ``EmailSender`` sends the subject and text as a plain-text mail through ``smtp_host``,
  with STARTTLS (certificate verified against the system's trust store) and login when
  configured. Online ``check`` says EHLO (then STARTTLS and login), and QUIT: no mail.
- ``CommandSender`` runs the argv (no shell) with the JSON body on standard input, in a
  session of its own so that a timeout ends the command and whatever it started; exit 0 is
  taken. Its environment is the daemon's without ``$PROCORE_CLIENT_SECRET``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import requests

from procore_hotfolder import __version__
from procore_hotfolder.alerts.message import Message
from procore_hotfolder.config import AlertSettings
from procore_hotfolder.config.values import SECRET_ENV
from procore_hotfolder.errors import AlertDeliveryFailed

SEND_TIMEOUT_SECONDS = 15.0
COMMAND_TIMEOUT_SECONDS = 30.0
_USER_AGENT = f"procore-hotfolder/{__version__}"


class Sender(Protocol):
    channel: str
    timeout: float

    def describe(self) -> str: ...

    def send(self, message: Message) -> None: ...

    def check(self, *, online: bool) -> list[str]: ...


def senders_for(settings: AlertSettings, *,
                tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
                ) -> list[Sender]:
    """The senders ``settings`` configures, in the order webhook, e-mail, command."""
    senders: list[Sender] = []
    if settings.webhook_url:
        senders.append(WebhookSender(settings.webhook_url))
    if settings.email_to:
        senders.append(EmailSender(settings, tls_context=tls_context))
    if settings.command:
        senders.append(CommandSender(settings.command))
    return senders


# --- webhook ------------------------------------------------------------------------------


class WebhookSender:
    """POSTs the JSON body to ``url`` (whose path is treated as a secret)."""

    channel = "webhook"

    def __init__(self, url: str, *, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self._url = url
        self.timeout = timeout
        parts = urlsplit(url)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        # What an error text may quote of the URL: nothing but the scheme and the host.
        self._secrets = sorted({url, url.rstrip("/"), parts.path, parts.query, parts.netloc}
                               - {"", "/", self._host}, key=len, reverse=True)

    def describe(self) -> str:
        return f"webhook to {self._host} (path not shown: it holds the hook's secret)"

    def send(self, message: Message) -> None:
        try:
            answer = requests.post(
                self._url, data=message.json_bytes(), timeout=self.timeout,
                allow_redirects=False,
                headers={"Content-Type": "application/json; charset=utf-8",
                         "User-Agent": _USER_AGENT})
        except requests.RequestException as exc:
            raise AlertDeliveryFailed(self._safe(exc), retryable=True) from None
        with answer:
            if 200 <= answer.status_code < 300:
                return
            status = answer.status_code
            retry_after = _seconds(answer.headers.get("Retry-After"))
        raise AlertDeliveryFailed(f"{self._host} answered HTTP {status}",
                                  retryable=status in (408, 429) or status >= 500,
                                  retry_after=retry_after)

    def check(self, *, online: bool) -> list[str]:
        if not online:
            return []
        proxies = requests.utils.get_environ_proxies(self._url)
        proxy = proxies.get(urlsplit(self._url).scheme) or proxies.get("all")
        host, port, via = self._host, self._port, ""
        if proxy:
            parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            host, port, via = parts.hostname or "", parts.port or 80, f" (the proxy {host})"
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            return [f"alerts.webhook_url: {host}{via} does not resolve: {exc}"]
        return []

    def _safe(self, exc: Exception) -> str:
        """The error as text without the URL's path, query or credentials."""
        text = f"{exc.__class__.__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text[:300]


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


# --- e-mail -------------------------------------------------------------------------------


class EmailSender:
    """One plain-text mail per message to ``email_to`` through the SMTP server."""

    channel = "email"

    def __init__(self, settings: AlertSettings, *,
                 tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
                 timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        if settings.email_from is None:
            raise ValueError("email_from is required with email_to")
        self._settings = settings
        self._from: str = settings.email_from
        self._tls_context = tls_context
        self.timeout = timeout

    def describe(self) -> str:
        s = self._settings
        how = [w for w, on in (("STARTTLS", s.smtp_starttls),
                               (f"login as {s.smtp_user}", s.smtp_user)) if on]
        return (f"e-mail to {', '.join(s.email_to)} from {self._from} via "
                f"{s.smtp_host}:{s.smtp_port}" + (f" ({', '.join(how)})" if how else ""))

    def send(self, message: Message) -> None:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self._from
        mail["To"] = ", ".join(self._settings.email_to)
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = make_msgid(domain=self._from.rpartition("@")[2])
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        mail.set_content(message.text)
        try:
            with self._session() as smtp:
                smtp.send_message(mail, self._from, list(self._settings.email_to))
        except smtplib.SMTPException as exc:
            raise self._failure(exc) from None
        except (OSError, UnicodeError) as exc:
            raise AlertDeliveryFailed(self._where(f"{exc.__class__.__name__}: {exc}"),
                                      retryable=not isinstance(exc, ssl.SSLCertVerificationError)
                                      ) from None

    def check(self, *, online: bool) -> list[str]:
        if not online:
            return []
        try:
            with self._session():
                pass
        except (smtplib.SMTPException, OSError) as exc:
            return [f"alerts.smtp_host: {self._where(_smtp_text(exc))}"]
        return []

    def _session(self) -> _Session:
        """Connected, greeted (EHLO), on TLS and logged in as configured."""
        s = self._settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if s.smtp_starttls:
                # smtplib raises SMTPNotSupportedError when the server offers no STARTTLS.
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if s.smtp_user is not None:
                smtp.login(s.smtp_user, s.smtp_password or "")
        except BaseException:
            smtp.close()
            raise
        return _Session(smtp)

    def _failure(self, exc: smtplib.SMTPException) -> AlertDeliveryFailed:
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            retryable = True
        elif isinstance(exc, smtplib.SMTPRecipientsRefused):
            retryable = any(code < 500 for code, _ in exc.recipients.values())
        elif isinstance(exc, smtplib.SMTPResponseException):
            retryable = exc.smtp_code < 500
        else:  # SMTPNotSupportedError (no STARTTLS, no AUTH), ...
            retryable = False
        return AlertDeliveryFailed(self._where(_smtp_text(exc)), retryable=retryable)

    def _where(self, text: str) -> str:
        s = self._settings
        if s.smtp_password:
            text = text.replace(s.smtp_password, "[redacted]")
        return f"{s.smtp_host}:{s.smtp_port}: {text}"[:400]


class _Session:
    """An SMTP connection that says QUIT (or at least closes) when the block ends."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp

    def __enter__(self) -> smtplib.SMTP:
        return self.smtp

    def __exit__(self, *_: object) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


def _smtp_text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        said = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"{exc.__class__.__name__}: {exc.smtp_code} {said}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipients refused: " + "; ".join(
            f"{who}: {code} {said.decode('utf-8', 'replace')}"
            for who, (code, said) in exc.recipients.items())
    return f"{exc.__class__.__name__}: {exc}"


# --- command ------------------------------------------------------------------------------


class CommandSender:
    """Runs ``argv`` with the JSON body on standard input; exit status 0 means delivered."""

    channel = "command"

    def __init__(self, argv: tuple[str, ...], *, timeout: float = COMMAND_TIMEOUT_SECONDS,
                 environ: Mapping[str, str] | None = None) -> None:
        self._argv = argv
        self.timeout = timeout
        base = os.environ if environ is None else environ
        # The daemon's own secret is nobody else's business.
        self._env = {k: v for k, v in base.items() if k != SECRET_ENV}

    def describe(self) -> str:
        return f"command {' '.join(self._argv)}"

    def send(self, message: Message) -> None:
        try:
            proc = subprocess.Popen(  # noqa: S603 - the administrator's own argv, no shell
                self._argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, env=self._env, start_new_session=True)
        except OSError as exc:
            raise AlertDeliveryFailed(f"{self._argv[0]}: {exc.strerror or exc}",
                                      retryable=False) from None
        try:
            _, err = proc.communicate(message.json_bytes(), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_session(proc)
            raise AlertDeliveryFailed(f"{self._argv[0]}: still running after "
                                      f"{self.timeout:g} s, stopped", retryable=True) from None
        if proc.returncode != 0:
            last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
            raise AlertDeliveryFailed(
                f"{self._argv[0]}: exit status {proc.returncode}"
                + (f": {last}" if last else ""), retryable=True)

    def check(self, *, online: bool) -> list[str]:
        """The program exists and may be run (the same offline and online)."""
        program = self._argv[0]
        found = program if os.sep in program else shutil.which(program, path=self._env.get(
            "PATH"))
        if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
            return [f"alerts.command: {program} is not an executable file"
                    + ("" if os.sep in program else " on PATH")]
        return []


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """End the command and everything it started (its own session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild that left the session keeps a pipe
        proc.kill()
        proc.wait()
