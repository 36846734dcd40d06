"""Answers as values: what the HTTP layer sends (or that it should send nothing at all)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class Reply:
    """A response to send; ``close`` ends the connection after it."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


class DropConnection(Exception):
    """Close the connection without answering (fault injection)."""


class ApiError(Exception):
    """An API error answer, raised from deep inside a handler."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.reply = json_reply(status, body, headers)


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode("utf-8"), headers=dict(headers or {}))


def new_request_id() -> str:
    return secrets.token_hex(16)


def s3_error(
    status: int,
    code: str,
    message: str,
    extra: dict[str, str] | None = None,
    close: bool = False,
) -> Reply:
    """An S3 XML error document."""
    request_id = secrets.token_hex(8).upper()
    host_id = secrets.token_urlsafe(48)
    items = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in (extra or {}).items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{items}"
        f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
    ).encode()
    return Reply(
        status,
        body,
        "application/xml",
        {"x-amz-request-id": request_id, "x-amz-id-2": host_id},
        close=close,
    )
