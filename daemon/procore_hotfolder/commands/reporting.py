"""`status`, `explain` and `retry`: read (and for retry, change) the journal and snapshot.

These run in their own short-lived process beside the daemon. The daemon's in-memory view
(files still settling, uploads in progress, pauses) comes from the status snapshot it writes
every few seconds; everything durable comes from the journal.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.errors import RouteError
from procore_hotfolder.files import sourcefile
from procore_hotfolder.files.clash_names import free_name
from procore_hotfolder.files.nooverwrite import move_no_overwrite
from procore_hotfolder.model import (
    ACTIVE,
    IN_FLIGHT,
    FileState,
    describe_state,
    display_path,
    not_a_file_skip,
    utc_iso,
)
from procore_hotfolder.state.journal import FileRecord, Journal
from procore_hotfolder.state.snapshot import read_snapshot
from procore_hotfolder.state.statelock import StateLock
from procore_hotfolder.upload.destinations import destination_for
from procore_hotfolder.upload.holds import ACCOUNT, HoldKind
from procore_hotfolder.upload.routing import relative_path, route_file
from procore_hotfolder.watch.ignore import IgnoreRules
from procore_hotfolder.watch.writers import folder_sight

#: The daemon rewrites its snapshot every 2 s; older than this means it is not running.
SNAPSHOT_STALE_SECONDS = 30.0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return utc_iso(ts)


def _live_snapshot(config: Config) -> dict[str, Any] | None:
    snapshot = read_snapshot(config.daemon.state_dir)
    if snapshot is None:
        return None
    if StateLock(config.daemon.state_dir).holder() is None:
        return None
    if time.time() - float(snapshot.get("updated", 0)) > SNAPSHOT_STALE_SECONDS:
        return None
    return snapshot


def status(config: Config, journal: Journal) -> dict[str, Any]:
    """Per folder: waiting, queued, uploading, failed; last upload; oldest waiting age."""
    now = time.time()
    snapshot = _live_snapshot(config)
    counts = journal.counts()
    last = journal.last_archived()
    pending = (snapshot or {}).get("pending", {})
    holds = _holds_by_kind((snapshot or {}).get("holds"))
    refused, unavailable = holds[HoldKind.REFUSED], holds[HoldKind.FOLDER]
    folders = []
    sights = (snapshot or {}).get("writers") or {}
    for folder in config.folders:
        mine = [info for key, info in pending.items() if config.folder_for(Path(key)) == folder]
        waiting_since = [float(info.get("since", now)) for info in mine]
        writers = sights.get(str(folder.path)) or folder_sight(folder).as_dict()
        by_state = counts.get(folder.path, {})
        record = last.get(folder.path)
        folders.append({
            "path": str(folder.path),
            "project_id": folder.project_id,
            "destination": folder.destination if folder.own_target else None,
            "rules": len(folder.rules),
            "watch": ((snapshot or {}).get("modes") or {}).get(str(folder.path), folder.watch),
            "unavailable": (unavailable.get(str(folder.path)) or {}).get("detail"),
            "paused": _pause_view(refused.get(str(folder.path)) or refused.get(ACCOUNT)),
            "warning": destination_for(folder).warning if folder.own_target else None,
            "writers": writers,
            "waiting": len(waiting_since),
            "held_by_writer": sum(1 for info in mine if info.get("held")),
            "oldest_waiting_seconds": round(now - min(waiting_since), 1) if waiting_since
            else None,
            "queued": by_state.get(FileState.QUEUED.value, 0),
            "uploading": sum(by_state.get(s.value, 0) for s in IN_FLIGHT),
            "failed": by_state.get(FileState.FAILED.value, 0),
            "archived": by_state.get(FileState.ARCHIVED.value, 0),
            "last_upload": None if record is None else {
                "time": _iso(record.updated_at), "uuid": record.uuid,
                "source": str(record.path),
                "archived": str(record.final_path) if record.final_path else None},
        })
    pace = (snapshot or {}).get("pace") or {}
    _estimate(folders, pace.get("files_per_hour"))
    api = holds[HoldKind.API].get(ACCOUNT)
    paused = {"until": api.get("until"), "reason": api.get("reason")} if api else None
    return {
        "daemon": {"running": snapshot is not None,
                   "pid": snapshot.get("pid") if snapshot else None,
                   "paused": paused},
        "uploading": (snapshot or {}).get("uploading", {}),
        "pace": {"files_per_hour": pace.get("files_per_hour"), "bound_by": pace.get("bound_by")},
        "folders": folders,
    }


def _estimate(folders: list[dict[str, Any]], files_per_hour: float | None) -> None:
    """Each folder's ``estimate_seconds``: how long its waiting files take at the current
    pace. Workers take from the folders in turn, so while a folder has files left every busy
    folder moves at the same speed: a folder with W waiting is done once every folder has
    moved min(its own waiting, W)."""
    waiting = [f["waiting"] + f["queued"] + f["uploading"] for f in folders]
    for folder, mine in zip(folders, waiting, strict=True):
        folder["estimate_seconds"] = None
        if mine and files_per_hour:
            ahead = sum(min(theirs, mine) for theirs in waiting)
            folder["estimate_seconds"] = round(ahead / files_per_hour * 3600.0)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _holds_by_kind(listed: Any) -> dict[HoldKind, dict[str, dict[str, Any]]]:
    """The snapshot's ``holds`` (each a ``Hold.as_dict()``), by kind, then by scope."""
    holds: dict[HoldKind, dict[str, dict[str, Any]]] = {kind: {} for kind in HoldKind}
    for hold in listed if isinstance(listed, list) else []:
        if isinstance(hold, dict) and hold.get("kind") in set(HoldKind):
            holds[HoldKind(hold["kind"])][str(hold.get("scope"))] = hold
    return holds


