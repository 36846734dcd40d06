"""Where originals go (archive, failed folder with its sidecar), their relative paths kept."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.errors import ArchiveError
from procore_hotfolder.files import nooverwrite
from procore_hotfolder.files.archiver import (
    archive_path_for,
    failed_path_for,
    move_to_failed,
    write_error_sidecar,
)
from tests.unit.files.support import leftovers, make, settings


def test_paths_keep_relative_location(tmp_path: Path) -> None:
    folder = settings(tmp_path)
    source = folder.path / "tower a" / "level 3" / "plan.pdf"
    assert archive_path_for(folder, source) == folder.archive_dir / "tower a/level 3/plan.pdf"
    assert failed_path_for(folder, source) == tmp_path / "failed" / "tower a/level 3/plan.pdf"
    with pytest.raises(ValueError):
        archive_path_for(folder, tmp_path / "elsewhere.pdf")


# --- failed files and sidecars -------------------------------------------------------------


def test_sidecar_content(tmp_path: Path) -> None:
    failed = make(tmp_path / "failed" / "Überbau plan.pdf")
    info = {"reason": "validation", "detail": "Name ungültig — «bad»", "attempts": 3,
            "time": "2024-05-01T10:00:00Z", "status": 422, "request_id": "req-1",
            "path": tmp_path / "x"}
    sidecar = write_error_sidecar(failed, info)
    assert sidecar == tmp_path / "failed" / "Überbau plan.pdf.error.json"
    raw = sidecar.read_bytes().decode("utf-8")
    assert "ungültig — «bad»" in raw  # ensure_ascii=False
    assert '\n  "reason": "validation"' in raw  # indent 2
    loaded = json.loads(raw)
    assert loaded["status"] == 422 and loaded["path"] == str(tmp_path / "x")
    assert leftovers(tmp_path) == []


def test_sidecar_with_non_utf8_name_is_valid_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.pdf")
    failed = make(tmp_path / name)
    sidecar = write_error_sidecar(failed, {"source": str(failed), "archived": failed})
    loaded = json.loads(sidecar.read_bytes().decode("utf-8"))  # strict UTF-8
    # The odd byte shown as the ledger shows it: \xe9, for a string or a path alike.
    assert loaded["source"] == loaded["archived"] == str(tmp_path) + "/caf\\xe9.pdf"


def test_sidecar_never_overwrites(tmp_path: Path) -> None:
    failed = make(tmp_path / "a.pdf")
    old = make(tmp_path / "a.pdf.error.json", b'{"reason": "older"}')
    sidecar = write_error_sidecar(failed, {"reason": "newer"})
    assert sidecar != old
    assert old.read_bytes() == b'{"reason": "older"}'
    assert json.loads(sidecar.read_text())["reason"] == "newer"


def test_sidecar_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = make(tmp_path / "a.pdf")

    def full(_fd: int, _data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nooverwrite, "_write", full)
    with pytest.raises(ArchiveError, match="disk is full"):
        write_error_sidecar(failed, {"reason": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf"]  # no partial, no temp


def test_move_to_failed_with_clash_keeps_sidecar_beside_its_file(tmp_path: Path) -> None:
    folder = settings(tmp_path)
    first = make(folder.path / "sub" / "a.pdf", b"one")
    second_content = b"two"
    final1 = move_to_failed(folder, first, {"reason": "validation", "detail": "first"})
    make(folder.path / "sub" / "a.pdf", second_content)
    final2 = move_to_failed(folder, folder.path / "sub" / "a.pdf",
                            {"reason": "permission", "detail": "second"})
    assert final1 == tmp_path / "failed" / "sub" / "a.pdf"
    assert final2 == tmp_path / "failed" / "sub" / "a (1).pdf"
    assert final2.read_bytes() == second_content
    side1 = json.loads((tmp_path / "failed" / "sub" / "a.pdf.error.json").read_text())
    side2 = json.loads((tmp_path / "failed" / "sub" / "a (1).pdf.error.json").read_text())
    assert side1["detail"] == "first" and side2["detail"] == "second"


def test_move_to_failed_impossible_leaves_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = settings(tmp_path)
    source = make(folder.path / "a.pdf")
    (tmp_path / "failed").write_bytes(b"a file where the folder should be")
    with capture_logs() as logs:
        assert move_to_failed(folder, source, {"reason": "x"}) is None
    assert source.read_bytes() == b"content"
    events = [e for e in logs if e["event"] == "failed_move_impossible"]
    assert len(events) == 1 and events[0]["path"] == str(source)
    assert events[0]["reason"]
