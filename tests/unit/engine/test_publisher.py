"""What the engine publishes of itself: the settling files as status.json lists them, with
wall-clock times and, for a file a writer holds open, why and since when."""

from __future__ import annotations

from procore_hotfolder.engine.publisher import pending_view
from procore_hotfolder.model import Observation
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
