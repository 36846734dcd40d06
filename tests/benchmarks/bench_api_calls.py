"""API economy: Procore API calls per file by destination, counted from the emulator's
request log (token and storage requests are not API calls and are not counted).

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


def _drop(root: Path, names: list[str], tag: bytes) -> None:
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tag + os.urandom(1000 + i))


def _calls(emu: Emulator, project: int, since: int) -> int:
    return sum(1 for r in emu.request_log[since:] if r.kind == "api" and (
        f"/projects/{project}/" in r.path or f"project_id={project}" in r.query))


def main() -> None:
    n = int(os.environ.get("BENCH_FILES", "40"))
    work = scratch("api-calls")
    names = [f"scan-{i:03d}.pdf" for i in range(n)]
    subfolders = 4
    mirrored = [f"site{i % subfolders}/RFIs/{name}" for i, name in enumerate(names)]
    scenarios: list[tuple[str, dict[str, Any], list[str]]] = [
        ("none", {"destination": "none"}, names),
        ("photos", {"destination": "photos"}, [n.replace(".pdf", ".jpg") for n in names]),
        ("documents, flat", {"destination": "documents"}, names),
        (f"documents, mirrored ({2 * subfolders} new folders)",
         {"destination": "documents"}, mirrored),
    ]
    rows = []
    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emu:
        emu.faults.rate_limit = None
        for project, (label, given, files) in enumerate(scenarios, start=100):
            settings = dict(given)
            if settings["destination"] == "photos":
                settings["photos_album_id"] = emu.create_album(COMPANY_ID, project, "Site")
            drop = work / f"drop-{project}"
            config_dir = work / f"run-{project}"
            config_dir.mkdir()
            config = write_config(config_dir, emu, [
                {"path": str(drop), "project_id": project, **settings}],
                settle_seconds=0, workers=4)
            rounds = [("first filing", b"a")]
            if settings["destination"] == "documents":
                rounds.append(("same names again (on_name_clash = version)", b"b"))
            for what, tag in rounds:
                _drop(drop, files, tag)
                seen = len(emu.request_log)
                subprocess.run([*CLI, "once", "-c", str(config)], env=cli_env(), check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                calls = _calls(emu, project, seen)
                rows.append([label, what, str(len(files)), str(calls),
                             f"{calls / len(files):.2f}"])
    print(f"\nProcore API calls per file ({n} files per scenario, 4 workers, emulator)")
    print(table(["destination", "round", "files", "API calls", "calls per file"], rows))
    print("\nTarget at the floor: none 1, Photos 2, Documents 2 when no name clash needs "
          "resolving, plus one per Procore folder created; a clash costs one listing and "
          "the version (4).")


if __name__ == "__main__":
    main()
