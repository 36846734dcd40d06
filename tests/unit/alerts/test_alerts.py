"""The interface the engine holds: ``build_alerts`` gives the delivery loop when the
configuration has ``[alerts]`` and the null one, which does nothing, when it has none;
``CurrentAlerts``, the one sink of a running daemon, replaced by a reload that changes
``[alerts]`` (the old ones sending what they held, against a real webhook receiver) and kept
by one that does not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from procore_hotfolder.alerts import (
    NULL_ALERTS,
    Alerts,
    CurrentAlerts,
    HeldFolder,
    build_alerts,
)
from procore_hotfolder.config import Config, parse_config
from procore_hotfolder.metrics import NullMetrics
from tests.conftest import wait_for
from tests.receivers import WebhookReceiver


def _config(tmp_path: Path, **alerts: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "procore": {"company_id": 1, "client_id": "x"},
        "daemon": {"state_dir": str(tmp_path / "state")},
        "folders": [{"path": str(tmp_path / "drop"), "destination": "none"}]}
    if alerts:
        raw["alerts"] = alerts
    return raw


def test_without_alerts_the_engine_holds_the_null_one(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path), base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "s"})
    alerts = build_alerts(config)
    assert alerts is NULL_ALERTS
    alerts.start()
    alerts.file_failed(0.0, tmp_path / "a.pdf", reason="validation", detail="x", attempts=1)
    alerts.holds(0.0, [HeldFolder(None, "authentication", "Unauthorized", 0.0)])
    alerts.backlog(0.0, tmp_path / "a.pdf", 1e9)
    assert alerts.close(1.0)


def test_with_alerts_it_is_the_delivery_loop(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, command=["/bin/true"]), base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "s"})
    alerts = build_alerts(config)
    assert isinstance(alerts, Alerts)
    alerts.start()
    assert alerts.close(5.0)


# --- the alerts in force in a running daemon, and a reload ------------------------------


class Counted(NullMetrics):
    def __init__(self) -> None:
        self.alerts: list[str] = []

    def alert(self, outcome: str) -> None:
        self.alerts.append(outcome)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _hooked(tmp_path: Path, webhook: WebhookReceiver, hook: str | None,
            drop: str = "drop") -> Config:
    """A configuration whose alerts post to ``/hooks/<hook>`` (None: no ``[alerts]``); the
    window is an hour, so only a flush sends anything."""
    raw = _config(tmp_path, **({"webhook_url": webhook.url(f"/hooks/{hook}"),
                                "batch_seconds": 3600} if hook else {}))
    raw["folders"] = [{"path": str(tmp_path / drop), "destination": "none"}]
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "s"})


def _fail(alerts: CurrentAlerts, path: Path) -> None:
    alerts.file_failed(time.time(), path, reason="validation", detail="refused", attempts=1)


def _sent(webhook: WebhookReceiver) -> list[tuple[str, list[str]]]:
    return [(post.path, [Path(e["path"]).name for e in post.body["events"]])
            for post in webhook.posts]


def test_a_reload_that_changes_the_alerts_replaces_them_and_the_old_send_what_they_held(
        tmp_path: Path, webhook: WebhookReceiver) -> None:
    alerts = CurrentAlerts(_hooked(tmp_path, webhook, "old"))
    alerts.metrics = metrics = Counted()
    alerts.start()
    _fail(alerts, tmp_path / "drop" / "a.pdf")
    alerts.reconfigure(_hooked(tmp_path, webhook, "new"))
    # The old alerts send what they held at once, without waiting for their window.
    wait_for(lambda: webhook.posts, message="the old alerts' last message")
    _fail(alerts, tmp_path / "drop" / "b.pdf")
    assert alerts.close(5.0)
    assert _sent(webhook) == [("/hooks/old", ["a.pdf"]), ("/hooks/new", ["b.pdf"])]
    assert metrics.alerts == ["sent", "sent"]


def test_a_reload_that_leaves_the_alerts_as_they_are_keeps_them(
        tmp_path: Path, webhook: WebhookReceiver) -> None:
    alerts = CurrentAlerts(_hooked(tmp_path, webhook, "same"))
    alerts.start()
    _fail(alerts, tmp_path / "drop" / "a.pdf")
    alerts.reconfigure(_hooked(tmp_path, webhook, "same", drop="other"))  # folders changed
    _fail(alerts, tmp_path / "drop" / "b.pdf")
    assert alerts.close(5.0)
    assert _sent(webhook) == [("/hooks/same", ["a.pdf", "b.pdf"])]  # one window


def test_alerts_added_and_removed_by_a_reload(tmp_path: Path, webhook: WebhookReceiver
                                              ) -> None:
    alerts = CurrentAlerts(_hooked(tmp_path, webhook, None))
    alerts.start()
    _fail(alerts, tmp_path / "drop" / "unheard.pdf")  # nobody to tell yet
    alerts.reconfigure(_hooked(tmp_path, webhook, "added"))
    _fail(alerts, tmp_path / "drop" / "a.pdf")
    alerts.reconfigure(_hooked(tmp_path, webhook, None))
    wait_for(lambda: webhook.posts, message="the removed alerts' last message")
    _fail(alerts, tmp_path / "drop" / "b.pdf")
    assert alerts.close(5.0)
    assert _sent(webhook) == [("/hooks/added", ["a.pdf"])]
