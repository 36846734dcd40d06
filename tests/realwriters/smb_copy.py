"""An SMB2 client that copies a file onto a share the way Windows' CopyFile writes it.

CopyFile opens the target (overwrite if it exists), sets its end of file to the final size
first, writes the bytes in order, then sets the basic information (the source's last-write
time: a copy keeps it) and closes. On the server the file has its final size from the first
moment, its tail zeros until the writes reach it; only the close says it is complete.

Built on smbprotocol's low-level API (connection, session, tree, open), so that every request
is the one named here and the test can hold the copy between two writes (``at_halfway``): a
link that stalls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smbprotocol.connection import Connection
from smbprotocol.file_info import FileBasicInformation, FileEndOfFileInformation
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FileAttributes,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
    SMB2SetInfoRequest,
    SMB2SetInfoResponse,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests.realwriters.samba import SambaShare

CHUNK = 1024 * 1024  # Windows' copy engine writes 1 MiB at a time (below max_write_size)
_FILETIME_EPOCH_OFFSET = 116_444_736_000_000_000  # 1601-01-01 to 1970-01-01, in 100 ns


def windows_copy(share: SambaShare, source: Path, name: str,
                 at_halfway: Callable[[], None] | None = None) -> None:
    """Copy ``source`` to ``name`` on ``share`` as CopyFile does; ``at_halfway`` is called
    with the target open once the first half (``size // 2`` bytes) is written. Raises
    ``smbprotocol.exceptions.SMBException`` (or ``OSError``) when the server refuses a step."""
    data = source.read_bytes()
    mtime_ns = source.stat().st_mtime_ns
    half = len(data) // 2
    connection = Connection(uuid.uuid4(), share.host, share.port, require_signing=True)
    connection.connect(timeout=10)
    try:
        session = Session(connection, share.username, share.password,
                          require_encryption=False)
        session.connect()
        tree = TreeConnect(session, share.unc)
        tree.connect()
        target = Open(tree, name)
        target.create(
            ImpersonationLevel.Impersonation,
            FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE
            | FilePipePrinterAccessMask.DELETE,
            FileAttributes.FILE_ATTRIBUTE_ARCHIVE,
            ShareAccess.FILE_SHARE_READ,
            CreateDisposition.FILE_OVERWRITE_IF,
            CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_SEQUENTIAL_ONLY)
        end_of_file = FileEndOfFileInformation()
        end_of_file["end_of_file"] = len(data)
        _set_info(target, end_of_file)
        chunk = min(CHUNK, connection.max_write_size)
        _write(target, data, 0, half, chunk)
        if at_halfway is not None:
            at_halfway()
        _write(target, data, half, len(data), chunk)
        basic = FileBasicInformation()
        basic["last_write_time"] = mtime_ns // 100 + _FILETIME_EPOCH_OFFSET
        basic["last_access_time"] = mtime_ns // 100 + _FILETIME_EPOCH_OFFSET
        basic["file_attributes"] = FileAttributes.FILE_ATTRIBUTE_ARCHIVE
        _set_info(target, basic)
        target.close()
    finally:
        connection.disconnect(close=True)


def _write(target: Open, data: bytes, start: int, end: int, chunk: int) -> None:
    for offset in range(start, end, chunk):
        piece = data[offset:min(offset + chunk, end)]
        written = target.write(piece, offset)
        if written != len(piece):
            raise OSError(f"short SMB write at {offset}: {written} of {len(piece)}")


def _set_info(target: Open, info: Any) -> None:
    """SMB2 SET_INFO of ``info`` (a file information class) on the open ``target``."""
    request = SMB2SetInfoRequest()
    request["info_type"] = info.INFO_TYPE
    request["file_info_class"] = info.INFO_CLASS
    request["file_id"] = target.file_id
    request["buffer"] = info
    tree = target.tree_connect
    sent = target.connection.send(request, tree.session.session_id, tree.tree_connect_id)
    SMB2SetInfoResponse().unpack(target.connection.receive(sent)["data"].get_value())
