#!/usr/bin/env python3
"""Build the Debian package: dist/procore-hotfolder_<version>_all.deb, with dpkg-deb alone.

    python3 packaging/deb/build.py [--version V] [--maintainer "Name <mail>"] [--out DIR]
    python3 packaging/deb/build.py lock     # refresh requirements.txt from pyproject.toml

What the package holds (the maintainer scripts beside this file do the rest: the user, the
state directory, the unit's state, byte-compiling):

    /usr/bin/procore-hotfolder            the launcher (the target's own /usr/bin/python3)
    /usr/lib/procore-hotfolder/           procore_hotfolder and every library it runs on, as
                                          Python source (requirements.txt), for any python3
                                          >= 3.11: Debian 12 has 3.11, Ubuntu 24.04 3.12
    /lib/systemd/system/procore-hotfolder.service   systemd/procore-hotfolder.service
    /etc/procore-hotfolder/config.toml    config/example.toml, a conffile
    /usr/share/doc/procore-hotfolder/     README.md, examples/ (the unit's drop-ins),
                                          copyright (every library's license), changelog
    /usr/share/man/man1/procore-hotfolder.1.gz

Needs python3 (>= 3.11) with pip, PyPI or pip's cache (PIP_* settings are honoured, e.g.
PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR for a builder without PyPI), and dpkg-deb.
"""

from __future__ import annotations

import argparse
import email.message
import email.parser
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = "procore-hotfolder"
LIB = f"usr/lib/{PACKAGE}"
DOC = f"usr/share/doc/{PACKAGE}"
UNIT = "lib/systemd/system/procore-hotfolder.service"
CONFFILE = "etc/procore-hotfolder/config.toml"
LAUNCHER = "usr/bin/procore-hotfolder"
# The unit's drop-ins that a package install uses (venv.conf.example is for the venv install).
DROP_IN_EXAMPLES = ("override.conf.example", "metrics.conf.example")
DEFAULT_MAINTAINER = "procore-hotfolder developers <procore-hotfolder@example.com>"

# Wheels are chosen for these tags only: Python source for any CPython 3 (watchdog tags its
# Linux wheel manylinux, yet it holds no compiled code: inotify is reached through ctypes);
# _check_pure_python() makes sure of it.
PURE_TAGS = ["--platform", "manylinux2014_x86_64", "--implementation", "py", "--abi", "none",
             "--python-version", "3.11"]
