"""1 GiB to the emulator: the daemon's peak RSS and throughput, single POST and segmented,
against `curl -F` posting the same file to the same storage endpoint.

Run: ``python -m tests.benchmarks.bench_large_file`` (``BENCH_REPEATS``, ``BENCH_DIR``,
``BENCH_ONLY``).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from tests.benchmarks.common import (
    MIB,
    DaemonRun,
    Measured,
    RemoteEmulator,
    emulator_process,
    measure,
    run_once,
    scratch,
    table,
)

GIB = 1024 * MIB
NAME = "big.bin"


def make_file(path: Path, size: int = GIB) -> None:
    """``size`` bytes of incompressible data, quickly: a 64 MiB random block written again
    and again, each MiB stamped with its own number so that no two segments are equal."""
    block = bytearray(os.urandom(64 * MIB))
    with path.open("wb") as out:
        for i in range(size // len(block)):
            for j in range(len(block) // MIB):
                block[j * MIB:j * MIB + 8] = (i * 64 + j).to_bytes(8, "big")
            out.write(block)


def curl_post(emu: RemoteEmulator, source: Path) -> Measured:
    """`curl -F` the file to a fresh Upload's storage URL; the POST alone is measured."""
    ticket = emu.create_upload(emu.token(), source.name, source.stat().st_size)
    args = ["curl", "-sS", "--fail", "-o", "/dev/null"]
    for name, value in ticket["fields"].items():
        # --form-string is -F name=value without curl's special meaning of a leading @ or <.
        args += ["--form-string", f"{name}={value}"]
    args += ["-F", f"file=@{source}", str(ticket["url"])]
    run = measure(args)
    if run.returncode != 0:
        raise RuntimeError(f"curl exited {run.returncode}")
    (stored,) = [u for u in emu.uploads() if u["uuid"] == ticket["uuid"]]
    if stored["store_count"] != 1 or stored["stored_size"] != source.stat().st_size:
        raise RuntimeError(f"the emulator did not store curl's upload: {stored}")
    return run


VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("daemon, single POST", {"segment_threshold_mib": 2048}),
    ("daemon, segmented 16 MiB x 1", {"segment_threshold_mib": 5, "segment_size_mib": 16,
                                      "segment_parallelism": 1}),
    ("daemon, segmented 16 MiB x 4", {"segment_threshold_mib": 5, "segment_size_mib": 16,
                                      "segment_parallelism": 4}),
    ("daemon, segmented 64 MiB x 1", {"segment_threshold_mib": 5, "segment_size_mib": 64,
                                      "segment_parallelism": 1}),
    ("daemon, segmented 64 MiB x 4", {"segment_threshold_mib": 5, "segment_size_mib": 64,
                                      "segment_parallelism": 4}),
]


def _daemon_run(work: Path, emu: RemoteEmulator, source: Path,
                settings: dict[str, object]) -> DaemonRun:
    drop = work / "drop"
    drop.mkdir(exist_ok=True)
    os.replace(source, drop / NAME)  # same filesystem: a rename, no copy
    try:
        run = run_once(work, emu, drop, **settings)
    finally:
        archived = drop / ".archive" / NAME
        os.replace(archived if archived.exists() else drop / NAME, source)
    if run.count("upload_completed") != 1:
        raise RuntimeError("the daemon did not upload the file")
    return run


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    only = os.environ.get("BENCH_ONLY", "")  # e.g. "single": the variants whose label has it
    variants = [(label, settings) for label, settings in VARIANTS if only in label]
    work = scratch("large")
    source = work / NAME
    make_file(source)
    size_mib = source.stat().st_size / MIB
    curl: list[Measured] = []
    runs: dict[str, list[DaemonRun]] = {label: [] for label, _ in variants}
    with emulator_process(work) as emu:
        curl_post(emu, source)  # warm-up (page cache, emulator), not counted
        emu.forget_stored_bytes()
        # Rounds interleave the senders, so drift on the machine hits all of them alike.
        for _ in range(repeats):
            curl.append(curl_post(emu, source))
            emu.forget_stored_bytes()
            for label, settings in variants:
                runs[label].append(_daemon_run(work, emu, source, settings))
                emu.forget_stored_bytes()
    source.unlink()
    curl_s = statistics.median(c.seconds for c in curl)
    rows = [["curl -F (single POST)", f"{max(c.peak_rss_mib for c in curl):.0f}",
             f"{curl_s:.2f}", "-", f"{size_mib / curl_s:.0f}", "100 %",
             f"{statistics.median(c.cpu_seconds for c in curl):.1f}",
             " ".join(f"{c.seconds:.2f}" for c in curl)]]
    for label, _ in variants:
        done = runs[label]
        wall = statistics.median(r.measured.seconds for r in done)
        spans = [r.span("upload_created", "upload_completed") or r.measured.seconds
                 for r in done]
        span = statistics.median(spans)
        rows.append([label, f"{max(r.measured.peak_rss_mib for r in done):.0f}",
                     f"{wall:.2f}", f"{span:.2f}",
                     f"{size_mib / wall:.0f} ({size_mib / span:.0f})",
                     f"{100 * curl_s / wall:.0f} % ({100 * curl_s / span:.0f} %)",
                     f"{statistics.median(r.measured.cpu_seconds for r in done):.1f}",
                     " ".join(f"{r.measured.seconds:.2f}" for r in done)])
    print(f"\n1 GiB file, median of {repeats} interleaved rounds; emulator in its own "
          f"process; scratch in {work.parent}")
    print(table(["sender", "peak RSS (MiB)", "wall s", "upload s", "MiB/s wall (upload)",
                 "vs curl -F wall (upload)", "sender CPU s", "wall s per run"], rows))
    print("\nwall = the whole `procore-hotfolder once` process (start-up, token, hashing, "
          "upload, ledger, archive); upload = `upload_created` to `upload_completed` in its "
          "log (segmented: the hashing pass before the Upload is created is excluded).")


if __name__ == "__main__":
    main()
