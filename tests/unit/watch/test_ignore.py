"""Which names are candidates: the built-in ignore list, exclude patterns, archive and failed
folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.watch.ignore import BUILTIN_IGNORES, IgnoreRules


def settings(root: Path, **overrides: Any) -> FolderSettings:
    values: dict[str, Any] = {"path": root, "project_id": 1,
                              "archive_dir": root / ".archive", "failed_dir": root / ".failed"}
    values.update(overrides)
    return FolderSettings(**values)


# --- ignore rules --------------------------------------------------------------------------

ROOT = Path("/srv/drop")

# One example name for every built-in pattern, with the reason it must produce.
BUILTIN_EXAMPLES = [
    ("~$report.docx", "pattern ~$*"),
    ("~budget.tmp", "pattern ~*.tmp"),
    ("scan.tmp", "pattern *.tmp"),
    ("scan.temp", "pattern *.temp"),
    ("movie.part", "pattern *.part"),
    ("movie.partial", "pattern *.partial"),
    ("setup.exe.crdownload", "pattern *.crdownload"),
    ("plan.pdf.download", "pattern *.download"),
    ("notes.txt.swp", "pattern *.swp"),
    ("notes.txt~", "pattern *~"),
    ("Thumbs.db", "pattern Thumbs.db"),
    ("desktop.ini", "pattern desktop.ini"),
    ("video.mkv.!ut", "pattern *.!ut"),
    ("big.iso.filepart", "pattern *.filepart"),
    ("$RECYCLE.BIN", "pattern $RECYCLE.BIN"),
    ("System Volume Information", "pattern System Volume Information"),
    ("lost+found", "pattern lost+found"),
    ("@eaDir", "pattern @eaDir"),
    ("#recycle", "pattern #recycle"),
    # CAD: AutoCAD drawing locks and autosaves, Revit backups (four digits before .rvt).
    ("A-101.dwl", "pattern *.dwl"),
    ("A-101.dwl2", "pattern *.dwl2"),
    ("A-101_1_1_5678.sv$", "pattern *.sv$"),
    ("A-101.ac$", "pattern *.ac$"),
    ("Tower.0001.rvt", "pattern *.[0-9][0-9][0-9][0-9].rvt"),
    # Hidden names (these patterns all start with a dot).
    (".~lock.plan.odt#", "hidden"),
    (".DS_Store", "hidden"),
    ("._photo.jpg", "hidden"),
    (".hidden.pdf", "hidden"),
]


def test_every_builtin_pattern_has_an_example() -> None:
    covered = {reason.removeprefix("pattern ") for _, reason in BUILTIN_EXAMPLES}
    hidden = {p for p in BUILTIN_IGNORES if p.startswith(".")}
    assert set(BUILTIN_IGNORES) - hidden <= covered


@pytest.mark.parametrize(("name", "reason"), BUILTIN_EXAMPLES)
def test_builtin_ignores(name: str, reason: str) -> None:
    rules = IgnoreRules(settings(ROOT))
    assert rules.reason(ROOT / name) == reason
    assert rules.reason(ROOT / "sub" / name) == reason
    assert rules.reason(ROOT / "sub" / name / "inside.pdf") == reason  # as a folder
    upper = name.upper() if not name.startswith(".") else name
    assert rules.reason(ROOT / upper) is not None  # case-insensitive


@pytest.mark.parametrize(
    ("relative", "overrides", "reason"),
    [
        ("a.pdf", {}, None),
        ("sub/deeper/b.pdf", {}, None),
        ("report.tmp.pdf", {}, None),
        ("~plan.pdf", {}, None),
        ("name with spaces é.pdf", {}, None),
        # The CAD files themselves are uploaded; only their locks, autosaves, backups not.
        ("A-101.dwg", {}, None),
        ("Tower.rvt", {}, None),
        ("Tower.001.rvt", {}, None),
        ("Tower.v0001.rvt", {}, None),
        ("Tower.0001.rfa", {}, None),
        ("sub/TOWER.0012.RVT", {}, "pattern *.[0-9][0-9][0-9][0-9].rvt"),
        ("sub/.git/config", {}, "hidden"),
        ("sub/THUMBS.DB", {}, "pattern Thumbs.db"),
        ("SCAN.TMP", {}, "pattern *.tmp"),
        ("archive/x.pdf", {"archive_dir": ROOT / "archive"}, "archive_dir"),
        ("archive", {"archive_dir": ROOT / "archive"}, "archive_dir"),
        ("archive/2024/x.pdf", {"archive_dir": ROOT / "archive"}, "archive_dir"),
        ("archived.pdf", {"archive_dir": ROOT / "archive"}, None),
        ("failed/x.pdf", {"failed_dir": ROOT / "failed"}, "failed_dir"),
        ("old.bak", {"exclude": ("*.bak",)}, "exclude *.bak"),
        ("sub/OLD.BAK", {"exclude": ("*.bak",)}, "exclude *.bak"),
        ("drafts/x.pdf", {"exclude": ("drafts",)}, "exclude drafts"),
        ("site/drafts/x.pdf", {"exclude": ("site/drafts/*",)}, "exclude site/drafts/*"),
        ("other/drafts/x.pdf", {"exclude": ("site/drafts/*",)}, None),
        ("sub/a.pdf", {"recursive": False}, "not recursive"),
        ("a.pdf", {"recursive": False}, None),
    ],
)
def test_rules_table(relative: str, overrides: dict[str, Any], reason: str | None) -> None:
    rules = IgnoreRules(settings(ROOT, **overrides))
    assert rules.reason(ROOT / relative) == reason


def test_outside_folder_and_folder_itself() -> None:
    rules = IgnoreRules(settings(ROOT))
    assert rules.reason(Path("/srv/dropbox/a.pdf")) == "outside folder"
    assert rules.reason(Path("/etc/passwd")) == "outside folder"
    assert rules.reason(ROOT) is None
    assert rules.reason(ROOT / ".archive" / "a.pdf") == "archive_dir"


def test_archive_outside_the_folder_is_ignored_too() -> None:
    rules = IgnoreRules(settings(ROOT, archive_dir=Path("/srv/archive")))
    assert rules.reason(Path("/srv/archive/a.pdf")) == "archive_dir"
