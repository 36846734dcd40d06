"""What every destination implements (plan, send, find) and the answers of a send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.state.journal import FileRecord

#: Version tag of the plans written now (``"v"`` in the journal's JSON).
PLAN_VERSION = 1


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
