"""Procore's refusals before a handler touches data: the app disconnected from the company,
a project that does not exist, one the service account has not been granted, a tool that
is switched off in the project."""

from __future__ import annotations

from ..records import Project
from ..state import EmulatorState
from ..wire import ApiError
from .request import ApiRequest, forbidden, positive_int

_TOOL_TITLES = {"documents": "Documents", "photos": "Photos"}


def check_company(state: EmulatorState) -> None:
    """403 while the app is disconnected from the company (every company and project).

    The message is Procore's, from its Error Code Reference ("App is not connected to this
    company", ``api_essentials/error_reference.md``); the body's shape is not documented.
    """
    if state.faults.app_disconnected:
        raise ApiError(403, {"errors": "App is not connected to this company"})


def project_for(state: EmulatorState, company_id: int, project_id: int, now: float) -> Project:
    """The project, made up on first use while ``state.auto_create`` holds; else 404.

    Procore answers 404 for a project that does not exist or that the caller may not read
    ("The requested resource does not exist, or the authenticated user does not have access
    to it", Error Code Reference).
    """
    with state.lock:
        project = state.projects.get((company_id, project_id))
        if project is None and state.auto_create and project_id not in state.removed_projects:
            project = Project(project_id, company_id, f"Emulated Project {project_id}",
                              str(project_id), True, now, auto=True)
            state.projects[(company_id, project_id)] = project
    if project is None:
        raise ApiError(404, {"errors": {"base": ["Project not found"]}})
    return project


def check_project(
    state: EmulatorState, project_id: int, request: ApiRequest | None = None,
    tool: str | None = None,
) -> Project | None:
    """Procore's refusals for a project, in the order it would meet them: the app is not
    connected to the company (403), the project does not exist (404), the service account
    has not been granted the project (403), the tool is disabled in the project (403)."""
    check_company(state)
    project = None
    if request is not None:
        project = project_for(state, request.company_id, project_id, request.now)
    if project_id in state.faults.forbidden_projects:
        raise forbidden(f"You do not have access to project {project_id}")
    if tool is not None and tool in state.faults.disabled_tools.get(project_id, set()):
        title = _TOOL_TITLES.get(tool, tool)
        raise ApiError(403, {"errors": {"base": [
            f"The {title} tool is not enabled for this project"]}})
    return project


def query_project(state: EmulatorState, request: ApiRequest, tool: str | None = None) -> int:
    project_id = positive_int(request.query.get("project_id"))
    if project_id is None:
        raise ApiError(400, {"errors": "project_id is missing or invalid"})
    check_project(state, project_id, request, tool)
    return project_id
