"""The dispatcher: fair across folders, delayed retries, one holder per row."""

from __future__ import annotations

from pathlib import Path

from procore_hotfolder.engine.dispatch import Dispatcher
from procore_hotfolder.model import FileState
from procore_hotfolder.state.journal import FileRecord
from procore_hotfolder.watch.stability import Observation


def _record(id_: int, folder: str, next_attempt_at: float = 0.0) -> FileRecord:
    return FileRecord(
        id=id_, folder=Path(folder), path=Path(folder) / f"{id_}", state=FileState.QUEUED,
        observation=Observation(1, 1, id_, 1), sha256=None, uuid=None, ticket=None,
        segments=None, association=None, resource_id=None, archive_path=None, final_path=None,
        attempts=0, next_attempt_at=next_attempt_at, last_error=None, created_at=0,
        updated_at=0)


def test_new_file_in_another_folder_is_not_stuck_behind_a_backlog() -> None:
    dispatcher = Dispatcher(clock=lambda: 100.0)
    for i in range(1000):
        dispatcher.push(_record(i, "/backlog"))
    dispatcher.push(_record(5000, "/other"))
    taken = [dispatcher.get(timeout=0) for _ in range(3)]
    assert 5000 in [r.id for r in taken if r]


def test_delayed_rows_wait_for_their_time() -> None:
    now = [100.0]
    dispatcher = Dispatcher(clock=lambda: now[0])
    dispatcher.push(_record(1, "/a", next_attempt_at=150.0))
    assert dispatcher.get(timeout=0) is None
    now[0] = 151.0
    got = dispatcher.get(timeout=0)
    assert got is not None and got.id == 1


def test_a_row_is_pushed_once_until_finished() -> None:
    dispatcher = Dispatcher(clock=lambda: 0.0)
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
    dispatcher = Dispatcher(clock=lambda: 100.0)
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
