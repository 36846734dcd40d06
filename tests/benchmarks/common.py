"""Shared plumbing for the benchmarks: the emulator in its own process, measured daemon runs.

The emulator runs as `procore-hotfolder emulator` in a separate process so that its CPU and
memory are not counted as the daemon's. Every daemon run is a real `procore-hotfolder` process;
its peak RSS is the kernel's high-water mark ``VmHWM`` read from /proc while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from tests.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    COMPANY_ID,
    cli_env,
    stop_process,
    wait_for,
    write_config,
)

MIB = 1024 * 1024
PROJECT_ID = 1
CLI = [sys.executable, "-m", "procore_hotfolder"]


def scratch(name: str) -> Path:
    """A fresh scratch folder under ``$BENCH_DIR`` (default: /dev/shm when it has room)."""
    base = Path(os.environ.get("BENCH_DIR") or _default_base())
    path = base / f"procore-hotfolder-bench-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _default_base() -> str:
    # In memory, disk writeback does not add noise; needs room for ~3 GiB (source, copy, store).
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * 1024 * MIB:
        return str(shm)
    return "/tmp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RemoteEmulator:
    """An emulator process: its URL, its data folder and the little API the benchmarks use."""

    url: str
    data_dir: Path

    def token(self) -> str:
        answer = requests.post(self.url + "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}, timeout=10)
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def create_upload(self, token: str, name: str, size: int,
                      session: requests.Session | None = None) -> dict[str, Any]:
        """Create Upload (v1.1, single POST): the storage URL and form fields, in order."""
        answer = (session or requests).post(
            f"{self.url}/rest/v1.1/projects/{PROJECT_ID}/uploads",
            json={"response_filename": name, "size": size},
            headers={"Authorization": f"Bearer {token}",
                     "Procore-Company-Id": str(COMPANY_ID)},
            timeout=10)
        answer.raise_for_status()
        return dict(answer.json())

    def set_faults(self, **settings: object) -> None:
        requests.post(self.url + "/_emulator/faults", json=settings,
                      timeout=10).raise_for_status()

    def uploads(self) -> list[dict[str, Any]]:
        state = requests.get(self.url + "/_emulator/state", timeout=30).json()
        return list(state["uploads"])

    def forget_stored_bytes(self) -> None:
        """Delete stored objects and parts (keeps scratch use bounded across 1 GiB runs)."""
        for item in self.data_dir.rglob("*"):
            if item.is_file() and item.parent.name in ("objects", "parts", "tmp"):
                item.unlink()


@contextmanager
def emulator_process(work: Path) -> Iterator[RemoteEmulator]:
    """`procore-hotfolder emulator --port P` in its own process, its data under ``work``."""
    port = free_port()
    tmp = work / "emulator-tmp"
    tmp.mkdir()
    env = {**cli_env(), "TMPDIR": str(tmp)}  # the emulator keeps its data in a temp folder
    with (work / "emulator.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "emulator", "--port", str(port), "--client-id", CLIENT_ID,
             "--client-secret", CLIENT_SECRET],
            stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/_emulator/state", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, message="emulator")
        (data_dir,) = tmp.glob("procore-emulator-*")
        emu = RemoteEmulator(url, data_dir)
        emu.set_faults(rate_limit=None)  # 5,000 files would exceed the default 3,600/hour
        yield emu
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s; waits for the process either way."""
    stop_process(proc)


@contextmanager
def daemon_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`procore-hotfolder run` with its JSON log in ``log``, once it says ``daemon_ready``."""
    with log.open("wb") as out:
        proc = subprocess.Popen([*CLI, "run", "-c", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env=cli_env(),
                                stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: b"daemon_ready" in log.read_bytes(), message="daemon ready")
        yield proc
    finally:
        stop(proc)


@dataclass
class Measured:
    """A finished child process: wall seconds, peak RSS, CPU seconds and exit code."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    cpu_seconds: float


def measure(args: list[str], *, env: dict[str, str] | None = None,
            stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.DEVNULL) -> Measured:
    """Run ``args`` to completion; wall time and the process's own peak RSS (its VmHWM,
    sampled every 20 ms: a high-water mark, so only the last instants before exit escape)."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL)
    sampled_kib = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        sampled_kib = max(sampled_kib, vm_hwm_kib(proc.pid))
        time.sleep(0.02)  # sampling interval of the VmHWM cross-check
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Not usage.ru_maxrss: Linux seeds a forked child's maxrss with the parent's RSS at fork
    # time (this harness), so it overstates small children. VmHWM is reset by exec().
    return Measured(seconds, sampled_kib / 1024, proc.returncode,
                    usage.ru_utime + usage.ru_stime)


def vm_hwm_kib(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, KiB), 0 when it is gone."""
    try:
        with Path(f"/proc/{pid}/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class DaemonRun:
    """One `procore-hotfolder once` run and what its log says."""

    measured: Measured
    events: list[dict[str, Any]]

    def span(self, first: str, last: str) -> float | None:
        """Seconds from the first ``first`` event to the last ``last`` event."""
        starts = [event_time(e) for e in self.events if e.get("event") == first]
        ends = [event_time(e) for e in self.events if e.get("event") == last]
        return max(ends) - min(starts) if starts and ends else None

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e.get("event") == event)


def run_once(work: Path, emu: RemoteEmulator, drop: Path, **daemon: object) -> DaemonRun:
    """`procore-hotfolder once` over ``drop`` with a fresh state folder and JSON logs."""
    shutil.rmtree(work / "state", ignore_errors=True)
    settings: dict[str, object] = {"settle_seconds": 0, "log_level": "info"}
    settings.update(daemon)
    config = write_config(work, emu, [{"path": str(drop), "project_id": PROJECT_ID}],  # type: ignore[arg-type]
                          **settings)
    log = work / "daemon.log"
    with log.open("wb") as out:
        measured = measure([*CLI, "once", "-c", str(config)], env=cli_env(), stdout=out,
                           stderr=subprocess.STDOUT)
    events = [json.loads(line) for line in log.read_text().splitlines()
              if line.startswith("{")]
    if measured.returncode != 0:
        raise RuntimeError(f"`once` exited {measured.returncode}: {log.read_text()[-3000:]}")
    return DaemonRun(measured, events)


def event_time(event: dict[str, Any]) -> float:
    """A log event's ISO-8601 UTC ``timestamp`` as Unix seconds."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
