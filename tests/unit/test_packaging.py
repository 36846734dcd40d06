"""The service unit and the packaging promise what product.md says."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "procore-hotfolder.service"
METRICS_DROP_IN = ROOT / "systemd" / "metrics.conf.example"


def _settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file or drop-in, values in order per key."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.fixture
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found is not None, "systemd-analyze comes with systemd on every supported host"
    return found


def _exposure(analyze: str, unit: Path) -> float:
    """``systemd-analyze security``'s overall exposure level of ``unit``."""
    result = subprocess.run([analyze, "security", "--offline=true", str(unit)],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def _runnable_here(unit_text: str) -> str:
    """The unit with an ExecStart that exists here, so that `verify` judges the unit, not this
    machine."""
    return re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable} -m procore_hotfolder",
                  unit_text, flags=re.MULTILINE)


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
    # Exactly one capability, to see writers through read leases, and nothing that voids it.
    assert settings["CapabilityBoundingSet"] == ["CAP_LEASE"]
    assert settings["AmbientCapabilities"] == ["CAP_LEASE"]
    assert "PrivateUsers" not in settings


def test_unit_exposure_within_target(analyze: str) -> None:
    assert _exposure(analyze, UNIT) <= 2.0


def test_console_script_and_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["procore-hotfolder"] == "procore_hotfolder.cli:main"
    names = {re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]}
    assert names == {"watchdog", "requests", "requests-toolbelt", "structlog", "sdnotify",
                     "prometheus-client"}


def _with_metrics_drop_in(tmp_path: Path) -> Path:
    """The unit as systemd sees it with the metrics drop-in installed (its [Service] lines
    added to the unit's: every directive it sets adds to a list), runnable here."""
    drop_in = METRICS_DROP_IN.read_text().split("[Service]\n", 1)[1]
    unit = UNIT.read_text().replace("\n[Install]\n", "\n" + drop_in + "\n[Install]\n")
    path = tmp_path / UNIT.name
    path.write_text(_runnable_here(unit))
    return path


def test_metrics_drop_in_lets_loopback_in_and_nothing_else() -> None:
    settings = _settings(METRICS_DROP_IN)
    assert settings["IPAddressAllow"] == ["127.0.0.1 ::1"]
    assert settings["SocketBindDeny"] == ["any"]
    assert settings["SocketBindAllow"] == ["tcp:9464"]
    # The port matches the one README and product.md give for metrics_listen.
    assert '"127.0.0.1:9464"' in (ROOT / "README.md").read_text()
    # The base unit still keeps loopback out while metrics are off.
    assert "localhost" in _settings()["IPAddressDeny"][0].split()


def test_unit_with_metrics_drop_in_stays_within_target(analyze: str, tmp_path: Path) -> None:
    assert _exposure(analyze, _with_metrics_drop_in(tmp_path)) <= 2.0


def test_unit_passes_systemd_analyze_verify(analyze: str, tmp_path: Path) -> None:
    plain = tmp_path / "plain" / UNIT.name
    plain.parent.mkdir()
    plain.write_text(_runnable_here(UNIT.read_text()))
    for unit in (plain, _with_metrics_drop_in(tmp_path)):
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not result.stderr.strip(), result.stderr


def test_the_daemon_never_loads_the_emulator() -> None:
    """The emulator is a subpackage for `demo` and the tests: building and running the
    engine (everything `run` and `once` import) loads none of it."""
    code = ("import sys, procore_hotfolder.cli, procore_hotfolder.engine.compose\n"
            "print(sorted(m for m in sys.modules if m.startswith('procore_hotfolder.emulator')"
            " or m == 'procore_hotfolder.emulator'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_unit_runs_the_program_where_the_debian_package_puts_it() -> None:
    """The package installs this unit as it is (packaging/deb/build.py refuses another
    ExecStart); the venv install overrides ExecStart with a drop-in (README)."""
    assert _settings()["ExecStart"][0].startswith("/usr/bin/procore-hotfolder run ")
    venv = _settings(ROOT / "systemd" / "venv.conf.example")["ExecStart"]
    assert venv[0] == ""  # clears the unit's, then:
    assert venv[1].startswith("/opt/procore-hotfolder/bin/procore-hotfolder run ")
    assert venv[1].split(" run ")[1] == _settings()["ExecStart"][0].split(" run ")[1]


def test_man_page_describes_every_command() -> None:
    from procore_hotfolder.cli import build_parser  # noqa: PLC0415 - only this test needs it

    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = set(actions[0].choices)
    page = (ROOT / "packaging" / "deb" / "procore-hotfolder.1").read_text()
    section = page.split(".SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
    described = set(re.findall(r"^\.TP\n\.B[IR]? (\w+)", section, flags=re.MULTILINE))
    assert described == commands


def test_package_pins_every_runtime_dependency_by_hash() -> None:
    """packaging/deb/requirements.txt (what the package carries) covers pyproject.toml's
    dependencies, each at one version and with the hash of one file."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]}
    pins = [line for line in (ROOT / "packaging/deb/requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    pinned = {}
    for line in pins:
        match = re.fullmatch(r"([\w.-]+)==(\S+) --hash=sha256:[0-9a-f]{64}", line)
        assert match, line
        pinned[match.group(1)] = match.group(2)
    assert wanted <= set(pinned)
