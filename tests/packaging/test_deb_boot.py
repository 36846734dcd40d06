"""The package on a real systemd: this machine's own systemd booted in systemd-nspawn (its /usr
as a throw-away overlay, copies of its /etc and of dpkg's state, a private network with only
loopback), driven by boot_driver.sh as the container's only unit: apt-get install with no
network, configure against the emulator, enable --now, upload; upgrade; remove; purge."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, UPGRADE_VERSION, VERSION

pytestmark = pytest.mark.deb

DRIVER = Path(__file__).with_name("boot_driver.sh")
BOOT_TIMEOUT = 600


def _cannot_boot() -> str | None:
    """Why this machine cannot run the test, if it cannot."""
    if os.geteuid() != 0:
        return "systemd-nspawn --boot needs root"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is missing: apt-get install systemd-container"
    if shutil.which("apt-get") is None or not Path("/lib/systemd/systemd").exists():
        return "the container boots this machine's systemd and apt: a Debian-like host"
    if subprocess.run(["dpkg-query", "-W", "procore-hotfolder"], capture_output=True,
                      check=False).returncode == 0:
        return "procore-hotfolder is installed on this machine: the container copies its state"
    return None


def _container_root(base: Path) -> Path:
    """A root for the container: copies of /etc and dpkg's state, empty mount points for /usr
    (the overlay), /debs and /results, without anything of procore-hotfolder's."""
    root = base / "root"
    for directory in ("usr", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial",
                      "var/log/apt", "tmp", "run", "srv", "root", "debs", "results"):
        (root / directory).mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    subprocess.run(["cp", "-a", "/etc", str(root / "etc")], check=True)
    subprocess.run(["cp", "-a", "/var/lib/dpkg", str(root / "var/lib/dpkg")], check=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if Path("/", link).is_symlink():
            (root / link).symlink_to(os.readlink(Path("/", link)))
    # nspawn looks for os-release before /usr is mounted.
    (root / "etc/os-release").unlink(missing_ok=True)
    shutil.copy("/usr/lib/os-release", root / "etc/os-release")
    shutil.rmtree(root / "etc/procore-hotfolder", ignore_errors=True)
    for account in ("passwd", "group", "shadow", "gshadow"):
        path = root / "etc" / account
        if path.exists():
            kept = [line for line in path.read_text().splitlines(keepends=True)
                    if not line.startswith("procore-hotfolder:")]
            path.write_text("".join(kept))
    (root / "etc/systemd/system/deb-test.service").write_text(
        "[Unit]\n"
        "Description=procore-hotfolder package test (tests/packaging/boot_driver.sh)\n"
        "SuccessAction=exit\n"
        "FailureAction=exit\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart=/bin/bash /debs/{DRIVER.name} "
        f"procore-hotfolder_{VERSION}_all.deb procore-hotfolder_{UPGRADE_VERSION}_all.deb\n"
        "StandardOutput=append:/results/driver.log\n"
        "StandardError=append:/results/driver.log\n")
    return root


@pytest.fixture(scope="module")
def facts(deb: Path, upgrade_deb: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, str]:
    """Boot, let the driver run, and return what it saw (KEY -> value)."""
    reason = _cannot_boot()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("nspawn")
    root = _container_root(base)
    debs = base / "debs"
    debs.mkdir()
    for path in (deb, upgrade_deb, DRIVER):
        shutil.copy(path, debs)
    results = base / "results"
    results.mkdir()
    upper = base / "usr-upper"
    upper.mkdir()
    console = base / "console.log"
    with console.open("wb") as out:
        booted = subprocess.run(
            ["systemd-nspawn", "--quiet", "-D", str(root), "--register=no", "--keep-unit",
             "--private-network", f"--overlay=/usr:{upper}:/usr",
             f"--bind-ro={debs}:/debs", f"--bind={results}:/results",
             "--boot", "systemd.unit=deb-test.service"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            timeout=BOOT_TIMEOUT, check=False)
    found: dict[str, str] = {}
    facts_file = results / "facts"
    if facts_file.exists():
        for line in facts_file.read_text().splitlines():
            key, _, value = line.partition("=")
            found[key] = value
    if found.get("finished") != "yes":
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(results.iterdir()) if p.is_file())
        pytest.fail(f"the driver stopped (nspawn exit {booted.returncode}):\n{logs}\n"
                    f"--- console\n{console.read_text(errors='replace')[-4000:]}")
    return found


def _sums(value: str) -> dict[str, str]:
    """``sha256sum``'s output on one line -> {path: digest}."""
    words = value.split()
    return dict(zip(words[1::2], words[0::2], strict=True))


def test_install_needs_no_network_and_nothing_but_the_package(facts: dict[str, str]) -> None:
    assert facts["interfaces"] == "lo"
    assert facts["install_exit"] == "0"
    assert facts["on_path"] == "/usr/bin/procore-hotfolder"
    assert facts["version"] == f"procore-hotfolder {VERSION}"
    assert facts["exec_start"].startswith("{ path=/usr/bin/procore-hotfolder ;")
    assert facts["byte_code"] != "0"  # compiled by postinst for this python3


def test_install_creates_user_state_and_conffile_and_leaves_the_unit_off(
        facts: dict[str, str]) -> None:
    user = facts["user"].split(":")
    assert user[0] == "procore-hotfolder" and int(user[2]) < 1000  # a system user
    assert user[5:] == ["/var/lib/procore-hotfolder", "/usr/sbin/nologin"]
    assert facts["group"].startswith("procore-hotfolder:")
    assert facts["state_dir"] == "procore-hotfolder:procore-hotfolder 750"
    assert facts["config_mode"] == "root:procore-hotfolder 640"
    example = hashlib.sha256((ROOT / "config/example.toml").read_bytes()).hexdigest()
    assert facts["config_sha256"].split()[0] == example
    assert facts["conffiles"].split()[0] == "/etc/procore-hotfolder/config.toml"
    assert facts["examples"].split() == ["metrics.conf.example", "override.conf.example"]
    assert facts["enabled_after_install"] == "disabled"
    assert facts["active_after_install"] == "inactive"


def test_configured_service_starts_and_uploads(facts: dict[str, str]) -> None:
    assert facts["check_exit"] == "0"
    assert facts["phf_check_exit"] == "0"  # README's phf: as the service user, the credential
    assert facts["enable_exit"] == "0"
    assert facts["active_after_enable"] == "active"
    entry = json.loads(facts["ledger_first"])
    assert entry["source"] == "/srv/drop/tower-a/first.pdf"
    assert entry["archived"] == "/srv/drop/tower-a/Archive/first.pdf"
    assert facts["journal_upload_lines"] == "1"  # journalctl -u shows the upload_completed line


def test_upgrade_keeps_configuration_credential_journal_ledger_and_restarts(
        facts: dict[str, str]) -> None:
    assert facts["upgrade_exit"] == "0"
    assert facts["version_after_upgrade"] == UPGRADE_VERSION
    assert facts["active_after_upgrade"] == "active"
    assert facts["invocation_after_upgrade"] != facts["invocation_before_upgrade"]
    assert _sums(facts["kept_after_upgrade"]) == _sums(facts["kept_before_upgrade"])
    assert facts["config_mode_after_upgrade"] == "root:procore-hotfolder 640"
    assert "journal.sqlite3" in facts["journal_after_upgrade"].split()
    ledger = facts["ledger_after_upgrade"]
    assert ledger.startswith(facts["ledger_first"])  # the first line kept, a second added
    assert '"source": "/srv/drop/tower-a/second.pdf"' in ledger.replace('":"', '": "')


def test_remove_stops_the_service_and_keeps_everything_else(facts: dict[str, str]) -> None:
    assert facts["remove_exit"] == "0"
    assert facts["dpkg_after_remove"] == "rc"
    assert facts["active_after_remove"] == "inactive"
    assert "No such file" in facts["program_after_remove"]
    assert facts["user_after_remove"].startswith("procore-hotfolder:")
    assert _sums(facts["kept_after_remove"]).keys() == _sums(
        facts["kept_before_upgrade"]).keys()
    assert "journal.sqlite3" in facts["state_after_remove"].split()


def test_purge_removes_configuration_and_user_but_keeps_journal_and_ledger(
        facts: dict[str, str]) -> None:
    assert facts["purge_exit"] == "0"
    assert "no packages found" in facts["dpkg_after_purge"]
    assert "No such file" in facts["etc_after_purge"]
    assert "No such file" in facts["drop_in_after_purge"]
    assert facts["user_after_purge"] == ""
    assert facts["group_after_purge"] == ""
    assert facts["statoverride_after_purge"] == ""
    assert {"journal.sqlite3", "uploads.jsonl"} <= set(facts["state_after_purge"].split())
    assert facts["ledger_after_purge"] == facts["ledger_after_upgrade"]
    assert facts["archive_after_purge"].split() == ["first.pdf", "second.pdf"]
    assert facts["purge_says"].startswith("kept /var/lib/procore-hotfolder: the journal and "
                                          "the ledger")
