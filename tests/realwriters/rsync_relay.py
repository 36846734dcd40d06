"""rsync's remote shell for tests: ``rsync -e "python rsync_relay.py --stall-after N
--stall-seconds S" SOURCE localhost:TARGET``.

rsync runs ``rsync_relay.py ... HOST rsync --server ...``; this runs the server command on
this machine (HOST is ignored: nothing leaves the machine) and relays rsync's stream to it.
Once ``--stall-after`` bytes went towards the server, the relay holds the stream for
``--stall-seconds``: a link that stalls in the middle of the file, with the receiving rsync
holding its target open. The server's answers go straight back (its stdout is ours).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import time

CHUNK = 64 * 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stall-after", type=int, required=True)
    parser.add_argument("--stall-seconds", type=float, required=True)
    parser.add_argument("host")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    server = subprocess.Popen(args.command, stdin=subprocess.PIPE)
    assert server.stdin is not None
    os.close(sys.stdout.fileno())  # the server alone answers rsync
    source = sys.stdin.fileno()
    server_ended = os.pidfd_open(server.pid)  # readable once the server exits
    relayed, stalled = 0, False
    try:
        while True:
            ready, _, _ = select.select([source, server_ended], [], [])
            if server_ended in ready:
                break  # rsync waits for its remote shell to end before it closes our input
            chunk = os.read(source, CHUNK)
            if not chunk:
                break
            if not stalled and relayed + len(chunk) > args.stall_after:
                head = args.stall_after - relayed
                server.stdin.write(chunk[:head])
                server.stdin.flush()
                time.sleep(args.stall_seconds)  # the stall: the link's pause is the scenario
                stalled = True
                chunk = chunk[head:]
                relayed += head
            server.stdin.write(chunk)
            server.stdin.flush()
            relayed += len(chunk)
    except BrokenPipeError:
        pass  # the server ended first; its exit code says why
    finally:
        os.close(server_ended)
        with contextlib.suppress(BrokenPipeError):
            server.stdin.close()
    return server.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
