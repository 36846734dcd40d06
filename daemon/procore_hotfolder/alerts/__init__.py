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

The running daemon holds them through ``CurrentAlerts``, as it holds its configuration
through ``config.Current``: every part reports to the one holder, and a reload that changes
``[alerts]`` replaces what it forwards to (``reconfigure``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import structlog

from procore_hotfolder.alerts.batcher import Thresholds
from procore_hotfolder.alerts.delivery import Alerts, DeliveryPolicy, build_renderer
from procore_hotfolder.alerts.events import HeldFolder
from procore_hotfolder.alerts.senders import senders_for
from procore_hotfolder.config import Config
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks

__all__ = ["NULL_ALERTS", "AlertSink", "Alerts", "CurrentAlerts", "DeliveryPolicy",
           "HeldFolder", "NullAlerts", "build_alerts"]

log = structlog.get_logger(__name__)

#: Alerts a reload replaced send what they held on their own thread, for up to this long.
RETIRE_SECONDS = 60.0


class AlertSink(Protocol):
    """What the engine calls; ``Alerts`` and ``NullAlerts`` provide it."""

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None: ...

    def holds(self, now: float, holds: Iterable[HeldFolder]) -> None: ...

    def backlog(self, now: float, oldest_path: Path | None,
                oldest_age_seconds: float) -> None: ...

    def start(self) -> None: ...

    def retire(self, timeout: float) -> None: ...

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

    def retire(self, timeout: float) -> None:
        """Nothing pending."""

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


class CurrentAlerts:
    """The alerts in force in a running daemon: the one sink every part reports to (the
    uploader its failures, the publisher's tick the pauses and the backlog).

    ``start`` builds them from the configuration (``build_alerts``, with ``metrics``, which
    the composition root gives every component) and starts them. A reload calls
    ``reconfigure``: when ``[alerts]`` changed, new alerts are built and started, and every
    later report goes to them; the old ones take no more reports, send what they held at
    once (the window not waited for) on their own thread, for up to ``RETIRE_SECONDS``, and
    ``close`` joins them. The new ones start afresh: a pause or a stuck file still in force
    past its threshold is told through them (the channels may be new: an address changed,
    a webhook fixed). ``close`` closes them all. Thread-safe.
    """

    metrics: MetricsHooks = NULL_METRICS

    def __init__(self, config: Config, *, policy: DeliveryPolicy | None = None) -> None:
        self._config = config
        self._policy = policy
        self._lock = threading.Lock()
        self._sink: AlertSink = NULL_ALERTS
        self._retired: list[AlertSink] = []
        self._started = False

    # --- what the engine reports (forwarded; never waits on a delivery) ------------------

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None:
        with self._lock:
            self._sink.file_failed(now, path, reason=reason, detail=detail, attempts=attempts,
                                   status=status, request_id=request_id,
                                   failed_path=failed_path)

    def holds(self, now: float, holds: Iterable[HeldFolder]) -> None:
        with self._lock:
            self._sink.holds(now, holds)

    def backlog(self, now: float, oldest_path: Path | None,
                oldest_age_seconds: float) -> None:
        with self._lock:
            self._sink.backlog(now, oldest_path, oldest_age_seconds)

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Build the alerts of the configuration and start them (once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._sink = build_alerts(self._config, metrics=self.metrics, policy=self._policy)
            self._sink.start()

    def reconfigure(self, config: Config) -> None:
        """A reload: replace the alerts when ``[alerts]`` changed (see the class docstring)."""
        with self._lock:
            if config.alerts == self._config.alerts:
                self._config = config
                return
            self._config = config
            if not self._started:
                return
            old, self._sink = self._sink, build_alerts(config, metrics=self.metrics,
                                                       policy=self._policy)
            self._sink.start()
            old.retire(RETIRE_SECONDS)
            self._retired.append(old)
        log.info("alerts_reconfigured", alerts=config.alerts is not None)

    def retire(self, timeout: float) -> None:
        with self._lock:
            sinks = [self._sink, *self._retired]
        for sink in sinks:
            sink.retire(timeout)

    def close(self, timeout: float) -> bool:
        """Close the alerts in force and join those a reload replaced: what is pending goes
        out first, a channel that is down tried until ``timeout``. True when nothing was
        left undelivered."""
        deadline = time.monotonic() + timeout
        with self._lock:
            sinks = [self._sink, *self._retired]
            self._retired = []
        delivered = [sink.close(max(0.0, deadline - time.monotonic())) for sink in sinks]
        return all(delivered)  # every one closed, not only up to the first that failed
