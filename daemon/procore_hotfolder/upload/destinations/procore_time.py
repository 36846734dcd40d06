"""Procore's clock, as the destinations use it to recognise what a create made after its
answer was lost: ``not_before`` (a time Procore's clock had certainly reached before the
send), listing bounds, and the whole second from which a record may be the send's result
(see the package docstring)."""

from __future__ import annotations

import math

from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import FileRecord

#: For plans written before ``not_before`` existed (unversioned rows): how far before the
#: row's last move (our clock) a record may be and still count as the result.
LEGACY_WINDOW = 300.0


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
