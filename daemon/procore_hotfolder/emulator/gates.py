"""What happens to a request before the token, API or storage logic sees it: outages,
injected errors and dropped connections (``Faults``), latency, and for the REST API the
bearer token, the rate windows, the company header and the JSON body.

The API and storage modules stay plain request-to-answer functions; every fault and limit is
applied here, in the order a client would meet it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from email.message import Message
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

from . import api, oauth, storage
from .faults import DROP, Faults
from .multipart import ByteStream, drain_stream
from .state import EmulatorState
from .wire import ApiError, DropConnection, Reply, json_reply, s3_error

_S3_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    408: "RequestTimeout",
    500: "InternalError",
    503: "SlowDown",
}


class Exchange(Protocol):
    """The request being answered, as the gates see it (``httpd.RequestHandler`` is one)."""

    command: str
    close_connection: bool

    @property
    def headers(self) -> Message: ...

    @property
    def rfile(self) -> ByteStream: ...

    def read_body(self) -> bytes:
        """The whole (small) body; raises ApiError (400/413) or DropConnection."""
        ...

    def content_length(self) -> int | None:
        """The Content-Length header; raises ApiError (400) when it is not a number."""
        ...


def answer_token(state: EmulatorState, exchange: Exchange) -> Reply:
    """``/oauth/token``: an outage, a scripted or random failure, else ``oauth``'s answer."""
    faults = state.faults
    if faults.outage:
        return _outage(faults, exchange)
    scripted = faults.take_scripted("token", "/oauth/token")
    if scripted == DROP:
        raise _drop_after_body(faults, exchange.read_body)
    raw = exchange.read_body()
    if scripted is not None:
        return _injected_error(faults, scripted)
    if faults.chance(faults.token_error_rate):
        return _injected_error(faults, faults.error_status)
    return oauth.token_answer(state, exchange.command, raw)


def answer_api(state: EmulatorState, exchange: Exchange, path: str, query: str) -> Reply:
    """A REST API request: outage, latency, scripted or random failures, the bearer token,
    the rate windows, the company header and the JSON body, then ``api.route``."""
    faults = state.faults
    if faults.outage:
        return _outage(faults, exchange)
    if faults.delay_seconds > 0:
        time.sleep(faults.delay_seconds)
    scripted = faults.take_scripted("api", path)
    if scripted == DROP or faults.chance(faults.drop_rate):
        raise _drop_after_body(faults, exchange.read_body)
    raw = exchange.read_body()
    if scripted is not None:
        return _injected_error(faults, scripted)
    if faults.chance(faults.error_rate):
        return _injected_error(faults, faults.error_status)
    if faults.chance(faults.timeout_rate):
        return _injected_error(faults, 408)
    problem = oauth.bearer_problem(state, exchange.headers.get("Authorization", ""))
    if problem is not None:
        return problem
    now = time.time()
    decision = state.rates.admit(now)
    limits = decision.headers
    if not decision.admitted:
        # Procore's Rate Limiting page (procore/documentation plan_your_app/rate_limiting.md,
        # before commit ca4a1eb): 429 with the three headers, and "While the response body
        # for both [hourly and spike] may state, 'You have surpassed the max number of
        # requests for an hour. Please wait until your limit resets.', this message can be
        # triggered by either limit type": so the spike window says "an hour" too, and the
        # body cannot tell the windows apart. Retry-After on a 429: Error Code Reference
        # (api_essentials/error_reference.md, "Rate limiting").
        text = ("You have surpassed the max number of requests for an hour. "
                "Please wait until your limit resets.")
        return Reply(429, text.encode(), "text/plain; charset=utf-8",
                     {**limits, "Retry-After": str(decision.retry_after)})
    company_raw = exchange.headers.get("Procore-Company-Id")
    if company_raw is None or not company_raw.strip():
        return json_reply(400, {"errors": "Missing Procore-Company-Id header!"}, limits)
    company = company_raw.strip()
    if not company.isdigit() or int(company) <= 0:
        return json_reply(400, {"errors": "Invalid Procore-Company-Id header"}, limits)
    body: Any = None
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            return json_reply(400, {"errors": {"base": ["malformed"]}}, limits)
    request = api.ApiRequest(
        exchange.command, path, dict(parse_qsl(query)), int(company), body, now
    )
    reply = api.route(state, request)
    reply.headers.update(limits)
    return reply


