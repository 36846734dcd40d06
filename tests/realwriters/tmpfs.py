"""A tmpfs mounted for one test: another file system, for an archive the daemon must copy
into instead of linking."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root: run the tests as root"
    return None


@contextmanager
def mounted_tmpfs(mountpoint: Path, size_mib: int = 64) -> Iterator[Path]:
    """A fresh tmpfs on ``mountpoint`` (created if missing), unmounted on exit. Raises
    ``subprocess.CalledProcessError`` (with mount's message) when it cannot be mounted."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs",
                    str(mountpoint)], check=True, capture_output=True, text=True, timeout=30)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, capture_output=True,
                       text=True, timeout=30)
