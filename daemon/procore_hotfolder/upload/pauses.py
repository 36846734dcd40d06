"""Pauses: a folder (or the whole account) waits while Procore refuses it, and is re-checked.

A 403 or 404 about a folder's project or destination (the service account not granted the
project, the tool disabled, the app disconnected; Procore resets a service account's
projects on every app update) and a refused login (a rotated secret) are nobody's file's
fault: they are fixed in Procore. The folder, or for the login every folder, pauses instead:
no file of it is tried and none goes to failed_dir. A single file's next try is the re-check
(one call), first after about ``FIRST_CHECK_SECONDS``, then with backoff up to
``MAX_CHECK_SECONDS``; the first answer that is not the refusal lifts the pause.

Only a re-check's refusal backs the pause off. With several workers, requests already in
flight when the pause began come back refused too; they were sent before anyone knew, so
they say nothing new. A refusal counts as a failed re-check only when its request was sent
at or after the moment the pause began, its re-check was admitted, or the last failed
re-check was counted (``Pause.counts_from``): the caller passes ``sent_at``, when its
attempt started. An attempt's start is at or before each of its requests, so an attempt that
began before the pause and sent its refused request after is not counted: the rule may
undercount failed re-checks (the pause then re-checks sooner), never overcount them.

``PauseBoard`` is thread-safe and takes the clock as an argument of each call; it logs each
pause once when it starts, each failed re-check, and the resume.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import structlog

from procore_hotfolder.model import Backoff

log = structlog.get_logger(__name__)

#: The scope of an account-wide pause (every folder waits).
ACCOUNT = "account"
FIRST_CHECK_SECONDS = 20.0
MAX_CHECK_SECONDS = 900.0
CHECK_BACKOFF = Backoff(base=FIRST_CHECK_SECONDS, cap=MAX_CHECK_SECONDS, jitter=0.2)


@dataclass(frozen=True)
class Pause:
    """One scope's pause: since when, why (Procore's words), when it is checked next."""

    scope: str            # ACCOUNT or a folder's path
    reason: str           # the error's reason: permission, not_found, authentication
    detail: str           # Procore's words
    since: float          # wall clock
    next_check: float     # wall clock
    checks: int           # failed re-checks so far
    counts_from: float    # wall clock: a refusal of a request sent before this is stale
    status: int | None = None
    request_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For the status snapshot and `status --json`."""
        return {"scope": self.scope, "reason": self.reason, "detail": self.detail,
                "since": self.since, "next_check": self.next_check, "checks": self.checks,
                "status": self.status, "request_id": self.request_id}


class PauseBoard:
    """The current pauses, by scope; see the module docstring."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._backoff = backoff or CHECK_BACKOFF
        self._lock = threading.Lock()
        self._pauses: dict[str, Pause] = {}

    def pause(self, scope: str, info: dict[str, Any], now: float, rand: float, *,
              sent_at: float) -> Pause:
        """``scope`` was refused (``info``: the error's ``as_dict()``) at ``now``, answering
        a request sent at ``sent_at``: start its pause, or count a failed re-check and back
        off; returns the pause, with the time of the next re-check. A refusal of a request
        sent before ``counts_from`` (in flight when the pause began, or overtaken by a later
        re-check) changes nothing."""
        with self._lock:
            current = self._pauses.get(scope)
            if current is not None and sent_at < current.counts_from:
                stale = current
            else:
                stale = None
                checks = 0 if current is None else current.checks + 1
                delay = self._backoff.delay(checks + 1, rand=rand)
                paused = Pause(scope=scope, reason=str(info.get("reason", "refused")),
                               detail=str(info.get("detail", "")), since=current.since
                               if current else now, next_check=now + delay, checks=checks,
                               counts_from=now, status=info.get("status"),
                               request_id=info.get("request_id"))
                self._pauses[scope] = paused
        if stale is not None:
            log.info("pause_refusal_in_flight", scope=scope, reason=info.get("reason"),
                     checks=stale.checks, check_in=round(stale.next_check - now, 1))
            return stale
        event = "account_paused" if scope == ACCOUNT else "folder_paused"
        if current is None:
            log.error(event, scope=scope, reason=paused.reason, detail=paused.detail,
                      status=paused.status, request_id=paused.request_id,
                      check_in=round(delay, 1))
        else:
            log.warning("pause_check_failed", scope=scope, reason=paused.reason,
                        detail=paused.detail, checks=checks, check_in=round(delay, 1))
        return paused

    def admit(self, scopes: tuple[str, ...], now: float) -> float | None:
        """None when a file of ``scopes`` may be tried now; else the wall time to wait for.

        When a pause's re-check is due, the first caller is let through as the re-check and
        the next one is pushed back (so one file probes, not every queued file). ``now`` is
        also when the re-check's attempt starts: its refusal (``sent_at=now``) counts."""
        with self._lock:
            waits = []
            probes = []
            for scope in scopes:
                paused = self._pauses.get(scope)
                if paused is None:
                    continue
                if now < paused.next_check:
                    waits.append(paused.next_check)
                else:
                    probes.append(paused)
            if waits:
                return max(waits)
            for paused in probes:
                # Until this re-check answers, nobody else tries.
                hold = now + self._backoff.delay(paused.checks + 1, rand=0.5)
                self._pauses[paused.scope] = replace(paused, next_check=hold, counts_from=now)
            return None

    def lift(self, scopes: tuple[str, ...], now: float) -> None:
        """Procore answered a call of ``scopes`` with something other than the refusal."""
        with self._lock:
            lifted = [self._pauses.pop(s) for s in scopes if s in self._pauses]
        for paused in lifted:
            log.info("account_resumed" if paused.scope == ACCOUNT else "folder_resumed",
                     scope=paused.scope, paused_seconds=round(now - paused.since, 1),
                     checks=paused.checks)

    def check_soon(self, now: float) -> None:
        """Re-check every pause at the next chance (after a reload: something was fixed)."""
        with self._lock:
            self._pauses = {k: replace(p, next_check=now) for k, p in self._pauses.items()}

    def forget(self, scope: str) -> None:
        """The folder left the configuration."""
        with self._lock:
            self._pauses.pop(scope, None)

    def current(self) -> list[Pause]:
        with self._lock:
            return list(self._pauses.values())
