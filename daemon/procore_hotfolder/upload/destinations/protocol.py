"""What every destination implements (plan, send, find), the answers of a send, and the
helpers the destinations share: Procore's clock floor, reading Procore's JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import ValidationFailed
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import FileRecord

#: Version tag of the plans written now (``"v"`` in the journal's JSON).
PLAN_VERSION = 1
#: For plans written before ``not_before`` existed (unversioned rows): how far before the
#: row's last move (our clock) a record may be and still count as the result.
LEGACY_WINDOW = 300.0


class Plan(Protocol):
    """A frozen value: what one send asks Procore for, and what recognises its result."""

    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The plan as the journal stores it: ``{"v": PLAN_VERSION, "kind": ..., ...}``."""
        ...


@dataclass(frozen=True)
class Filed:
    """The send filed the Upload as Procore resource ``resource_id``."""

    resource_id: int | None


@dataclass(frozen=True)
class PlanAgain:
    """Nothing was filed and the plan no longer holds (a folder went): plan afresh."""

    why: str


Sent = Filed | PlanAgain | Plan  # a plan: certainly nothing filed yet, send it next

P = TypeVar("P", bound=Plan)


class Destination(Protocol[P]):
    """How one kind of destination plans, sends and finds out after a lost answer."""

    def plan(self, record: FileRecord, folder: FolderSettings) -> P:
        """What to send for ``record`` now (may ask Procore, e.g. for folder ids)."""
        ...

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> P:
        """The plan the journal holds as ``raw`` (versioned, or a legacy unversioned row)."""
        ...

    def send(self, record: FileRecord, folder: FolderSettings, plan: P) -> Sent:
        """One create. Raises on an error (the outcome may then be unknown)."""
        ...

    def find(self, record: FileRecord, folder: FolderSettings, plan: P) -> int | None:
        """The id of what ``plan``'s send made, if it ran; None when nothing is found."""
        ...


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_time(value: Any) -> float | None:
    """Procore's ISO-8601 ``created_at`` as Unix seconds (None when unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def is_name_clash(error: ValidationFailed) -> bool:
    """A 422 that may say "this name is taken" (Procore: ``name has already been taken``)."""
    text = error.message.lower()
    return "taken" in text or ("name" in text and "exist" in text)


def is_live(entry: Mapping[str, Any]) -> bool:
    """Not in Procore's recycle bin."""
    return not entry.get("is_deleted")


class ProcoreClock:
    """``not_before`` values (Procore's clock floor) and listing bounds."""

    def __init__(self, client: ProcoreClient) -> None:
        self._client = client

    def not_before(self) -> float | None:
        return self._client.procore_time_floor()

    def until(self, local_now: float) -> float:
        """An upper bound for listings: a day past Procore's (or our) present."""
        return (self._client.procore_time_floor() or local_now) + 86400.0


def since(plan_not_before: float | None, record: FileRecord) -> float:
    """The whole second from which a record may be the result of the plan's send."""
    if plan_not_before is not None:
        return float(math.floor(plan_not_before))
    # A legacy row: our clock and a wide window.
    return float(math.floor(record.updated_at - LEGACY_WINDOW))
