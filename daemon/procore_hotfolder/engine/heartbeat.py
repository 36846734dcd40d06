"""Talking to systemd: the watchdog fed only while every loop advances, and ``STATUS=``.

Every loop thread (scheduler, scanner, upload workers) beats as it goes round; a loop that
has not advanced for ``STALL_SECONDS`` (or died) withholds ``WATCHDOG=1``, so systemd
restarts the daemon, which resumes from the journal.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import structlog

from procore_hotfolder.upload.holds import ACCOUNT, Hold, HoldKind

log = structlog.get_logger(__name__)

#: systemd shows STATUS= on one line of `systemctl status`: keep it readable.
STATUS_MAX_CHARS = 400
#: A loop that has not advanced for this long is stuck: systemd's watchdog is no longer fed,
#: so systemd restarts the daemon (which resumes from the journal). Long enough for the
#: slowest honest step without moving bytes: HTTP timeouts with their retries, a verified
#: archive copy across filesystems. Waiting out a rate limit or an outage is not stuck.
STALL_SECONDS = 1800.0


class Notifier(Protocol):
    def notify(self, state: str) -> None: ...


class NullNotifier:
    def notify(self, state: str) -> None:
        """Not under systemd: nothing to tell."""


class SystemdNotifier:
    """sd_notify over $NOTIFY_SOCKET (a no-op when not run by systemd)."""

    def __init__(self) -> None:
        import sdnotify  # noqa: PLC0415 - only the daemon needs it

        self._notifier = sdnotify.SystemdNotifier()

    def notify(self, state: str) -> None:
        self._notifier.notify(state)


class Moving(Protocol):
    """Where a worker's upload last moved (blocks read, sent or hashed)."""

    def last_moved(self, path: Path) -> float | None: ...


class Heartbeat:
    """The beats of the loop threads and the watchdog they feed.

    ``waiting_out()`` is true while the rate governor holds every call back (a rate limit,
    an outage: an API hold on the board of holds): then no loop is stalled, however long it
    waits. Without ``WATCHDOG_USEC`` (in the argument or the environment) the watchdog is
    never fed. ``stall_seconds``: how long a loop may go without advancing.
    """

    def __init__(self, notifier: Notifier, *, progress: Moving,
                 waiting_out: Callable[[], bool], monotonic: Callable[[], float],
                 watchdog_usec: int | None = None,
                 stall_seconds: float = STALL_SECONDS) -> None:
        self._notifier = notifier
        self._stall_seconds = stall_seconds
        self._progress = progress
        self._waiting_out = waiting_out
        self._now = monotonic
        if watchdog_usec is None:
            watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        # systemd wants a ping at least every WATCHDOG_USEC; ping at twice that rate.
        self._every = watchdog_usec / 2e6 if watchdog_usec else 0.0
        self._last_ping = 0.0
        self._loops: list[threading.Thread] = []
        # Per loop thread: when it last went round, and the file a worker is on.
        self._beats: dict[str, float] = {}
        self._working: dict[str, Path] = {}
        self._finished: set[str] = set()  # ended as they should (once's single scan)
        self._stalled: list[str] = []

    # --- called by the loops -----------------------------------------------------------

    def watch(self, thread: threading.Thread) -> None:
        """Count ``thread`` among the loops that must advance (before it starts). It takes
        the place of an ended loop of its name (a worker a reload ended, then restarted)."""
        self._loops = [t for t in self._loops if t.name != thread.name or t.is_alive()]
        self._beats[thread.name] = self._now()
        self._finished.discard(thread.name)
        self._loops.append(thread)

    def beat(self) -> None:
        """The calling loop went round (or got through one more entry of a scan)."""
        self._beats[threading.current_thread().name] = self._now()

    def finished(self) -> None:
        """The calling loop ends by design: its end is no stall."""
        self._finished.add(threading.current_thread().name)

    def working(self, path: Path | None) -> None:
        """The calling worker is on ``path`` now (None: on nothing)."""
        name = threading.current_thread().name
        if path is None:
            self._working.pop(name, None)
        else:
            self._working[name] = path

    # --- called by the scheduler's thread ----------------------------------------------

    def feed(self) -> None:
        """``WATCHDOG=1`` when one is due, only while every loop advances."""
        now = self._now()
        if not self._every or now - self._last_ping < self._every:
            return
        self._last_ping = now
        stalled = self.stalled_loops()
        if stalled != self._stalled:
            if stalled:
                log.error("watchdog_withheld", stalled=stalled,
                          files=[str(self._working[n]) for n in stalled if n in self._working])
            else:
                log.info("watchdog_resumed")
            self._stalled = stalled
        if not stalled:
            self._notifier.notify("WATCHDOG=1")

    def stalled_loops(self) -> list[str]:
        """Names of the loop threads that died or have not advanced for ``stall_seconds``.

        The scheduler's own loop is not among them: it is running this code. A worker on a
        file advances while the upload moves.
        """
        now = self._now()
        waiting_out = self._waiting_out()
        stalled = []
        for thread in self._loops:
            if thread.name in self._finished:
                continue
            last = self._beats[thread.name]
            path = self._working.get(thread.name)
            moved = self._progress.last_moved(path) if path is not None else None
            if moved is not None:
                last = max(last, moved)
            if not thread.is_alive() or (now - last > self._stall_seconds and not waiting_out):
                stalled.append(thread.name)
        return stalled

    def status(self, *, waiting: int, counts: dict[str, int], last_upload: str,
               holds: Sequence[Hold]) -> None:
        """``STATUS=``: one readable line for `systemctl status`, the holds in force last
        (the board's order: the rate governor's, refusals, folders that cannot be listed)."""
        status = (f"waiting {waiting}, queued {counts['queued'] + counts['delayed']}, "
                  f"uploading {counts['in_flight']}, last upload {last_upload}")
        for hold in holds:
            who = "all folders" if hold.scope == ACCOUNT else hold.scope
            if hold.kind is HoldKind.API:
                status += f", paused: {hold.reason}"
            elif hold.kind is HoldKind.REFUSED:
                status += f"; PAUSED {who}: {hold.reason}: {hold.detail}"
            else:
                status += f"; UNAVAILABLE {who}: {hold.detail}"
        self._notifier.notify(f"STATUS={status[:STATUS_MAX_CHARS]}")
