"""The metrics object on its own: counters, scrape-time gauges, the endpoint's life, and the
``daemon.metrics_listen`` setting."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from procore_hotfolder.config import parse_config
from procore_hotfolder.errors import ConfigError
from procore_hotfolder.metrics import NULL_METRICS, Metrics, MetricsSample, attach_metrics


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint as {(name, sorted labels): value}."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def test_counters_and_gauges_as_scraped() -> None:
    metrics = Metrics(("127.0.0.1", 0), ("/drop/a", "/drop/b"))
    metrics.upload_finished("/drop/a", "completed", 1000)
    metrics.upload_finished("/drop/a", "completed", 24)
    metrics.upload_finished("/drop/a", "failed", 7)
    metrics.api_request(201)
    metrics.api_request(201)
    metrics.api_request(429)
    metrics.api_request(None)
    metrics.rate_limited()
    sample = MetricsSample(queue={"/drop/a": {"waiting": 2, "queued": 3}},
                           oldest_waiting_seconds={"/drop/a": 42.5},
                           paused=(("", "rate_limited"), ("/drop/b", "folder_unavailable")))
    metrics.serve(lambda: sample)
    try:
        assert metrics.port
        got = scrape(metrics.port)
    finally:
        metrics.close()
    a, b = (("folder", "/drop/a"),), (("folder", "/drop/b"),)
    assert got[("procore_hotfolder_uploads_total", (*a, ("outcome", "completed")))] == 2
    assert got[("procore_hotfolder_uploads_total", (*a, ("outcome", "failed")))] == 1
    # Series of a folder with nothing yet exist at 0, so rate() and alerts work at once.
    assert got[("procore_hotfolder_uploads_total", (*b, ("outcome", "completed")))] == 0
    assert got[("procore_hotfolder_uploaded_bytes_total", a)] == 1024  # failed ones not counted
    assert got[("procore_hotfolder_api_requests_total", (("status", "201"),))] == 2
    assert got[("procore_hotfolder_api_requests_total", (("status", "429"),))] == 1
    assert got[("procore_hotfolder_api_requests_total", (("status", "none"),))] == 1
    assert got[("procore_hotfolder_rate_limited_total", ())] == 1
    assert got[("procore_hotfolder_queue_files", (*a, ("state", "waiting")))] == 2
    assert got[("procore_hotfolder_queue_files", (*a, ("state", "queued")))] == 3
    assert got[("procore_hotfolder_queue_files", (*b, ("state", "uploading")))] == 0
    assert got[("procore_hotfolder_oldest_waiting_seconds", a)] == 42.5
    assert got[("procore_hotfolder_oldest_waiting_seconds", b)] == 0
    assert got[("procore_hotfolder_paused", (("folder", ""), ("reason", "rate_limited")))] == 1
    assert got[("procore_hotfolder_paused",
                (("folder", "/drop/b"), ("reason", "folder_unavailable")))] == 1


def test_gauges_are_sampled_at_each_scrape_and_a_failing_sample_keeps_the_endpoint_up() -> None:
    queued = [1]

    def sample() -> MetricsSample:
        if queued[0] < 0:
            raise RuntimeError("journal closed")
        return MetricsSample(queue={"/d": {"queued": queued[0]}})

    metrics = Metrics(("127.0.0.1", 0), ("/d",))
    metrics.serve(sample)
    try:
        assert metrics.port
        key = ("procore_hotfolder_queue_files", (("folder", "/d"), ("state", "queued")))
        assert scrape(metrics.port)[key] == 1
        queued[0] = 5
        assert scrape(metrics.port)[key] == 5
        queued[0] = -1
        assert scrape(metrics.port)[key] == 0
    finally:
        metrics.close()


def test_close_stops_and_joins_the_server_thread() -> None:
    metrics = Metrics(("127.0.0.1", 0), ())
    metrics.serve(MetricsSample)
    port = metrics.port
    assert port
    assert any(t.name == "metrics" for t in threading.enumerate())
    metrics.close()
    metrics.close()  # idempotent
    assert metrics.port is None
    assert not any(t.name == "metrics" for t in threading.enumerate())
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_two_metrics_objects_do_not_share_state() -> None:
    first, second = Metrics(("127.0.0.1", 0), ()), Metrics(("127.0.0.1", 0), ())
    first.rate_limited()
    first.serve(MetricsSample)
    second.serve(MetricsSample)
    try:
        assert first.port and second.port
        assert scrape(first.port)[("procore_hotfolder_rate_limited_total", ())] == 1
        assert scrape(second.port)[("procore_hotfolder_rate_limited_total", ())] == 0
    finally:
        first.close()
        second.close()


def test_a_busy_port_is_logged_not_fatal() -> None:
    holder = Metrics(("127.0.0.1", 0), ())
    holder.serve(MetricsSample)
    try:
        assert holder.port
        late = Metrics(("127.0.0.1", holder.port), ())
        late.serve(MetricsSample)
        assert late.port is None
        late.close()
    finally:
        holder.close()


class _Component:
    def __init__(self) -> None:
        self.metrics = NULL_METRICS


def test_attach_gives_every_component_the_same_object_or_the_null_one() -> None:
    a, b = _Component(), _Component()
    metrics = attach_metrics(("127.0.0.1", 9464), ("/d",), a, b)
    assert isinstance(metrics, Metrics)
    assert a.metrics is metrics and b.metrics is metrics
    assert attach_metrics(None, ("/d",), a) is NULL_METRICS
    assert a.metrics is NULL_METRICS


def _config(tmp_path: Path, listen: object) -> dict[str, object]:
    return {"procore": {"company_id": 1, "client_id": "x"},
            "daemon": {"state_dir": str(tmp_path / "state"), "metrics_listen": listen},
            "folders": [{"path": str(tmp_path / "drop"), "destination": "none"}]}


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("localhost:9100", ("localhost", 9100)),
    ("[::1]:9464", ("::1", 9464)),
])
def test_metrics_listen_accepts_loopback(tmp_path: Path, listen: str,
                                         expected: tuple[str, int]) -> None:
    config = parse_config(_config(tmp_path, listen), base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "s"})
    assert config.daemon.metrics_listen == expected


@pytest.mark.parametrize(("listen", "says"), [
    ("0.0.0.0:9464", "loopback"),
    ("192.168.1.10:9464", "loopback"),
    ("metrics.example.com:9464", "loopback"),
    ("9464", "host:port"),
    ("127.0.0.1:http", "host:port"),
    ("127.0.0.1:70000", "host:port"),
    (9464, "a string"),
])
def test_metrics_listen_refuses_the_network_and_nonsense(tmp_path: Path, listen: object,
                                                         says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(tmp_path, listen), base_dir=tmp_path,
                     environ={"PROCORE_CLIENT_SECRET": "s"})
    (problem,) = [p for p in caught.value.problems if p.startswith("daemon.metrics_listen")]
    assert says in problem


def test_metrics_are_off_without_the_key(tmp_path: Path) -> None:
    raw = _config(tmp_path, None)
    del raw["daemon"]["metrics_listen"]  # type: ignore[attr-defined]
    config = parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "s"})
    assert config.daemon.metrics_listen is None


def test_an_unreachable_endpoint_is_logged_with_the_fix() -> None:
    # What IPAddressDeny=localhost does to our own connection: refused. A port nobody
    # listens on gives the same answer.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with capture_logs() as logs:
        Metrics._probe("127.0.0.1", free)
    (event,) = [e for e in logs if e["event"] == "metrics_unreachable"]
    assert event["log_level"] == "error" and "IPAddressAllow" in event["hint"]
    with capture_logs() as logs:
        metrics = Metrics(("127.0.0.1", 0), ())
        metrics.serve(MetricsSample)
        metrics.close()
    assert [e["event"] for e in logs] == ["metrics_listening"]


def test_alerts_are_counted_by_outcome_from_zero() -> None:
    metrics = Metrics(("127.0.0.1", 0), ())
    metrics.alert("sent")
    metrics.alert("sent")
    metrics.alert("dropped")
    metrics.serve(MetricsSample)
    try:
        assert metrics.port
        got = scrape(metrics.port)
    finally:
        metrics.close()
    count = {outcome: got[("procore_hotfolder_alerts_total", (("outcome", outcome),))]
             for outcome in ("sent", "failed", "dropped")}
    assert count == {"sent": 2, "failed": 0, "dropped": 1}
