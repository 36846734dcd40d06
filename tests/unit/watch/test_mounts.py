"""Where a folder lives: available or not, a changed device (an unmount), the filesystem type
and the watch mode it gets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.watch.mounts import (
    FolderHealth,
    choose_watch_mode,
    filesystem_type,
    folder_available,
    is_network_fs,
)


def settings(root: Path, **overrides: Any) -> FolderSettings:
    values: dict[str, Any] = {"path": root, "project_id": 1,
                              "archive_dir": root / ".archive", "failed_dir": root / ".failed"}
    values.update(overrides)
    return FolderSettings(**values)


# --- folder health, filesystem type --------------------------------------------------------


def test_folder_available(tmp_path: Path) -> None:
    assert folder_available(settings(tmp_path)) is None
    assert folder_available(settings(tmp_path / "missing")) == "missing"
    (tmp_path / "file").write_bytes(b"x")
    assert folder_available(settings(tmp_path / "file")) == "not a directory"


def test_folder_health_notices_device_change(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem at /dev/shm")
    mounted = Path(os.path.realpath(shm)) / f"hotfolder-test-{os.getpid()}-{id(tmp_path)}"
    mounted.mkdir()
    try:
        (mounted / "a.pdf").write_bytes(b"x")
        link = tmp_path / "share"
        link.symlink_to(mounted)  # the configured path; its device is what the link points to
        folder = settings(link)
        health = FolderHealth()
        assert health.check(folder) is None
        # "Unmount": the path now resolves to an empty folder on another device.
        empty = tmp_path / "mountpoint"
        empty.mkdir()
        link.unlink()
        link.symlink_to(empty)
        assert health.check(folder) == "device changed (unmounted?)"
        # Content on the new device: accepted (a remount elsewhere, or a deliberate move).
        (empty / "b.pdf").write_bytes(b"y")
        assert health.check(folder) is None
        link.unlink()
        assert health.check(folder) == "missing"
    finally:
        for child in mounted.iterdir():
            child.unlink()
        mounted.rmdir()


def test_filesystem_type_real_paths(tmp_path: Path) -> None:
    root_type = filesystem_type(Path("/"))
    assert root_type and root_type != "unknown"
    assert filesystem_type(tmp_path) not in ("", "unknown")
    assert filesystem_type(Path("/proc/self")) == "proc"


def test_filesystem_type_longest_prefix_and_escapes(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/drop\\040share rw - cifs //nas/drop rw,vers=3.1.1\n"
        "41 22 0:51 / /srv/dropbox rw - fuse.rclone remote: rw\n"
        "42 40 0:52 / /srv/drop\\040share/local rw shared:7 master:2 - tmpfs tmpfs rw\n")
    def fstype(path: str) -> str:
        return filesystem_type(Path(path), mountinfo=mountinfo)

    assert fstype("/srv/drop share/a/b") == "cifs"
    assert fstype("/srv/drop share") == "cifs"
    assert fstype("/srv/drop share/local/x") == "tmpfs"
    assert fstype("/srv/dropbox/x") == "fuse.rclone"
    assert fstype("/srv/drop") == "ext4"  # a prefix of the name is not a parent
    assert filesystem_type(Path("/x"), mountinfo=tmp_path / "nope") == "unknown"


@pytest.mark.parametrize(("fstype", "network"), [
    ("cifs", True), ("nfs4", True), ("fuse.sshfs", True), ("fuse", True), ("9p", True),
    ("ext4", False), ("xfs", False), ("tmpfs", False), ("virtiofs", False), ("btrfs", False),
])
def test_network_types(fstype: str, network: bool) -> None:
    assert is_network_fs(fstype) is network


def test_choose_watch_mode(tmp_path: Path) -> None:
    assert choose_watch_mode(settings(tmp_path, watch="poll")) == "poll"
    assert choose_watch_mode(settings(tmp_path, watch="events")) == "events"
    expected = "poll" if is_network_fs(filesystem_type(tmp_path)) else "events"
    assert choose_watch_mode(settings(tmp_path, watch="auto")) == expected
