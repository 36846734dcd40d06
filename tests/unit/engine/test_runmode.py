"""Run modes: `run` never ends by itself nor gives up; `once` gives each file its tries and
ends once nothing moves, naming what it leaves behind."""

from __future__ import annotations

import threading
from pathlib import Path

from procore_hotfolder.engine.runmode import Daemon, Once
from procore_hotfolder.model import FileState
from procore_hotfolder.state.journal import FileRecord
from procore_hotfolder.upload.outcome import Outcome, OutcomeKind
from procore_hotfolder.watch.stability import Observation


def _record(id_: int, error: dict[str, str] | None = None) -> FileRecord:
    return FileRecord(
        id=id_, folder=Path("/drop"), path=Path(f"/drop/{id_}.pdf"), state=FileState.QUEUED,
        observation=Observation(1, 1, id_, 1), sha256=None, uuid=None, ticket=None,
        segments=None, association=None, resource_id=None, archive_path=None, final_path=None,
        attempts=0, next_attempt_at=0.0, last_error=error, created_at=0, updated_at=0)


class FakeEngine:
    def __init__(self, drained: bool, settling: list[tuple[Path, str]] | None = None,
                 unfinished: list[FileRecord] | None = None) -> None:
        self._drained = drained
        self.settling = settling or []
        self.unfinished = unfinished or []

    def drained(self) -> bool:
        return self._drained

    def left_settling(self) -> list[tuple[Path, str]]:
        return self.settling

    def left_unfinished(self) -> list[FileRecord]:
        return self.unfinished


def test_the_daemon_never_gives_up_never_finishes_and_keeps_no_list() -> None:
    mode = Daemon()
    assert (mode.once, mode.watches, mode.rescans, mode.fails_empty) == (False, True, True, True)
    assert not any(mode.gives_up(_record(1)) for _ in range(100))
    mode.noted(Outcome(OutcomeKind.ARCHIVED, _record(1)))
    assert not mode.finished(FakeEngine(drained=True, settling=[(Path("/drop/x"), "empty")]))
    assert mode.summary.archived == [] and mode.summary.exit_code == 0


def test_once_gives_each_file_max_attempts_tries() -> None:
    mode = Once(max_attempts=3, stop=threading.Event())
    assert (mode.once, mode.watches, mode.rescans, mode.fails_empty) == (True, False, False,
                                                                          False)
    assert [mode.gives_up(_record(1)) for _ in range(3)] == [False, False, True]
    assert not mode.gives_up(_record(2))  # counted per file


def test_once_gives_up_at_once_when_stopped() -> None:
    stop = threading.Event()
    mode = Once(max_attempts=10, stop=stop)
    stop.set()
    assert mode.gives_up(_record(1))


def test_once_finishes_only_when_drained_and_names_what_is_left() -> None:
    mode = Once(max_attempts=3, stop=threading.Event())
    mode.noted(Outcome(OutcomeKind.ARCHIVED, _record(1)))
    mode.noted(Outcome(OutcomeKind.FAILED, _record(2), detail="refused"))
    mode.noted(Outcome(OutcomeKind.RETRY, _record(3), retry_at=1.0))
    left_in_place = [(Path("/drop/e"), "empty"), (Path("/drop/w"), "held open by a writer")]
    assert not mode.finished(FakeEngine(drained=False, settling=left_in_place))
    assert mode.summary.left_in_place == []
    left = FakeEngine(drained=True, settling=left_in_place,
                      unfinished=[_record(4, {"detail": "outage"}), _record(5)])
    assert mode.finished(left)
    summary = mode.summary
    assert summary.archived == [Path("/drop/1.pdf")]
    assert summary.failed == [(Path("/drop/2.pdf"), "refused")]
    assert summary.left_in_place == left_in_place
    assert summary.not_uploaded == [(Path("/drop/4.pdf"), "outage"),
                                    (Path("/drop/5.pdf"), "not finished")]
    assert summary.exit_code == 1
