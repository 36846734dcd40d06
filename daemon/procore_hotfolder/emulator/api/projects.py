"""Companies and projects: List Companies, List/Show Project."""

from __future__ import annotations

from .. import views
from ..records import Project, company_name
from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply
from .access import check_company, check_project, project_for
from .request import ApiRequest, forbidden, page, positive_int, unprocessable


def list_companies(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    check_company(state)
    company = request.company_id
    return page(state, request,
                [{"id": company, "name": company_name(company), "is_active": True}])


def _query_company(state: EmulatorState, request: ApiRequest) -> int:
    """The ``company_id`` query parameter (required by List/Show Project); it must name the
    company of the Procore-Company-Id header."""
    check_company(state)
    company_id = positive_int(request.query.get("company_id"))
    if company_id is None:
        raise ApiError(400, {"errors": "company_id is missing or invalid"})
    if company_id != request.company_id:
        raise forbidden("The company_id does not match Procore-Company-Id")
    return company_id


def _visible(state: EmulatorState, project: Project) -> bool:
    """A service account sees only the projects it has been granted ("If the user does not
    have full company admin permissions, the request will only return the projects that the
    user has been added to", List Projects in Procore's OpenAPI)."""
    return project.id not in state.faults.forbidden_projects


def list_projects(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """List Projects, ``GET /rest/v1.0/projects`` and ``/rest/v1.1/projects`` (both take
    ``company_id``, ``page``, ``per_page``, ``filters[by_status]`` Active|Inactive|All
    (default: active only, "Return a list of active Projects"), ``filters[name]``; v1.1 also
    ``filters[project_number]``)."""
    company_id = _query_company(state, request)
    status = request.query.get("filters[by_status]", "Active")
    if status not in ("Active", "Inactive", "All"):
        raise unprocessable("filters[by_status]", "must be one of Active, Inactive, All")
    name = request.query.get("filters[name]", "").lower()
    # Only v1.1 documents filters[project_number] (Procore's OpenAPI, List projects): v1.0
    # ignores it, as Rails ignores an unknown parameter (the least convenient reading). How
    # it matches (exactly, or by part) is not documented: exactly here.
    number = (request.query.get("filters[project_number]")
              if request.path.startswith("/rest/v1.1/") else None)
    with state.lock:
        projects = sorted(
            (p for p in state.projects.values() if p.company_id == company_id), key=lambda p: p.id
        )
        items = [
            views.project_view(p)
            for p in projects
            if _visible(state, p)
            and (status == "All" or p.active == (status == "Active"))
            and name in p.name.lower()
            and (number is None or p.project_number == number)
        ]
    return page(state, request, items)


def show_project(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    """Show Project, ``GET /rest/v1.0/projects/{id}?company_id=``."""
    company_id = _query_company(state, request)
    project = project_for(state, company_id, int(args[0]), request.now)
    check_project(state, project.id)
    with state.lock:
        return json_reply(200, views.project_view(project))
