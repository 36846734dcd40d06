"""What every destination answers (``Destination``: whether it files at all, what `check`
asks Procore, what `run`, `check` and `status` warn, the target a folder's keys or a routing
rule give a file), where a file goes as a destination reads it (``Target``, ``Routed``),
what one that files implements (``Filer``: plan, send, find) and the answers of a send."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar, Protocol, TypeVar

from procore_hotfolder.config import FolderSettings, RoutingRule, Template
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

#: A rule's template rendered for one file (None for a template the rule does not have):
#: made valid UTF-8 for Procore and trimmed (``upload.routing``).
Render = Callable[[Template | None], str | None]


class Target(Protocol):
    """Where in its project one file is filed, as one kind of destination names it (a
    Documents folder path, an album, nothing): a frozen value, kept in the journal with
    the file's route as the JSON ``to_json`` gives (its kind's ``load_target`` reads it)."""

    kind: ClassVar[str]

    def describe(self) -> str:
        """The target for people (``Documents/03 Drawings/A``)."""
        ...

    def to_json(self) -> dict[str, Any]:
        ...


class Routed(Protocol):
    """Where one file goes, as a destination reads it (``upload.routing.Route``)."""

    @property
    def project_id(self) -> int | None:
        """The project (None: the company's Documents)."""
        ...

    @property
    def name(self) -> str:
        """The name the file is uploaded and filed under."""
        ...

    @property
    def description(self) -> str | None:
        ...

    @property
    def target(self) -> Target:
        ...


class Filer(Protocol[P]):
    """How one kind of destination plans, sends and finds out after a lost answer."""

    def plan(self, record: FileRecord, route: Routed) -> P:
        """What to send for ``record`` now (may ask Procore, e.g. for folder ids)."""
        ...

    def load(self, raw: Mapping[str, Any], record: FileRecord) -> P:
        """The plan the journal holds as ``raw`` (versioned, or a legacy unversioned row)."""
        ...

    def send(self, record: FileRecord, route: Routed, plan: P) -> Sent:
        """One create. Raises on an error (the outcome may then be unknown)."""
        ...

    def find(self, record: FileRecord, route: Routed, plan: P) -> int | None:
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

    @classmethod
    def folder_target(cls, folder: FolderSettings, relative: PurePosixPath) -> Target:
        """The target of the file at ``relative`` (below the folder) by the folder's own
        keys, as a folder without rules has always filed."""
        ...

    @classmethod
    def rule_target(cls, rule: RoutingRule, render: Render) -> Target:
        """The target a routing rule of this kind gives one file (``render`` fills the
        rule's templates for it)."""
        ...

    @classmethod
    def load_target(cls, raw: Mapping[str, Any]) -> Target:
        """The target ``to_json`` wrote; raises ``KeyError``, ``TypeError`` or
        ``ValueError`` for a malformed one."""
        ...


def stored_id(value: Any) -> int | None:
    """An id as a stored value holds it (None: none); raises ``TypeError`` for anything
    else (a JSON ``true`` is no id)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an id: {value!r}")
    return value
