"""``state_dir/status.json``: the daemon's in-memory view, for `status` and `explain`.

The daemon writes it every few seconds (files still settling, uploads in progress, pauses);
`status` and `explain` run in their own short-lived process and read it. This module is all
either side needs: it imports nothing of the engine, so reading the snapshot does not load it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from procore_hotfolder.model import display_values

log = structlog.get_logger(__name__)

SNAPSHOT_NAME = "status.json"
SNAPSHOT_EVERY_SECONDS = 2.0
#: At most this many settling (and skipped) files are listed: the file stays small.
SNAPSHOT_PENDING_LIMIT = 2000

def build_snapshot(*, pid: int, updated: float, once: bool, counts: Mapping[str, int],
                   waiting: int, pending: Mapping[str, Any], skipped: Mapping[str, str],
                   modes: Mapping[Path, str], writers: Mapping[Path, Mapping[str, Any]],
                   holds: list[dict[str, Any]], files_per_hour: float | None, bound_by: str,
                   uploading: Mapping[str, Any], last_upload: Mapping[str, Any] | None,
                   ) -> dict[str, Any]:
    """The JSON object of ``status.json`` (its keys are a contract with `status`).
    ``holds``: why work waits, each ``Hold.as_dict()`` of the board of holds."""
    return {
        "pid": pid,
        "updated": updated,
        "once": once,
        "counts": dict(counts),
        "waiting": waiting,
        "pending": dict(pending),
        "skipped": dict(list(skipped.items())[-SNAPSHOT_PENDING_LIMIT:]),
        "modes": {str(k): v for k, v in modes.items()},
        "writers": {str(k): dict(v) for k, v in writers.items()},
        "holds": holds,
        "pace": {"files_per_hour": files_per_hour, "bound_by": bound_by},
        "uploading": dict(uploading),
        "last_upload": dict(last_upload) if last_upload is not None else None,
    }


def write_snapshot(state_dir: Path, snapshot: dict[str, Any]) -> None:
    """Atomically replace ``state_dir/status.json`` (best effort: status is advisory)."""
    target = state_dir / SNAPSHOT_NAME
    temp = state_dir / f".{SNAPSHOT_NAME}.tmp"
    try:
        # Names that are not UTF-8 as ``\\xNN``, as in the ledger and the log.
        temp.write_text(json.dumps(display_values(snapshot), ensure_ascii=False, default=str),
                        encoding="utf-8")
        os.replace(temp, target)
    except OSError as exc:
        log.warning("status_snapshot_failed", error=str(exc))


def read_snapshot(state_dir: Path) -> dict[str, Any] | None:
    """The last snapshot written, or None (none yet, unreadable, not a JSON object)."""
    try:
        data = json.loads((state_dir / SNAPSHOT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
