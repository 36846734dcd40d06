"""What every destination answers (``Destination``: whether it files at all, what `check`
asks Procore, what `run`, `check` and `status` warn), what one that files implements
(``Filer``: plan, send, find) and the answers of a send."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import ProcoreError
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import FileRecord, Journal

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


class Filer(Protocol[P]):
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


class CheckReport(Protocol):
    """Where a destination's online check (`check`) says what it found about a folder."""

    def note(self, text: str) -> None:
        """What the target is, for the folder's line (``Documents folder 'Drawings'``)."""
        ...

    def problem(self, text: str) -> None:
        """Something that keeps files from being filed there: `check` fails."""
        ...

    def refused(self, error: ProcoreError, subject: str) -> None:
        """Procore refused to show ``subject``: a problem, said in Procore's words."""
        ...


class Destination(Protocol):
    """One kind of destination (``folders[].destination``), as a class: everything outside
    ``destinations/`` asks it rather than its name."""

    kind: ClassVar[str]
    #: What `run` logs, and `check` and `status` show, for each folder of this kind.
    warning: ClassVar[str | None]

    @classmethod
    def check(cls, client: ProcoreClient, folder: FolderSettings, report: CheckReport
              ) -> None:
        """Whether the folder's target exists in Procore and may be filed into, as far as
        read calls tell (the folder's project or company is checked before)."""
        ...

    @classmethod
    def filer(cls, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
              ) -> Filer[Any] | None:
        """What files for this kind; None when it files nothing (the Upload stays unfiled)."""
        ...
