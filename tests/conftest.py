"""Shared fixtures: a live emulator on a free loopback port, configuration files, waiting,
the daemon's engine running in-process, and the short waits every engine of a test runs with
(``TEST_TIMING``, in-process and in a daemon process alike)."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from procore_hotfolder.config import Config
from procore_hotfolder.emulator import Emulator
from procore_hotfolder.engine.compose import Engine, build_engine
from procore_hotfolder.engine.heartbeat import Notifier
from procore_hotfolder.engine.timing import TIMING_VARIABLE, Timing
from procore_hotfolder.model import Backoff, Spacing
from procore_hotfolder.procore.retry import RetryPolicy

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-value"
COMPANY_ID = 4242

#: The engine's waits under test, a tenth or less of production's (``Timing()``): a test
#: waits out these, never a production backoff. The limits (stall, scan window) stay; a test
#: that needs another value says so (``use_timing``).
TEST_TIMING = Timing(
    requests=RetryPolicy(tries=5, base=0.05, cap=1.0),
    file_backoff=Backoff(base=0.2, cap=3.0),
    outage_spacing=Spacing(least=0.2, spread=0.3),
    pause_checks=Backoff(base=0.4, cap=1.5, jitter=0.0),
    progress_every=0.5,
    snapshot_every=0.2,
)


@pytest.fixture(autouse=True, scope="session")
def _test_timing() -> Iterator[None]:
    """Every engine the tests build, and every daemon process they start (their environment
    is this one's), runs with ``TEST_TIMING``."""
    os.environ[TIMING_VARIABLE] = TEST_TIMING.to_json()
    yield
    os.environ.pop(TIMING_VARIABLE, None)


def use_timing(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> Timing:
    """``TEST_TIMING`` with ``changes`` (``Timing``'s fields) for this test's engines and
    daemon processes; returns it."""
    timing = replace(TEST_TIMING, **changes)
    monkeypatch.setenv(TIMING_VARIABLE, timing.to_json())
    return timing


#: The layers in the order they run: the long scenarios of ``reliability/`` and
#: ``integration/`` first, the unit tests, each a fraction of a second, last.
LAYERS = ("reliability", "integration", "s3", "emulator", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first, then by layer (``LAYERS``), in their order otherwise:
    `make test`'s parallel workers (pytest-xdist, handed the tests in this order) start the
    long ones at once and run out of work together."""

    def rank(item: pytest.Item) -> tuple[bool, int]:
        layer = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        return (item.get_closest_marker("slow") is None,
                LAYERS.index(layer) if layer in LAYERS else len(LAYERS))

    items.sort(key=rank)


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


class FakeSystemd:
    """The notify socket systemd would hold, read as systemd reads it: every datagram as it
    comes (a sender blocks once 10 wait unread, ``net.unix.max_dgram_qlen``), until closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._messages: list[str] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="fake-systemd")
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            readable, _, _ = select.select([self._sock], [], [], 0.05)
            if readable:
                self._take()

    def _take(self) -> None:
        """Every datagram waiting, in order (read and kept under the lock)."""
        with self._lock:
            while True:
                try:
                    self._messages.append(self._sock.recv(65536, socket.MSG_DONTWAIT).decode())
                except BlockingIOError:
                    return

    @property
    def messages(self) -> list[str]:
        """Every message so far, oldest first (those sent and not read yet too)."""
        self._take()
        with self._lock:
            return list(self._messages)

    def seen(self, text: str, after: int = 0) -> int | None:
        """Index of the first message from ``after`` on containing ``text``."""
        for index, message in enumerate(self.messages[after:], start=after):
            if text in message:
                return index
        return None

    def close(self) -> None:
        self._closing.set()
        self._reader.join()
        self._sock.close()


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
