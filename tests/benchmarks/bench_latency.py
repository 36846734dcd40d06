"""Latency of a `run` daemon: file closed → upload confirmed, against the target "within
settle time + 1 s (95th percentile)".

Files of ~100 kB are dropped one after another, ~0.5 s apart, each written to its final name
(open, write, close). A file's latency runs from ``time.time()`` right after its close to the
``timestamp`` of its ``upload_completed`` log event (the upload confirmed and the file archived).

Run: ``python -m tests.benchmarks.bench_latency`` (``BENCH_FILES``, ``BENCH_SETTLE_SECONDS``,
``BENCH_SPACING_SECONDS``, ``BENCH_DIR``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.common import daemon_process, emulator_process, event_time, scratch, table
from tests.conftest import wait_for, write_config


def events(log: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log events so far (complete lines only: it may be mid-write)."""
    lines = log.read_text(errors="replace").split("\n")[:-1]
    return [json.loads(line) for line in lines if line.startswith("{")]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value at or above ``fraction`` of them."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def main() -> None:
    count = int(os.environ.get("BENCH_FILES", "40"))
    settle = float(os.environ.get("BENCH_SETTLE_SECONDS", "2"))
    spacing = float(os.environ.get("BENCH_SPACING_SECONDS", "0.5"))
    work = scratch("latency")
    drop = work / "drop"
    drop.mkdir()
    payloads = [(f"scan-{i:03d}.pdf", os.urandom(100_000)) for i in range(count)]
    closed: dict[str, float] = {}
    with emulator_process(work) as emu:
        config = write_config(work, emu, [{"path": str(drop), "project_id": 1}],  # type: ignore[arg-type]
                              settle_seconds=settle, rescan_seconds=60, log_level="info")
        log = work / "daemon.log"
        with daemon_process(config, log):
            started = time.monotonic()
            for i, (name, payload) in enumerate(payloads):
                # The workload's pace, not synchronisation: one new file every `spacing` s.
                time.sleep(max(0.0, started + i * spacing - time.monotonic()))
                path = drop / name
                with path.open("wb") as f:
                    f.write(payload)
                closed[str(path)] = time.time()

            def completed() -> list[dict[str, Any]]:
                done = [e for e in events(log) if e.get("event") == "upload_completed"]
                return done if len(done) >= count else []

            done = wait_for(completed, timeout=settle + 60,
                            message=f"{count} upload_completed events")
    finished = {str(e["path"]): event_time(e) for e in done}
    if set(finished) != set(closed):
        raise RuntimeError(f"uploads {sorted(finished)} do not match the files dropped")
    for name, payload in payloads:
        archived = drop / ".archive" / name
        if not archived.is_file() or archived.read_bytes() != payload or (drop / name).exists():
            raise RuntimeError(f"{name} was not archived intact as {archived}")
    trouble = [e for e in events(log) if e.get("level") in ("warning", "error", "critical")]
    if trouble:
        raise RuntimeError(f"the daemon logged problems: {trouble[:3]}")
    latencies = [finished[path] - closed[path] for path in closed]
    p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
    target = settle + 1
    print(f"\n{count} files of 100 kB dropped {spacing:g} s apart into a `run` daemon's folder; "
          "latency from close() to upload_completed")
    print(table(["files", "settle (s)", "p50 (s)", "p95 (s)", "max (s)", "target p95 (s)",
                 "p95 meets target"],
                [[str(count), f"{settle:g}", f"{p50:.2f}", f"{p95:.2f}",
                  f"{max(latencies):.2f}", f"≤ {target:g}",
                  "yes" if p95 <= target else f"no (+{p95 - target:.2f} s)"]]))


if __name__ == "__main__":
    main()
