"""What the tests of the user's files share: a folder's settings, a file made with its
parents, and the daemon's own temporary names left behind (there must be none)."""

from __future__ import annotations

from pathlib import Path

from procore_hotfolder.config import FolderSettings


def settings(root: Path) -> FolderSettings:
    return FolderSettings(path=root / "drop", project_id=1, archive_dir=root / "drop" / ".archive",
                          failed_dir=root / "failed")


def make(path: Path, data: bytes = b"content") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".procore-hotfolder-")]
