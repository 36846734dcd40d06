"""Each channel against a real receiver on 127.0.0.1: a webhook (``http.server``), an SMTP
server (aiosmtpd: plain, STARTTLS with a certificate made here, login), a real command."""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from procore_hotfolder.alerts.message import Message
from procore_hotfolder.alerts.senders import CommandSender, EmailSender, WebhookSender
from procore_hotfolder.config import AlertSettings
from procore_hotfolder.errors import AlertDeliveryFailed
from tests.conftest import wait_for
from tests.receivers import SmtpReceiver, WebhookReceiver, make_certificate

MESSAGE = Message("procore-hotfolder on scan01: A-101.pdf failed (validation)",
                  "procore-hotfolder on scan01: A-101.pdf failed (validation)\n\nDétails\n",
                  {"text": "procore-hotfolder on scan01: ...", "host": "scan01",
                   "events": [{"event": "file_failed", "path": "/drop/a/A-101.pdf"}]})
PASSWORD = "smtp-pa55-w0rd-value"
TOKEN = "s3cr3t-token"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _email(port: int, **given: object) -> AlertSettings:
    settings: dict[str, object] = {"email_to": ("it@example.com", "site@example.com"),
                                   "email_from": "procore-hotfolder@scan01.example.com",
                                   "smtp_host": "127.0.0.1", "smtp_port": port}
    settings.update(given)
    return AlertSettings(**settings)  # type: ignore[arg-type]


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


# --- webhook ------------------------------------------------------------------------------


def test_webhook_posts_the_json_body(webhook: WebhookReceiver) -> None:
    WebhookSender(webhook.url()).send(MESSAGE)
    (post,) = webhook.posts
    assert post.path == f"/hooks/T000/B000/{TOKEN}"
    assert post.headers["Content-Type"] == "application/json; charset=utf-8"
    assert post.body == MESSAGE.body
    assert set(post.body) == {"text", "host", "events"}


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (503, True), (429, True), (408, True), (404, False), (400, False),
    (301, False),
])
def test_webhook_answers_say_whether_to_try_again(webhook: WebhookReceiver, status: int,
                                                  retryable: bool) -> None:
    webhook.answer(status)
    with pytest.raises(AlertDeliveryFailed) as caught:
        WebhookSender(webhook.url()).send(MESSAGE)
    assert caught.value.retryable is retryable
    assert f"HTTP {status}" in caught.value.message
    assert TOKEN not in caught.value.message


def test_a_webhook_that_is_down_is_worth_another_try_and_its_path_is_not_quoted() -> None:
    url = f"http://127.0.0.1:{_free_port()}/hooks/T000/B000/{TOKEN}?key=also-secret"
    with pytest.raises(AlertDeliveryFailed) as caught:
        WebhookSender(url, timeout=5).send(MESSAGE)
    assert caught.value.retryable
    assert "127.0.0.1" in caught.value.message
    for secret in (TOKEN, "also-secret", "/hooks"):
        assert secret not in caught.value.message


def test_webhook_check_resolves_the_host_and_sends_nothing(webhook: WebhookReceiver) -> None:
    sender = WebhookSender(webhook.url())
    assert sender.check(online=True) == []
    assert sender.check(online=False) == []
    assert webhook.posts == [] and webhook.refused == 0
    assert TOKEN not in sender.describe() and "127.0.0.1" in sender.describe()


# --- e-mail -------------------------------------------------------------------------------


def test_email_is_a_plain_text_mail_with_a_clear_subject() -> None:
    with SmtpReceiver() as smtp:
        EmailSender(_email(smtp.port)).send(MESSAGE)
    (mail,) = smtp.mails
    assert mail.mail_from == "procore-hotfolder@scan01.example.com"
    assert mail.rcpt_tos == ["it@example.com", "site@example.com"]
    message = mail.message
    assert message["Subject"] == MESSAGE.subject
    assert message["To"] == "it@example.com, site@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@scan01.example.com>")
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == MESSAGE.text
    assert "STARTTLS" not in smtp.commands


