"""OAuth as Procore's Doorkeeper answers it: the client-credentials grant at ``/oauth/token``
and the ``Authorization: Bearer`` check of every API call."""

from __future__ import annotations

import base64
import binascii
import json
import time
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, unquote

from .state import EmulatorState
from .wire import Reply, json_reply


def token_answer(state: EmulatorState, method: str, headers: Message, raw: bytes) -> Reply:
    """The answer to a token request whose body is ``raw`` (form or JSON; the client's
    credentials in the body or as HTTP Basic): a fresh bearer token, or Doorkeeper's error."""
    if method != "POST":
        return json_reply(404, {"error": "not_found"})
    params = _token_params(raw, headers.get("Content-Type", ""))
    if params is None:
        return json_reply(400, {"error": "invalid_request", "error_description": "malformed"})
    basic = _basic_credentials(headers.get("Authorization", ""))
    if basic:
        params.setdefault("client_id", basic[0])
        params.setdefault("client_secret", basic[1])
    grant = params.get("grant_type")
    if not grant:
        return json_reply(
            400, {"error": "invalid_request", "error_description": "grant_type is missing"}
        )
    if grant != "client_credentials":
        return json_reply(400, {"error": "unsupported_grant_type"})
    if (params.get("client_id"), params.get("client_secret")) != (
        state.client_id,
        state.client_secret,
    ):
        return json_reply(
            401,
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client, "
                "no client authentication included, or unsupported authentication method.",
            },
        )
    now = time.time()
    token = state.issue_token(now)
    body = {
        "access_token": token.value,
        "token_type": "bearer",
        "expires_in": int(state.faults.token_lifetime),
        "created_at": int(now),
    }
    return json_reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def _token_params(raw: bytes, content_type: str) -> dict[str, str] | None:
    text = raw.decode("utf-8", "replace")
    if "json" in content_type.lower() or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): str(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True))


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (unquote(user), unquote(password)) if colon else None


def bearer_problem(state: EmulatorState, header: str) -> Reply | None:
    """None when the Authorization header holds a valid token, else the 401 answer."""
    scheme, _, value = header.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    problem = state.check_token(token, time.time())
    if problem is None:
        return None
    if problem == "missing":
        body: Any = {"error": {"code": "unauthorized", "message": "Missing access token"}}
        description = "The access token is missing"
    elif problem == "invalid":
        body = {"errors": "Invalid access token"}
        description = "The access token is invalid"
    else:
        body = {"message": "Unauthorized"}
        description = "The access token expired"
    challenge = (
        f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{description}"'
    )
    return json_reply(401, body, {"WWW-Authenticate": challenge})
