"""Shared fixtures: a live emulator on a free loopback port, configuration files, waiting,
the daemon's engine running in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from procore_hotfolder.config import Config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.engine.compose import Engine, build_engine
from procore_hotfolder.engine.heartbeat import Notifier

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-value"
COMPANY_ID = 4242


@pytest.fixture(autouse=True)
def _leaves_nothing_behind() -> Iterator[None]:
    """Every test: structlog as it was before it, and no thread of its left running (each
    engine, emulator and observer a test starts is stopped and joined)."""
    before = set(threading.enumerate())
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    deadline = time.monotonic() + 10.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        leaked[0].join(timeout=0.1)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    try:
        yield emu
    finally:
        emu.stop()


def write_config(tmp_path: Path, emu: Emulator, folders: list[dict[str, Any]],
                 **daemon: Any) -> Path:
    """A configuration file for ``folders`` against ``emu``; returns its path. A folder's
    ``rules`` (a list of tables) become its ``[[folders.rules]]``; a key given as None is
    left out (``destination=None``: a folder of rules only)."""
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    settings = {"state_dir": str(tmp_path / "state"), "settle_seconds": 0.3,
                "rescan_seconds": 30, "workers": 3, "poll_seconds": 0.5}
    settings.update(daemon)
    lines = ["[procore]", f'api_url = "{emu.url}"', f'login_url = "{emu.url}"',
             f"company_id = {COMPANY_ID}", f'client_id = "{CLIENT_ID}"',
             f'client_secret_file = "{secret}"', "", "[daemon]"]
    lines += [f"{k} = {_toml(v)}" for k, v in settings.items()]
    for given in folders:
        folder = {"destination": "none", **given}  # the tests' default; the daemon has none
        rules = folder.pop("rules", [])
        lines += ["", "[[folders]]"] + [f"{k} = {_toml(v)}" for k, v in folder.items()
                                        if v is not None]  # None: leave the key out
        for rule in rules:
            lines += ["", "[[folders.rules]]"] + [f"{k} = {_toml(v)}" for k, v in rule.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "PROCORE_CLIENT_SECRET",
                        "PROCORE_HOTFOLDER_CONFIG", "CREDENTIALS_DIRECTORY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM (unless it ended already), then SIGKILL after ``timeout`` seconds; waits for
    the process either way and returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run ``procore-hotfolder ARGS`` as a user would (a real process)."""
    return subprocess.run([sys.executable, "-m", "procore_hotfolder", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env or cli_env(), check=False, stdin=subprocess.DEVNULL)


@contextmanager
def running_engine(config: Config, *, notifier: Notifier | None = None, **build: Any
                   ) -> Iterator[tuple[Engine, LogCapture]]:
    """The engine `run` builds, running in a thread with its log events captured; stopped
    and joined on exit. ``build``: more arguments of ``build_engine``."""
    capture = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    engine = build_engine(config, once=False, notifier=notifier, **build)
    thread = threading.Thread(target=engine.service.run, name="daemon-under-test")
    thread.start()
    try:
        yield engine, capture
    finally:
        engine.service.stop()
        thread.join(timeout=60)
        engine.close()
        structlog.reset_defaults()
    assert not thread.is_alive()
