"""Where a watched folder lives: whether it can be listed now, whether its share was
unmounted, and which filesystem holds it (on a network share or FUSE mount it is polled).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from pathlib import Path
from typing import Literal

from procore_hotfolder.config import FolderSettings

#: Filesystems where inotify does not see writes made by other machines: polled.
NETWORK_FS_TYPES: frozenset[str] = frozenset({
    "cifs", "smb3", "smbfs", "smb2", "nfs", "nfs4", "fuse", "9p", "afs", "ceph", "glusterfs",
    "davfs", "ncpfs", "vboxsf", "vmhgfs",
})


def folder_available(folder: FolderSettings) -> str | None:
    """None when the folder exists, is a directory and can be listed; else why not."""
    try:
        st = os.stat(folder.path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return _unavailable_reason(exc)
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    try:
        with os.scandir(folder.path) as entries:
            next(entries, None)
    except OSError as exc:
        return _unavailable_reason(exc)
    return None


def _unavailable_reason(exc: OSError) -> str:
    return "permission denied" if isinstance(exc, PermissionError) else _os_reason(exc)


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN, errno.EIO):
        return f"{exc.strerror} (share disconnected or unmounted?)"
    return str(exc.strerror or exc)


class FolderHealth:
    """``folder_available`` plus memory of each folder's device, to notice an unmount.

    When a share is unmounted, its mount point usually remains as an empty folder on the
    parent filesystem: the path still exists but sits on another device. An empty folder on
    a changed device is reported as "device changed (unmounted?)"; once it holds entries
    again the new device is accepted (a remount, or a deliberate move to another disk).
    Thread-safe.
    """

    def __init__(self) -> None:
        self._devices: dict[Path, int] = {}
        self._lock = threading.Lock()

    def check(self, folder: FolderSettings) -> str | None:
        """None when the folder can be scanned now, else the reason."""
        problem = folder_available(folder)
        if problem is not None:
            return problem
        try:
            device = os.stat(folder.path).st_dev
            with os.scandir(folder.path) as entries:
                empty = next(entries, None) is None
        except OSError as exc:
            return _os_reason(exc)
        with self._lock:
            known = self._devices.get(folder.path)
            if known is not None and known != device and empty:
                return "device changed (unmounted?)"
            self._devices[folder.path] = device
        return None


# --- filesystem type and watch mode --------------------------------------------------------


def _unescape_mount(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The filesystem type of the mount holding ``path`` (e.g. "ext4", "cifs"), or
    "unknown" when it cannot be determined."""
    try:
        target = os.path.realpath(path)
        lines = mountinfo.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return "unknown"
    best_len = -1
    best_type = "unknown"
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        if not sep or len(fields) < 5 or not right:
            continue
        mount_point = _unescape_mount(fields[4])
        prefix = mount_point.rstrip("/") + "/"
        if target != mount_point and not target.startswith(prefix):
            continue
        # ">=": a later line for the same mount point is mounted on top of the earlier one.
        if len(mount_point) >= best_len:
            best_len = len(mount_point)
            best_type = right.split(" ", 1)[0]
    return best_type


def is_network_fs(fstype: str) -> bool:
    """True for shares and FUSE mounts, where inotify misses other machines' writes."""
    return fstype in NETWORK_FS_TYPES or fstype.startswith("fuse.")


def choose_watch_mode(folder: FolderSettings) -> Literal["events", "poll"]:
    """``folder.watch`` unless "auto": then poll on network/FUSE filesystems, else events."""
    if folder.watch == "events":
        return "events"
    if folder.watch == "poll":
        return "poll"
    return "poll" if is_network_fs(filesystem_type(folder.path)) else "events"