def _pause_view(pause: dict[str, Any] | None) -> dict[str, Any] | None:
    """A refusal's hold as `status` shows it (``next_check``: the hold's ``until``)."""
    if pause is None:
        return None
    return {"scope": "account" if pause.get("scope") == ACCOUNT else "folder",
            "since": _iso(pause.get("since")), "next_check": _iso(pause.get("until")),
            "reason": pause.get("reason"), "detail": pause.get("detail"),
            "status": pause.get("status"), "request_id": pause.get("request_id")}


def format_status(report: dict[str, Any]) -> str:
    """The human form of ``status``."""
    daemon = report["daemon"]
    lines = [f"daemon: running (pid {daemon['pid']})" if daemon["running"]
             else "daemon: not running"]
    if daemon.get("paused"):
        until = _iso(daemon["paused"].get("until"))
        lines.append(f"  paused until {until}: {daemon['paused'].get('reason')}")
    for path, info in report.get("uploading", {}).items():
        total = max(int(info.get("total", 0)), 1)
        lines.append(f"  uploading {path}: {100 * int(info.get('sent', 0)) // total}%")
    for f in report["folders"]:
        target = f"project {f['project_id']}" if f["project_id"] else "company"
        rules = f"{f['rules']} routing rule(s)" if f.get("rules") else ""
        if f["destination"] is None:
            where = f"routed by {rules}"
        else:
            where = f"{target}, destination {f['destination']}" + (
                f" for what no rule of {rules} matches" if rules else "")
        lines.append(f"{f['path']}  ({where}, watch {f['watch']})")
        if f["unavailable"]:
            lines.append(f"  UNAVAILABLE: {f['unavailable']}")
        paused = f.get("paused")
        if paused:
            whose = "every folder (the service account)" if paused["scope"] == "account" \
                else "this folder"
            status = f" (HTTP {paused['status']})" if paused.get("status") else ""
            lines.append(f"  PAUSED since {paused['since']}, {whose}: {paused['reason']}"
                         f"{status}: {paused['detail']}; next check {paused['next_check']}; "
                         "no file is failed for it")
        if f.get("warning"):
            lines.append(f"  WARNING: {f['warning']}")
        writers = f.get("writers") or {}
        if writers.get("summary"):
            lines.append(f"  {writers['summary']}")
        if writers.get("warning"):
            lines.append(f"  WARNING: {writers['warning']}")
        oldest = f"; oldest {f['oldest_waiting_seconds']:.0f}s" \
            if f["oldest_waiting_seconds"] is not None else ""
        held = f" ({f['held_by_writer']} held open by a writer)" if f.get("held_by_writer") \
            else ""
        lines.append(f"  waiting to settle {f['waiting']}{held}{oldest}; queued {f['queued']}; "
                     f"uploading {f['uploading']}; failed {f['failed']}; "
                     f"archived {f['archived']}")
        left = f["waiting"] + f["queued"] + f["uploading"]
        pace = report.get("pace") or {}
        if left and f.get("estimate_seconds") is not None:
            bound = {"quota": "bound by Procore's API quota", "pause": "held by a pause",
                     "uploads": "bound by the uploads themselves"}.get(
                         str(pace.get("bound_by")), "")
            lines.append(f"  {left:,} waiting, about {_duration(f['estimate_seconds'])} at "
                         f"{pace['files_per_hour']:,.0f} files/h ({bound})")
        elif left and daemon["running"]:
            lines.append(f"  {left:,} waiting; the pace is not known yet (a minute of uploads "
                         "tells)")
        last = f["last_upload"]
        lines.append(f"  last upload: {last['time']} {last['source']} as {last['uuid']}"
                     if last else "  last upload: none")
    return "\n".join(lines)


