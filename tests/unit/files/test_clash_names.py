"""The names a clash gets: `a (1).pdf`, within 255 bytes, free at the time asked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procore_hotfolder.files.clash_names import free_name, numbered_name
from tests.unit.files.support import make


@pytest.mark.parametrize(("name", "number", "expected"), [
    ("plan.pdf", 1, "plan (1).pdf"),
    ("plan.pdf", 12, "plan (12).pdf"),
    ("backup.tar.gz", 1, "backup (1).tar.gz"),
    ("BACKUP.TAR.BZ2", 2, "BACKUP (2).TAR.BZ2"),
    ("v1.2.final.pdf", 1, "v1.2.final (1).pdf"),
    ("README", 3, "README (3)"),
    (".profile", 1, ".profile (1)"),
])
def test_numbered_name(name: str, number: int, expected: str) -> None:
    assert numbered_name(name, number) == expected


def test_numbered_name_stays_within_255_bytes() -> None:
    name = "é" * 125 + "x.pdf"  # 255 bytes
    assert len(os.fsencode(name)) == 255
    numbered = numbered_name(name, 7)
    assert len(os.fsencode(numbered)) <= 255
    assert numbered.endswith(" (7).pdf")
    numbered.encode("utf-8")  # trimmed on a character boundary


def test_free_name(tmp_path: Path) -> None:
    target = tmp_path / "a.pdf"
    assert free_name(target) == target
    make(target)
    assert free_name(target) == tmp_path / "a (1).pdf"
    make(tmp_path / "a (1).pdf")
    (tmp_path / "a (2).pdf").symlink_to(tmp_path / "nowhere")  # a dangling link counts
    assert free_name(target) == tmp_path / "a (3).pdf"