def test_email_over_starttls_with_login(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    with SmtpReceiver(certificate=cert, login=("alerts", PASSWORD)) as smtp:
        settings = _email(smtp.port, smtp_starttls=True, smtp_user="alerts",
                          smtp_password=PASSWORD)
        EmailSender(settings, tls_context=lambda: _trusting(cert[0])).send(MESSAGE)
    assert smtp.logins == [("alerts", True)]
    assert smtp.commands.index("STARTTLS") < smtp.commands.index("MAIL")
    assert len(smtp.mails) == 1


def test_a_refused_login_is_not_retried_and_the_password_is_not_quoted(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    with SmtpReceiver(certificate=cert, login=("alerts", "the-right-one")) as smtp:
        settings = _email(smtp.port, smtp_starttls=True, smtp_user="alerts",
                          smtp_password=PASSWORD)
        with pytest.raises(AlertDeliveryFailed) as caught:
            EmailSender(settings, tls_context=lambda: _trusting(cert[0])).send(MESSAGE)
    assert not caught.value.retryable
    assert "535" in caught.value.message
    assert PASSWORD not in caught.value.message
    assert smtp.mails == []


def test_a_certificate_that_does_not_verify_is_not_retried(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    # The system's trust store: the test's self-signed certificate is not in it.
    with SmtpReceiver(certificate=cert) as smtp, pytest.raises(AlertDeliveryFailed) as caught:
        EmailSender(_email(smtp.port, smtp_starttls=True)).send(MESSAGE)
    assert not caught.value.retryable
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert smtp.mails == []


def test_starttls_asked_of_a_server_without_it_is_not_retried() -> None:
    with SmtpReceiver() as smtp, pytest.raises(AlertDeliveryFailed) as caught:
        EmailSender(_email(smtp.port, smtp_starttls=True)).send(MESSAGE)
    assert not caught.value.retryable
    assert "STARTTLS" in caught.value.message


def test_an_smtp_server_that_is_down_is_worth_another_try() -> None:
    with pytest.raises(AlertDeliveryFailed) as caught:
        EmailSender(_email(_free_port()), timeout=5).send(MESSAGE)
    assert caught.value.retryable
    assert "ConnectionRefusedError" in caught.value.message


def test_email_check_greets_starts_tls_and_logs_in_but_sends_no_mail(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    with SmtpReceiver(certificate=cert, login=("alerts", PASSWORD)) as smtp:
        settings = _email(smtp.port, smtp_starttls=True, smtp_user="alerts",
                          smtp_password=PASSWORD)
        sender = EmailSender(settings, tls_context=lambda: _trusting(cert[0]))
        assert sender.check(online=True) == []
        assert sender.check(online=False) == []
    assert smtp.commands[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert smtp.logins == [("alerts", True)]
    assert "MAIL" not in smtp.commands and smtp.mails == []
    assert PASSWORD not in sender.describe()


def test_email_check_names_the_key_of_a_server_that_does_not_answer() -> None:
    (problem,) = EmailSender(_email(_free_port()), timeout=5).check(online=True)
    assert problem.startswith("alerts.smtp_host: 127.0.0.1:")


# --- command ------------------------------------------------------------------------------


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "page-it"
    script.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    script.chmod(0o755)
    return script


def test_command_reads_the_json_on_stdin_without_the_client_secret(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = _script(tmp_path, f"""
data = sys.stdin.buffer.read()
open({str(out)!r}, "wb").write(data)
open({str(out)!r} + ".env", "w").write(repr(sorted(os.environ)))
""")
    env = {"PATH": os.environ["PATH"], "PROCORE_CLIENT_SECRET": "nobody-elses",
           "LANG": "C.UTF-8"}
    CommandSender((str(script), "--flag"), environ=env).send(MESSAGE)
    assert json.loads(out.read_bytes()) == MESSAGE.body
    seen = (tmp_path / "got.json.env").read_text()
    assert "PROCORE_CLIENT_SECRET" not in seen and "LANG" in seen


def test_a_command_that_fails_is_worth_another_try(tmp_path: Path) -> None:
    script = _script(tmp_path, "sys.stdin.read(); print('pager says no', file=sys.stderr); "
                               "sys.exit(3)")
    with pytest.raises(AlertDeliveryFailed) as caught:
        CommandSender((str(script),)).send(MESSAGE)
    assert caught.value.retryable
    assert caught.value.message.endswith("exit status 3: pager says no")


def test_a_command_that_hangs_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = _script(tmp_path, f"""
import subprocess
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
time.sleep(60)
""")
    with pytest.raises(AlertDeliveryFailed) as caught:
        CommandSender((str(script),), timeout=2).send(MESSAGE)
    assert caught.value.retryable and "still running after 2 s" in caught.value.message
    child = int(pid_file.read_text())
    wait_for(lambda: not _running(child), timeout=10, message="the command's child to end")


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (PID 1 of a container may not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_that_does_not_exist_is_not_retried_and_check_says_so(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "page-it")
    sender = CommandSender((missing,))
    with pytest.raises(AlertDeliveryFailed) as caught:
        sender.send(MESSAGE)
    assert not caught.value.retryable
    assert sender.check(online=False) == [f"alerts.command: {missing} is not an executable "
                                          "file"]
    assert CommandSender(("no-such-pager-anywhere",)).check(online=False) == [
        "alerts.command: no-such-pager-anywhere is not an executable file on PATH"]
    assert CommandSender(("sh",)).check(online=False) == []
