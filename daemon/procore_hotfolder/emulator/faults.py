"""Fault injection for the emulator: what goes wrong, how often, and scripted one-off failures.

Every attribute may be changed at any time from any thread (tests do so while uploads run).
Plain attribute assignment is atomic in CPython; the scripted-failure queue and the random
generator are guarded by a lock so that seeded runs stay reproducible.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any

#: Request kinds a scripted failure can target.
FAILURE_KINDS = frozenset({"api", "token", "storage", "segment"})

#: Tools a project can have switched off (see ``refuse_project``).
REFUSABLE_TOOLS = frozenset({"documents", "photos"})

#: Status meaning "drop the connection without answering" in a scripted failure.
DROP = 0

#: How a rate window counts (``rate_limit_kind``, ``spike_limit_kind``; see ``rates``):
#: the calls of the last N seconds, periods started by the first call, or periods on the
#: clock.
WINDOW_KINDS = ("sliding", "first_call", "clock")


@dataclass
class ScriptedFailure:
    """``remaining`` more requests of ``kind`` (whose path contains ``path_contains``) fail."""

    remaining: int
    status: int
    kind: str
    path_contains: str | None


class Faults:
    """The emulator's fault settings; see the module docstring for thread-safety.

    Attributes:
        error_rate: share (0..1) of API calls answered ``error_status`` with a random body shape.
        error_status: status used by ``error_rate`` (default 500).
        drop_rate: share of API calls whose connection is closed without an answer.
        storage_error_rate / storage_drop_rate: the same for storage POSTs and segment PUTs.
        token_error_rate: share of token requests answered ``error_status``.
        delay_seconds: sleep before answering each API call.
        storage_delay_seconds: sleep before answering each storage request.
        token_lifetime: lifetime (seconds) of newly issued tokens, reported as ``expires_in``.
        upload_ttl: seconds an Upload's storage policy / segment URLs stay valid.
        expired_uploads: how many of the next Uploads are handed out expired already (their
            policy or part URLs a minute past their end), as if the client had sat on them.
        outage: every token and API request answers 503 (``outage_mode="503"``) or is
            dropped (``outage_mode="drop"``).
        forbidden_projects: project ids the service account has not been granted (403, and
            left out of List Projects).
        disabled_tools: project id -> tools ("documents", "photos") disabled there (403 on
            that tool's routes).
        app_disconnected: the app is not connected to the company: every API call about a
            company or project answers 403 "App is not connected to this company".
        rate_limit: ``(limit, window_seconds)`` of the hourly window, or None for no limit.
        rate_limit_kind: how the hourly window counts, one of ``WINDOW_KINDS``: "sliding"
            (the default: Procore does not say, and it is the least convenient for a
            client), "first_call" or "clock".
        spike_limit: ``(limit, window_seconds)`` of the 10-second spike window, or None (the
            default: Procore's numbers change without notice, and a spike window on by
            default would slow every test; switch it on where a test wants it).
        spike_limit_kind: how the spike window counts: "sliding" (the default, as Procore
            documents it), "first_call" or "clock".
        timeout_rate: share of API calls answered 408 Request Timeout.
        listing_timeout_entries: a folder listing asked for without ``exclude_folders``,
            ``exclude_files`` or ``show_latest_file_version_only`` that would hold more than
            this many entries (folders + files + file versions) answers 408; None = never.
        images_ignore_sort_and_dates: List Images ignores ``sort`` and ``filters[created_at]``
            and answers every image of the project (or of the album asked for) oldest first,
            in id order. Procore's documentation lists both parameters but promises neither
            is honoured; this is the least convenient reading for a client that looks for
            what it created after a lost answer.
        upload_retention: seconds after which an Upload not associated with a Documents file,
            file version or image is deleted (Procore: "within a week").
        failing_segments: part numbers whose PUT answers 500.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random()  # noqa: S311 - fault dice, not crypto
        self._scripted: list[ScriptedFailure] = []
        self.token_generation = 0
        self.error_rate = 0.0
        self.error_status = 500
        self.drop_rate = 0.0
        self.storage_error_rate = 0.0
        self.storage_drop_rate = 0.0
        self.token_error_rate = 0.0
        self.delay_seconds = 0.0
        self.storage_delay_seconds = 0.0
        self.token_lifetime: float = 5400
        self.upload_ttl: float = 3600
        self.expired_uploads = 0
        self.outage = False
        self.outage_mode = "503"
        self.forbidden_projects: set[int] = set()
        self.disabled_tools: dict[int, set[str]] = {}
        self.app_disconnected = False
        self.rate_limit: tuple[int, float] | None = (3600, 3600.0)
        self.failing_segments: set[int] = set()
        self.rate_limit_kind = "sliding"
        self.spike_limit: tuple[int, float] | None = None
        self.spike_limit_kind = "sliding"
        self.timeout_rate = 0.0
        self.listing_timeout_entries: int | None = None
        self.images_ignore_sort_and_dates = False
        self.upload_retention: float = 7 * 86_400

    # --- randomness ------------------------------------------------------------------------

    def seed(self, n: int) -> None:
        """Make every later random decision reproducible."""
        with self._lock:
            self._random.seed(n)

    def chance(self, rate: float) -> bool:
        """True with probability ``rate`` (never for 0, always for >= 1)."""
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self._lock:
            return self._random.random() < rate

    def choice(self, options: int) -> int:
        """A random index in ``range(options)``."""
        with self._lock:
            return self._random.randrange(options)

    # --- uploads ---------------------------------------------------------------------------

    def ttl_for_new_upload(self) -> float:
        """``upload_ttl``, or -60 s while ``expired_uploads`` lasts (counting it down)."""
        with self._lock:
            if self.expired_uploads > 0:
                self.expired_uploads -= 1
                return -60.0
            return float(self.upload_ttl)

    # --- tokens ----------------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self.token_generation += 1

    # --- per-project refusals ---------------------------------------------------------------

    def refuse_project(self, project_id: int, reason: str = "not_granted",
                       tool: str | None = None) -> None:
        """Make a project answer 403 from now on, as Procore does when ``reason`` is
        "not_granted" (the service account has not been granted the project: also left out
        of List Projects) or "tool_disabled" (``tool``, "documents" or "photos", is off in
        the project). Sets are replaced, never changed in place, so readers need no lock."""
        if reason == "not_granted":
            with self._lock:
                self.forbidden_projects = self.forbidden_projects | {project_id}
        elif reason == "tool_disabled":
            if tool not in REFUSABLE_TOOLS:
                raise ValueError(f"tool must be one of {sorted(REFUSABLE_TOOLS)}")
            with self._lock:
                tools = self.disabled_tools.get(project_id, set()) | {tool}
                self.disabled_tools = {**self.disabled_tools, project_id: tools}
        else:
            raise ValueError("reason must be 'not_granted' or 'tool_disabled'")

    def allow_project(self, project_id: int, tool: str | None = None) -> None:
        """Lift a project's refusals (only that tool's being off when ``tool`` is given)."""
        with self._lock:
            tools = dict(self.disabled_tools)
            if tool is None:
                self.forbidden_projects = self.forbidden_projects - {project_id}
                tools.pop(project_id, None)
            else:
                rest = tools.get(project_id, set()) - {tool}
                if rest:
                    tools[project_id] = rest
                else:
                    tools.pop(project_id, None)
            self.disabled_tools = tools

    # --- scripted failures -----------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 500,
        kind: str = "api",
        path_contains: str | None = None,
    ) -> None:
        """Make the next ``count`` requests of ``kind`` fail with ``status``.

        ``kind`` is "api", "token", "storage" (storage POST) or "segment" (segment PUT);
        ``status`` 0 drops the connection instead of answering. Scripts queue up and are
        consumed in the order they were added.
        """
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        if count > 0:
            with self._lock:
                self._scripted.append(ScriptedFailure(count, status, kind, path_contains))

    def take_scripted(self, kind: str, path: str) -> int | None:
        """Consume one scripted failure matching this request; its status, or None."""
        with self._lock:
            for entry in self._scripted:
                if entry.kind == kind and (
                    entry.path_contains is None or entry.path_contains in path
                ):
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._scripted.remove(entry)
                    return entry.status
        return None

    def clear_scripted(self) -> None:
        """Forget every pending scripted failure."""
        with self._lock:
            self._scripted.clear()

    # --- admin -----------------------------------------------------------------------------

    _FLOATS = (
        "error_rate",
        "drop_rate",
        "storage_error_rate",
        "storage_drop_rate",
        "token_error_rate",
        "delay_seconds",
        "storage_delay_seconds",
        "token_lifetime",
        "upload_ttl",
        "timeout_rate",
        "upload_retention",
    )

    def update(self, values: dict[str, Any]) -> None:
        """Apply a JSON object of settings (the admin endpoint); raises ValueError on bad input.

        Besides the attributes, accepts ``seed`` (int), ``revoke_tokens`` (true),
        ``fail_next`` (an object or list of objects with the arguments of ``fail_next``),
        ``clear_fail_next`` (true), ``refuse_project`` (``{"project_id", "reason", "tool"}``
        or a list of them) and ``allow_project`` (a project id, ``{"project_id", "tool"}``,
        or a list of them).
        """
        for name, value in values.items():
            if name in self._FLOATS:
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise ValueError(f"{name} must be a finite number >= 0")
                setattr(self, name, number)
            elif name == "error_status":
                self.error_status = int(value)
            elif name == "expired_uploads":
                self.expired_uploads = max(0, int(value))
            elif name == "outage":
                self.outage = bool(value)
            elif name in _CHOICES:
                if value not in _CHOICES[name]:
                    raise ValueError(f"{name} must be one of {list(_CHOICES[name])}")
                setattr(self, name, str(value))
            elif name in ("forbidden_projects", "failing_segments"):
                setattr(self, name, {int(v) for v in value})
            elif name in ("rate_limit", "spike_limit"):
                setattr(self, name, _window(value))
            elif name == "listing_timeout_entries":
                self.listing_timeout_entries = None if value is None else max(0, int(value))
            elif name == "app_disconnected":
                self.app_disconnected = bool(value)
            elif name == "images_ignore_sort_and_dates":
                self.images_ignore_sort_and_dates = bool(value)
            elif name == "disabled_tools":
                tools = {int(k): {str(t) for t in v} for k, v in dict(value).items()}
                if any(t - REFUSABLE_TOOLS for t in tools.values()):
                    raise ValueError(f"tools must be among {sorted(REFUSABLE_TOOLS)}")
                self.disabled_tools = {k: v for k, v in tools.items() if v}
            elif name == "refuse_project":
                for spec in value if isinstance(value, list) else [value]:
                    self.refuse_project(int(spec["project_id"]),
                                        str(spec.get("reason", "not_granted")), spec.get("tool"))
            elif name == "allow_project":
                for spec in value if isinstance(value, list) else [value]:
                    if isinstance(spec, dict):
                        self.allow_project(int(spec["project_id"]), spec.get("tool"))
                    else:
                        self.allow_project(int(spec))
            elif name == "seed":
                self.seed(int(value))
            elif name == "revoke_tokens":
                if value:
                    self.revoke_tokens()
            elif name == "clear_fail_next":
                if value:
                    self.clear_scripted()
            elif name == "fail_next":
                for spec in value if isinstance(value, list) else [value]:
                    self.fail_next(
                        int(spec["count"]),
                        int(spec.get("status", 500)),
                        str(spec.get("kind", "api")),
                        spec.get("path_contains"),
                    )
            else:
                raise ValueError(f"unknown fault setting {name!r}")

    def snapshot(self) -> dict[str, Any]:
        """The current settings as JSON-ready values."""
        with self._lock:
            scripted = [
                {
                    "count": s.remaining,
                    "status": s.status,
                    "kind": s.kind,
                    "path_contains": s.path_contains,
                }
                for s in self._scripted
            ]
        out: dict[str, Any] = {name: getattr(self, name) for name in self._FLOATS}
        out.update(
            error_status=self.error_status,
            expired_uploads=self.expired_uploads,
            outage=self.outage,
            outage_mode=self.outage_mode,
            forbidden_projects=sorted(self.forbidden_projects),
            failing_segments=sorted(self.failing_segments),
            rate_limit=list(self.rate_limit) if self.rate_limit else None,
            rate_limit_kind=self.rate_limit_kind,
            spike_limit=list(self.spike_limit) if self.spike_limit else None,
            spike_limit_kind=self.spike_limit_kind,
            listing_timeout_entries=self.listing_timeout_entries,
            app_disconnected=self.app_disconnected,
            images_ignore_sort_and_dates=self.images_ignore_sort_and_dates,
            disabled_tools={str(k): sorted(v) for k, v in self.disabled_tools.items()},
            token_generation=self.token_generation,
            fail_next=scripted,
        )
        return out


#: Settings that take one of a few words.
_CHOICES = {
    "outage_mode": ("503", "drop"),
    "rate_limit_kind": WINDOW_KINDS,
    "spike_limit_kind": WINDOW_KINDS,
}


def _window(value: Any) -> tuple[int, float] | None:
    """``[limit, seconds]`` from the admin API (None switches the window off)."""
    if value is None:
        return None
    limit, seconds = int(value[0]), float(value[1])
    if limit < 0 or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("a rate window is [limit >= 0, seconds > 0]")
    return limit, seconds
