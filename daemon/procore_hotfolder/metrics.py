"""Prometheus metrics: counters bumped where events happen, gauges sampled at scrape time.

With ``daemon.metrics_listen`` set, ``Metrics`` serves ``/metrics`` (prometheus-client's text
format) on that loopback address from its own ``CollectorRegistry`` (no global state: every
engine, and every test, has its own). Without it, every component holds ``NULL_METRICS``,
whose methods do nothing.

Counters (bumped through named methods, one call where the event happens):

- ``procore_hotfolder_uploads_total{folder, outcome}``: outcome ``completed`` or ``failed``;
- ``procore_hotfolder_uploaded_bytes_total{folder}``: bytes of completed uploads;
- ``procore_hotfolder_api_requests_total{status}``: Procore API answers by HTTP status
  (``none`` when no answer came: connection refused, dropped, timed out);
- ``procore_hotfolder_rate_limited_total``: 429 answers;
- ``procore_hotfolder_alerts_total{outcome}``: alert messages, one per message and channel:
  ``sent`` (the channel took it), ``failed`` (given up: retries ran out, retrying could not
  help, or the daemon stopped first), ``dropped`` (never queued: a failure that found the
  alerts' queue full, or a message pushed out of a channel's full queue).

Gauges (computed from a ``MetricsSample`` the service gives at each scrape):

- ``procore_hotfolder_queue_files{folder, state}``: state ``waiting`` (settling), ``queued``
  (including those waiting for a retry), ``uploading``, ``failed``;
- ``procore_hotfolder_oldest_waiting_seconds{folder}``: age of the oldest file seen and not
  yet uploaded or failed (0 when there is none);
- ``procore_hotfolder_paused{folder, reason}``: 1 while work is paused for that reason
  (``folder`` is empty for a pause of every folder, e.g. a rate limit or an outage).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

OUTCOMES = ("completed", "failed")
ALERT_OUTCOMES = ("sent", "failed", "dropped")
QUEUE_STATES = ("waiting", "queued", "uploading", "failed")
PROBE_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class MetricsSample:
    """What the gauges show at one instant, per folder (keyed by the folder's label)."""

    queue: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    oldest_waiting_seconds: Mapping[str, float] = field(default_factory=dict)
    #: ``(folder, reason)`` of every pause in force; folder "" for a pause of all folders.
    paused: tuple[tuple[str, str], ...] = ()


class MetricsHooks(Protocol):
    """What the daemon's components call; ``Metrics`` and ``NullMetrics`` provide it."""

    def upload_finished(self, folder: str, outcome: str, size: int) -> None: ...

    def api_request(self, status: int | None) -> None: ...

    def rate_limited(self) -> None: ...

    def alert(self, outcome: str) -> None: ...

    def serve(self, sample: Callable[[], MetricsSample]) -> None: ...

    def close(self) -> None: ...


class NullMetrics:
    """Metrics off: every hook does nothing."""

    def upload_finished(self, folder: str, outcome: str, size: int) -> None:
        """Nothing to count."""

    def api_request(self, status: int | None) -> None:
        """Nothing to count."""

    def rate_limited(self) -> None:
        """Nothing to count."""

    def alert(self, outcome: str) -> None:
        """Nothing to count."""

    def serve(self, sample: Callable[[], MetricsSample]) -> None:
        """Nothing to serve."""

    def close(self) -> None:
        """Nothing to stop."""


NULL_METRICS: MetricsHooks = NullMetrics()


class _Gauges(Collector):
    """Produces the gauges from a fresh ``MetricsSample`` at every scrape."""

    def __init__(self, folders: tuple[str, ...]) -> None:
        self._folders = folders
        self._sample: Callable[[], MetricsSample] = MetricsSample

    def use(self, sample: Callable[[], MetricsSample]) -> None:
        self._sample = sample

    def collect(self) -> Iterator[Metric]:
        try:
            sample = self._sample()
        except Exception:  # a failed sample must not break the scrape
            log.warning("metrics_sample_failed", exc_info=True)
            sample = MetricsSample()
        queue = GaugeMetricFamily("procore_hotfolder_queue_files",
                                  "Files per folder and state", labels=["folder", "state"])
        oldest = GaugeMetricFamily(
            "procore_hotfolder_oldest_waiting_seconds",
            "Age of the oldest file seen and not yet uploaded or failed", labels=["folder"])
        folders = list(self._folders) + sorted(set(sample.queue) - set(self._folders))
        for folder in folders:
            counts = sample.queue.get(folder, {})
            for state in QUEUE_STATES:
                queue.add_metric([folder, state], counts.get(state, 0))
            oldest.add_metric([folder], sample.oldest_waiting_seconds.get(folder, 0.0))
        paused = GaugeMetricFamily("procore_hotfolder_paused",
                                   "1 while work is paused for this reason (folder empty: all)",
                                   labels=["folder", "reason"])
        for folder, reason in sorted(set(sample.paused)):
            paused.add_metric([folder, reason], 1)
        yield queue
        yield oldest
        yield paused


class Metrics:
    """The metrics of one daemon generation, served on ``listen`` while ``serve`` runs."""

    def __init__(self, listen: tuple[str, int], folders: tuple[str, ...]) -> None:
        self.listen = listen
        self.registry = CollectorRegistry(auto_describe=True)
        self._uploads = Counter("procore_hotfolder_uploads", "Uploads finished, by outcome",
                                ["folder", "outcome"], registry=self.registry)
        self._bytes = Counter("procore_hotfolder_uploaded_bytes",
                              "Bytes of completed uploads", ["folder"], registry=self.registry)
        self._requests = Counter("procore_hotfolder_api_requests",
                                 "Procore API requests by HTTP status (none: no answer)",
                                 ["status"], registry=self.registry)
        self._rate_limited = Counter("procore_hotfolder_rate_limited",
                                     "Procore API answers 429 (rate limited)",
                                     registry=self.registry)
        self._alerts = Counter("procore_hotfolder_alerts",
                               "Alert messages by outcome (sent, failed, dropped)",
                               ["outcome"], registry=self.registry)
        for outcome in ALERT_OUTCOMES:
            self._alerts.labels(outcome=outcome)
        for folder in folders:  # every series exists from the start, so rate() works at once
            self._bytes.labels(folder=folder)
            for outcome in OUTCOMES:
                self._uploads.labels(folder=folder, outcome=outcome)
        self._gauges = _Gauges(folders)
        self.registry.register(self._gauges)
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- hooks --------------------------------------------------------------------------

    def upload_finished(self, folder: str, outcome: str, size: int) -> None:
        """One file finished: ``completed`` (``size`` bytes uploaded) or ``failed``."""
        self._uploads.labels(folder=folder, outcome=outcome).inc()
        if outcome == "completed":
            self._bytes.labels(folder=folder).inc(size)

    def api_request(self, status: int | None) -> None:
        """One Procore API request answered with ``status`` (None: no answer)."""
        self._requests.labels(status=str(status) if status else "none").inc()

    def rate_limited(self) -> None:
        """Procore answered 429."""
        self._rate_limited.inc()

    def alert(self, outcome: str) -> None:
        """One alert message ``sent``, ``failed`` or ``dropped`` (see the module docstring)."""
        self._alerts.labels(outcome=outcome).inc()

    # --- the endpoint -------------------------------------------------------------------

    def serve(self, sample: Callable[[], MetricsSample]) -> None:
        """Start serving ``/metrics`` in a thread, the gauges taken from ``sample()`` at each
        scrape. A port that cannot be bound is logged (uploads matter more than metrics)."""
        self._gauges.use(sample)
        host, port = self.listen
        with self._lock:
            if self._server is not None:
                return
            try:
                server, thread = start_http_server(port, addr=host, registry=self.registry)
            except OSError as exc:
                log.error("metrics_unavailable", listen=f"{host}:{port}",  # noqa: TRY400 - no traceback wanted
                          error=str(exc))
                return
            thread.name = "metrics"
            self._server, self._thread = server, thread
        log.info("metrics_listening", listen=f"{host}:{server.server_port}")
        self._probe(host, server.server_port)

    @staticmethod
    def _probe(host: str, port: int) -> None:
        """Connect once to our own endpoint: under systemd's ``IPAddressDeny=localhost`` the
        socket is bound but no scrape can reach it, which nothing else would reveal."""
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS):
                pass
        except OSError as exc:
            log.error("metrics_unreachable", listen=f"{host}:{port}", error=str(exc),  # noqa: TRY400 - no traceback wanted
                      hint="loopback traffic is blocked; under systemd install "
                           "systemd/metrics.conf.example as a drop-in (IPAddressAllow=)")

    @property
    def port(self) -> int | None:
        """The port served (useful when ``listen`` asked for port 0), or None."""
        server = self._server
        return None if server is None else int(server.server_port)

    def close(self) -> None:
        """Stop the endpoint and join its thread (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()


class _WithMetrics(Protocol):
    metrics: MetricsHooks


def attach_metrics(listen: tuple[str, int] | None, folders: tuple[str, ...],
                   *components: _WithMetrics) -> MetricsHooks:
    """Give every component the same ``Metrics`` (``NULL_METRICS`` when ``listen`` is None)
    and return it. The service among them starts and stops the endpoint."""
    metrics: MetricsHooks = NULL_METRICS if listen is None else Metrics(listen, folders)
    for component in components:
        component.metrics = metrics
    return metrics
