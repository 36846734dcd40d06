"""The Procore client: OAuth token, Uploads (v1.1), storage POST/PUT, Documents and Photos.

The rest of the daemon uses ``ProcoreClient`` (``client``) and the Upload values
(``tickets``); the modules of the package are described in ``client``'s docstring. Never
imports the emulator.
"""

from procore_hotfolder.procore.client import ProcoreClient
from procore_hotfolder.procore.http import SEND_BLOCK_SIZE
from procore_hotfolder.procore.tickets import (
    Body,
    SegmentSpec,
    SegmentTicket,
    UploadTarget,
    UploadTicket,
)

__all__ = [
    "SEND_BLOCK_SIZE",
    "Body",
    "ProcoreClient",
    "SegmentSpec",
    "SegmentTicket",
    "UploadTarget",
    "UploadTicket",
]
