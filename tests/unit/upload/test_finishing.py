"""The last step: the archive move, then the ledger line saying where the original really
is, then ARCHIVED; and the same end after a crash at any instant between them.

A crash is a ``Crash`` (a BaseException, as a SIGKILL leaves no handler a chance) raised
right after one step; a restart is a fresh ``Finishing`` over the same journal, ledger and
folders. Each row then ends with exactly one ledger line for the file, naming where the
file is. Real journal, ledger and files in ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import Config, parse_config
from procore_hotfolder.errors import FileChanged, FileOpenForWriting, FileVanished
from procore_hotfolder.files import sourcefile
from procore_hotfolder.files.clash_names import free_name
from procore_hotfolder.model import FileState
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.upload import finishing
from procore_hotfolder.upload.finishing import Finishing
from procore_hotfolder.upload.routing import folder_route
from procore_hotfolder.watch.writers import Writers

DATA = b"%PDF-1.7 the uploaded version\n"


class Crash(BaseException):
    """The process dies here."""


def _config(tmp_path: Path, destination: str) -> Config:
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state")},
           "folders": [{"path": str(tmp_path / "drop"), "destination": destination,
                        "project_id": 7}]}
    return parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})


class Rig:
    """A file uploaded (and, documents, filed), its row STORED or ASSOCIATED."""

    def __init__(self, tmp_path: Path, destination: str = "documents") -> None:
        self.config = _config(tmp_path, destination)
        self.folder = self.config.folders[0]
        self.route = folder_route(self.folder, "scan.pdf")
        self.folder.path.mkdir()
        self.file = self.folder.path / "scan.pdf"
        self.file.write_bytes(DATA)
        self.archive = self.folder.archive_dir / "scan.pdf"
        self.journal = Journal.open(self.config.daemon.state_dir)
        self.ledger = Ledger(self.config.daemon.state_dir)
        self.writer_fds: list[int] = []
        observation = sourcefile.observe(self.file)
        assert observation is not None
        [row] = self.journal.enqueue([(self.folder.path, self.file, observation)], 1.0)
        row = self.journal.move(row, FileState.UPLOADING, 2.0, uuid="UUID1")
        row = self.journal.move(row, FileState.STORED, 3.0,
                                sha256=hashlib.sha256(DATA).hexdigest())
        if destination != "none":
            row = self.journal.move(row, FileState.ASSOCIATING, 4.0, association={"v": 1})
            row = self.journal.move(row, FileState.ASSOCIATED, 5.0, resource_id=42)
        self.id = row.id

    def finishing(self) -> Finishing:
        """A fresh one, as after a restart."""
        return Finishing(self.journal, self.ledger, clock=lambda: 10.0, writers=Writers())

    def finish(self, finisher: Finishing | None = None) -> FileRecord:
        return (finisher or self.finishing()).finish(self.row(), self.folder, self.route, 1)

    def row(self) -> FileRecord:
        return self.journal.get(self.id)

    def lines(self) -> list[dict[str, Any]]:
        path = self.ledger.path
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def take_the_archive_name(self) -> None:
        """Someone else's file already has the original's archive name."""
        self.archive.parent.mkdir(parents=True, exist_ok=True)
        self.archive.write_bytes(b"another file of that name")

    def open_writer(self) -> None:
        self.writer_fds.append(os.open(self.file, os.O_WRONLY | os.O_APPEND))

    def close_writers(self) -> None:
        for fd in self.writer_fds:
            os.close(fd)
        self.writer_fds.clear()

    def close(self) -> None:
        self.close_writers()
        self.journal.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


def _archived_where_the_ledger_says(rig: Rig, expected: Path) -> None:
    row = rig.row()
    [line] = rig.lines()
    assert row.state is FileState.ARCHIVED and row.final_path == expected
    assert line["uuid"] == "UUID1" and line["archived"] == str(expected)
    assert expected.read_bytes() == DATA and not rig.file.exists()


@pytest.mark.parametrize("taken", [False, True], ids=["name-free", "name-taken"])
def test_the_ledger_says_where_the_original_went(rig: Rig, taken: bool) -> None:
    """The name is taken between the choice of the archive path and the move: the move
    picks ``scan (1).pdf``, and the ledger line (written after it) says so."""
    record = rig.row()
    finisher = rig.finishing()
    if taken:
        move = rig.journal.move

        def then_take(*args: Any, **columns: Any) -> FileRecord:
            moved = move(*args, **columns)
            if "archive_path" in columns:
                rig.take_the_archive_name()
            return moved

        rig.journal.move = then_take  # type: ignore[method-assign]
    finisher.finish(record, rig.folder, rig.route, 1)
    _archived_where_the_ledger_says(
        rig, rig.archive.with_name("scan (1).pdf") if taken else rig.archive)


def _crash_after(monkeypatch: pytest.MonkeyPatch, obj: Any, name: str,
                 when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Make ``obj.name`` run, then crash (when ``when`` says so of its arguments)."""
    real = getattr(obj, name)

    def then_crash(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if when(*args, **kwargs):
            raise Crash(name)
        return result

    monkeypatch.setattr(obj, name, then_crash)


def _half_move(source: Path, target: Path, *args: Any, **kwargs: Any) -> Path:
    """``move_no_overwrite`` cut short between its link() and its unlink()."""
    final = free_name(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, final)
    raise Crash("between link and unlink")


CRASHES = ["archive-path-recorded", "half-moved", "moved", "ledger-line-written"]


@pytest.mark.parametrize("taken", [False, True], ids=["name-free", "name-taken"])
@pytest.mark.parametrize("destination", ["documents", "none"])
@pytest.mark.parametrize("crash", CRASHES)
def test_a_crash_at_any_instant_ends_with_one_true_ledger_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: str, destination: str,
        taken: bool) -> None:
    rig = Rig(tmp_path, destination)
    try:
        if taken:
            rig.take_the_archive_name()
        first = rig.finishing()
        if crash == "archive-path-recorded":
            _crash_after(monkeypatch, rig.journal, "move",
                         lambda *a, **columns: "archive_path" in columns)
        elif crash == "half-moved":
            monkeypatch.setattr(finishing, "move_no_overwrite", _half_move)
        elif crash == "moved":
            _crash_after(monkeypatch, finishing, "move_no_overwrite")
        else:
            _crash_after(monkeypatch, rig.ledger, "append")
        with pytest.raises(Crash):
            rig.finish(first)
        monkeypatch.undo()  # the restart: no crash any more
        assert rig.row().state is not FileState.ARCHIVED
        rig.finish()
        _archived_where_the_ledger_says(
            rig, rig.archive.with_name("scan (1).pdf") if taken else rig.archive)
        expected_names = {"scan.pdf", "scan (1).pdf"} if taken else {"scan.pdf"}
        assert {p.name for p in rig.folder.archive_dir.iterdir()} == expected_names
    finally:
        rig.close()


