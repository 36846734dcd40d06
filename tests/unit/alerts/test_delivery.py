"""The delivery loop on its thread, against a real webhook receiver and a real SMTP server:
one message per burst, retried until the receiver is back and then delivered once, nothing
sent without a failure, never a secret in a log line, nothing waited for by the caller, what
is pending sent on close, what cannot be queued counted."""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.alerts.batcher import Thresholds
from procore_hotfolder.alerts.delivery import Alerts, DeliveryPolicy
from procore_hotfolder.alerts.events import HeldFolder
from procore_hotfolder.alerts.message import Commands, Message, Renderer
from procore_hotfolder.alerts.senders import EmailSender, Sender, WebhookSender
from procore_hotfolder.config import AlertSettings
from procore_hotfolder.errors import AlertDeliveryFailed
from procore_hotfolder.logs import configure_logging
from procore_hotfolder.metrics import NullMetrics
from procore_hotfolder.model import Backoff
from tests.conftest import wait_for
from tests.receivers import SmtpReceiver, WebhookReceiver, make_certificate

DROP = Path("/srv/drop/tower-a")
FAST = DeliveryPolicy(backoff=Backoff(base=0.2, cap=0.4, jitter=0.0), give_up_seconds=60)
RENDER = Renderer("scan01", Commands(Path("/etc/procore-hotfolder/config.toml")))
TOKEN = "s3cr3t-token"
PASSWORD = "smtp-pa55-w0rd-value"


class Counted(NullMetrics):
    """The metrics hooks, counting alerts by outcome."""

    def __init__(self) -> None:
        self.alerts: dict[str, int] = {}

    def alert(self, outcome: str) -> None:
        self.alerts[outcome] = self.alerts.get(outcome, 0) + 1


def alerts(*senders: Sender, batch_seconds: float = 1.0, paused_seconds: float = 900.0,
           policy: DeliveryPolicy = FAST) -> tuple[Alerts, Counted]:
    metrics = Counted()
    limits = Thresholds(paused_seconds=paused_seconds, oldest_waiting_seconds=7200,
                        batch_seconds=batch_seconds)
    return Alerts(list(senders), limits, RENDER, policy=policy, metrics=metrics), metrics


def fail(target: Alerts, name: str) -> None:
    target.file_failed(time.time(), DROP / name, reason="validation",
                       detail="File name contains invalid characters", attempts=1, status=422,
                       request_id=f"req-{name}", failed_path=DROP / "Failed" / name)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _mail_settings(port: int, **given: object) -> AlertSettings:
    return AlertSettings(email_to=("it@example.com",), email_from="phf@scan01.example.com",
                         smtp_host="127.0.0.1", smtp_port=port, **given)  # type: ignore[arg-type]


def test_a_burst_of_20_failures_arrives_as_one_message(webhook: WebhookReceiver) -> None:
    with SmtpReceiver() as smtp:
        target, metrics = alerts(WebhookSender(webhook.url()),
                                 EmailSender(_mail_settings(smtp.port)))
        target.start()
        try:
            for n in range(20):
                fail(target, f"A-{n:03d}.pdf")
            wait_for(lambda: webhook.posts and smtp.mails, timeout=20,
                     message="the message on both channels")
        finally:
            assert target.close(10)
    (post,) = webhook.posts
    (mail,) = smtp.mails
    assert [e["event"] for e in post.body["events"]] == ["file_failed"] * 20
    assert mail.message["Subject"] == "procore-hotfolder on scan01: 20 files failed"
    body = mail.message.get_content()
    assert all(f"A-{n:03d}.pdf" in body for n in range(20))
    assert metrics.alerts == {"sent": 2}


