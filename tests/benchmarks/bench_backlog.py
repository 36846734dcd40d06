"""A backlog waiting at start: `run` over 50 and over 50,000 files already in the folder.

For each backlog: seconds from the process start to ``READY=1`` (a real notify socket), to
the first upload confirmed, peak RSS (VmHWM) over the start and the first uploads, and CPU
milliseconds per upload over uploads 11 to ``BENCH_MEASURED`` (default 1,000; all of them for
a smaller backlog). Targets (product.md): READY within 3 s, first upload within 10 s, peak
RSS at most 80 MiB, CPU per upload the same as with 50 waiting.

Run: ``python -m tests.benchmarks.bench_backlog`` (``BENCH_BACKLOGS=50,50000``,
``BENCH_MEASURED``, ``BENCH_DIR``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.benchmarks.common import (
    CLI,
    PROJECT_ID,
    cpu_seconds,
    emulator_process,
    scratch,
    stop,
    table,
    vm_hwm_kib,
)
from tests.conftest import cli_env, write_config

FILES_PER_FOLDER = 500


def _fill(drop: Path, count: int) -> None:
    payload = os.urandom(4096)
    for i in range(count):
        sub = drop / f"batch{i // FILES_PER_FOLDER:03d}"
        if i % FILES_PER_FOLDER == 0:
            sub.mkdir(parents=True)
        (sub / f"scan-{i:05d}.pdf").write_bytes(payload[: 1024 + i % 3000])


def _ledger_lines(state: Path) -> int:
    try:
        with (state / "uploads.jsonl").open("rb") as ledger:
            return sum(1 for _ in ledger)
    except FileNotFoundError:
        return 0


def run_backlog(count: int, measured: int) -> list[str]:
    work = scratch(f"backlog-{count}")
    drop = work / "drop"
    drop.mkdir()
    _fill(drop, count)
    target = min(count, measured)
    with emulator_process(work) as emu:
        config = write_config(work, emu, [{"path": str(drop), "project_id": PROJECT_ID}],  # type: ignore[arg-type]
                              settle_seconds=1, workers=4, rescan_seconds=3600)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(work / "notify.sock"))
        notify.settimeout(0.01)
        env = {**cli_env(), "NOTIFY_SOCKET": str(work / "notify.sock")}
        started = time.monotonic()
        with (work / "daemon.log").open("wb") as log:
            proc = subprocess.Popen([*CLI, "run", "-c", str(config)], stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL)
        ready = first = None
        cpu_at_10 = cpu_end = 0.0
        done_at_10 = 0
        peak = 0
        try:
            while True:
                now = time.monotonic()
                if now - started > 900:
                    raise RuntimeError("backlog benchmark timed out")
                if proc.poll() is not None:
                    raise RuntimeError(f"daemon exited {proc.returncode}")
                peak = max(peak, vm_hwm_kib(proc.pid))
                if ready is None:
                    try:
                        if b"READY=1" in notify.recv(4096):
                            ready = now - started
                    except TimeoutError:
                        pass
                done = _ledger_lines(work / "state")
                if done and first is None:
                    first = now - started
                if done >= 10 and not done_at_10:
                    done_at_10, cpu_at_10 = done, cpu_seconds(proc.pid)
                if done >= target:
                    cpu_end = cpu_seconds(proc.pid)
                    break
                time.sleep(0.02)  # sampling interval
        finally:
            stop(proc)
            notify.close()
        per_upload = (cpu_end - cpu_at_10) / max(1, target - done_at_10) * 1000
    return [f"{count:,}", f"{ready:.2f}" if ready is not None else "-",
            f"{first:.2f}" if first is not None else "-", f"{peak / 1024:.0f}",
            f"{per_upload:.1f}", f"{target - done_at_10}"]


def main() -> None:
    backlogs = [int(n) for n in os.environ.get("BENCH_BACKLOGS", "50,50000").split(",")]
    measured = int(os.environ.get("BENCH_MEASURED", "1000"))
    rows = [run_backlog(count, measured) for count in backlogs]
    print("\n`run` over a backlog already in the folder (settle 1 s, 4 workers)")
    print(table(["files waiting", "READY=1 s", "first upload s", "peak RSS MiB",
                 "CPU ms/upload", "uploads measured"], rows))


if __name__ == "__main__":
    main()
