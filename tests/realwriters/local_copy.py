"""A local writer that stalls: copies SOURCE to TARGET with plain write()s, and after
``--stall-after`` bytes holds the target open, writing nothing, for ``--stall-seconds``
(a program waiting on its input, a scanner between pages), then writes the rest and closes.

Run as a script (a process of its own, as a real writer is). Prints one JSON line: whether,
when the stall ended, the target path still named the file being written
(``in_place_after_stall``) and the file was still linked anywhere (``linked_after_stall``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

CHUNK = 64 * 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--stall-after", type=int, required=True)
    parser.add_argument("--stall-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    with open(args.source, "rb") as source:
        data = source.read()
    fd = os.open(args.target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data[:args.stall_after])
        time.sleep(args.stall_seconds)  # the stall: the writer's pause is the scenario
        mine = os.fstat(fd)
        try:
            there = os.stat(args.target)
            in_place = (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev)
        except FileNotFoundError:
            in_place = False
        report = {"in_place_after_stall": in_place, "linked_after_stall": mine.st_nlink > 0}
        _write_all(fd, data[args.stall_after:])
    finally:
        os.close(fd)
    print(json.dumps(report), flush=True)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:CHUNK])
        view = view[written:]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
