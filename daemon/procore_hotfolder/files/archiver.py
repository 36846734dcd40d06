"""Where originals go once they are done: the archive (after a confirmed upload) or the failed
folder (with an ``<name>.error.json`` sidecar saying why), their paths relative to the
watched folder kept. The moves themselves never overwrite: see ``nooverwrite``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import structlog

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.errors import HotfolderError
from procore_hotfolder.files.nooverwrite import move_no_overwrite, write_new_file
from procore_hotfolder.model import display_values

log = structlog.get_logger(__name__)

SIDECAR_SUFFIX = ".error.json"


def archive_path_for(folder: FolderSettings, source: Path) -> Path:
    """Where ``source`` goes in the archive: its path relative to the folder, kept."""
    return folder.archive_dir / source.relative_to(folder.path)


def failed_path_for(folder: FolderSettings, source: Path) -> Path:
    """Where ``source`` goes when it failed: its path relative to the folder, kept."""
    return folder.failed_dir / source.relative_to(folder.path)


def sidecar_path_for(failed_file: Path) -> Path:
    """``<name>.error.json`` beside ``failed_file``."""
    return failed_file.with_name(failed_file.name + SIDECAR_SUFFIX)


def write_error_sidecar(failed_file: Path, info: Mapping[str, object]) -> Path:
    """Write ``info`` as ``<name>.error.json`` beside ``failed_file``, atomically.

    UTF-8 JSON; undecodable bytes of file names appear as ``\\xNN``, as in the ledger
    (``model.display_path``). An existing sidecar of that name is never overwritten (the new
    one gets a free variant name). Raises ``ArchiveError`` when it cannot be written.
    """
    text = json.dumps(display_values(dict(info)), ensure_ascii=False, indent=2,
                      default=str) + "\n"
    # A value only ``default=str`` renders may still hold lone surrogates: valid JSON
    # escapes after "backslashreplace".
    data = text.encode("utf-8", errors="backslashreplace")
    return write_new_file(sidecar_path_for(failed_file), data)


def move_to_failed(folder: FolderSettings, source: Path, info: Mapping[str, object], *,
                   guard: bool = False) -> Path | None:
    """Move ``source`` under ``failed_dir`` (never overwriting) with its error sidecar;
    ``guard``: not while a writer holds it (``move_no_overwrite``).

    Returns the new path, or None when the file could not be moved: it then stays where it
    is (event ``failed_move_impossible``). A sidecar that cannot be written is logged; the
    move stands.
    """
    problem = ""
    try:
        final = move_no_overwrite(source, failed_path_for(folder, source), guard=guard)
    except (HotfolderError, OSError, ValueError) as exc:
        problem = str(exc)
    if problem:
        log.error("failed_move_impossible", path=str(source), reason=problem)
        return None
    try:
        write_error_sidecar(final, info)
    except HotfolderError as exc:
        problem = exc.message
    if problem:
        log.error("error_sidecar_failed", path=str(final), reason=problem)
    return final
