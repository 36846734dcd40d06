"""One large file over a bandwidth-limited link: the share of the link the daemon uses,
against `curl -F` over the same link.

The link is a private loopback (``unshare -n``, needs root) shaped with a token bucket:
``tc qdisc add dev lo root tbf rate 200mbit burst 256kb latency 50ms`` (netem is not
available here). The emulator and the daemon both run inside that namespace.

Run: ``python -m tests.benchmarks.bench_shaped_link`` (``BENCH_RATE_MBIT`` default 200,
``BENCH_SIZE_MIB`` default 256, ``BENCH_DIR``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.benchmarks.bench_large_file import NAME, _daemon_run, curl_post, make_file
from tests.benchmarks.common import MIB, emulator_process, scratch, table

INSIDE = "PROCORE_HOTFOLDER_BENCH_SHAPED"


def _shaped(rate_mbit: int) -> None:
    """Run this module again inside a private network namespace with a shaped loopback."""
    script = (f"ip link set lo up && tc qdisc add dev lo root tbf rate {rate_mbit}mbit "
              f"burst 256kb latency 50ms && exec {sys.executable} -m "
              "tests.benchmarks.bench_shaped_link")
    env = {**os.environ, INSIDE: "1"}
    subprocess.run(["unshare", "-n", "sh", "-c", script], env=env, check=True)


def main() -> None:
    rate = int(os.environ.get("BENCH_RATE_MBIT", "200"))
    if not os.environ.get(INSIDE):
        _shaped(rate)
        return
    size = int(os.environ.get("BENCH_SIZE_MIB", "256")) * MIB
    link_mib_s = rate * 1_000_000 / 8 / MIB
    work = scratch("shaped")
    source = work / NAME
    make_file(source, size)
    rows = []
    with emulator_process(work) as emu:
        curl = curl_post(emu, source)
        emu.forget_stored_bytes()
        rows.append(["curl -F (single POST)", f"{curl.seconds:.1f}",
                     f"{size / MIB / curl.seconds:.1f}",
                     f"{100 * size / MIB / curl.seconds / link_mib_s:.0f} %"])
        for label, settings in [("daemon, single POST", {"segment_threshold_mib": 2048}),
                                ("daemon, segmented 16 MiB x 4",
                                 {"segment_threshold_mib": 5, "segment_size_mib": 16,
                                  "segment_parallelism": 4})]:
            run = _daemon_run(work, emu, source, settings)
            emu.forget_stored_bytes()
            span = run.span("upload_created", "upload_completed") or run.measured.seconds
            rows.append([label, f"{span:.1f}", f"{size / MIB / span:.1f}",
                         f"{100 * size / MIB / span / link_mib_s:.0f} %"])
    source.unlink()
    print(f"\n{size // MIB} MiB over loopback shaped to {rate} Mbit/s "
          f"({link_mib_s:.1f} MiB/s), tbf burst 256 kB, latency 50 ms")
    print(table(["sender", "upload s", "MiB/s", "share of the link"], rows))


if __name__ == "__main__":
    main()
