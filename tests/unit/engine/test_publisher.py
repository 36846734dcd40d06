"""What the engine publishes of itself: the settling files as status.json lists them, with
wall-clock times and, for a file a writer holds open, why and since when; the pauses the
alerts are told of (a table: which holds, one per folder, an outage across the governor's
pauses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from procore_hotfolder.alerts import HeldFolder
from procore_hotfolder.engine.publisher import PausesToTell, pending_view
from procore_hotfolder.model import Observation
from procore_hotfolder.upload.holds import ACCOUNT, FOLDER_UNAVAILABLE, Hold, HoldKind
from procore_hotfolder.watch.stability import PendingFile


def test_pending_times_are_turned_into_wall_clock() -> None:
    info = PendingFile(observation=Observation(7, 1, 2, 3), first_seen=90.0,
                       last_change=95.0, settle_seconds=10.0)
    view = pending_view([("/drop/a.pdf", info)], wall=5000.0, monotonic=100.0,
                        settle_for=lambda key: 10.0)
    assert view == {"/drop/a.pdf": {"since": 4990.0, "size": 7, "settle_seconds": 10.0}}


def test_a_file_held_by_a_writer_says_why_and_since_when() -> None:
    info = PendingFile(observation=Observation(7, 1, 2, 3), first_seen=90.0,
                       last_change=95.0, settle_seconds=10.0, held="lease refused",
                       held_since=98.0)
    view = pending_view([("/drop/a.pdf", info)], wall=5000.0, monotonic=100.0,
                        settle_for=lambda key: 10.0)
    assert view["/drop/a.pdf"]["held"] == "lease refused"
    assert view["/drop/a.pdf"]["held_since"] == 4998.0


# --- the pauses a person is told of -----------------------------------------------------

DROP = "/srv/drop/tower-a"


def _hold(kind: HoldKind, reason: str, since: float, until: float | None = None, *,
          scope: str = ACCOUNT, detail: str = "") -> Hold:
    return Hold(kind=kind, scope=scope, reason=reason, since=since, until=until, detail=detail)


REFUSED = _hold(HoldKind.REFUSED, "permission", 100.0, 120.0, scope=DROP,
                detail="You do not have access to this project")
LOGIN = _hold(HoldKind.REFUSED, "authentication", 50.0, 70.0, detail="Unauthorized")
UNLISTED = _hold(HoldKind.FOLDER, FOLDER_UNAVAILABLE, 80.0, scope=DROP, detail="missing")


@pytest.mark.parametrize(("holds", "told"), [
    ([], []),
    ([REFUSED], [HeldFolder(Path(DROP), "permission",
                            "You do not have access to this project", 100.0)]),
    ([LOGIN], [HeldFolder(None, "authentication", "Unauthorized", 50.0)]),
    ([UNLISTED], [HeldFolder(Path(DROP), FOLDER_UNAVAILABLE, "missing", 80.0)]),
    # one per scope: the one in force longest
    ([REFUSED, UNLISTED], [HeldFolder(Path(DROP), FOLDER_UNAVAILABLE, "missing", 80.0)]),
    # a spent rate limit ends by itself within the hour: not told
    ([_hold(HoldKind.API, "rate_limited", 100.0, 2000.0)], []),
    # an outage is
    ([_hold(HoldKind.API, "network", 100.0, 130.0)], [HeldFolder(None, "network", "", 100.0)]),
    ([_hold(HoldKind.API, "unavailable", 100.0, 130.0)],
     [HeldFolder(None, "unavailable", "", 100.0)]),
], ids=["none", "refused-folder", "refused-login", "folder-unlisted", "longest-per-folder",
        "rate-limit", "network", "unavailable"])
def test_which_holds_are_told(holds: list[Hold], told: list[HeldFolder]) -> None:
    assert PausesToTell().held(holds, 150.0) == told


def test_an_outage_is_one_while_the_governors_pauses_follow_one_another() -> None:
    """The governor pauses per failed request; between two, a request runs (and fails):
    those pauses are one outage, since the first, until a gap longer than the gap."""
    pauses = PausesToTell(gap_seconds=60.0)
    timeline = [
        (100.0, [_hold(HoldKind.API, "network", 100.0, 110.0)], 100.0),
        (115.0, [], 100.0),  # a request under way: the outage goes on
        (150.0, [_hold(HoldKind.API, "network", 140.0, 170.0)], 100.0),
        (229.0, [], 100.0),  # 59 s after the last pause ended
        (231.0, [], None),   # 61 s: over
        (240.0, [_hold(HoldKind.API, "unavailable", 240.0, 250.0)], 240.0),  # a new one
    ]
    for now, holds, since in timeline:
        told = pauses.held(holds, now)
        assert [h.since for h in told] == ([] if since is None else [since]), now
