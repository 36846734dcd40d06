"""What every API handler gets and gives: the parsed ``ApiRequest``, Procore's error shapes
(422 per field, 403), small parsers of its values, and paginated list answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..pagination import paginate
from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply


@dataclass
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    company_id: int
    body: Any
    now: float


Handler = Callable[[EmulatorState, ApiRequest, tuple[str, ...]], Reply]


def unprocessable(field: str, message: str) -> ApiError:
    return ApiError(422, {"errors": {field: [message]}})


def forbidden(message: str) -> ApiError:
    return ApiError(403, {"error": {"code": "forbidden", "message": message}})


def positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def body_object(body: Any, name: str) -> dict[str, Any]:
    """``body[name]`` as an object, or a 400 error."""
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, dict):
        raise ApiError(400, {"errors": {name: ["is missing"]}})
    return value


def flag(request: ApiRequest, name: str) -> bool:
    """A boolean query parameter: absent is false. Procore's OpenAPI says of the Documents
    flags (``exclude_folders``, ``exclude_files``, ``show_latest_file_version_only``) "Must
    be either true or false"; any other spelling ("1", "True") is refused (400), the least
    convenient reading of that sentence."""
    value = request.query.get(name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ApiError(400, {"errors": {name: ["must be either true or false"]}})


def page(state: EmulatorState, request: ApiRequest, items: list[Any]) -> Reply:
    """A paginated list answer (see ``pagination``)."""
    chosen, headers = paginate(items, request.query, base_url=state.base_url,
                               path=request.path)
    return json_reply(200, chosen, headers)
