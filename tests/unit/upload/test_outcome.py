"""A file's outcome as a type: which kinds end the row, which look at the path again, and
that a retry time comes with a retry and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from procore_hotfolder.model import FileState, Observation
from procore_hotfolder.state.journal import FileRecord
from procore_hotfolder.upload.outcome import KeepTrying, Outcome, OutcomeKind

K = OutcomeKind
RECORD = FileRecord(
    id=1, folder=Path("/drop"), path=Path("/drop/a.pdf"), state=FileState.QUEUED,
    observation=Observation(1, 1, 1, 1), sha256=None, uuid=None, ticket=None, segments=None,
    association=None, resource_id=None, archive_path=None, final_path=None, attempts=0,
    next_attempt_at=0.0, last_error=None, created_at=0, updated_at=0)


@pytest.mark.parametrize(("kind", "done", "looked_at_again"), [
    (K.ARCHIVED, True, False),
    (K.FAILED, True, False),
    (K.CHANGED, True, True),
    (K.VANISHED, True, True),
    (K.RETRY, False, False),
    (K.LEFT, False, False),
])
def test_what_each_kind_means_to_the_engine(kind: OutcomeKind, done: bool,
                                            looked_at_again: bool) -> None:
    assert (kind.done, kind.looked_at_again) == (done, looked_at_again)


def test_a_retry_time_comes_with_a_retry_and_nothing_else() -> None:
    assert Outcome(K.RETRY, RECORD, retry_at=5.0).retry_at == 5.0
    with pytest.raises(ValueError, match="retry"):
        Outcome(K.RETRY, RECORD)
    for kind in set(K) - {K.RETRY}:
        assert Outcome(kind, RECORD).retry_at is None
        with pytest.raises(ValueError, match=kind.value):
            Outcome(kind, RECORD, retry_at=5.0)


def test_the_daemon_keeps_trying() -> None:
    assert not any(KeepTrying().gives_up(RECORD) for _ in range(100))