def explain(config: Config, journal: Journal, raw_path: str) -> str:
    """Why ``raw_path`` is or is not uploaded yet, in one or two sentences; for a file in a
    folder with routing rules, a second line names the rule that matches it."""
    path = Path(os.path.abspath(raw_path))
    text = _explain(config, journal, path)
    note = _route_note(config, path)
    return text if note is None else f"{text}\n  {note}"


def _route_note(config: Config, path: Path) -> str | None:
    """Which rule routes the file at ``path`` (None outside a folder with rules, or for a
    name that is ignored or not a regular file). Offline: a project number is named, not
    looked up (`route` does that)."""
    folder = config.folder_for(path)
    if folder is None or not folder.rules or IgnoreRules(folder).reason(path) is not None:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if sourcefile.classify(st) is not None:
        return None
    try:
        route = route_file(folder, relative_path(folder, path), st.st_mtime)
    except RouteError as exc:
        return f"route: none: {exc.reason}: {exc.message}"
    if route.rule is None:
        which = "no rule matches; the folder's own keys route it"
    else:
        groups = ", ".join(f"{k}={'' if v is None else v}" for k, v in route.groups)
        which = f"rule {route.rule} matches" + (f" ({groups})" if groups else "")
    project = (f"project number {route.project_number}" if route.project_number is not None
               else f"project {route.project_id}" if route.project_id is not None
               else "the company")
    return (f"route: {which}: {route.destination} {route.target.describe()} in {project}, "
            f"as {route.name!r} (`procore-hotfolder route` looks the project and target up)")


