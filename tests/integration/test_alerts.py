"""Alerts from the running engine (issue 22), received by a real SMTP server and a real HTTP
receiver: a file refused for good is one message with Procore's reason, the request id and the
command that puts it back, and the files that upload beside it send nothing; a burst of 20
failures is one message; a pause past ``paused_minutes`` is told, then its end; a file waiting
past ``oldest_waiting_minutes`` is told with its path and age, settling or queued; a webhook
that is down gets the message once it is back; `once` sends what it has before it exits."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.alerts import DeliveryPolicy
from procore_hotfolder.config import Config, load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.model import Backoff
from procore_hotfolder.upload import holds
from tests.conftest import run_cli, running_engine, wait_for, write_config
from tests.receivers import Mail, SmtpReceiver, WebhookReceiver

TOKEN = "s3cr3t-token"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def _config(tmp_path: Path, emulator: Emulator, folders: list[dict[str, Any]],
            webhook: WebhookReceiver, smtp: SmtpReceiver | None = None,
            **alerts: float) -> Path:
    """A configuration whose ``[alerts]`` post to ``webhook`` (and mail through ``smtp``)."""
    path = write_config(tmp_path, emulator, folders)
    lines = ["", "[alerts]", f'webhook_url = "{webhook.url(f"/hooks/T000/B000/{TOKEN}")}"']
    if smtp is not None:
        lines += ['email_to = ["it@example.com"]',
                  'email_from = "procore-hotfolder@scan01.example.com"',
                  'smtp_host = "127.0.0.1"', f"smtp_port = {smtp.port}"]
    lines += [f"{key} = {value!r}" for key, value in alerts.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def _load(path: Path) -> Config:
    return load_config(path, environ={})


def _events(webhook: WebhookReceiver) -> list[dict[str, Any]]:
    return [event for post in webhook.posts for event in post.body["events"]]


def _text(mail: Mail) -> str:
    """The mail's text as its reader sees it (the wire's CRLF as newlines)."""
    return str(mail.message.get_content()).replace("\r\n", "\n")


def _linked(drop: Path, outside: Path, name: str) -> Path:
    """A file in ``drop`` with a second hard link outside it: refused for good."""
    path = drop / name
    path.write_bytes(b"%PDF-1.7 " + name.encode() * 50)
    os.link(path, outside / name)
    return path


def test_a_file_refused_for_good_is_one_message_and_uploads_send_nothing(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver,
        smtp: SmtpReceiver) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = _load(_config(tmp_path, emulator, [{"path": str(drop)}], webhook, smtp,
                           batch_seconds=1))
    with running_engine(config) as (_, capture):
        for n in range(3):
            (drop / f"ok-{n}.pdf").write_bytes(b"%PDF-1.7 fine " + bytes([n]) * 100)
        for n in range(3):
            wait_for((drop / ".archive" / f"ok-{n}.pdf").exists, message="uploaded")
        # Procore refuses the next Create Upload for good (a 422, in one of Procore's shapes).
        emulator.faults.fail_next(1, status=422, path_contains="/uploads")
        (drop / "A-101 Floor plan.pdf").write_bytes(b"%PDF-1.7 refused")
        mail = wait_for(lambda: smtp.mails, message="the mail")[0]
        wait_for(lambda: webhook.posts, message="the webhook's post")
    sidecar = json.loads((drop / ".failed" / "A-101 Floor plan.pdf.error.json").read_text())
    failed_path = drop / ".failed" / "A-101 Floor plan.pdf"
    # Nothing more came, the stop's flush included: three uploads sent nothing.
    assert len(smtp.mails) == 1 and len(webhook.posts) == 1
    subject = str(mail.message["Subject"])
    assert subject.endswith(": A-101 Floor plan.pdf failed (validation)")
    text = _text(mail)
    assert f"why: Procore refused the file [validation] (HTTP 422, request id " \
           f"{sidecar['request_id']})" in text
    assert sidecar["request_id"] and "ok-" not in text
    assert f"put it back: procore-hotfolder retry -c {tmp_path / 'config.toml'} " \
           f"'{failed_path}'" in text
    [event] = _events(webhook)
    assert event["event"] == "file_failed" and event["status"] == 422
    assert event["request_id"] == sidecar["request_id"]
    assert event["failed_path"] == str(failed_path) and event["attempts"] == 1
    assert webhook.posts[0].body["text"] == text
    sent = [e for e in capture.entries if e["event"] == "alert_sent"]
    assert {e["channel"] for e in sent} == {"webhook", "email"}
    assert TOKEN not in repr(capture.entries)


def test_a_burst_of_20_failures_arrives_as_one_message(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver,
        smtp: SmtpReceiver) -> None:
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    config = _load(_config(tmp_path, emulator, [{"path": str(drop)}], webhook, smtp,
                           batch_seconds=5))
    with running_engine(config):
        paths = [_linked(drop, outside, f"scan-{n:02d}.pdf") for n in range(20)]
        mail = wait_for(lambda: smtp.mails, message="the mail")[0]
        wait_for(lambda: webhook.posts, message="the post")
    assert len(smtp.mails) == 1 and len(webhook.posts) == 1
    assert str(mail.message["Subject"]).endswith(": 20 files failed")
    text = _text(mail)
    assert all(str(path) in text for path in paths)
    assert text.count("why: the file has more than one hard link, so it is not uploaded "
                      "[hard_links]") == 20
    events = _events(webhook)
    assert len(events) == 20 and {e["reason"] for e in events} == {"hard_links"}


def test_a_pause_past_its_threshold_is_told_and_then_its_end(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver,
        smtp: SmtpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holds, "CHECK_BACKOFF", Backoff(base=0.4, cap=1.0, jitter=0.0))
    drop = tmp_path / "drop"
    drop.mkdir()
    config = _load(_config(tmp_path, emulator, [
        {"path": str(drop), "project_id": 7, "destination": "documents"}], webhook, smtp,
        paused_minutes=0.02, batch_seconds=0.5))  # 1.2 s
    emulator.faults.forbidden_projects.add(7)  # the app was updated: its projects reset
    with running_engine(config) as (_, capture):
        (drop / "rfi.pdf").write_bytes(b"%PDF-1.7 rfi")
        paused = wait_for(lambda: smtp.mails, timeout=30, message="the pause told")[0]
        assert not any(e["event"] == "folder_resumed" for e in capture.entries)
        emulator.faults.forbidden_projects.discard(7)  # the admin grants it again
        wait_for((drop / ".archive" / "rfi.pdf").exists, message="uploaded after the pause")
        resumed = wait_for(lambda: smtp.mails[1:], timeout=30, message="the end told")[0]
        wait_for(lambda: len(webhook.posts) == 2, message="both posts")
    assert len(smtp.mails) == 2
    assert str(paused.message["Subject"]).endswith(f": {drop} paused")
    text = _text(paused)
    assert f"Folder {drop} is paused since" in text
    assert "Procore refuses the project (HTTP 403) [permission]" in text
    assert "project 7" in text  # Procore's words
    assert str(resumed.message["Subject"]).endswith(f": {drop} resumed")
    assert f"Folder {drop} resumed at" in _text(resumed)
    events = _events(webhook)
    assert [e["event"] for e in events] == ["folder_paused", "folder_resumed"]
    assert events[0]["folder"] == str(drop) and events[0]["reason"] == "permission"
    assert events[1]["since"] == events[0]["since"]


@pytest.mark.parametrize("waits", ["settling", "queued"])
def test_a_file_waiting_too_long_is_told_with_its_path_and_age(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver, waits: str) -> None:
    """Settling: an empty file (a scanner that never wrote it) waits in the settle tracker;
    queued: a file with a journal row waits for a folder Procore refuses (its pause not told
    yet: ``paused_minutes`` is long)."""
    drop = tmp_path / "drop"
    drop.mkdir()
    folder: dict[str, Any] = {"path": str(drop)}
    if waits == "queued":
        folder.update(project_id=7, destination="documents")
        emulator.faults.forbidden_projects.add(7)
    config = _load(_config(tmp_path, emulator, [folder], webhook, oldest_waiting_minutes=0.03,
                           batch_seconds=0.5))  # 1.8 s
    path = drop / "scan-0001.pdf"
    with running_engine(config):
        path.write_bytes(b"" if waits == "settling" else b"%PDF-1.7 waits")
        wait_for(lambda: webhook.posts, timeout=30, message="the backlog told")
    [post] = webhook.posts
    [event] = post.body["events"]
    assert event["event"] == "backlog_stuck" and event["path"] == str(path)
    assert event["age_seconds"] >= 1.8
    assert event["explain_command"].endswith(f"explain -c {tmp_path / 'config.toml'} {path}")
    assert f"{path} has waited" in post.body["text"]


def test_a_webhook_that_is_down_gets_the_message_once_it_is_back(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver) -> None:
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    config = _load(_config(tmp_path, emulator, [{"path": str(drop)}], webhook,
                           batch_seconds=0.5))
    webhook.down()  # its port refuses connections
    fast = DeliveryPolicy(backoff=Backoff(base=0.3, cap=0.6, jitter=0.0))
    with running_engine(config, alert_policy=fast) as (_, capture):
        path = _linked(drop, outside, "drawing.pdf")
        wait_for(lambda: [e for e in capture.entries if e["event"] == "alert_delivery_failed"],
                 message="a failed delivery")
        webhook.start()  # back, on the same port
        wait_for(lambda: webhook.posts, message="the message after all")
    [event] = _events(webhook)
    assert event["event"] == "file_failed" and event["path"] == str(path)
    [sent] = [e for e in capture.entries if e["event"] == "alert_sent"]
    assert sent["attempts"] >= 2
    assert not [e for e in capture.entries if e["event"] == "alert_failed"]
    assert TOKEN not in repr(capture.entries)


def test_once_sends_what_it_has_before_it_exits(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver) -> None:
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    (drop / "ok.pdf").write_bytes(b"%PDF-1.7 fine")
    path = _linked(drop, outside, "linked.pdf")
    # The window is an hour: only the flush at the end can send it.
    config = _config(tmp_path, emulator, [{"path": str(drop)}], webhook, batch_seconds=3600)
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 1, result.stderr
    [event] = _events(webhook)  # there when `once` has exited
    assert event["event"] == "file_failed" and event["path"] == str(path)
    assert event["reason"] == "hard_links"


def test_a_reload_that_changes_the_alerts_sends_later_failures_the_new_way(
        tmp_path: Path, emulator: Emulator, webhook: WebhookReceiver) -> None:
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    path = _config(tmp_path, emulator, [{"path": str(drop)}], webhook, batch_seconds=0.5)
    with running_engine(_load(path), load_config=lambda: _load(path)) as (engine, capture):
        _linked(drop, outside, "before.pdf")
        wait_for(lambda: webhook.posts, message="the first message")
        path.write_text(path.read_text().replace("/hooks/T000/B000/", "/hooks/T000/B111/"))
        engine.service.request_reload()  # as SIGHUP does
        wait_for(lambda: [e for e in capture.entries if e["event"] == "configuration_reloaded"],
                 message="the reload")
        _linked(drop, outside, "after.pdf")
        wait_for(lambda: len(webhook.posts) == 2, message="the second message")
    assert [(post.path.split("/")[3], [Path(e["path"]).name for e in post.body["events"]])
            for post in webhook.posts] == [("B000", ["before.pdf"]), ("B111", ["after.pdf"])]
    assert TOKEN not in repr(capture.entries)
