"""A steady trickle for a long time: RSS must level off (a daemon runs for months).

A file every 0.1 s, in turn into three folders, for ``BENCH_SOAK_SECONDS`` (default 1,800);
the daemon's RSS (VmRSS) is sampled every 10 s. Reported: RSS after the warm-up (the first
fifth of the run) and at the end, and the growth per 10,000 files over the second half
(target: under 1 MiB per 10,000 files).

Run: ``python -m tests.benchmarks.bench_soak`` (``BENCH_SOAK_SECONDS``, ``BENCH_DIR``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.benchmarks.common import PROJECT_ID, daemon_process, emulator_process, scratch, table
from tests.conftest import write_config


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    duration = float(os.environ.get("BENCH_SOAK_SECONDS", "1800"))
    work = scratch("soak")
    folders = [work / f"site{n}" for n in range(3)]
    for folder in folders:
        folder.mkdir()
    payload = os.urandom(8192)
    samples: list[tuple[float, int, int]] = []  # (seconds, files dropped, RSS KiB)
    with emulator_process(work) as emu:
        config = write_config(work, emu, [{"path": str(f), "project_id": PROJECT_ID}
                                          for f in folders],  # type: ignore[misc]
                              settle_seconds=1, rescan_seconds=60)
        with daemon_process(config, work / "daemon.log") as proc:
            started = time.monotonic()
            dropped = 0
            next_sample = started
            while (now := time.monotonic()) - started < duration:
                target = folders[dropped % 3] / f"scan-{dropped:06d}.pdf"
                target.write_bytes(payload[: 2048 + dropped % 6000])
                dropped += 1
                if now >= next_sample:
                    samples.append((now - started, dropped, _rss_kib(proc.pid)))
                    next_sample += 10.0
                time.sleep(0.1)  # the trickle's pace, by design
            samples.append((time.monotonic() - started, dropped, _rss_kib(proc.pid)))
    warm = next(s for s in samples if s[0] >= duration / 5)
    half = next(s for s in samples if s[0] >= duration / 2)
    end = samples[-1]
    growth = (end[2] - half[2]) / 1024 / max(1, end[1] - half[1]) * 10_000
    print(f"\nA file every 0.1 s into 3 folders for {duration:.0f} s ({end[1]:,} files)")
    print(table(["RSS after warm-up MiB", "RSS at the end MiB", "peak sampled MiB",
                 "growth, second half (MiB per 10,000 files)"],
                [[f"{warm[2] / 1024:.1f}", f"{end[2] / 1024:.1f}",
                  f"{max(s[2] for s in samples) / 1024:.1f}", f"{growth:.2f}"]]))


if __name__ == "__main__":
    main()
