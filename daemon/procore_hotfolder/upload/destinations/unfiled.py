"""Destination "none": the Upload is filed nowhere. An integration that reads the ledger's
UUIDs files it; Procore deletes an Upload filed nowhere after 7 days, which is what `run`,
`check` and `status` warn about."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from procore_hotfolder.config import FolderSettings, RoutingRule
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.upload.destinations.protocol import CheckReport, Render

UNFILED_WARNING = ("destination is none: these uploads are filed nowhere in Procore, which "
                   "deletes them after 7 days")


@dataclass(frozen=True)
class Nowhere:
    """The target of an Upload filed nowhere."""

    kind: ClassVar[str] = "none"  # Unfiled.kind

    def describe(self) -> str:
        return "not filed (destination none)"

    def to_json(self) -> dict[str, Any]:
        return {}


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

    @classmethod
    def folder_target(cls, folder: FolderSettings, relative: PurePosixPath) -> Nowhere:
        return Nowhere()

    @classmethod
    def rule_target(cls, rule: RoutingRule, render: Render) -> Nowhere:
        return Nowhere()

    @classmethod
    def load_target(cls, raw: Mapping[str, Any]) -> Nowhere:
        return Nowhere()