NOT_PYTHON_SOURCE = re.compile(r"\.(so|so\.\d.*|pyd|dylib|a|o|exe|dll)$")
APACHE_2_0 = re.compile(r"Apache License\s+Version 2\.0, January 2004.*TERMS AND CONDITIONS",
                        re.DOTALL)
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["build", "lock"], default="build")
    parser.add_argument("--version", help="package version (default: pyproject.toml's)")
    parser.add_argument("--maintainer", default=os.environ.get("DEB_MAINTAINER")
                        or DEFAULT_MAINTAINER)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "deb",
                        help="scratch directory (the downloaded wheels are kept there)")
    args = parser.parse_args()
    if args.command == "lock":
        lock()
        return 0
    deb = build(args.version or project_version(), args.maintainer, args.out, args.work)
    print(deb)
    return 0


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def build(version: str, maintainer: str, out: Path, work: Path) -> Path:
    """Stage the package's files under ``work`` and pack them; returns the .deb's path."""
    stage = work / "root"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    epoch = source_date_epoch()
    lib = stage / LIB
    install_libraries(lib, work / "wheels")
    shutil.copytree(ROOT / "daemon" / "procore_hotfolder", lib / "procore_hotfolder",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _check_pure_python(lib)
    put(stage / LAUNCHER, (HERE / "procore-hotfolder").read_bytes(), mode=0o755)
    put(stage / UNIT, packaged_unit())
    put(stage / CONFFILE, (ROOT / "config" / "example.toml").read_bytes())
    put(stage / DOC / "README.md", (ROOT / "README.md").read_bytes())
    for example in DROP_IN_EXAMPLES:
        put(stage / DOC / "examples" / example, (ROOT / "systemd" / example).read_bytes())
    put(stage / DOC / "copyright", copyright_text(lib).encode())
    put(stage / DOC / "changelog.gz", gzipped(changelog(version, maintainer, epoch), epoch))
    put(stage / "usr/share/man/man1/procore-hotfolder.1.gz",
        gzipped((HERE / "procore-hotfolder.1").read_bytes(), epoch))
    put(stage / f"usr/share/python3/runtime.d/{PACKAGE}.rtupdate",
        (HERE / "rtupdate").read_bytes(), mode=0o755)
    overrides = HERE / "lintian-overrides"
    if any(line and not line.startswith("#") for line in overrides.read_text().splitlines()):
        put(stage / f"usr/share/lintian/overrides/{PACKAGE}", overrides.read_bytes())
    normalise_modes(stage)

    debian = stage / "DEBIAN"
    for script in MAINTAINER_SCRIPTS:
        put(debian / script, (HERE / script).read_bytes(), mode=0o755)
    put(debian / "conffiles", f"/{CONFFILE}\n".encode())
    put(debian / "md5sums", md5sums(stage, exclude={CONFFILE}).encode())
    control = (HERE / "control").read_text().format(
        version=version, maintainer=maintainer, installed_size=installed_size(stage))
    put(debian / "control", control.encode())

    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{version}_all.deb"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(stage), str(deb)], env=env)
    return deb


def install_libraries(lib: Path, wheels: Path) -> None:
    """The pinned libraries of requirements.txt, installed as pip installs them (minus the
    console scripts and byte code), from Python-source wheels only."""
    downloads = wheels / "downloads"
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         *PURE_TAGS, "--dest", str(downloads), "--requirement", str(HERE / "requirements.txt")])
    built = wheels / "built"
    for sdist in sorted(downloads.glob("*.tar.gz")):
        name = sdist.name.removesuffix(".tar.gz")
        if not list(built.glob(f"{name.replace('-', '_')}-*.whl")):
            run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--wheel-dir", str(built), str(sdist)])
    files = sorted(downloads.glob("*.whl")) + sorted(built.glob("*.whl"))
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-compile", "--only-binary=:all:", *PURE_TAGS, "--target", str(lib),
         *map(str, files)])
    shutil.rmtree(lib / "bin", ignore_errors=True)  # watchmedo, normalizer: not ours to ship
    # PEP 610's record of where pip found each wheel: this machine's build path, nothing the
    # target needs, and it would make every build a different file.
    for direct_url in lib.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
        record = direct_url.with_name("RECORD")
        record.write_text("".join(line for line in record.read_text().splitlines(keepends=True)
                                  if not line.startswith(f"{direct_url.parent.name}/direct_url")))


def _check_pure_python(lib: Path) -> None:
    compiled = [p for p in lib.rglob("*") if NOT_PYTHON_SOURCE.search(p.name)]
    if compiled:
        raise SystemExit(f"compiled code in an Architecture: all package: {compiled}")


def packaged_unit() -> bytes:
    """The repository's unit, unchanged: its ExecStart is where the package puts the program."""
    text = (ROOT / "systemd" / "procore-hotfolder.service").read_text()
    if not re.search(rf"^ExecStart=/{LAUNCHER} ", text, flags=re.MULTILINE):
        raise SystemExit(f"systemd/procore-hotfolder.service must run /{LAUNCHER}")
    return text.encode()


