"""`check`: the configuration and each folder as the daemon would meet them, in one report.

Per folder: it exists and is readable, its archive and failed folders are writable, how its
writers are seen (``watch.writers``), what its destination warns about; online (unless
``--offline``): Procore answers for its project (or the company) and its destination exists
(``discovery.check_folder_online``). Then the alert channels (``alerts.checking``: online,
the SMTP server answers and the webhook's host resolves; nothing is sent unless the test
message is asked for). The caller prints the lines; any problem fails the check.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from procore_hotfolder.alerts.checking import check_alerts, send_test_alert
from procore_hotfolder.commands.discovery import (
    FolderCheck,
    check_folder_online,
    describe_error,
)
from procore_hotfolder.config import Config, FolderSettings
from procore_hotfolder.errors import ProcoreError
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.upload.destinations import destination_for
from procore_hotfolder.watch.writers import folder_sight


def check(config: Config, *, online: bool, send_test_alert_too: bool = False
          ) -> tuple[list[str], bool]:
    """The report's lines (every problem first, then one block per folder, then the alert
    channels, then the verdict) and whether anything failed."""
    problems = check_state_dir(config)
    results = [FolderCheck(index, folder, problems=folder_problems(index, folder))
               for index, folder in enumerate(config.folders)]
    for result in results:
        warning = destination_for(result.folder).warning if result.folder.own_target else None
        if warning is not None:
            result.warnings.append(warning)
        if result.folder.rules:
            result.notes.append(f"{len(result.folder.rules)} routing rule(s): "
                                "`procore-hotfolder route` shows where each file goes")
        sight = folder_sight(result.folder)
        result.writers = sight.summary()
        if sight.warning() is not None:
            result.warnings.append(str(sight.warning()))
    reachable = ""
    if online:
        client = ProcoreClient(config.procore, RateGovernor())
        try:
            client.ensure_token()
        except ProcoreError as exc:
            problems.append(describe_error(exc, f"procore ({exc.reason})"))
        else:
            reachable = f"; Procore reachable at {config.procore.api_url}"
            for result in results:
                check_folder_online(client, config, result)
        finally:
            client.close()
    alerts = check_alerts(config, online=online)
    if send_test_alert_too and not alerts.problems:
        sent = send_test_alert(config, time.time())
        alerts.lines += sent.lines
        alerts.problems += sent.problems
    problems += alerts.problems
    lines = [f"problem: {problem}" for problem in problems]
    for result in results:
        lines += result.lines()
    lines += alerts.lines
    failed = len(problems) + sum(1 for r in results if r.problems)
    if failed:
        lines.append(f"{failed} problem(s) found")
    else:
        lines.append(f"ok: {len(config.folders)} folder(s){reachable}")
    return lines, bool(failed)


def check_state_dir(config: Config) -> list[str]:
    """The state directory can be written (or made)."""
    state = config.daemon.state_dir
    if not _writable_or_creatable(state):
        return [f"daemon.state_dir: {state} is not writable"]
    return []


def folder_problems(index: int, folder: FolderSettings) -> list[str]:
    """The folder exists and is readable; its archive and failed folders are writable."""
    problems = []
    key = f"folders[{index}]"
    if not folder.path.is_dir():
        problems.append(f"{key}.path: {folder.path} does not exist or is not a folder")
    elif not os.access(folder.path, os.R_OK | os.X_OK):
        problems.append(f"{key}.path: {folder.path} is not readable")
    for name, target in (("archive_dir", folder.archive_dir),
                         ("failed_dir", folder.failed_dir)):
        if not _writable_or_creatable(target):
            problems.append(f"{key}.{name}: {target} is not writable")
    return problems


def _writable_or_creatable(path: Path) -> bool:
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