@pytest.mark.parametrize("how", ["refusing", "answering 500"])
def test_a_webhook_that_is_down_and_comes_back_gets_the_message_once(
        webhook: WebhookReceiver, how: str) -> None:
    if how == "refusing":
        webhook.down()
    else:
        webhook.answer(500)
    target, metrics = alerts(WebhookSender(webhook.url()), batch_seconds=0.1)
    with capture_logs() as logs:
        target.start()
        try:
            fail(target, "a.pdf")
            wait_for(lambda: sum(e["event"] == "alert_delivery_failed" for e in logs) >= 2,
                     timeout=20, message="two failed tries")
            if how == "refusing":
                webhook.start()  # back, on the same port
            else:
                webhook.answer(200)
            wait_for(lambda: webhook.posts, timeout=20, message="the delivery")
            fail(target, "b.pdf")  # and the channel works on
            wait_for(lambda: len(webhook.posts) == 2, timeout=20, message="the next one")
        finally:
            assert target.close(10)
    first, second = webhook.posts
    assert [e["path"] for e in first.body["events"]] == [str(DROP / "a.pdf")]
    assert [e["path"] for e in second.body["events"]] == [str(DROP / "b.pdf")]
    assert metrics.alerts == {"sent": 2}
    events = [e["event"] for e in logs if e["event"].startswith("alert")]
    assert events[events.index("alert_sent") - 1] == "alert_delivery_failed"
    retry = next(e for e in logs if e["event"] == "alert_delivery_failed")
    assert retry["channel"] == "webhook" and retry["retry_in"] > 0
    assert "alert_failed" not in events


def test_an_answer_retrying_cannot_change_is_given_up_at_once(webhook: WebhookReceiver) -> None:
    webhook.answer(404)
    target, metrics = alerts(WebhookSender(webhook.url()), batch_seconds=0.1)
    with capture_logs() as logs:
        target.start()
        fail(target, "a.pdf")
        wait_for(lambda: metrics.alerts.get("failed"), timeout=20, message="given up")
        assert target.close(5)
    assert webhook.refused == 1
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"].endswith("answered HTTP 404") and failed["log_level"] == "error"


def test_nothing_is_sent_without_a_failure(webhook: WebhookReceiver) -> None:
    with SmtpReceiver() as smtp:
        target, metrics = alerts(WebhookSender(webhook.url()),
                                 EmailSender(_mail_settings(smtp.port)), batch_seconds=0.05)
        target.start()
        now = time.time()
        target.holds(now, [])  # nothing paused
        target.backlog(now, DROP / "settling.pdf", 3.0)  # a file just dropped
        target.backlog(now + 1, None, 0.0)  # ... and uploaded
        assert target.close(5)
    assert webhook.posts == [] and webhook.refused == 0
    assert smtp.mails == [] and "MAIL" not in smtp.commands
    assert metrics.alerts == {}


def test_a_pause_past_its_threshold_and_its_end(webhook: WebhookReceiver) -> None:
    target, _ = alerts(WebhookSender(webhook.url()), batch_seconds=0.1, paused_seconds=0.5)
    target.start()
    try:
        since = time.time()
        target.holds(since, [HeldFolder(DROP, "permission", "You do not have access", since)])
        # Nothing else is reported: the loop wakes by itself when the pause crosses 0.5 s.
        wait_for(lambda: webhook.posts, timeout=20, message="folder_paused")
        target.holds(time.time(), [])
        wait_for(lambda: len(webhook.posts) == 2, timeout=20, message="folder_resumed")
    finally:
        assert target.close(5)
    paused, resumed = (post.body["events"] for post in webhook.posts)
    assert [(e["event"], e["folder"]) for e in paused + resumed] == [
        ("folder_paused", str(DROP)), ("folder_resumed", str(DROP))]


