"""A real Samba server for tests: ``smbd`` on a free 127.0.0.1 port, sharing one folder.

Everything smbd keeps (passdb, locks, state, cache, pid file, logs) lives in a directory the
test gives; the login is root in a passdb of that directory, with a random password: nothing
is added to the machine. smbd runs as the first process of a PID namespace of its own
(``unshare --pid``), so that stopping it ends and reaps every helper it forked (notifyd,
cleanupd, one child per client) even where PID 1 reaps no orphans.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MISSING = "smbd not installed: apt-get install samba; .ci/run installs it"
# smb.conf's keys for where smbd keeps things -> the subdirectory of the test's directory
_PLACES = {"private dir": "private", "lock directory": "lock", "state directory": "state",
           "cache directory": "cache", "pid directory": "pid", "ncalrpc dir": "ncalrpc"}
_DIRECTORIES = (*_PLACES.values(), "log")


def unavailable() -> str | None:
    """Why a real Samba server cannot run here (a skip reason), or None."""
    if shutil.which("smbd") is None or shutil.which("smbpasswd") is None:
        return MISSING
    if os.geteuid() != 0:
        return "smbd needs root (it serves each client as its user): run the tests as root"
    if shutil.which("unshare") is None:
        return "unshare not installed: apt-get install util-linux"
    return None


@dataclass(frozen=True)
class SambaShare:
    """A running share: where to connect, who to log in as, what it shares."""

    host: str
    port: int
    name: str
    path: Path
    username: str
    password: str
    log: Path

    @property
    def unc(self) -> str:
        return rf"\\{self.host}\{self.name}"


@contextmanager
def samba_server(workdir: Path, shared: Path, *, name: str = "drop",
                 start_timeout: float = 30.0) -> Iterator[SambaShare]:
    """smbd sharing ``shared`` as ``name`` on a free loopback port, its own directories under
    ``workdir``; yields once the port answers; stopped and reaped (all its processes) on exit.
    Raises ``RuntimeError`` (with smbd's log) when it does not come up."""
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in _DIRECTORIES:
        (workdir / sub).mkdir(exist_ok=True)
    port = _free_port()
    config = workdir / "smb.conf"
    config.write_text(_config_text(workdir, shared, name, port))
    password = secrets.token_urlsafe(16)
    subprocess.run(["smbpasswd", "-c", str(config), "-a", "-s", "root"],
                   input=f"{password}\n{password}\n", text=True, capture_output=True,
                   check=True, timeout=30)
    log = workdir / "log" / "smbd.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child=SIGTERM",
             "smbd", "--foreground", "--no-process-group", "--debug-stdout",
             "--debuglevel=1", "-s", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _wait_until_listening(process, port, log, start_timeout)
        yield SambaShare(host="127.0.0.1", port=port, name=name, path=shared,
                         username="root", password=password, log=log)
    finally:
        _stop(process)


def _config_text(workdir: Path, shared: Path, name: str, port: int) -> str:
    lines = [
        "[global]",
        "server role = standalone server",
        f"smb ports = {port}",
        "interfaces = 127.0.0.1",
        "bind interfaces only = yes",
        "disable netbios = yes",
        *(f"{key} = {workdir / sub}" for key, sub in _PLACES.items()),
        f"log file = {workdir / 'log' / 'log.%m'}",
        f"passdb backend = tdbsam:{workdir / 'private' / 'passdb.tdb'}",
        "usershare path =",
        "load printers = no",
        "printing = bsd",
        "printcap name = /dev/null",
        "disable spoolss = yes",
        "map to guest = never",
        "server min protocol = SMB2_02",
        "",
        f"[{name}]",
        f"path = {shared}",
        "read only = no",
        "valid users = root",
    ]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path,
                          timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"smbd exited with {process.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"smbd not listening on {port} after {timeout}s:\n"
                                   f"{_tail(log)}") from None
            time.sleep(0.02)
        else:
            return


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to smbd's process group (unshare passes it on; smbd's end takes its PID
    namespace and every process in it along), SIGKILL after 10 s; waits either way."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        process.wait()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