def test_a_copy_to_another_filesystem_is_found_by_its_content(rig: Rig) -> None:
    """Moved across filesystems (a copy: another inode, the same mtime) before a crash: the
    copy is found by size, mtime and SHA-256, past a file of the same size and mtime."""
    stat = os.stat(rig.file)
    rig.journal.move(rig.row(), FileState.ASSOCIATED, 6.0, archive_path=rig.archive)
    rig.archive.parent.mkdir(parents=True)
    decoy = rig.archive
    decoy.write_bytes(bytes(len(DATA)))
    copy = rig.archive.with_name("scan (1).pdf")
    copy.write_bytes(DATA)
    for path in (decoy, copy):
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rig.file.unlink()
    rig.finish()
    _archived_where_the_ledger_says(rig, copy)


def test_a_line_written_before_a_crash_is_how_the_row_ends(rig: Rig) -> None:
    """A writer held the original at the archive move: the ledger line of what was filed
    says ``archived: null`` and the row is to end CHANGED; the process dies before that is
    committed, and the writer lets go meanwhile. After the restart the row still ends as the
    ledger says: not archived, no second line."""
    rig.open_writer()
    with pytest.raises(FileOpenForWriting):
        rig.finish()
    rig.close_writers()
    with pytest.raises(FileChanged) as raised:
        rig.finish()
    assert not isinstance(raised.value, FileVanished)
    assert [line["archived"] for line in rig.lines()] == [None]
    assert rig.file.exists() and not rig.folder.archive_dir.exists()
    rig.file.unlink()
    with pytest.raises(FileVanished):
        rig.finish()
    assert len(rig.lines()) == 1


def _ledgered_by_an_older_release(rig: Rig) -> None:
    """The row as an older release left it (this one never moves a row to LEDGERED)."""
    with rig.journal._transaction() as db:
        db.execute("UPDATE files SET state = 'ledgered' WHERE id = ?", (rig.id,))


@pytest.mark.parametrize("state", [FileState.LEDGERED, FileState.ASSOCIATED])
def test_a_line_written_before_the_move_by_an_older_release_stands(rig: Rig,
                                                                   state: FileState) -> None:
    """Older releases wrote the ledger line (with the planned archive path) before the move,
    then LEDGERED (a crash could come between): the move is done now, the line kept."""
    record = rig.journal.move(rig.row(), rig.row().state, 6.0, archive_path=rig.archive)
    rig.ledger.append(rig.finishing().ledger_entry(record, rig.folder, rig.route, 1,
                                                        rig.archive))
    if state is FileState.LEDGERED:
        _ledgered_by_an_older_release(rig)
    rig.finish()
    _archived_where_the_ledger_says(rig, rig.archive)


def test_a_row_an_older_release_left_ledgered_as_changed_ends_changed(rig: Rig) -> None:
    """Older releases recorded a changed file's line (``archived: null``) and moved the row
    LEDGERED, then CHANGED: cut short between the two, it ends CHANGED now."""
    record = rig.row()
    rig.ledger.append(rig.finishing().ledger_entry(record, rig.folder, rig.route, 1, None))
    _ledgered_by_an_older_release(rig)
    rig.file.write_bytes(DATA + b"re-saved")
    with pytest.raises(FileChanged):
        rig.finish()
    assert len(rig.lines()) == 1 and rig.file.exists()
