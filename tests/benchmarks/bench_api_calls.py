"""API economy: Procore API calls per file by destination, counted from the emulator's
request log (token and storage requests are not API calls and are not counted).

Fixed targets (a folder's own project and destination) beside routed ones: a folder of
routing rules that sends each file to the project its number names (two projects, each
reached through List Projects, read once per run) and to the Documents path, or the Photos
album, its rules name. Each scenario runs `once` per round in a fresh process, so a run's
one-off calls (the project list, the folders and albums made) are part of its count.

Run: ``python -m tests.benchmarks.bench_api_calls`` (``BENCH_FILES``, ``BENCH_DIR``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from procore_hotfolder.emulator import Emulator
from tests.benchmarks.common import CLI, scratch, table
from tests.conftest import CLIENT_ID, CLIENT_SECRET, COMPANY_ID, cli_env, write_config

#: The rules of the routed scenarios: drawings by job number and discipline, photos by the
#: album their folder names.
DRAWINGS = {"match": r"(?P<job>\d+)-(?P<disc>[A-Z])-\d+\.pdf", "project_number": "{job}",
            "destination": "documents", "documents_path": "03 Drawings/{disc}",
            "description": "{disc} sheet"}
PHOTOS = {"match": r"(?P<album>[^/]+)/[^/]+\.jpg", "project_number": "{album}",
          "destination": "photos", "photos_album": "Site {album}"}


def _drop(root: Path, names: list[str], tag: bytes) -> None:
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tag + os.urandom(1000 + i))


def _calls(emu: Emulator, projects: set[int] | None, since: int) -> int:
    """API calls since ``since`` about one of ``projects`` (None: every API call, the
    project list included)."""
    return sum(1 for r in emu.request_log[since:] if r.kind == "api" and (
        projects is None or any(f"/projects/{p}/" in r.path or f"project_id={p}" in r.query
                                for p in projects)))


def main() -> None:
    n = int(os.environ.get("BENCH_FILES", "40"))
    work = scratch("api-calls")
    names = [f"scan-{i:03d}.pdf" for i in range(n)]
    subfolders = 4
    mirrored = [f"site{i % subfolders}/RFIs/{name}" for i, name in enumerate(names)]
    # Two projects, four disciplines each: 8 Procore folders below "03 Drawings".
    drawings = [f"{('24017', '0042')[i % 2]}-{'ASME'[i // 2 % 4]}-{i:03d}.pdf"
                for i in range(n)]
    photos = [f"{('24017', '0042')[i % 2]}/IMG_{i:04d}.jpg" for i in range(n)]
    scenarios: list[tuple[str, dict[str, Any], list[str]]] = [
        ("none", {"destination": "none"}, names),
        ("photos", {"destination": "photos"}, [n.replace(".pdf", ".jpg") for n in names]),
        ("documents, flat", {"destination": "documents"}, names),
        (f"documents, mirrored ({2 * subfolders} new folders)",
         {"destination": "documents"}, mirrored),
        ("routed: documents by number, 2 projects (10 new folders)",
         {"rules": [DRAWINGS]}, drawings),
        ("routed: photos by number, albums by name (2 new)", {"rules": [PHOTOS]}, photos),
    ]
    rows = []
    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emu:
        emu.faults.rate_limit = None
        for project, (label, given, files) in enumerate(scenarios, start=100):
            settings = dict(given)
            counted: set[int] | None = {project}
            if "rules" in settings:
                counted = None  # every call: the projects are found by their numbers
                for number in ("24017", "0042"):
                    emu.create_project(COMPANY_ID, f"{label} {number}", number,
                                       project_id=project * 1000 + int(number))
                settings["destination"] = None  # a folder of rules only
            else:
                settings["project_id"] = project
            if settings.get("destination") == "photos":
                settings["photos_album_id"] = emu.create_album(COMPANY_ID, project, "Site")
            drop = work / f"drop-{project}"
            config_dir = work / f"run-{project}"
            config_dir.mkdir()
            config = write_config(config_dir, emu, [{"path": str(drop), **settings}],
                                  settle_seconds=0, workers=4)
            rounds = [("first filing", b"a")]
            if settings.get("destination") == "documents" or given.get("rules") == [DRAWINGS]:
                rounds.append(("same names again (on_name_clash = version)", b"b"))
            for what, tag in rounds:
                _drop(drop, files, tag)
                seen = len(emu.request_log)
                subprocess.run([*CLI, "once", "-c", str(config)], env=cli_env(), check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                calls = _calls(emu, counted, seen)
                rows.append([label, what, str(len(files)), str(calls),
                             f"{calls / len(files):.2f}"])
            if counted is None:
                # The routed scenarios' projects are made anew for the next one.
                for number in ("24017", "0042"):
                    emu.remove_project(COMPANY_ID, project * 1000 + int(number))
    print(f"\nProcore API calls per file ({n} files per scenario, 4 workers, emulator)")
    print(table(["destination", "round", "files", "API calls", "calls per file"], rows))
    print("\nTarget at the floor: none 1, Photos 2, Documents 2 when no name clash needs "
          "resolving, plus one per Procore folder created; a clash costs one listing and "
          "the version (4). A routed file costs the same, plus, once per run, the project "
          "list (a call per 100 projects), and once per project and place, the folders "
          "made (and a listing where one already existed) and each album by name (a "
          "listing, and its creation).")


if __name__ == "__main__":
    main()
