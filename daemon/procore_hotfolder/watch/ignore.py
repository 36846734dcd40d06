"""Which names inside a watched folder are candidates for upload, and why the others are not.

Hidden names, the built-in patterns (editor/Office lock and temp files, partial downloads, OS
clutter, CAD lock and autosave files), the folder's ``exclude`` patterns and its archive and
failed folders are ignored.
Pure string work on paths: no ``stat()``, no listing.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from pathlib import Path

from procore_hotfolder.config import FolderSettings

#: Names never uploaded: editor/Office lock and temp files, partial downloads, OS clutter,
#: CAD lock and autosave files (AutoCAD's drawing locks ``.dwl``/``.dwl2``, its autosaves
#: ``.sv$`` and ``.ac$``; Revit's backups ``name.0001.rvt``: four digits before ``.rvt``).
#: Matched case-insensitively against every component of the path below the folder.
BUILTIN_IGNORES: tuple[str, ...] = (
    "~$*", ".~lock.*#", "~*.tmp", "*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload",
    "*.download", "*.swp", "*~", "Thumbs.db", "desktop.ini", ".DS_Store", "*.!ut",
    "*.filepart", "._*", "$RECYCLE.BIN", "System Volume Information", "lost+found", "@eaDir",
    "#recycle", "*.dwl", "*.dwl2", "*.sv$", "*.ac$", "*.[0-9][0-9][0-9][0-9].rvt",
)

def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns),
                      re.IGNORECASE | re.DOTALL)


_BUILTIN_RE = _compile(BUILTIN_IGNORES)


def _which(patterns: Sequence[str], text: str) -> str:
    for pattern in patterns:
        if fnmatch.fnmatchcase(text.lower(), pattern.lower()):
            return pattern
    return patterns[0]  # unreachable when the combined regex matched


class IgnoreRules:
    """Decides which paths inside one watched folder are candidates for upload.

    Built-in patterns and the folder's ``exclude`` patterns both match case-insensitively
    (SMB shares are case-insensitive; ``*.bak`` should catch ``SCAN.BAK``). An exclude
    pattern matches a component's name or the path relative to the folder.
    """

    def __init__(self, folder: FolderSettings) -> None:
        self.folder = folder
        self._root = os.fspath(folder.path)
        self._archive = os.fspath(folder.archive_dir)
        self._failed = os.fspath(folder.failed_dir)
        self._exclude = folder.exclude
        self._exclude_re = _compile(folder.exclude)

    def name_reason(self, name: str, rel: str) -> str | None:
        """Why the entry ``name`` (at ``rel``, relative to the folder) is ignored, or None.

        Checks only this component; the caller has already checked its parents.
        """
        if name.startswith("."):
            return "hidden"
        if _BUILTIN_RE is not None and _BUILTIN_RE.match(name):
            return f"pattern {_which(BUILTIN_IGNORES, name)}"
        if self._exclude_re is not None:
            if self._exclude_re.match(name):
                return f"exclude {_which(self._exclude, name)}"
            if self._exclude_re.match(rel):
                return f"exclude {_which(self._exclude, rel)}"
        return None

    def special_dir_reason(self, full: str) -> str | None:
        """"archive_dir"/"failed_dir" when ``full`` is (or lies inside) one of them."""
        if full == self._archive or full.startswith(self._archive + os.sep):
            return "archive_dir"
        if full == self._failed or full.startswith(self._failed + os.sep):
            return "failed_dir"
        return None

    def reason(self, path: Path) -> str | None:
        """None when ``path`` (absolute; file or folder) is a candidate, else why not."""
        full = os.path.normpath(os.fspath(path))
        special = self.special_dir_reason(full)
        if special is not None:
            return special
        if full == self._root:
            return None
        if not full.startswith(self._root.rstrip(os.sep) + os.sep):
            return "outside folder"
        parts = full[len(self._root.rstrip(os.sep)) + 1:].split(os.sep)
        if not self.folder.recursive and len(parts) > 1:
            return "not recursive"
        for index, name in enumerate(parts):
            why = self.name_reason(name, "/".join(parts[: index + 1]))
            if why is not None:
                return why
        return None
