"""The engine's waits and limits in one value, chosen by the composition root.

``Timing()`` holds the production values; each is defined, and explained, beside the code
that uses it, and handed to that code by ``compose.build_engine`` (no module reads another's
constant at use). Tests run the engine with shorter waits: ``PROCORE_HOTFOLDER_TIMING``, a
JSON object of changes (``{"requests": {"base": 0.05}, "stall_seconds": 2}``), is read by the
composition root alone, so a daemon a test starts as a real process waits as briefly as one
running in the test's own process. It is for tests only, and logged when set.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from procore_hotfolder.engine.heartbeat import STALL_SECONDS
from procore_hotfolder.engine.scanner import SCAN_WINDOW
from procore_hotfolder.errors import ConfigError
from procore_hotfolder.model import Backoff, Spacing
from procore_hotfolder.procore.retry import RetryPolicy
from procore_hotfolder.state.snapshot import SNAPSHOT_EVERY_SECONDS
from procore_hotfolder.upload.holds import CHECK_BACKOFF
from procore_hotfolder.upload.policy import DEFAULT_BACKOFF, OUTAGE_SPACING
from procore_hotfolder.upload.progress import PROGRESS_EVERY_SECONDS

#: The variable the composition root reads (tests only; undocumented for operators).
TIMING_VARIABLE = "PROCORE_HOTFOLDER_TIMING"


@dataclass(frozen=True)
class Timing:
    """How long the engine waits, and how much it holds in memory, where that is a choice."""

    #: One HTTP request's tries and the waits between them (the request scope).
    requests: RetryPolicy = RetryPolicy()  # noqa: RUF009 - frozen, immutable value
    #: A file's next attempt after a transient error (the file scope).
    file_backoff: Backoff = DEFAULT_BACKOFF
    #: A file's next attempt while Procore is out for everyone (uncharged).
    outage_spacing: Spacing = OUTAGE_SPACING
    #: A paused folder's (or the account's) re-checks.
    pause_checks: Backoff = CHECK_BACKOFF
    #: A loop that has not advanced for this long withholds systemd's watchdog.
    stall_seconds: float = STALL_SECONDS
    #: Files of one folder held in memory before its scan waits for room.
    scan_window: int = SCAN_WINDOW
    #: Seconds between two ``upload_progress`` lines of one upload.
    progress_every: float = PROGRESS_EVERY_SECONDS
    #: Seconds between two writes of ``status.json`` (what `status` and `explain` read).
    snapshot_every: float = SNAPSHOT_EVERY_SECONDS

    def changed(self, changes: Mapping[str, Any]) -> Timing:
        """This timing with ``changes`` (field name -> value; a mapping of its fields for
        ``requests``, ``file_backoff``, ``outage_spacing``, ``pause_checks``)."""
        changed: Timing = _changed(self, changes, "")
        return changed

    def to_json(self) -> str:
        """Every value, as ``changed`` and the environment variable take them."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Timing:
        """Production values, changed by ``PROCORE_HOTFOLDER_TIMING`` when it is set.
        Raises ``ConfigError`` when it does not read."""
        text = environ.get(TIMING_VARIABLE, "").strip()
        if not text:
            return cls()
        try:
            changes = json.loads(text)
            return cls().changed(changes)
        except (ValueError, TypeError) as exc:
            raise ConfigError([f"{TIMING_VARIABLE}: {exc}"]) from exc


def _changed(value: Any, changes: Any, prefix: str) -> Any:
    """``value`` (a frozen dataclass) with ``changes`` applied, nested values in turn; each
    new value of the type the field holds now (a number for a number)."""
    if not isinstance(changes, Mapping):
        raise TypeError(f"{prefix.rstrip('.') or 'the value'}: expected an object of changes")
    fields = {f.name for f in dataclasses.fields(value)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"unknown {', '.join(prefix + name for name in unknown)}")
    new: dict[str, Any] = {}
    for name, given in changes.items():
        current = getattr(value, name)
        if dataclasses.is_dataclass(current):
            new[name] = _changed(current, given, f"{prefix}{name}.")
        elif isinstance(given, bool) or not isinstance(given, int | float):
            raise TypeError(f"{prefix}{name}: expected a number, not {given!r}")
        elif isinstance(current, int) and given != int(given):
            raise ValueError(f"{prefix}{name}: expected a whole number, not {given!r}")
        else:
            new[name] = type(current)(given)
    return dataclasses.replace(value, **new)
