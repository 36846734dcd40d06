"""The Debian package, built as `make deb` builds it (packaging/deb/build.py), once per session;
a second build with a higher version for the upgrade."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "deb" / "build.py"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UPGRADE_VERSION = f"{VERSION}+upgrade.test"  # sorts after VERSION for dpkg


def _build(version: str, out: Path, work: Path) -> Path:
    result = subprocess.run([sys.executable, str(BUILD), "--version", version, "--out", str(out),
                             "--work", str(work)],
                            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb.name == f"procore-hotfolder_{version}_all.deb"
    return deb


@pytest.fixture(scope="session")
def deb_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the builds stage their files (and keep the downloaded wheels between them)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is missing: apt-get install dpkg-dev")
    return tmp_path_factory.mktemp("deb-work")


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory, deb_work: Path) -> Path:
    return _build(VERSION, tmp_path_factory.mktemp("dist"), deb_work)


@pytest.fixture(scope="session")
def upgrade_deb(deb_work: Path, deb: Path) -> Path:
    return _build(UPGRADE_VERSION, deb.parent, deb_work)
