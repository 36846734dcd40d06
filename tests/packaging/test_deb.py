"""What the Debian package holds, that Lintian finds nothing in it, and that the program it
carries runs on the system's python3 (and 3.12, Ubuntu 24.04's) with nothing but what the
package brings. Its install, upgrade, remove and purge on a booted systemd: test_deb_boot.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from procore_hotfolder.emulator import Emulator
from tests.conftest import write_config
from tests.packaging.conftest import ROOT, VERSION

pytestmark = pytest.mark.deb


def _dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    _dpkg_deb("-x", str(deb), str(root))
    return root


def test_control_names_the_package_and_depends_on_python3_and_adduser_only(deb: Path) -> None:
    fields = dict(line.split(": ", 1) for line in
                  _dpkg_deb("-f", str(deb), "Package", "Version", "Architecture",
                            "Depends").splitlines())
    assert fields == {"Package": "procore-hotfolder", "Version": VERSION, "Architecture": "all",
                      "Depends": "python3 (>= 3.11), adduser"}
    assert _dpkg_deb("-I", str(deb), "conffiles").split() == [
        "/etc/procore-hotfolder/config.toml"]


def test_files_are_where_the_contract_says(unpacked: Path) -> None:
    for path in ("usr/bin/procore-hotfolder",
                 "usr/lib/procore-hotfolder/procore_hotfolder/cli.py",
                 "lib/systemd/system/procore-hotfolder.service",
                 "etc/procore-hotfolder/config.toml",
                 "usr/share/doc/procore-hotfolder/README.md",
                 "usr/share/doc/procore-hotfolder/copyright",
                 "usr/share/doc/procore-hotfolder/examples/override.conf.example",
                 "usr/share/doc/procore-hotfolder/examples/metrics.conf.example",
                 "usr/share/man/man1/procore-hotfolder.1.gz"):
        assert (unpacked / path).is_file(), path
    assert ((unpacked / "etc/procore-hotfolder/config.toml").read_bytes()
            == (ROOT / "config/example.toml").read_bytes())
    unit = (unpacked / "lib/systemd/system/procore-hotfolder.service").read_text()
    assert unit == (ROOT / "systemd/procore-hotfolder.service").read_text()
    assert "\nExecStart=/usr/bin/procore-hotfolder run " in unit
    launcher = unpacked / "usr/bin/procore-hotfolder"
    assert launcher.read_text().startswith("#!/usr/bin/python3 -I\n")
    assert launcher.stat().st_mode & 0o111


def test_libraries_are_python_source_only(unpacked: Path) -> None:
    """Architecture: all holds: no extension module, no byte code (postinst compiles it for
    the python3 that is there), every dependency's distribution present."""
    lib = unpacked / "usr/lib/procore-hotfolder"
    files = [p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".so", ".pyc", ".pyd")) or "__pycache__" in f]
    dists = {p.name.split("-")[0].lower().replace("_", "-") for p in lib.glob("*.dist-info")}
    assert {"watchdog", "requests", "requests-toolbelt", "structlog", "sdnotify",
            "prometheus-client"} <= dists
    assert not (lib / "bin").exists()
    assert not list(lib.glob("*.dist-info/direct_url.json"))  # the builder's paths stay home


def test_lintian_finds_nothing(deb: Path) -> None:
    """Every tag, down to pedantic and informational ones, is absent or overridden with its
    reason in packaging/deb/lintian-overrides (an override that no longer matches is reported
    too)."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is missing: apt-get install lintian")
    result = subprocess.run(["lintian", "--pedantic", "--display-info", "--display-experimental",
                             str(deb)], capture_output=True, text=True, check=False)
    output = [line for line in (result.stdout + result.stderr).splitlines()
              if line and not line.startswith("running with root privileges")]
    assert result.returncode == 0 and output == [], "\n".join(output)


def _interpreters() -> list[str]:
    """The system's python3 (3.11 on Debian 12) and each other minor version found here
    (on PATH or installed by pyenv): Ubuntu 24.04 runs the same package with 3.12."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = ["/usr/bin/python3", *sorted(map(str, pyenv.glob("3.1[1-9]*/bin/python3"))),
                  "python3.12", "python3.13"]
    found: dict[str, str] = {}
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        version = subprocess.run([path, "-I", "-S", "-c",
                                  "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=False).stdout.strip()
        if version and version not in found:
            found[version] = path
    return [found[v] for v in sorted(found)]


@pytest.mark.parametrize("python", _interpreters())
def test_program_uploads_with_only_what_the_package_brings(
        python: str, unpacked: Path, emulator: Emulator, tmp_path: Path) -> None:
    """The launcher under this interpreter with -I -S (no site-packages, no PYTHONPATH): a file
    dropped is uploaded, recorded and archived by `once`."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "scan.pdf").write_bytes(b"%PDF-1.4 packaged\n")
    config = write_config(tmp_path, emulator, [{
        "path": str(drop), "archive_dir": str(drop / "Archive"),
        "failed_dir": str(drop / "Failed")}], settle_seconds=0.2)
    result = subprocess.run(
        [python, "-I", "-S", str(unpacked / "usr/bin/procore-hotfolder"), "once",
         "-c", str(config)],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    ledger = [json.loads(line) for line in
              (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    assert [e["source"] for e in ledger] == [str(drop / "scan.pdf")]
    assert (drop / "Archive" / "scan.pdf").is_file()
