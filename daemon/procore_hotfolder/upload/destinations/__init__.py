"""Filing a stored Upload in Procore: Documents (a folder path below a base folder: the drop
folder's tree mirrored, or a routing rule's path) or Photos (an album by id or by name).

Procore documents no idempotency token for files, file versions or images, so a create
whose answer is lost (timeout, dropped connection, 5xx) may or may not have run. Each
destination therefore works in three steps around the journal:

1. ``plan``: decide what to send and record, before sending, what is needed to recognise
   the result afterwards (a ``Plan``: a frozen value stored as versioned JSON in the
   journal's ``association`` column, with the row moved to ASSOCIATING);
2. ``send``: one create. A definite answer ends it (filed; or "send this other plan", e.g.
   a new version after a name clash; or "plan again", e.g. a cached folder that Procore
   deleted). Any other error leaves the row ASSOCIATING;
3. ``find``: after an unknown outcome, look for what a create that ran would have made.
   Found: filed. Not found: the row goes back to STORED and is planned and sent again.

Recognising "what a create that ran made" rests on Procore's clock. Before each send the
plan records ``not_before``: a time Procore's clock had certainly reached, the ``Date`` of its
latest answer plus the time elapsed here since (``ProcoreClient.procore_time_floor``; free:
it comes from answers we receive anyway). The create runs after the send, so what it makes
has ``created_at >= not_before``; both are compared at whole seconds, as Procore writes them
(``floor(created_at) >= floor(not_before)`` holds for anything made after ``not_before``).
An older photo or document of the same name, older by more than that second, is therefore
no proof. Why not ids, which grow too: they order records only against each other, and
before the send there is no record of ours to order against, so taking a "newest id" would
cost a listing before every send. What time cannot separate: a record of the same name
(and, for photos, the same size) made by someone else in the same album or folder within
about a second before our send, while our answer was lost. When the floor errs it errs
early (never late), and that can only widen this window, never make us miss our own record.


Each kind of destination is one class behind the ``Destination`` protocol (``protocol.py``),
registered in ``KINDS`` under its configuration name: ``documents.Documents`` (its folders in
``folders.FolderTree``), ``photos.Photos`` (its albums by name in ``photos.Albums``),
``unfiled.Unfiled`` (destination "none"). The class answers what the rest of the daemon asks
about a destination: whether it files at all (``filer``), what `check` asks Procore
(``check``), what `run`, `check` and `status` warn (``warning``), and the ``Target`` a file
gets from the folder's own keys (``folder_target``) or from a routing rule
(``rule_target``), kept in the journal with the file's route (``load_target``); nothing
outside this package compares destination names. One that files is a ``Filer`` (plan,
send, find) of a file's route (``Routed``: project, name, description, target); its plans
are frozen dataclasses whose JSON carries ``"v"`` (``PLAN_VERSION``) and ``"kind"``.
``Filing`` is what the uploader calls: it moves the journal row and logs (in the caller's
structlog context: the file's ``path`` and ``file_id``). Which destination a folder, a rule
or a stored route names is read in one place, ``destination_for``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from procore_hotfolder.config import Config, FolderSettings, RoutingRule
from procore_hotfolder.errors import FilingUnconfirmed, JournalError
from procore_hotfolder.model import FileState
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.upload.destinations.documents import (
    DocumentPlan,
    Documents,
    DocumentsTarget,
)
from procore_hotfolder.upload.destinations.photos import PhotoPlan, Photos, PhotosTarget
from procore_hotfolder.upload.destinations.protocol import (
    PLAN_VERSION,
    CheckReport,
    Destination,
    Filed,
    Filer,
    Plan,
    PlanAgain,
    Render,
    Routed,
    Sent,
    Target,
)
from procore_hotfolder.upload.destinations.unfiled import Nowhere, Unfiled

__all__ = [
    "KINDS",
    "MAX_SENDS",
    "PLAN_VERSION",
    "CheckReport",
    "Destination",
    "DocumentPlan",
    "Documents",
    "DocumentsTarget",
    "Filed",
    "Filer",
    "Filing",
    "Nowhere",
    "PhotoPlan",
    "Photos",
    "PhotosTarget",
    "Plan",
    "PlanAgain",
    "Render",
    "Routed",
    "Sent",
    "Target",
    "Unfiled",
    "destination_for",
    "log_warnings",
]

log = structlog.get_logger(__name__)

#: Every kind of destination by its name in the configuration (``folders[].destination``;
#: ``config`` keeps the list of names it accepts).
KINDS: Mapping[str, type[Destination]] = {
    kind.kind: kind for kind in (Documents, Photos, Unfiled)}

#: Sends one ``associate`` call may make (a clash costs one more: create, then version).
MAX_SENDS = 3


def destination_for(named: FolderSettings | RoutingRule | str) -> type[Destination]:
    """The destination a folder's own keys name, or a routing rule, or a stored route (its
    name): the one place that reads a destination's name. Raises ``KeyError`` for a name
    no kind carries (a route stored by a newer release)."""
    return KINDS[named if isinstance(named, str) else named.destination]


def log_warnings(config: Config) -> None:
    """Log what each folder's destination, and each of its rules', warns about (`run`: at
    the start, after a reload): ``destination_warning`` (with ``destination="none"``) for a
    folder (or a rule) whose uploads Procore deletes after 7 days. A folder of rules only has
    no destination of its own."""
    for index, folder in enumerate(config.folders):
        named: list[tuple[str, FolderSettings | RoutingRule]] = [
            (f"folders[{index}]", folder)] if folder.own_target else []
        named += [(f"folders[{index}].rules[{rule.index}]", rule) for rule in folder.rules]
        for key, source in named:
            destination = destination_for(source)
            if destination.warning is not None:
                log.warning("destination_warning", destination=destination.kind, folder=key,
                            path=str(folder.path), detail=destination.warning)


class Filing:
    """Files stored Uploads where their route says, moving the journal row."""

    def __init__(self, journal: Journal, client: ProcoreClient, *,
                 clock: Callable[[], float]) -> None:
        self._journal = journal
        self._clock = clock
        self._filers = {kind: destination.filer(client, journal, clock)
                        for kind, destination in KINDS.items()}

    def files(self, route: Routed) -> bool:
        """Whether the route's destination files anything (destination "none" does not: a
        stored Upload goes on to its ledger line and the archive)."""
        return self._filers[route.target.kind] is not None

    def _for(self, route: Routed) -> Filer[Any]:
        filer = self._filers[route.target.kind]
        if filer is None:  # a row of an older release whose folder became "none" meanwhile
            raise JournalError(f"destination {route.target.kind} files nothing; the row "
                               "waits for a destination that files")
        return filer

    def associate(self, record: FileRecord, route: Routed) -> FileRecord:
        """STORED → ASSOCIATED (filed), or back to STORED (plan again later).

        Errors propagate; with the row ASSOCIATING when the outcome of a send is unknown
        (the next call of ``resolve`` finds out before anything is sent again).
        """
        destination = self._for(route)
        plan: Plan = destination.plan(record, route)
        record = self._journal.move(record, FileState.ASSOCIATING, self._clock(),
                                    association=plan.to_json())
        for _ in range(MAX_SENDS):
            # An error propagates with the row ASSOCIATING; the outcome policy moves it back
            # to STORED when the refusal was certain (a 4xx), else ``resolve`` looks first.
            sent = destination.send(record, route, plan)
            if isinstance(sent, Filed):
                log.info("upload_filed", uuid=record.uuid, kind=plan.kind,
                         resource_id=sent.resource_id)
                return self._journal.move(record, FileState.ASSOCIATED, self._clock(),
                                          resource_id=sent.resource_id)
            if isinstance(sent, PlanAgain):
                log.info("association_replanned", uuid=record.uuid, why=sent.why)
                return self._journal.move(record, FileState.STORED, self._clock(),
                                          association=None)
            plan = sent  # certainly nothing filed yet: record the next request, then send
            log.info("association_next", uuid=record.uuid, plan=plan.to_json())
            record = self._journal.move(record, FileState.ASSOCIATING, self._clock(),
                                        association=plan.to_json())
        raise FilingUnconfirmed(f"Procore's answers changed the plan {MAX_SENDS} times; "
                                "planned afresh")

    def resolve(self, record: FileRecord, route: Routed) -> FileRecord:
        """ASSOCIATING after an unknown outcome: ASSOCIATED when what the send would have
        made is found, else STORED (to be sent again). Never sends.

        Raises ``JournalError`` for an ASSOCIATING row without a plan, and what the lookup
        raises.
        """
        destination = self._for(route)
        if record.association is None:
            raise JournalError(f"journal row {record.id} is associating without a plan")
        plan = destination.load(record.association, record)
        found = destination.find(record, route, plan)
        if found is not None:
            log.info("association_confirmed", uuid=record.uuid, resource_id=found)
            return self._journal.move(record, FileState.ASSOCIATED, self._clock(),
                                      resource_id=found)
        log.info("association_not_found_retrying", uuid=record.uuid)
        return self._journal.move(record, FileState.STORED, self._clock(), association=None)
