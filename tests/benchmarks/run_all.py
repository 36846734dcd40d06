"""`make bench`: every benchmark in turn (not collected by `make test`; figures go to the
README). Run as ``python -m tests.benchmarks.run_all``."""

from __future__ import annotations

from tests.benchmarks import (
    bench_api_calls,
    bench_backlog,
    bench_idle,
    bench_large_file,
    bench_latency,
    bench_quota,
    bench_shaped_link,
    bench_small_files,
    bench_soak,
)


def main() -> None:
    for bench in (bench_large_file, bench_shaped_link, bench_small_files, bench_idle,
                  bench_latency, bench_api_calls, bench_quota, bench_backlog, bench_soak):
        print(f"\n## {bench.__name__.rsplit('.', 1)[-1]}", flush=True)
        bench.main()


if __name__ == "__main__":
    main()
