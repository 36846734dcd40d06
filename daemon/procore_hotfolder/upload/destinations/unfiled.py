"""Destination "none": the Upload is filed nowhere. An integration that reads the ledger's
UUIDs files it; Procore deletes an Upload filed nowhere after 7 days, which is what `run`,
`check` and `status` warn about."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from procore_hotfolder.config import FolderSettings
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.destinations.protocol import CheckReport

UNFILED_WARNING = ("destination is none: these uploads are filed nowhere in Procore, which "
                   "deletes them after 7 days")


class Unfiled:
    """Files nothing: a stored Upload goes on to its ledger line and the archive."""

    kind: ClassVar[str] = "none"
    warning: ClassVar[str | None] = UNFILED_WARNING

    @classmethod
    def filer(cls, client: ProcoreClient, journal: Journal, clock: Callable[[], float]
              ) -> None:
        return None

    @classmethod
    def check(cls, client: ProcoreClient, folder: FolderSettings, report: CheckReport
              ) -> None:
        """Nothing to look at in Procore beyond the folder's project (or company)."""
