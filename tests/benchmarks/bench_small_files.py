"""5,000 small files dropped at once: all archived by `once`, in files/s, against a minimal
serial create-and-POST loop over the same emulator.

With ``BENCH_LATENCY_MS`` the emulator answers every API call that much later (a simulated
round trip to Procore): parallel workers should then win by about their number.

Run: ``python -m tests.benchmarks.bench_small_files`` (``BENCH_FILES``, ``BENCH_DIR``,
``BENCH_LATENCY_MS``; e.g. ``BENCH_FILES=400 BENCH_LATENCY_MS=100``).
"""

from __future__ import annotations

import os
import time

import requests

from tests.benchmarks.common import RemoteEmulator, emulator_process, run_once, scratch, table


def baseline(emu: RemoteEmulator, payloads: list[tuple[str, bytes]]) -> float:
    """Create Upload + storage POST for each file, one after the other: no journal, ledger,
    archive, hashing or retries. Seconds for all of them."""
    token = emu.token()
    api = requests.Session()
    storage = requests.Session()
    started = time.monotonic()
    for name, payload in payloads:
        ticket = emu.create_upload(token, name, len(payload), session=api)
        answer = storage.post(str(ticket["url"]), data=list(ticket["fields"].items()),
                              files={"file": (name, payload)}, timeout=30)
        answer.raise_for_status()
    return time.monotonic() - started


def main() -> None:
    count = int(os.environ.get("BENCH_FILES", "5000"))
    work = scratch("small")
    drop = work / "drop"
    payload = os.urandom(20_000)
    payloads = [(f"scan-{i:05d}.pdf", payload[: 10_000 + i % 10_000]) for i in range(count)]
    for i, (name, data) in enumerate(payloads):
        sub = drop / f"batch{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / name).write_bytes(data)
    rows = []
    latency_ms = float(os.environ.get("BENCH_LATENCY_MS", "0"))
    with emulator_process(work) as emu:
        if latency_ms:
            emu.set_faults(delay_seconds=latency_ms / 1000.0)
        for workers in (1, 4):
            if workers != 1:  # put the files back for the next run
                for archived in (drop / ".archive").rglob("*.pdf"):
                    archived.rename(drop / archived.relative_to(drop / ".archive"))
            run = run_once(work, emu, drop, workers=workers)
            archived = sum(1 for _ in (drop / ".archive").rglob("*.pdf"))
            if archived != count or run.count("upload_completed") != count:
                raise RuntimeError(f"{archived} of {count} files archived")
            wall = run.measured.seconds
            rows.append([f"daemon `once`, {workers} worker(s)", f"{wall:.1f}",
                         f"{count / wall:.0f}", f"{run.measured.peak_rss_mib:.0f}",
                         f"{run.measured.cpu_seconds:.1f}"])
        serial = baseline(emu, payloads)
        rows.append(["serial create-and-POST loop (requests)", f"{serial:.1f}",
                     f"{count / serial:.0f}", "-", "-"])
    latency = f", API round trip +{latency_ms:g} ms" if latency_ms else ""
    print(f"\n{count} files of 10-20 kB in 20 subfolders, dropped at once{latency}")
    print(table(["sender", "seconds", "files/s", "peak RSS (MiB)", "CPU s"], rows))
    print("\nThe daemon's figures include start-up, settling checks, the journal, the ledger "
          "and the archive move of every file.")


if __name__ == "__main__":
    main()
