"""OAuth as Procore's Doorkeeper answers it: the client-credentials grant at ``/oauth/token``
and the ``Authorization: Bearer`` check of every API call."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from .state import EmulatorState
from .wire import Reply, json_reply


def token_answer(state: EmulatorState, method: str, raw: bytes) -> Reply:
    """The answer to a token request whose body is ``raw``: a fresh bearer token, or
    Doorkeeper's error.

    Source: "Using the OAuth 2.0 Client Credentials Grant Type" and "Procore API
    Authentication Endpoints" (``procore/documentation`` ``oauth/oauth_client_credentials.md``,
    ``oauth/oauth_endpoints.md``): ``POST /oauth/token`` with the form parameters
    ``grant_type=client_credentials``, ``client_id`` and ``client_secret``; the answer is
    ``{"access_token", "token_type": "bearer", "expires_in": 5400, "created_at": <unix>}``
    and no refresh token. Procore documents the credentials as body parameters only: a
    JSON body and HTTP Basic credentials are not documented, so (the least convenient
    reading) they are not read, and such a request fails like one without them. The error
    bodies are Doorkeeper's (RFC 6749 section 5.2); Procore documents none.
    """
    if method != "POST":
        return json_reply(404, {"error": "not_found"})
    params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
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
