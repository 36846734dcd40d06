"""``check`` and the alerts, as an admin runs them (a real process): it validates ``[alerts]``
and sends nothing (the SMTP server greeted, STARTTLS and login tried, no mail; the webhook's
host resolved, no POST); ``--send-test-alert`` sends one test message that arrives by e-mail
and webhook; a channel that does not answer is a problem naming its key."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from procore_hotfolder.emulator import Emulator
from tests.conftest import cli_env, run_cli, write_config
from tests.receivers import SmtpReceiver, WebhookReceiver, make_certificate

PASSWORD = "smtp-pa55-w0rd-value"
TOKEN = "s3cr3t-token"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(certificate=make_certificate(tmp_path),
                            login=("alerts", PASSWORD)).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _config(tmp_path: Path, emulator: Emulator, alerts: str) -> Path:
    drop = tmp_path / "drop"
    drop.mkdir()
    path = write_config(tmp_path, emulator, [{"path": str(drop)}])
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    path.write_text(path.read_text() + "\n[alerts]\n" + alerts)
    return path


def _alerts(webhook: WebhookReceiver, smtp_port: int) -> str:
    return f"""webhook_url = "{webhook.url(f'/hooks/T000/B000/{TOKEN}')}"
email_to = ["it@example.com"]
email_from = "procore-hotfolder@scan01.example.com"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_starttls = true
smtp_user = "alerts"
smtp_password_file = "smtp-password"
"""


def _env(tmp_path: Path) -> dict[str, str]:
    """The process trusts the test's certificate as a system CA (OpenSSL's SSL_CERT_FILE)."""
    env = cli_env()
    env["SSL_CERT_FILE"] = str(tmp_path / "smtp-cert.pem")
    return env


def test_check_validates_the_alerts_and_sends_nothing(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver,
        smtp: SmtpReceiver) -> None:
    config = _config(tmp_path, emulator, _alerts(webhook, smtp.port))
    result = run_cli("check", "-c", str(config), env=_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts: webhook to 127.0.0.1" in result.stdout
    assert ("alerts: e-mail to it@example.com from procore-hotfolder@scan01.example.com via "
            f"127.0.0.1:{smtp.port} (STARTTLS, login as alerts)") in result.stdout
    assert smtp.commands[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert smtp.logins == [("alerts", True)]
    assert "MAIL" not in smtp.commands and smtp.mails == []
    assert webhook.posts == [] and webhook.refused == 0
    output = result.stdout + result.stderr
    assert TOKEN not in output and PASSWORD not in output


def test_check_offline_asks_no_server(tmp_path: Path, emulator: Emulator,
                                      webhook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    config = _config(tmp_path, emulator, _alerts(webhook, smtp.port))
    result = run_cli("check", "--offline", "-c", str(config), env=_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert smtp.commands == [] and webhook.posts == []


def test_send_test_alert_arrives_by_mail_and_webhook(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver,
        smtp: SmtpReceiver) -> None:
    config = _config(tmp_path, emulator, _alerts(webhook, smtp.port))
    result = run_cli("check", "--offline", "--send-test-alert", "-c", str(config),
                     env=_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    host = socket.gethostname()
    subject = f"procore-hotfolder on {host}: test message"
    assert f"alerts: test message sent by webhook: {subject!r}" in result.stdout
    assert f"alerts: test message sent by email: {subject!r}" in result.stdout
    (mail,) = smtp.mails
    assert mail.message["Subject"] == subject
    assert f"configuration {config}" in mail.message.get_content()
    (post,) = webhook.posts
    assert post.path == f"/hooks/T000/B000/{TOKEN}"
    assert post.body["host"] == host and post.body["events"][0]["event"] == "test"
    assert post.body["text"].startswith(subject)


def test_a_channel_that_does_not_answer_is_a_problem_naming_its_key(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = _config(tmp_path, emulator, _alerts(webhook, closed))
    result = run_cli("check", "--send-test-alert", "-c", str(config), env=_env(tmp_path))
    assert result.returncode == 1
    assert f"problem: alerts.smtp_host: 127.0.0.1:{closed}: ConnectionRefusedError" \
        in result.stdout
    assert webhook.posts == []  # no test message while a channel is wrong


def test_command_that_is_not_there_is_a_problem_offline(tmp_path: Path,
                                                        emulator: Emulator) -> None:
    missing = tmp_path / "page-it"
    config = _config(tmp_path, emulator, f'command = ["{missing}"]\n')
    result = run_cli("check", "--offline", "-c", str(config))
    assert result.returncode == 1
    assert f"problem: alerts.command: {missing} is not an executable file" in result.stdout


def test_without_alerts_check_says_so_and_a_test_alert_is_a_problem(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop)}])
    result = run_cli("check", "--offline", "-c", str(config))
    assert result.returncode == 0
    assert "alerts: none configured" in result.stdout
    result = run_cli("check", "--offline", "--send-test-alert", "-c", str(config))
    assert result.returncode == 1
    assert "problem: alerts: --send-test-alert needs an [alerts] section" in result.stdout
