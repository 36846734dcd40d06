"""CPU use of an idle `run` daemon watching an empty folder.

Run: ``python -m tests.benchmarks.bench_idle`` (``BENCH_IDLE_SECONDS``, ``BENCH_DIR``).
"""

from __future__ import annotations

import os
import time

from tests.benchmarks.common import (
    cpu_seconds,
    daemon_process,
    emulator_process,
    scratch,
    table,
    vm_hwm_kib,
)
from tests.conftest import write_config


def main() -> None:
    window = float(os.environ.get("BENCH_IDLE_SECONDS", "20"))
    work = scratch("idle")
    drop = work / "drop"
    drop.mkdir()
    with emulator_process(work) as emu:
        config = write_config(work, emu, [{"path": str(drop), "project_id": 1}],  # type: ignore[arg-type]
                              settle_seconds=2, rescan_seconds=60, log_level="info")
        with daemon_process(config, work / "daemon.log") as proc:
            time.sleep(2)  # past start-up work (token, first scan)
            before, started = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)  # the measurement window itself
            used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - started
            rss = vm_hwm_kib(proc.pid) / 1024
    print(f"\nidle `run` daemon watching an empty folder for {elapsed:.0f} s")
    print(table(["CPU seconds", "% of one core", "peak RSS (MiB)"],
                [[f"{used:.2f}", f"{100 * used / elapsed:.2f} %", f"{rss:.0f}"]]))


if __name__ == "__main__":
    main()
