"""Every answer from Procore or its storage (S3), and every socket error, as one typed
``ProcoreError``: the only place that knows status codes, error body shapes and S3 codes.

Messages are short and safe to log: the status, the server's own words (at most
``MAX_DETAIL`` characters, secrets removed) and the URL without its query string.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from procore_hotfolder.errors import (
    AuthenticationError,
    Conflict,
    ContentMismatch,
    NetworkError,
    NotFound,
    PermissionDenied,
    ProcoreError,
    RateLimited,
    RequestTimeout,
    ServerError,
    ServiceUnavailable,
    StorageRejected,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.logs import scrub
from procore_hotfolder.procore.http import safe_url
from procore_hotfolder.procore.retry import parse_retry_after

#: Longest error detail kept from a response body.
MAX_DETAIL = 300
#: S3 codes meaning the bytes that arrived differ from what was declared.
_MISMATCH_CODES = frozenset({"XAmzContentSHA256Mismatch", "BadDigest", "IncompleteBody"})
#: S3 codes for a transient storage-side problem.
_TRANSIENT_STORAGE_CODES = frozenset({"RequestTimeout", "InternalError", "SlowDown"})


def _shorten(text: str, limit: int = MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TAG = re.compile(r"<[^>]+>")
_HTML_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")


def _xml_text(body: str, tag: str) -> str | None:
    # A regular expression, not an XML parser: the body is untrusted and only three short
    # elements are wanted.
    match = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.DOTALL)
    return match.group(1).strip() if match else None


def _json_detail(data: Any) -> tuple[str | None, str | None]:
    """(detail, code) from the JSON error shapes Procore uses."""
    if isinstance(data, Mapping):
        errors = data.get("errors")
        if isinstance(errors, Mapping):
            parts: list[str] = []
            for field, value in errors.items():
                messages = value if isinstance(value, list) else [value]
                text = "; ".join(str(m) for m in messages)
                parts.append(text if field == "base" else f"{field}: {text}")
            return "; ".join(parts) or None, None
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors) or None, None
        if isinstance(errors, str):
            return errors, None
        error = data.get("error")
        if isinstance(error, Mapping):
            code = error.get("code")
            message = error.get("message")
            return (str(message) if message is not None else None,
                    str(code) if code is not None else None)
        if isinstance(error, str):
            description = data.get("error_description")
            return (f"{error}: {description}" if description else error), error
        message = data.get("message")
        if message is not None:
            return str(message), None
    if isinstance(data, list) and data:
        return "; ".join(str(item) for item in data), None
    return None, None


def _body_detail(response: requests.Response) -> tuple[str | None, str | None, str | None]:
    """(detail, code, request id from the body) of an error response."""
    try:
        raw = response.content or b""
    except (requests.RequestException, RuntimeError):
        raw = b""
    text = raw[:64 * 1024].decode("utf-8", "replace").strip()
    if not text:
        return None, None, None
    content_type = response.headers.get("Content-Type", "").lower()
    if "<Error>" in text or (text.startswith("<?xml") and "xml" in content_type + text[:50]):
        code = _xml_text(text, "Code")
        message = _xml_text(text, "Message")
        detail = ": ".join(part for part in (code, message) if part) or None
        return detail, code, _xml_text(text, "RequestId")
    if text[:1] in "{[":
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            detail, code = _json_detail(data)
            return detail, code, None
    if "html" in content_type or text[:1] == "<":
        title = _HTML_TITLE.search(text)
        stripped = title.group(1) if title else _TAG.sub(" ", text)
        return (stripped.strip() or None), None, None
    return text, None, None


def _rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    asked = parse_retry_after(headers.get("Retry-After"), now)
    reset_raw = headers.get("X-Rate-Limit-Reset")
    until_reset: float | None = None
    if reset_raw is not None:
        try:
            until_reset = max(0.0, float(reset_raw) - now)
        except ValueError:
            until_reset = None
    waits = [w for w in (asked, until_reset) if w is not None]
    return max(waits) if waits else None


def error_from_response(
    response: requests.Response, *, storage: bool = False, now: float | None = None,
) -> ProcoreError:
    """The typed error for a failed HTTP answer from the API or (``storage``) from S3.

    The message is short and safe to log: status, the server's own words (at most
    ``MAX_DETAIL`` characters, secrets and URL queries removed) and the request URL
    without its query string.
    """
    now = time.time() if now is None else now
    status = response.status_code
    headers = response.headers
    detail, code, body_request_id = _body_detail(response)
    request_id = (headers.get("x-request-id") or headers.get("x-amz-request-id")
                  or body_request_id)
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    where = safe_url(response.url) if response.url else None
    side = "storage" if storage else "Procore"
    reason = response.reason or ""
    words = _shorten(scrub(detail)) if detail else (reason or "no details")
    message = f"{side} answered HTTP {status}: {words}"

    cls: type[ProcoreError]
    if status == 429:
        cls = RateLimited
        retry_after = _rate_limit_wait(headers, now)
    elif status == 503:
        cls = ServiceUnavailable
    elif status >= 500:
        cls = ServerError
    elif storage:
        if status == 403 or status in (404, 410):
            # Expired policy or segment URL, a signature or policy check failed (a field
            # changed), or the multipart upload is gone: only a new Upload helps.
            cls = UploadExpired
        elif code in _MISMATCH_CODES:
            cls = ContentMismatch
        elif code in _TRANSIENT_STORAGE_CODES:
            cls = ServerError
        elif 400 <= status < 500:
            cls = StorageRejected
        else:
            cls = ProcoreError
    elif status in (400, 422):
        cls = ValidationFailed
    elif status == 408:
        cls = RequestTimeout  # Procore documents 408 as transient (large unfiltered requests)
    elif status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDenied
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status == 410:
        cls = UploadExpired
    else:
        cls = ProcoreError
    return cls(message, status=status, code=code, request_id=request_id,
               retry_after=retry_after, url=where)


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "reason", None)
        if isinstance(inner, BaseException):
            current = inner
            continue
        if current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
            continue
        if current.__cause__ is not None:
            current = current.__cause__
            continue
        break
    return current


def error_from_exception(exc: Exception, *, url: str | None = None) -> ProcoreError:
    """A ``NetworkError`` naming the cause of a failed request (no URL query in the text);
    ``not_run`` when the request surely did not reach the server."""
    if isinstance(exc, ProcoreError):
        return exc
    root = _root_cause(exc)
    cause: str
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        cause = "connection timed out"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        cause = "no answer in time (read timeout)"
    elif isinstance(exc, requests.exceptions.SSLError):
        cause = "TLS error"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError
                    | requests.exceptions.ContentDecodingError):
        cause = "answer cut off"
    elif "NameResolution" in type(root).__name__ or "gaierror" in type(root).__name__:
        cause = "host name not resolved"
    elif isinstance(root, ConnectionRefusedError) or "refused" in str(root).lower():
        cause = "connection refused"
    elif isinstance(root, ConnectionResetError | BrokenPipeError) or "Disconnected" in type(
            root).__name__ or "aborted" in str(exc).lower():
        cause = "connection dropped"
    elif isinstance(exc, requests.exceptions.ProxyError):
        cause = "proxy error"
    elif isinstance(exc, requests.RequestException | OSError):
        cause = "network error"
    else:
        cause = "request failed"
    where = safe_url(url)
    kind = type(root).__name__
    message = f"{cause} ({kind})" + (f" talking to {where}" if where else "")
    return NetworkError(message, url=where, not_run=_never_sent(exc))


def _never_sent(exc: BaseException) -> bool:
    """True when the request surely did not reach the server (safe to repeat any POST)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
            exc, requests.exceptions.ReadTimeout):
        return isinstance(_root_cause(exc), NewConnectionError | ConnectionRefusedError)
    return False


