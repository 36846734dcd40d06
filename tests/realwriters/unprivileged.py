"""The daemon as a real process under another uid, without CAP_LEASE (nor any capability).

``setpriv`` switches to the uid and gid, drops the supplementary groups, empties the
inheritable, ambient and bounding capability sets and sets no_new_privs before it execs
``python -m procore_hotfolder run``: a read lease (``F_SETLEASE``) on a file the uid does not
own is then refused with EACCES, as for a service user on a shared drop folder. pytest's
``tmp_path`` is not reachable by other uids, so the daemon's folders live in a directory under
/tmp given to the uid (``owned_directory``) and removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import cli_env, stop_process

NOBODY = 65534  # nobody and nogroup on Debian


def setpriv(uid: int = NOBODY, gid: int = NOBODY) -> list[str]:
    """The command prefix that runs what follows as ``uid``:``gid`` with no capability."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]


def unavailable(uid: int = NOBODY, gid: int = NOBODY) -> str | None:
    """Why the daemon cannot run as ``uid`` here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "running the daemon as another uid needs root: run the tests as root"
    if shutil.which("setpriv") is None:
        return "setpriv not installed: apt-get install util-linux"
    probe = subprocess.run([*setpriv(uid, gid), sys.executable, "-c",
                            "import procore_hotfolder"], capture_output=True, text=True,
                           timeout=60, env=cli_env(), stdin=subprocess.DEVNULL, check=False)
    if probe.returncode != 0:
        return (f"uid {uid} cannot import procore_hotfolder with {sys.executable} (the "
                f"checkout and its venv must be readable by it): {probe.stderr.strip()[-300:]}")
    return None


@contextmanager
def owned_directory(uid: int = NOBODY, gid: int = NOBODY) -> Iterator[Path]:
    """A fresh directory under /tmp (which every uid can reach) owned by ``uid``:``gid``;
    removed with everything in it on exit."""
    path = Path(tempfile.mkdtemp(prefix="phf-uid-", dir="/tmp"))
    try:
        os.chown(path, uid, gid)
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path)


def give(path: Path, uid: int = NOBODY, gid: int = NOBODY) -> None:
    """``path`` and everything below it owned by ``uid``:``gid``."""
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


@contextmanager
def unprivileged_daemon(config: Path, log: Path, uid: int = NOBODY, gid: int = NOBODY
                        ) -> Iterator[subprocess.Popen[bytes]]:
    """``procore-hotfolder run -c config`` as ``uid`` without capabilities, its output in
    ``log``; stopped (SIGTERM, then SIGKILL) and waited for on exit."""
    env = cli_env()
    env["HOME"] = str(config.parent)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*setpriv(uid, gid), sys.executable, "-m", "procore_hotfolder", "run",
             "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        stop_process(process)


def credentials(pid: int) -> dict[str, str]:
    """The ``Uid``, ``Gid``, ``Groups`` and ``Cap*`` lines of ``/proc/PID/status``."""
    wanted = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)
    return {key: fields.get(key, "").strip() for key in wanted}
