"""The status snapshot: what the daemon writes is what `status` reads, and reading it does
not load the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.model import display_path
from procore_hotfolder.state.snapshot import (
    SNAPSHOT_NAME,
    SNAPSHOT_PENDING_LIMIT,
    build_snapshot,
    read_snapshot,
    write_snapshot,
)


def _snapshot(**changes: object) -> dict[str, object]:
    parts: dict[str, object] = {
        "pid": 42, "updated": 1000.0, "once": False,
        "counts": {"queued": 1, "delayed": 0, "in_flight": 0}, "waiting": 0, "pending": {},
        "skipped": {}, "modes": {}, "writers": {}, "holds": [], "files_per_hour": None,
        "bound_by": "uploads", "uploading": {}, "last_upload": None}
    parts.update(changes)
    return build_snapshot(**parts)  # type: ignore[arg-type]


def test_the_snapshot_has_the_keys_status_reads() -> None:
    holds = [{"kind": "api", "scope": "account", "reason": "rate_limited", "until": 2000.0},
             {"kind": "folder", "scope": "/drop", "reason": "folder_unavailable",
              "detail": "gone"}]
    snapshot = _snapshot(holds=holds, modes={Path("/drop"): "poll"}, files_per_hour=120.0)
    assert set(snapshot) == {"pid", "updated", "once", "counts", "waiting", "pending",
                             "skipped", "modes", "writers", "holds", "pace",
                             "uploading", "last_upload"}
    assert snapshot["holds"] == holds
    assert snapshot["modes"] == {"/drop": "poll"}
    assert snapshot["pace"] == {"files_per_hour": 120.0, "bound_by": "uploads"}


def test_only_the_latest_skipped_files_are_listed() -> None:
    skipped = {f"/drop/{n}": "symlink" for n in range(SNAPSHOT_PENDING_LIMIT + 5)}
    listed = _snapshot(skipped=skipped)["skipped"]
    assert isinstance(listed, dict) and len(listed) == SNAPSHOT_PENDING_LIMIT
    assert "/drop/4" not in listed and f"/drop/{SNAPSHOT_PENDING_LIMIT + 4}" in listed


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    snapshot = _snapshot(pending={"/drop/a.pdf": {"since": 1.0}})
    write_snapshot(tmp_path, snapshot)
    assert read_snapshot(tmp_path) == json.loads(json.dumps(snapshot))
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_undecodable_name_is_written_as_the_ledger_and_the_log_write_it(
        tmp_path: Path) -> None:
    """status.json stays valid UTF-8: the byte shows as \\xNN, as in uploads.jsonl."""
    snapshot = _snapshot(pending={"/drop/caf\udce9.pdf": {"since": 1.0}},
                         uploading={"/drop/caf\udce9.pdf": {"sent": 1, "total": 2}})
    write_snapshot(tmp_path, snapshot)
    (tmp_path / SNAPSHOT_NAME).read_bytes().decode("utf-8")  # raises if it is not UTF-8
    read = read_snapshot(tmp_path)
    assert read is not None
    assert list(read["pending"]) == list(read["uploading"]) == ["/drop/caf\\xe9.pdf"]
    assert display_path("/drop/caf\udce9.pdf") == "/drop/caf\\xe9.pdf"


def test_a_missing_or_broken_snapshot_reads_as_none(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path) is None
    (tmp_path / SNAPSHOT_NAME).write_text("[1, 2]")
    assert read_snapshot(tmp_path) is None
    (tmp_path / SNAPSHOT_NAME).write_text("{not json")
    assert read_snapshot(tmp_path) is None


def test_a_snapshot_that_cannot_be_written_is_logged_not_raised(tmp_path: Path) -> None:
    with capture_logs() as logs:
        write_snapshot(tmp_path / "missing", _snapshot())
    assert [e["event"] for e in logs] == ["status_snapshot_failed"]
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("module", ["procore_hotfolder.commands.reporting",
                                    "procore_hotfolder.cli"])
def test_status_does_not_load_the_engine(module: str) -> None:
    """`status`, `explain` and `retry` read a JSON file and the journal: neither the
    reporting module nor the command line loads the engine, or watchdog, to do it."""
    code = (f"import sys, {module}\n"
            "engine = {'procore_hotfolder.engine.service',"
            " 'procore_hotfolder.engine.scheduler', 'procore_hotfolder.upload.uploader',"
            " 'procore_hotfolder.engine.compose', 'watchdog'}\n"
            "print(sorted(engine & set(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