def test_no_secret_in_any_log_line(webhook: WebhookReceiver, tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("debug", stream=out, json_output=True)
    cert = make_certificate(tmp_path)
    webhook.down()
    with SmtpReceiver(certificate=cert, login=("alerts", "the-right-one")) as smtp:
        mail = EmailSender(_mail_settings(smtp.port, smtp_starttls=True, smtp_user="alerts",
                                          smtp_password=PASSWORD),
                           tls_context=lambda: ssl.create_default_context(
                               cafile=str(cert[0])))
        url = webhook.url(f"/hooks/T000/B000/{TOKEN}?sig={TOKEN}-query")
        target, metrics = alerts(WebhookSender(url), mail, batch_seconds=0.1)
        target.start()
        try:
            fail(target, "a.pdf")
            wait_for(lambda: metrics.alerts.get("failed") and "alert_delivery_failed"
                     in out.getvalue(), timeout=20, message="both channels failing")
            webhook.start()
            wait_for(lambda: webhook.posts, timeout=20, message="the webhook back")
        finally:
            target.close(5)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    seen = {line["event"] for line in lines}
    assert {"alerts_started", "alert_delivery_failed", "alert_failed", "alert_sent"} <= seen
    for secret in (TOKEN, PASSWORD, "/hooks/", "B000"):
        assert secret not in out.getvalue(), secret


class _Stuck:
    """A channel whose send blocks until released (a receiver that never answers)."""

    channel = "stuck"
    timeout = 5.0

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sent: list[Message] = []

    def describe(self) -> str:
        return "stuck"

    def send(self, message: Message) -> None:
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise AlertDeliveryFailed("never released", retryable=False)
        self.sent.append(message)

    def check(self, *, online: bool) -> list[str]:
        return []


def test_the_caller_never_waits_for_a_delivery() -> None:
    stuck = _Stuck()
    target, _ = alerts(stuck, batch_seconds=0.0)
    target.start()
    try:
        fail(target, "first.pdf")
        assert stuck.entered.wait(timeout=20)
        # The loop is inside a send that does not return: reporting still returns at once
        # (were it to wait, this test would hang here until the send gave up).
        for n in range(50):
            fail(target, f"then-{n}.pdf")
            target.holds(time.time(), [])
            target.backlog(time.time(), None, 0.0)
        assert not stuck.sent
    finally:
        stuck.release.set()
        assert target.close(10)
    assert [len(m.body["events"]) for m in stuck.sent] == [1, 50]


def test_what_cannot_be_queued_is_counted_and_logged() -> None:
    stuck = _Stuck()
    stuck.release.set()
    policy = DeliveryPolicy(backoff=FAST.backoff, inbox_size=2)
    target, metrics = alerts(stuck, policy=policy)  # not started: nothing drains the inbox
    with capture_logs() as logs:
        for name in ("a.pdf", "b.pdf", "c.pdf"):
            fail(target, name)
    (dropped,) = [e for e in logs if e["event"] == "alert_dropped"]
    assert dropped["path"] == DROP / "c.pdf" and dropped["why"] == "queue_full"
    assert metrics.alerts == {"dropped": 1}
    assert target.close(5)
    (message,) = stuck.sent
    assert [e["path"] for e in message.body["events"]] == [str(DROP / "a.pdf"),
                                                           str(DROP / "b.pdf")]


def test_close_sends_what_it_has_without_waiting_for_the_window(webhook: WebhookReceiver
                                                                 ) -> None:
    target, metrics = alerts(WebhookSender(webhook.url()), batch_seconds=3600)
    target.start()
    fail(target, "a.pdf")
    assert target.close(10)  # as `once` does before it exits
    assert len(webhook.posts) == 1 and metrics.alerts == {"sent": 1}
    fail(target, "late.pdf")  # after close: counted, not queued
    assert metrics.alerts == {"sent": 1, "dropped": 1}


def test_close_gives_up_at_its_timeout_and_says_so(webhook: WebhookReceiver) -> None:
    webhook.down()
    target, metrics = alerts(WebhookSender(webhook.url()), batch_seconds=3600)
    target.start()
    fail(target, "a.pdf")
    with capture_logs() as logs:
        assert not target.close(0.5)
    assert metrics.alerts == {"failed": 1}
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"] == "still undelivered when the daemon stopped"