def _explain(config: Config, journal: Journal, path: Path) -> str:
    history = journal.history(path)
    folder = config.folder_for(path)
    for record in history:
        if path in (record.final_path, record.archive_path):
            return _explain_record(record, path)
    if folder is None:
        return f"{path}: not inside any watched folder"
    reason = IgnoreRules(folder).reason(path)
    if reason is not None:
        return f"{path}: ignored ({reason})"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if history:
            return _explain_record(history[0], path)
        return f"{path}: no such file, and the journal has no record of it"
    except OSError as exc:
        return f"{path}: cannot be examined: {exc.strerror}"
    kind = sourcefile.classify(st)
    if kind is not None:
        return f"{path}: skipped: {not_a_file_skip(kind)}"
    if st.st_nlink > 1:
        return f"{path}: {sourcefile.HARD_LINKS_MESSAGE.format(n=st.st_nlink)}"
    if history and (history[0].state in ACTIVE or history[0].state is FileState.FAILED):
        return _explain_record(history[0], path)
    snapshot = _live_snapshot(config)
    pending = (snapshot or {}).get("pending", {}).get(display_path(path))
    if pending is not None:
        if st.st_size == 0:
            return (f"{path}: empty (0 bytes): waiting for content; moved to failed after "
                    f"{config.daemon.empty_file_timeout_seconds:g} s if it stays empty")
        if pending.get("held"):
            return (f"{path}: settled, but held open by a writer since "
                    f"{_iso(pending.get('held_since'))} ({pending['held']}): uploaded once the "
                    "writer lets go of it")
        return (f"{path}: settling since {_iso(pending.get('since'))}: uploaded once its size "
                f"and mtime stay unchanged for {pending.get('settle_seconds', 0):g} s")
    if snapshot is None:
        return f"{path}: not uploaded yet: the daemon is not running"
    return f"{path}: not seen yet: the next scan or event will pick it up"


def _explain_record(record: FileRecord, asked: Path) -> str:
    state = record.state
    error = record.last_error or {}
    if state is FileState.ARCHIVED:
        where = f", archived to {record.final_path}" if record.final_path else ""
        return (f"{asked}: uploaded as {record.uuid} at {_iso(record.updated_at)}"
                f" from {record.path}{where}")
    if state is FileState.FAILED:
        where = f"; moved to {record.final_path}" if record.final_path else "; kept in place"
        status = f" (HTTP {error['status']})" if error.get("status") else ""
        return (f"{asked}: failed because {error.get('reason', 'unknown')}{status}: "
                f"{error.get('detail', '')}{where}; `procore-hotfolder retry` puts it back")
    text = f"{asked}: {describe_state(state)}"
    if record.uuid:
        text += f" (Upload {record.uuid})"
    if record.next_attempt_at > time.time():
        text += (f"; retrying at {_iso(record.next_attempt_at)} because "
                 f"{error.get('reason', '?')}: {error.get('detail', '')}")
    elif error:
        text += (f"; retrying now; the last attempt met {error.get('reason', '?')}: "
                 f"{error.get('detail', '')}")
    return text


def retry(config: Config, journal: Journal, paths: list[str]) -> list[str]:
    """Put failed files back: move each from failed_dir to where it was dropped.

    With no paths, every failed file. Returns one line per file for the operator.
    """
    wanted = {Path(os.path.abspath(p)) for p in paths}
    lines: list[str] = []
    now = time.time()
    for record in journal.failed():
        if wanted and record.path not in wanted and record.final_path not in wanted:
            continue
        folder = config.folder_for(record.path)
        if folder is None:
            lines.append(f"{record.path}: its folder is no longer configured; left alone")
            continue
        if record.final_path is not None and record.final_path != record.path:
            back = _move_back(folder, record)
            if back is None:
                lines.append(f"{record.final_path}: missing; nothing to retry")
                journal.move(record, FileState.RETRIED, now)
                continue
            lines.append(f"{record.path}: moved back from {record.final_path} for another try"
                         + (f" (as {back})" if back != record.path else ""))
        else:
            lines.append(f"{record.path}: queued for another try")
        journal.move(record, FileState.RETRIED, now)
    matched = {line.split(":")[0] for line in lines}
    for path in wanted:
        if str(path) not in matched and not any(str(path) in line for line in lines):
            lines.append(f"{path}: no failed upload recorded for this path")
    return lines


def _move_back(folder: FolderSettings, record: FileRecord) -> Path | None:
    assert record.final_path is not None
    if sourcefile.observe(record.final_path) is None:
        return None
    target = free_name(record.path)
    final = move_no_overwrite(record.final_path, target)
    sidecar = record.final_path.with_name(record.final_path.name + ".error.json")
    # The sidecar is our own note, not a user file; it has served its purpose.
    sidecar.unlink(missing_ok=True)
    return final
