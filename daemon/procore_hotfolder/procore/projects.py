"""The company's projects as Procore shows them: List Projects and Show Project, read into
``Project`` values (id, name, project number, active).

``project_number`` is the text Procore holds ("The Project number", a string in Procore's
OpenAPI for List/Show Project), kept exactly: leading zeros and all (``"0042"`` is not
``"42"``). List Projects answers the active projects this service account may see (all of the
company's for a company admin, else those it has been added to), page by page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from procore_hotfolder.errors import UnexpectedResponse
from procore_hotfolder.procore.answers import as_int
from procore_hotfolder.procore.client import ProcoreClient


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    project_number: str | None
    active: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "project_number": self.project_number,
                "active": self.active}


def project_from(raw: Mapping[str, Any]) -> Project | None:
    """A project of a List/Show Project answer; None without a usable id. An empty number is
    no number."""
    project_id = as_int(raw.get("id"))
    if project_id is None:
        return None
    number = raw.get("project_number")
    active = raw.get("active")
    return Project(id=project_id, name=str(raw.get("name") or ""),
                   project_number=str(number) if number not in (None, "") else None,
                   active=active if isinstance(active, bool) else None)


def list_projects(client: ProcoreClient, company_id: int) -> list[Project]:
    """The company's projects this service account can see (Procore's List Projects: active
    ones), every page, in Procore's order. Raises the typed ``ProcoreError``."""
    return [p for raw in client.get_pages("v1.0/projects", {"company_id": company_id})
            if (p := project_from(raw)) is not None]


def show_project(client: ProcoreClient, company_id: int, project_id: int) -> Project:
    """Procore's Show Project; raises ``NotFound``/``PermissionDenied`` and the like."""
    raw = client.get_object(f"v1.0/projects/{int(project_id)}", {"company_id": company_id})
    project = project_from(raw)
    if project is None:
        raise UnexpectedResponse(f"Show Project {project_id} answered without an id")
    return project
