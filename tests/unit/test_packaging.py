"""The service unit and the packaging promise what product.md says."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "procore-hotfolder.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_unit_is_notify_with_watchdog_and_credential() -> None:
    settings = _settings()
    assert settings["Type"] == ["notify"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert any(v.startswith("procore-client-secret:") for v in settings["LoadCredential"])
    assert " run " in settings["ExecStart"][0] + " "
    assert settings["ExecReload"][0].endswith("-HUP $MAINPID")
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectKernelTunables",
                "RestrictNamespaces", "MemoryDenyWriteExecute", "SystemCallFilter"):
        assert key in settings, key
    assert settings["CapabilityBoundingSet"] == [""]


def test_unit_exposure_within_target() -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze comes with systemd on every supported host"
    result = subprocess.run([analyze, "security", "--offline=true", str(UNIT)],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_console_script_and_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["procore-hotfolder"] == "procore_hotfolder.cli:main"
    names = {re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]}
    assert names == {"watchdog", "requests", "requests-toolbelt", "structlog", "sdnotify",
                     "prometheus-client"}
