"""Per-project refusals, 408 timeouts, the two rate-limit windows, API latency."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from procore_hotfolder.emulator import Emulator

from .support import COMPANY, PROJECT, Client, wait_for

ROOT = f"/rest/v1.0/folders?project_id={PROJECT}"
IMAGES = f"/rest/v1.0/images?project_id={PROJECT}"
UPLOADS = f"/rest/v1.1/projects/{PROJECT}/uploads"


def statuses(client: Client) -> tuple[int, int, int]:
    """(Documents root, Photos list, Create Upload) statuses for PROJECT."""
    return (
        client.call("GET", ROOT).status_code,
        client.call("GET", IMAGES).status_code,
        client.call("POST", UPLOADS, json={"response_filename": "a.pdf"}).status_code,
    )


def test_refusals_switch_on_and_off_while_serving(emu: Emulator, client: Client) -> None:
    assert statuses(client) == (200, 200, 201)
    emu.refuse_project(PROJECT)  # service account not granted the project
    refused = client.call("GET", ROOT)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert statuses(client) == (403, 403, 403)
    listed = client.call("GET", f"/rest/v1.0/projects?company_id={COMPANY}").json()
    assert PROJECT not in [p["id"] for p in listed]  # not granted: not listed either
    emu.allow_project(PROJECT)
    assert statuses(client) == (200, 200, 201)
    assert PROJECT in [p["id"] for p in
                       client.call("GET", f"/rest/v1.0/projects?company_id={COMPANY}").json()]

    emu.refuse_project(PROJECT, "tool_disabled", tool="documents")
    off = client.call("GET", ROOT)
    assert off.status_code == 403
    assert "Documents" in off.json()["errors"]["base"][0]
    assert statuses(client) == (403, 200, 201)
    emu.refuse_project(PROJECT, "tool_disabled", tool="photos")
    assert statuses(client) == (403, 403, 201)
    emu.allow_project(PROJECT, tool="documents")
    assert statuses(client) == (200, 403, 201)
    emu.allow_project(PROJECT)
    assert statuses(client) == (200, 200, 201)

    emu.disconnect_app()
    gone = client.call("GET", ROOT)
    assert gone.status_code == 403
    assert gone.json() == {"errors": "App is not connected to this company"}
    assert statuses(client) == (403, 403, 403)
    assert client.call("GET", f"/rest/v1.0/projects?company_id={COMPANY}").status_code == 403
    company = client.call("POST", f"/rest/v1.1/companies/{COMPANY}/uploads",
                          json={"response_filename": "a.pdf"})
    assert company.status_code == 403
    emu.connect_app()
    assert statuses(client) == (200, 200, 201)
    with pytest.raises(ValueError, match="tool"):
        emu.refuse_project(PROJECT, "tool_disabled", tool="budget")


def test_refusals_through_the_admin_api(emu: Emulator, client: Client) -> None:
    faults = emu.url + "/_emulator/faults"
    set_ = requests.post(faults, json={"refuse_project": {"project_id": PROJECT}})
    assert set_.json()["forbidden_projects"] == [PROJECT]
    assert client.call("GET", ROOT).status_code == 403
    requests.post(faults, json={"allow_project": PROJECT})
    assert client.call("GET", ROOT).status_code == 200
    requests.post(faults, json={"refuse_project": {"project_id": PROJECT,
                                                   "reason": "tool_disabled", "tool": "photos"}})
    assert emu.faults.disabled_tools == {PROJECT: {"photos"}}
    assert client.call("GET", IMAGES).status_code == 403
    requests.post(faults, json={"disabled_tools": {}, "app_disconnected": True})
    assert client.call("GET", IMAGES).status_code == 403
    assert requests.get(faults).json()["app_disconnected"] is True
    requests.post(faults, json={"app_disconnected": False})
    assert client.call("GET", IMAGES).status_code == 200
    bad = requests.post(faults, json={"refuse_project": {"project_id": 1, "reason": "moody"}})
    assert bad.status_code == 400


def test_request_timeouts_by_rate_and_scripted(emu: Emulator, client: Client) -> None:
    emu.faults.seed(3)
    emu.faults.fail_next(2, status=408, path_contains="/folders")
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200
    timed_out = [client.call("GET", ROOT) for _ in range(3)]
    assert [r.status_code for r in timed_out] == [408, 408, 200]
    assert all(r.headers.get("Connection") == "close" for r in timed_out[:2])
    emu.faults.timeout_rate = 1
    shapes = set()
    for _ in range(12):
        response = client.call("GET", "/rest/v1.0/companies")
        assert response.status_code == 408
        shapes.add(response.headers.get("Content-Type", "none").split(";")[0])
    assert shapes >= {"application/json", "text/plain"}  # more than one body shape
    emu.faults.timeout_rate = 0
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200
    assert emu.count(status=408) == 14


def test_hourly_window_headers_and_429(emu: Emulator, client: Client) -> None:
    emu.faults.rate_limit = (60, 60)
    upload = client.create_upload(size=3)
    first = client.call("GET", "/rest/v1.0/companies")
    assert first.headers["X-Rate-Limit-Limit"] == "60"
    assert first.headers["X-Rate-Limit-Remaining"] == "58"
    reset = int(first.headers["X-Rate-Limit-Reset"])
    assert time.time() < reset <= time.time() + 61
    for _ in range(58):
        assert client.call("GET", "/rest/v1.0/companies").status_code == 200
    limited = client.call("GET", "/rest/v1.0/companies")
    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    assert limited.headers["X-Rate-Limit-Limit"] == "60"
    assert limited.headers["X-Rate-Limit-Reset"] == str(reset)
    assert "surpassed the max number of requests" in limited.text
    # Storage and token requests are not API calls: they still go through.
    assert client.store(upload, b"abc").status_code == 204
    assert client.new_token()
    assert client.call("GET", "/rest/v1.0/companies").status_code == 429
    assert emu.rate_limited == {"hourly": 2}
    assert emu.count(status=429) == 2


def test_spike_window_is_reported_when_closer_to_exhaustion(emu: Emulator,
                                                            client: Client) -> None:
    emu.faults.rate_limit = (60, 60)
    emu.faults.spike_limit = (5, 2)
    seen = [client.call("GET", "/rest/v1.0/companies") for _ in range(5)]
    # 59/60 left of the hour but 4/5 of the spike window: the spike window is closer.
    assert [r.headers["X-Rate-Limit-Limit"] for r in seen] == ["5"] * 5
    assert [r.headers["X-Rate-Limit-Remaining"] for r in seen] == ["4", "3", "2", "1", "0"]
    spiked = client.call("GET", "/rest/v1.0/companies")
    assert spiked.status_code == 429
    assert spiked.headers["X-Rate-Limit-Limit"] == "5"
    assert 1 <= int(spiked.headers["Retry-After"]) <= 2
    assert int(spiked.headers["X-Rate-Limit-Reset"]) <= time.time() + 3
    assert emu.rate_limited == {"spike": 1}
    # Once the spike window turns over, calls go through again, counted in the hour too.
    wait_for(lambda: client.call("GET", "/rest/v1.0/companies").status_code == 200, 5)
    emu.faults.spike_limit = (1000, 10)
    hourly = client.call("GET", "/rest/v1.0/companies")
    assert hourly.headers["X-Rate-Limit-Limit"] == "60"  # now the hour is closer
    used = 60 - int(hourly.headers["X-Rate-Limit-Remaining"])
    assert used == emu.count(status=200, kind="api")  # refused calls count in no window
    emu.faults.rate_limit = None
    emu.faults.spike_limit = None
    assert client.call("GET", "/rest/v1.0/companies").status_code == 200


def test_rate_windows_through_the_admin_api(emu: Emulator, client: Client) -> None:
    faults = emu.url + "/_emulator/faults"
    answer = requests.post(faults, json={"rate_limit": [60, 60], "spike_limit": [5, 2]})
    assert answer.json()["spike_limit"] == [5, 2.0]
    assert emu.faults.spike_limit == (5, 2.0)
    assert client.call("GET", "/rest/v1.0/companies").headers["X-Rate-Limit-Limit"] == "5"
    assert requests.post(faults, json={"spike_limit": [5, 0]}).status_code == 400
    assert answer.json()["spike_limit_kind"] == "sliding"
    kinds = requests.post(faults, json={"rate_limit_kind": "clock",
                                        "spike_limit_kind": "first_call"}).json()
    assert (kinds["rate_limit_kind"], kinds["spike_limit_kind"]) == ("clock", "first_call")
    assert emu.faults.spike_limit_kind == "first_call"
    assert requests.post(faults, json={"spike_limit_kind": "tumbling"}).status_code == 400
    requests.post(faults, json={"spike_limit": None})
    assert client.call("GET", "/rest/v1.0/companies").headers["X-Rate-Limit-Limit"] == "60"


def test_api_latency_delays_api_answers_only() -> None:
    with Emulator(api_latency_seconds=0.2) as emu:
        client = Client(emu)
        started = time.monotonic()
        client.call("GET", "/rest/v1.0/companies")
        assert time.monotonic() - started >= 0.2
        started = time.monotonic()
        client.new_token()
        assert time.monotonic() - started < 0.2
    with pytest.raises(ValueError, match="latency"):
        Emulator(api_latency_seconds=-1)


def test_cli_takes_api_latency() -> None:
    code = (
        "import sys\n"
        "from procore_hotfolder.cli import main\n"
        "sys.exit(main(['emulator', '--port', '0', '--api-latency-ms', '-5']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--api-latency-ms" in done.stderr
