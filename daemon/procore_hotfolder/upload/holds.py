"""Why work waits: one board of holds, told by whoever holds work back and read by everyone
who shows or schedules work (`status` through status.json, the metrics, systemd's
``STATUS=``, the dispatcher, the watchdog).

A ``Hold`` is one reason work waits: its scope (``ACCOUNT``: every folder; else a folder's
path), its kind and reason, since when and until when (wall clock, Unix seconds), and where
Procore gave them its words, HTTP status and request id. Each kind has one reporter, and each
start and end of a hold is logged once, by one owner:

- ``REFUSED``: Procore refuses a folder's project or destination (403, 404: the service
  account not granted the project, the tool disabled, the app disconnected; Procore resets a
  service account's projects on every app update) or the login (a rotated secret: every
  folder). Nobody's file's fault, and fixed in Procore: no file of the scope is tried and none
  goes to failed_dir. Reported by the pipeline (``pause``, ``admit``, ``lift``); logged here
  (``folder_paused``/``account_paused``, ``pause_check_failed``, ``pause_refusal_in_flight``,
  ``folder_resumed``/``account_resumed``). ``until`` is the next re-check: see below.
- ``API``: the rate governor holds every API call back (a 429 until Procore's reset, a 503
  with Retry-After, the network down). Reported by the governor through the callback the
  composition root gives it (``procore/`` knows nothing of this module); it ends by itself at
  ``until``. The governor logs it (``api_paused``, beside the answer that caused it; a
  network pause shows as ``request_retry``).
- ``FOLDER``: the drop folder cannot be listed (missing, unmounted, permission denied).
  Reported by the scanner, which looks at every folder at each scan; logged here once per
  change (``folder_unavailable``, ``folder_available_again``). ``until`` is None: it lasts
  until the folder is seen again.

Re-checks of a refusal: a single file's next try is the re-check (one call), first after
about ``FIRST_CHECK_SECONDS``, then with backoff up to ``MAX_CHECK_SECONDS``; the first
answer that is not the refusal lifts the hold. Only a re-check's refusal backs off. With
several workers, requests already in flight when the pause began come back refused too; they
were sent before anyone knew, so they say nothing new. A refusal counts as a failed re-check
only when its request was sent at or after the moment the pause began, its re-check was
admitted, or the last failed re-check was counted (``Hold.counts_from``): the caller passes
``sent_at``, when its attempt started. An attempt's start is at or before each of its
requests, so an attempt that began before the pause and sent its refused request after is not
counted: the rule may undercount failed re-checks (the pause then re-checks sooner), never
overcount them.

``HoldBoard`` is thread-safe and takes the clock as an argument of each call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.model import Backoff

log = structlog.get_logger(__name__)

#: The scope of an account-wide hold (every folder waits).
ACCOUNT = "account"
FIRST_CHECK_SECONDS = 20.0
MAX_CHECK_SECONDS = 900.0
CHECK_BACKOFF = Backoff(base=FIRST_CHECK_SECONDS, cap=MAX_CHECK_SECONDS, jitter=0.2)
#: The reason of a ``FOLDER`` hold (a label of ``procore_hotfolder_paused``).
FOLDER_UNAVAILABLE = "folder_unavailable"


class HoldKind(StrEnum):
    """Who holds the work back (see the module docstring); as status.json spells it."""

    API = "api"
    REFUSED = "refused"
    FOLDER = "folder"


_ORDER = {HoldKind.API: 0, HoldKind.REFUSED: 1, HoldKind.FOLDER: 2}


@dataclass(frozen=True)
class Hold:
    """One reason work waits: see the module docstring."""

    kind: HoldKind
    #: ``ACCOUNT`` (every folder) or a folder's path.
    scope: str
    #: REFUSED: the error's reason (permission, not_found, authentication); API:
    #: rate_limited, unavailable, network; FOLDER: ``FOLDER_UNAVAILABLE``.
    reason: str
    #: Wall clock, as every time here.
    since: float
    #: API: when calls go again; REFUSED: the next re-check; FOLDER: None (until seen back).
    until: float | None
    #: Procore's words, or why the folder cannot be listed.
    detail: str = ""
    status: int | None = None
    request_id: str | None = None
    #: REFUSED: failed re-checks so far.
    checks: int = 0
    #: REFUSED: a refusal of a request sent before this is stale (see the module docstring).
    counts_from: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """For the status snapshot and `status --json`."""
        return {"kind": self.kind.value, "scope": self.scope, "reason": self.reason,
                "detail": self.detail, "since": self.since, "until": self.until,
                "checks": self.checks, "status": self.status, "request_id": self.request_id}


class HoldBoard:
    """The holds in force, by kind and scope; see the module docstring."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._backoff = backoff or CHECK_BACKOFF
        self._lock = threading.Lock()
        self._holds: dict[tuple[HoldKind, str], Hold] = {}

    # --- REFUSED: the pipeline ---------------------------------------------------------------

    def pause(self, scope: str, info: dict[str, Any], now: float, rand: float, *,
              sent_at: float) -> Hold:
        """``scope`` was refused (``info``: the error's ``as_dict()``) at ``now``, answering
        a request sent at ``sent_at``: start its hold, or count a failed re-check and back
        off; returns the hold, with the time of the next re-check (``until``). A refusal of a
        request sent before ``counts_from`` (in flight when the pause began, or overtaken by
        a later re-check) changes nothing."""
        key = (HoldKind.REFUSED, scope)
        with self._lock:
            current = self._holds.get(key)
            if current is not None and sent_at < current.counts_from:
                stale = current
            else:
                stale = None
                checks = 0 if current is None else current.checks + 1
                delay = self._backoff.delay(checks + 1, rand=rand)
                paused = Hold(kind=HoldKind.REFUSED, scope=scope,
                              reason=str(info.get("reason", "refused")),
                              detail=str(info.get("detail", "")),
                              since=current.since if current else now, until=now + delay,
                              status=info.get("status"), request_id=info.get("request_id"),
                              checks=checks, counts_from=now)
                self._holds[key] = paused
        if stale is not None:
            assert stale.until is not None
            log.info("pause_refusal_in_flight", scope=scope, reason=info.get("reason"),
                     checks=stale.checks, check_in=round(stale.until - now, 1))
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

        When a refusal's re-check is due, the first caller is let through as the re-check
        and the next one is pushed back (so one file probes, not every queued file). ``now``
        is also when the re-check's attempt starts: its refusal (``sent_at=now``) counts."""
        with self._lock:
            waits = []
            probes = []
            for scope in scopes:
                paused = self._holds.get((HoldKind.REFUSED, scope))
                if paused is None or paused.until is None:
                    continue
                if now < paused.until:
                    waits.append(paused.until)
                else:
                    probes.append(paused)
            if waits:
                return max(waits)
            for paused in probes:
                # Until this re-check answers, nobody else tries.
                hold = now + self._backoff.delay(paused.checks + 1, rand=0.5)
                self._holds[(HoldKind.REFUSED, paused.scope)] = replace(
                    paused, until=hold, counts_from=now)
            return None

    def lift(self, scopes: tuple[str, ...], now: float) -> None:
        """Procore answered a call of ``scopes`` with something other than the refusal."""
        with self._lock:
            lifted = [self._holds.pop((HoldKind.REFUSED, s)) for s in scopes
                      if (HoldKind.REFUSED, s) in self._holds]
        for paused in lifted:
            log.info("account_resumed" if paused.scope == ACCOUNT else "folder_resumed",
                     scope=paused.scope, paused_seconds=round(now - paused.since, 1),
                     checks=paused.checks)

    def check_soon(self, now: float) -> list[str]:
        """Re-check every refusal at the next chance (after a reload: something was fixed);
        returns their scopes."""
        with self._lock:
            refused = [k for k in self._holds if k[0] is HoldKind.REFUSED]
            for key in refused:
                self._holds[key] = replace(self._holds[key], until=now)
        return [scope for _, scope in refused]

    # --- API: the rate governor ------------------------------------------------------------

    def api_paused(self, reason: str, since: float, until: float) -> None:
        """The rate governor holds every API call back from ``since`` until ``until`` (a
        later report extends the hold, with its reason)."""
        key = (HoldKind.API, ACCOUNT)
        with self._lock:
            current = self._holds.get(key)
            if current is not None and current.until is not None and current.until > since:
                since = current.since  # the same hold, extended
            self._holds[key] = Hold(kind=HoldKind.API, scope=ACCOUNT, reason=reason,
                                    since=since, until=until)

    # --- FOLDER: the scanner ---------------------------------------------------------------

    def folder_unavailable(self, folder: Path, problem: str, now: float) -> None:
        """``folder`` cannot be listed (``problem`` says why); logged once per change."""
        key = (HoldKind.FOLDER, str(folder))
        with self._lock:
            current = self._holds.get(key)
            if current is not None and current.detail == problem:
                return
            self._holds[key] = Hold(kind=HoldKind.FOLDER, scope=str(folder),
                                    reason=FOLDER_UNAVAILABLE, detail=problem,
                                    since=current.since if current else now, until=None)
        log.error("folder_unavailable", path=str(folder), reason=problem)

    def folder_available(self, folder: Path, now: float) -> None:
        """``folder`` can be listed (again)."""
        with self._lock:
            gone = self._holds.pop((HoldKind.FOLDER, str(folder)), None)
        if gone is not None:
            log.info("folder_available_again", path=str(folder),
                     unavailable_seconds=round(now - gone.since, 1))

    def unavailable(self, folder: Path) -> bool:
        """True while ``folder`` cannot be listed."""
        with self._lock:
            return (HoldKind.FOLDER, str(folder)) in self._holds

    # --- both ------------------------------------------------------------------------------

    def forget(self, folders: Iterable[Path]) -> None:
        """These folders left the configuration: their holds go (without a log line)."""
        scopes = {str(folder) for folder in folders}
        with self._lock:
            for key in [k for k in self._holds if k[1] in scopes]:
                del self._holds[key]

    # --- readers ---------------------------------------------------------------------------

    def current(self, now: float) -> list[Hold]:
        """The holds in force at ``now`` (an API hold past its ``until`` is over), the API's
        first, then refusals, then folders."""
        with self._lock:
            over = [k for k, h in self._holds.items()
                    if k[0] is HoldKind.API and h.until is not None and h.until <= now]
            for key in over:
                del self._holds[key]
            holds = list(self._holds.values())
        return sorted(holds, key=lambda h: (_ORDER[h.kind], h.scope))

    def calls_held(self, now: float) -> bool:
        """True while the rate governor holds every API call back (the watchdog: waiting
        that out is no stall)."""
        with self._lock:
            api = self._holds.get((HoldKind.API, ACCOUNT))
            return api is not None and api.until is not None and api.until > now

    def waits_until(self, folder: Path, now: float) -> float | None:
        """Until when the rows of ``folder`` wait for a refusal of it or of the account (the
        dispatcher keeps them meanwhile); None once none is in force or its re-check is
        due (a worker then takes a row, and ``admit`` makes it the re-check)."""
        with self._lock:
            untils = [h.until for h in (self._holds.get((HoldKind.REFUSED, ACCOUNT)),
                                        self._holds.get((HoldKind.REFUSED, str(folder))))
                      if h is not None and h.until is not None and h.until > now]
        return max(untils) if untils else None