def copyright_text(lib: Path) -> str:
    """The copyright file: ours, then each carried library's name, version, license and
    license texts as its wheel ships them."""
    parts = [
        "procore-hotfolder\n\n"
        "Copyright: the procore-hotfolder developers\n"
        "License: proprietary; all rights reserved.\n\n"
        f"The package carries these Python libraries, unmodified, in /{LIB}.\n"
        "The Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0, the Mozilla\n"
        "Public License 2.0 in /usr/share/common-licenses/MPL-2.0.\n"]
    for dist in sorted(lib.glob("*.dist-info")):
        meta = email.parser.Parser().parsestr((dist / "METADATA").read_text())
        parts.append(f"\n{'=' * 78}\n{meta['Name']} {meta['Version']}: {license_of(meta)}\n")
        for name in meta.get_all("License-File") or []:
            found = [p for p in (dist / "licenses" / name, dist / name) if p.is_file()]
            text = found[0].read_text().rstrip() if found else ""
            if APACHE_2_0.search(text):  # Debian has it; Policy 12.5 says refer to it
                text = "The Apache License 2.0: /usr/share/common-licenses/Apache-2.0"
            if text:
                parts.append(f"\n--- {name}\n\n{text}\n")
    return "".join(parts)


def license_of(meta: email.message.Message) -> str:
    """A wheel's license as an SPDX expression where it gives one."""
    for key in ("License-Expression", "License"):
        value = (meta[key] or "").strip()
        if value and "\n" not in value and len(value) < 60:
            return value
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    return " OR ".join(classifiers) or "see its license text"


def changelog(version: str, maintainer: str, epoch: int) -> bytes:
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))
    return (f"{PACKAGE} ({version}) stable; urgency=medium\n\n"
            f"  * Release {version}; README.md says what it does.\n\n"
            f" -- {maintainer}  {date}\n").encode()


def gzipped(data: bytes, epoch: int) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=epoch)


def put(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def normalise_modes(stage: Path) -> None:
    """Directories 0755, files 0644 (whatever the umask and the wheels said), but the launcher
    and the rtupdate hook, which ``put`` made 0755."""
    executables = {stage / LAUNCHER, stage / f"usr/share/python3/runtime.d/{PACKAGE}.rtupdate"}
    for path in [stage, *stage.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path not in executables:
            path.chmod(0o644)


def md5sums(stage: Path, exclude: set[str]) -> str:
    lines = []
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        relative = path.relative_to(stage).as_posix()
        if not relative.startswith("DEBIAN/") and relative not in exclude:
            lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}\n")  # noqa: S324 (dpkg's format)
    return "".join(lines)


def installed_size(stage: Path) -> int:
    """KiB, as dpkg-gencontrol counts: each file rounded up, each directory one."""
    total = 0
    for path in stage.rglob("*"):
        if path.relative_to(stage).parts[0] != "DEBIAN":
            total += -(-path.stat().st_size // 1024) if path.is_file() else 1
    return total


def source_date_epoch() -> int:
    """$SOURCE_DATE_EPOCH, else the last commit's time, so that a rebuild is the same file."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    result = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                            capture_output=True, text=True, check=False)
    return int(result.stdout.strip() or time.time())


def lock() -> None:
    """Rewrite requirements.txt: pyproject.toml's dependencies resolved by the Python that runs
    this (use the oldest supported, 3.11, so that its environment markers count), each pinned to
    its Python-source file (a py3-none wheel, else the source archive)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--target", str(Path(tmp) / "t"), "--report", str(report),
             *project["dependencies"]])
        pins = sorted((i["metadata"]["name"].lower().replace("_", "-"), i["metadata"]["version"])
                      for i in json.loads(report.read_text())["install"])
        files = Path(tmp) / "files"
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PURE_TAGS,
             "--dest", str(files), *(f"{n}=={v}" for n, v in pins)])
        hashes = {}
        for path in files.iterdir():
            name = re.split(r"-\d", path.name, maxsplit=1)[0].lower().replace("_", "-")
            hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    header = [line for line in (HERE / "requirements.txt").read_text().splitlines()
              if line.startswith("#")]
    body = [f"{n}=={v} --hash=sha256:{hashes[n]}" for n, v in pins]
    (HERE / "requirements.txt").write_text("\n".join(header + body) + "\n")


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
