"""The name a clash gets: ``a.pdf`` taken -> ``a (1).pdf``, ``a (2).pdf``, ... within the
filesystem's 255-byte limit on a name, double suffixes such as ``.tar.gz`` kept together."""

from __future__ import annotations

import os
from pathlib import Path

from procore_hotfolder.errors import ArchiveError

NAME_MAX_BYTES = 255
MAX_CLASHES = 100_000

#: Double suffixes kept together when numbering a clash: "a.tar.gz" -> "a (1).tar.gz".
KNOWN_DOUBLE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz", ".tar.lz4",
                         ".tar.lzma", ".tar.z")


def _split_name(name: str) -> tuple[str, str]:
    lower = name.lower()
    for double in KNOWN_DOUBLE_SUFFIXES:
        if lower.endswith(double) and len(name) > len(double):
            return name[: -len(double)], name[-len(double):]
    stem, suffix = os.path.splitext(name)
    return stem, suffix


def numbered_name(name: str, number: int) -> str:
    """``name`` with `` (number)`` before its suffix, trimmed to fit 255 bytes."""
    stem, suffix = _split_name(name)
    marker = f" ({number})"
    if len(os.fsencode(marker + suffix)) >= NAME_MAX_BYTES:
        suffix = ""  # an absurd suffix: sacrifice it rather than the number
    while stem and len(os.fsencode(stem + marker + suffix)) > NAME_MAX_BYTES:
        stem = stem[:-1]
    return stem + marker + suffix


def free_name(target: Path) -> Path:
    """``target`` if no entry has that name, else the first free ``name (n).ext``.

    Only a hint: another writer may take the name before we use it, which is why the moves
    below create names with operations that fail instead of overwriting.
    """
    if not os.path.lexists(target):
        return target
    for number in range(1, MAX_CLASHES):
        candidate = target.with_name(numbered_name(target.name, number))
        if not os.path.lexists(candidate):
            return candidate
    raise ArchiveError(f"no free name for {target} after {MAX_CLASHES} attempts")
