"""The metrics endpoint of the engine `run` builds, scraped after real uploads through the
emulator."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from procore_hotfolder.config import Config, load_config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.metrics import Metrics
from tests.conftest import running_engine, wait_for, write_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def with_metrics(config: Config) -> Config:
    """``config`` with metrics on an ephemeral loopback port (read back from the engine)."""
    daemon = dataclasses.replace(config.daemon, metrics_listen=("127.0.0.1", 0))
    return dataclasses.replace(config, daemon=daemon)


def port_of(engine: object) -> int:
    metrics = engine.service.metrics  # type: ignore[attr-defined]
    assert isinstance(metrics, Metrics)
    return int(wait_for(lambda: metrics.port, message="metrics endpoint"))


def test_series_after_real_uploads(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.pdf").write_bytes(b"%PDF " + b"a" * 995)
    (drop / "b.pdf").write_bytes(b"%PDF " + b"b" * 19)
    refused = drop / "linked.pdf"
    refused.write_bytes(b"%PDF linked twice")
    os.link(refused, tmp_path / "second-name.pdf")
    config = load_config(write_config(tmp_path, emulator, [
        {"path": str(drop), "project_id": 7, "destination": "documents"}]), environ={})
    folder = str(config.folders[0].path)
    f = (("folder", folder),)
    with running_engine(with_metrics(config)) as (engine, _):
        port = port_of(engine)
        wait_for(lambda: (drop / ".archive" / "a.pdf").exists()
                 and (drop / ".archive" / "b.pdf").exists()
                 and (drop / ".failed" / "linked.pdf").exists(), message="all three done")
        # The counters and the journal follow the file moves: wait for all of them.
        got = wait_for(lambda: (s := scrape(port))[
            ("procore_hotfolder_uploads_total", (*f, ("outcome", "completed")))] == 2
            and s[("procore_hotfolder_uploads_total", (*f, ("outcome", "failed")))] == 1
            and s[("procore_hotfolder_queue_files", (*f, ("state", "failed")))] == 1 and s,
            message="both uploads and the failure counted")
        assert got[("procore_hotfolder_uploaded_bytes_total", f)] == 1000 + 24
        # Every API request the emulator answered (the token endpoint is no API call).
        api = sum(v for (name, _), v in got.items()
                  if name == "procore_hotfolder_api_requests_total")
        assert api == emulator.count(kind="api")
        assert got[("procore_hotfolder_api_requests_total", (("status", "201"),))] >= 4
        assert got[("procore_hotfolder_rate_limited_total", ())] == 0
        assert got[("procore_hotfolder_queue_files", (*f, ("state", "failed")))] == 1
        for state in ("waiting", "queued", "uploading"):
            assert got[("procore_hotfolder_queue_files", (*f, ("state", state)))] == 0, state
        assert got[("procore_hotfolder_oldest_waiting_seconds", f)] == 0
        assert not [k for k in got if k[0] == "procore_hotfolder_paused"]


def test_waiting_files_age_and_a_429_is_counted(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = load_config(write_config(tmp_path, emulator, [
        {"path": str(drop), "project_id": 7, "destination": "none", "settle_seconds": 3600}]),
        environ={})
    folder = str(config.folders[0].path)
    f = (("folder", folder),)
    with running_engine(with_metrics(config)) as (engine, capture):
        port = port_of(engine)
        wait_for(lambda: [e for e in capture.entries if e["event"] == "daemon_ready"],
                 message="daemon_ready")
        (drop / "slow.pdf").write_bytes(b"%PDF still being written")
        got = wait_for(lambda: (s := scrape(port))[
            ("procore_hotfolder_queue_files", (*f, ("state", "waiting")))] == 1 and s,
            message="the settling file counted as waiting")
        first = got[("procore_hotfolder_oldest_waiting_seconds", f)]
        wait_for(lambda: scrape(port)[("procore_hotfolder_oldest_waiting_seconds", f)] > first,
                 message="the oldest waiting file ages")
    # A 429 is counted (as a 429 answer and as rate limited); the file goes through after.
    settled = tmp_path / "settled"
    settled.mkdir()
    config = load_config(write_config(tmp_path, emulator, [
        {"path": str(settled), "project_id": 7, "destination": "none"}]), environ={})
    emulator.faults.fail_next(1, status=429, kind="api")
    (settled / "x.pdf").write_bytes(b"%PDF x")
    with running_engine(with_metrics(config)) as (engine, _):
        port = port_of(engine)
        # The two counters are bumped one after the other: wait for both.
        got = wait_for(lambda: (s := scrape(port)).get(
            ("procore_hotfolder_api_requests_total", (("status", "429"),))) == 1 and s,
            message="429 counted")
        assert got[("procore_hotfolder_rate_limited_total", ())] == 1
        wait_for((settled / ".archive" / "x.pdf").exists, message="uploaded after the pause")
        # The counter follows the archive move (the worker counts once the row is done).
        completed = ("procore_hotfolder_uploads_total",
                     (("folder", str(settled)), ("outcome", "completed")))
        wait_for(lambda: scrape(port).get(completed) == 1, message="completed upload counted")


def test_endpoint_stops_with_the_engine(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = load_config(write_config(tmp_path, emulator, [{"path": str(drop)}]), environ={})
    with running_engine(with_metrics(config)) as (engine, _):
        port = port_of(engine)
        assert ("procore_hotfolder_rate_limited_total", ()) in scrape(port)
    try:
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("the endpoint still answers after the engine stopped")


def test_a_refused_project_shows_as_a_paused_folder(tmp_path: Path, emulator: Emulator) -> None:
    refused, fine = tmp_path / "refused", tmp_path / "fine"
    refused.mkdir()
    fine.mkdir()
    emulator.faults.forbidden_projects.add(66)
    (refused / "plan.pdf").write_bytes(b"%PDF plan")
    config = load_config(write_config(tmp_path, emulator, [
        {"path": str(refused), "project_id": 66, "destination": "none"},
        {"path": str(fine), "project_id": 67, "destination": "none"}]), environ={})
    key = ("procore_hotfolder_paused", (("folder", str(refused)), ("reason", "permission")))
    with running_engine(with_metrics(config)) as (engine, _):
        port = port_of(engine)
        got = wait_for(lambda: (s := scrape(port)).get(key) == 1 and s,
                       message="the folder's pause in the metrics")
        assert got[("procore_hotfolder_api_requests_total", (("status", "403"),))] >= 1
        assert not [k for k in got if k[0] == "procore_hotfolder_paused" and k != key]
        # The file waits (it is not failed): it shows as queued and ageing.
        r = (("folder", str(refused)),)
        assert got[("procore_hotfolder_queue_files", (*r, ("state", "failed")))] == 0
        got = wait_for(lambda: (s := scrape(port))[
            ("procore_hotfolder_queue_files", (*r, ("state", "queued")))] == 1 and s,
            message="the refused file counted as queued")
        assert got[("procore_hotfolder_oldest_waiting_seconds", r)] > 0
        assert got[("procore_hotfolder_oldest_waiting_seconds", (("folder", str(fine)),))] == 0
        emulator.faults.forbidden_projects.discard(66)  # the admin grants the project
        engine.service.request_reload()  # what `systemctl reload` does: re-check now
        wait_for((refused / ".archive" / "plan.pdf").exists, timeout=60,
                 message="uploaded once the project is granted")
        wait_for(lambda: key not in scrape(port), message="the pause gone from the metrics")
