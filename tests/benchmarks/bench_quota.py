"""Procore's quota, used and not overrun: the daemon (`procore-hotfolder run`, a real process)
against the emulator (its own process) with both rate windows scaled down, then each alone,
then each again under a `max_api_calls_per_hour` ceiling below the server's limit. The spike
window slides, as Procore documents it; the hourly one slides too, and once starts with its
first call (Procore does not say which; see the emulator's ``rates``).

Per case: the calls the tightest limit allows over ``BENCH_QUOTA_SECONDS`` (default 180 s, a
multiple of every window) counted from the first Create Upload, the calls made in that time
(Uploads created: 1 API call per file, destination none), the share used, and the 429s the
emulator gave. The cases run side by side, each with its own emulator and daemon (the calls
are a few a second: the two cores are nowhere near busy).

Run: ``python -m tests.benchmarks.bench_quota`` (``BENCH_QUOTA_SECONDS``, ``BENCH_DIR``).
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from tests.benchmarks.common import (
    PROJECT_ID,
    daemon_process,
    emulator_process,
    scratch,
    table,
)
from tests.conftest import wait_for, write_config

Window = tuple[int, float]  # (limit, seconds)


@dataclass(frozen=True)
class Case:
    name: str
    hourly: Window | None
    spike: Window | None
    ceiling_per_hour: int | None = None
    hourly_kind: str = "sliding"  # the emulator's ``rate_limit_kind``

    def allowed(self, seconds: float) -> tuple[float, str]:
        """Calls the tightest limit allows in ``seconds`` from a period's start, and which."""
        bounds: list[tuple[float, str]] = []
        for label, window in (("hourly", self.hourly), ("spike", self.spike)):
            if window is not None:
                limit, length = window
                bounds.append((limit * seconds / length, f"{label} {limit}/{length:g} s"))
        if self.ceiling_per_hour is not None:
            # The governor's pace for the ceiling: a minute's worth at once, then the rest of
            # the hour's evenly (any hour stays within the ceiling).
            burst = max(1, self.ceiling_per_hour // 60)
            rate = (self.ceiling_per_hour - burst) / 3600
            bounds.append((burst + rate * seconds, f"ceiling {self.ceiling_per_hour}/h"))
        return min(bounds)


CASES = [
    Case("both windows", (60, 60.0), (5, 2.0)),
    Case("both windows, hourly from its first call", (60, 60.0), (5, 2.0),
         hourly_kind="first_call"),
    Case("hourly alone", (60, 60.0), None),
    Case("spike alone", None, (5, 2.0)),
    Case("both windows, ceiling 1800/h", (60, 60.0), (5, 2.0), 1800),
    Case("hourly alone, ceiling 1800/h", (60, 60.0), None, 1800),
    Case("spike alone, ceiling 4500/h", None, (5, 2.0), 4500),
]


def run_case(index: int, case: Case, seconds: float) -> list[str]:
    work = scratch(f"quota-{index}")
    drop = work / "drop"
    drop.mkdir()
    allowed, bound = case.allowed(seconds)
    count = math.ceil(allowed * 1.3) + 40  # never short of work before the end
    for i in range(count):
        (drop / f"scan-{i:05d}.pdf").write_bytes(os.urandom(2_000))
    with emulator_process(work) as emu:
        emu.set_faults(rate_limit=list(case.hourly) if case.hourly else None,
                       rate_limit_kind=case.hourly_kind,
                       spike_limit=list(case.spike) if case.spike else None,
                       spike_limit_kind="sliding")
        settings: dict[str, object] = {"workers": 4, "settle_seconds": 0.2,
                                       "log_level": "info"}
        if case.ceiling_per_hour is not None:
            settings["max_api_calls_per_hour"] = case.ceiling_per_hour
        config = write_config(work, emu, [{"path": str(drop), "project_id": PROJECT_ID}],  # type: ignore[arg-type]
                              **settings)
        with daemon_process(config, work / "daemon.log"):
            first = wait_for(lambda: _created(emu.url), timeout=60, message="first upload")
            start = min(first)
            time.sleep(max(0.0, start + seconds + 1.0 - time.time()))  # the measured span
        state = requests.get(emu.url + "/_emulator/state", timeout=30).json()
    made = sum(1 for u in state["uploads"] if start <= u["created_at"] < start + seconds)
    refused = int(state["requests"]["by_status"].get("429", 0))
    return [case.name, bound, f"{allowed:.0f}", str(made), f"{100 * made / allowed:.1f} %",
            str(refused)]


def _created(url: str) -> list[float]:
    state = requests.get(url + "/_emulator/state", timeout=30).json()
    return [float(u["created_at"]) for u in state["uploads"]]


def main() -> None:
    seconds = float(os.environ.get("BENCH_QUOTA_SECONDS", "180"))
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        rows = list(pool.map(lambda item: run_case(item[0], item[1], seconds),
                             enumerate(CASES)))
    print(f"\n{seconds:g} s from the first Create Upload, 4 workers, destination none "
          "(1 API call per file)")
    print(table(["case", "tightest limit", "calls it allows", "calls made", "share used",
                 "429s"], rows))


if __name__ == "__main__":
    main()
