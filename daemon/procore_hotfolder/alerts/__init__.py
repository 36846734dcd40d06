"""Telling a person when a file needs one: ``[alerts]`` by webhook, e-mail and/or a command.

The engine holds an ``AlertSink``: ``build_alerts(config)`` gives ``Alerts`` (the delivery
loop of ``alerts.delivery``) when the configuration has an ``[alerts]`` section, else
``NULL_ALERTS``, which does nothing. The engine reports, from any thread and without ever
waiting on a delivery:

- ``file_failed(now, path, reason=, detail=, attempts=, status=, request_id=, failed_path=)``
  when a file failed for good (moved to its failed folder, or failed in place);
- ``holds(now, holds)`` with every pause in force (``HeldFolder``: folder or None for every
  folder, reason, Procore's words, since), whenever they may have changed (every tick is
  fine): the batcher works out ``folder_paused`` and ``folder_resumed``;
- ``backlog(now, oldest_path, oldest_age_seconds)``, likewise;

and calls ``start()`` when it starts, ``close(timeout)`` when it stops (``once`` before it
exits: what is pending goes out first). The rules of what goes out when are
``alerts.batcher``'s; the words are ``alerts.message``'s; the channels ``alerts.senders``';
``check`` asks ``alerts.checking``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from procore_hotfolder.alerts.batcher import Thresholds
from procore_hotfolder.alerts.delivery import Alerts, DeliveryPolicy, build_renderer
from procore_hotfolder.alerts.events import HeldFolder
from procore_hotfolder.alerts.senders import senders_for
from procore_hotfolder.config import Config
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks

__all__ = ["NULL_ALERTS", "AlertSink", "Alerts", "HeldFolder", "NullAlerts", "build_alerts"]


class AlertSink(Protocol):
    """What the engine calls; ``Alerts`` and ``NullAlerts`` provide it."""

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None: ...

    def holds(self, now: float, holds: Iterable[HeldFolder]) -> None: ...

    def backlog(self, now: float, oldest_path: Path | None,
                oldest_age_seconds: float) -> None: ...

    def start(self) -> None: ...

    def close(self, timeout: float) -> bool: ...


class NullAlerts:
    """No ``[alerts]``: nobody is told (the log, the metrics and ``status`` still are)."""

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None:
        """Nobody to tell."""

    def holds(self, now: float, holds: Iterable[HeldFolder]) -> None:
        """Nobody to tell."""

    def backlog(self, now: float, oldest_path: Path | None,
                oldest_age_seconds: float) -> None:
        """Nobody to tell."""

    def start(self) -> None:
        """Nothing to start."""

    def close(self, timeout: float) -> bool:
        """Nothing pending."""
        return True


NULL_ALERTS: AlertSink = NullAlerts()


def build_alerts(config: Config, *, metrics: MetricsHooks = NULL_METRICS,
                 policy: DeliveryPolicy | None = None) -> AlertSink:
    """The alerts ``config`` asks for (``NULL_ALERTS`` without ``[alerts]``), not started."""
    settings = config.alerts
    if settings is None:
        return NULL_ALERTS
    return Alerts(senders_for(settings), Thresholds.of(settings),
                  build_renderer(config.source), policy=policy, metrics=metrics)