def add_rate_headers(state: EmulatorState, reply: Reply) -> None:
    """Every API answer carries ``X-Rate-Limit-*``: one given before the rate windows were
    asked (an outage, an injected error, a 401, a refused body) gets the current ones."""
    if "X-Rate-Limit-Limit" not in reply.headers:
        reply.headers.update(state.rates.headers(time.time()))


def answer_storage(state: EmulatorState, exchange: Exchange, path: str, query: str,
                   started: float) -> Reply:
    """A storage POST or PUT: latency, scripted or random drops and failures (S3's error
    codes), then ``storage.answer``. Raises ApiError (400) for a malformed Content-Length."""
    faults = state.faults
    length = exchange.content_length()
    request = storage.StorageRequest(
        exchange.command, path, parse_qsl(query, keep_blank_values=True),
        exchange.headers, exchange.rfile, length, started,
    )  # fmt: skip
    is_part = exchange.command == "PUT"
    if faults.storage_delay_seconds > 0:
        time.sleep(faults.storage_delay_seconds)
    scripted = faults.take_scripted("segment" if is_part else "storage", path)

    def drain() -> None:
        drain_stream(exchange.rfile, length or 0)

    if scripted == DROP or faults.chance(faults.storage_drop_rate):
        raise _drop_after_body(faults, drain)
    if scripted is not None or faults.chance(faults.storage_error_rate):
        status = scripted if scripted is not None else 500
        reply = s3_error(status, _S3_CODES.get(status, "InternalError"), "Injected failure.")
        return storage.discard_body(request, reply)
    return storage.answer(state, request)


# --- injected faults ---------------------------------------------------------------------------


def _outage(faults: Faults, exchange: Exchange) -> Reply:
    if faults.outage_mode == "drop":
        raise DropConnection
    exchange.close_connection = True  # the body may be unread
    return json_reply(503, {"errors": "Service Unavailable: maintenance"}, {"Retry-After": "1"})


def _injected_error(faults: Faults, status: int) -> Reply:
    """An injected failure in one of the body shapes Procore uses (JSON ``errors``,
    JSON ``error`` object, plain text, empty), worded for its status."""
    headers = {"Retry-After": "1"} if status in (429, 503) else {}
    if status == 429:
        # As from a spent spike window: its headers, not the roomy hourly window's.
        limit = faults.spike_limit
        headers.update({"X-Rate-Limit-Limit": str(limit[0] if limit else 25),
                        "X-Rate-Limit-Remaining": "0",
                        "X-Rate-Limit-Reset": str(math.ceil(time.time() + 1))})
    phrase = _phrase(status)
    shape = faults.choice(4)
    if shape == 0:
        reply = json_reply(status, {"errors": phrase}, headers)
    elif shape == 1:
        code = phrase.lower().replace(" ", "_")
        body = {"error": {"code": code, "message": f"{phrase}: please try again"}}
        reply = json_reply(status, body, headers)
    elif shape == 2:
        reply = Reply(status, phrase.encode(), "text/plain; charset=utf-8", headers)
    else:
        reply = Reply(status, b"", None, headers)
    # A request cut off for running too long leaves the connection closed behind it.
    reply.close = status == 408
    return reply


def _drop_after_body(faults: Faults, read: Callable[[], object]) -> DropConnection:
    """Maybe read the body first (chosen at random), then tell the caller to drop."""
    if faults.choice(2):
        with contextlib.suppress(ApiError, DropConnection, OSError, ValueError):
            read()
    return DropConnection()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
