"""The dispatcher: fair across folders, delayed retries, one holder per row, a refused
folder's rows kept until its re-check; retry times on the wall clock, waits on the monotonic
one."""

from __future__ import annotations

from pathlib import Path

from procore_hotfolder.engine.dispatch import Dispatcher
from procore_hotfolder.model import FileState
from procore_hotfolder.state.journal import FileRecord
from procore_hotfolder.upload.holds import HoldBoard
from procore_hotfolder.watch.stability import Observation


def _record(id_: int, folder: str, next_attempt_at: float = 0.0) -> FileRecord:
    return FileRecord(
        id=id_, folder=Path(folder), path=Path(folder) / f"{id_}", state=FileState.QUEUED,
        observation=Observation(1, 1, id_, 1), sha256=None, uuid=None, ticket=None,
        segments=None, association=None, resource_id=None, archive_path=None, final_path=None,
        attempts=0, next_attempt_at=next_attempt_at, last_error=None, created_at=0,
        updated_at=0)


def test_new_file_in_another_folder_is_not_stuck_behind_a_backlog() -> None:
    dispatcher = Dispatcher(wall=lambda: 100.0)
    for i in range(1000):
        dispatcher.push(_record(i, "/backlog"))
    dispatcher.push(_record(5000, "/other"))
    taken = [dispatcher.get(timeout=0) for _ in range(3)]
    assert 5000 in [r.id for r in taken if r]


def test_delayed_rows_wait_for_their_time() -> None:
    now = [100.0]
    dispatcher = Dispatcher(wall=lambda: now[0])
    dispatcher.push(_record(1, "/a", next_attempt_at=150.0))
    assert dispatcher.get(timeout=0) is None
    now[0] = 151.0
    got = dispatcher.get(timeout=0)
    assert got is not None and got.id == 1


def test_a_row_is_pushed_once_until_finished() -> None:
    dispatcher = Dispatcher(wall=lambda: 0.0)
    record = _record(1, "/a")
    dispatcher.push(record)
    dispatcher.push(record)
    assert dispatcher.get(timeout=0) is not None
    assert dispatcher.get(timeout=0) is None
    assert not dispatcher.idle()
    dispatcher.finished(record, None)
    assert dispatcher.idle()


def test_release_hands_out_a_folders_waiting_rows_now() -> None:
    """A reload re-checks a pause at once: the rows waiting for it come out of the heap."""
    dispatcher = Dispatcher(wall=lambda: 100.0)
    dispatcher.push(_record(1, "/paused", next_attempt_at=900.0))
    dispatcher.push(_record(2, "/other", next_attempt_at=900.0))
    assert dispatcher.get(timeout=0) is None
    dispatcher.release({Path("/paused")})
    got = dispatcher.get(timeout=0)
    assert got is not None and got.id == 1
    assert dispatcher.get(timeout=0) is None
    dispatcher.release(None)
    got = dispatcher.get(timeout=0)
    assert got is not None and got.id == 2


def test_a_refused_folders_rows_wait_in_the_queue_until_its_recheck_is_due() -> None:
    """Under `run` the dispatcher asks the board of holds: while a refused folder's re-check
    is not due its rows stay queued (they used to go to a worker each, to be read from the
    journal and put back); other folders flow; at the re-check a row goes, the pipeline makes
    it the re-check, and the rest go once Procore answers."""
    now = [100.0]
    board = HoldBoard()
    board.pause("/paused", {"reason": "permission"}, now=100.0, rand=0.5, sent_at=100.0)
    dispatcher = Dispatcher(wall=lambda: now[0], held=board.waits_until)
    for i in range(5):
        dispatcher.push(_record(i, "/paused"))
    dispatcher.push(_record(9, "/other"))
    got = dispatcher.get(timeout=0)
    assert got is not None and got.id == 9
    assert dispatcher.get(timeout=0) is None
    assert dispatcher.ready(Path("/paused")) == 5  # in memory: its scan window counts them
    now[0] = 120.0  # the re-check is due
    probe = dispatcher.get(timeout=0)
    assert probe is not None and probe.id == 0
    assert board.admit(("/paused",), now[0]) is None  # what the pipeline does with it
    assert dispatcher.get(timeout=0) is None
    board.lift(("/paused",), 121.0)
    assert [job.id for job in iter(lambda: dispatcher.get(timeout=0), None)] == [1, 2, 3, 4]


def test_without_the_board_a_refused_folders_rows_go_to_the_workers() -> None:
    """`once`: each try of a paused file counts towards giving up, so the rows go."""
    board = HoldBoard()
    board.pause("/paused", {"reason": "permission"}, now=100.0, rand=0.5, sent_at=100.0)
    dispatcher = Dispatcher(wall=lambda: 101.0)
    dispatcher.push(_record(1, "/paused"))
    got = dispatcher.get(timeout=0)
    assert got is not None and got.id == 1


def test_get_measures_its_timeout_on_the_monotonic_clock() -> None:
    """A timeout is a duration (monotonic); retry times are wall-clock: a wall clock far
    away changes neither."""
    ticks = iter([0.0, 10.0])
    dispatcher = Dispatcher(wall=lambda: 5e9, monotonic=lambda: next(ticks))
    dispatcher.push(_record(1, "/a", next_attempt_at=5e9 + 60))
    assert dispatcher.get(timeout=5.0) is None  # at once: 10 s passed on its clock
    assert dispatcher.counts() == {"queued": 0, "delayed": 1, "in_flight": 0}
