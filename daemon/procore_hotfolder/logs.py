"""structlog setup: one JSON object per line off a terminal, a console renderer on one.

Every event passes through ``redact`` first, so no token, client secret, storage policy or
signature can reach a log line whatever a caller passes by mistake.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from procore_hotfolder.model import display_path

#: Keys whose values are never logged.
SECRET_KEYS = frozenset({
    "access_token", "token", "client_secret", "secret", "authorization", "policy",
    "signature", "x-amz-signature", "x-amz-credential", "password", "fields", "headers",
})
_REDACTED = "[redacted]"
_PATTERNS = (
    # Presigned storage URLs carry their signature in the query string.
    (re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s\"'<>]*"), r"\1"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + _REDACTED),
    # Policies, signatures and credentials are long: S3's "Policy: Policy expired" stays.
    (re.compile(r"(?i)\b((?:x-amz-)?(?:signature|policy|credential|security-token)[\"']?"
                r"\s*[=:]\s*[\"']?)[A-Za-z0-9+/=._~%-]{8,}"), r"\1" + _REDACTED),
    (re.compile(r"(?i)\b((?:access_token|client_secret|token|secret|password)[\"']?\s*[=:]"
                r"\s*[\"']?)[^\"'&\s,;<}]+"), r"\1" + _REDACTED),
)


def scrub(text: str) -> str:
    """Remove URL query strings, bearer tokens and signature/policy/secret values."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: (_REDACTED if str(k).lower() in SECRET_KEYS else _scrub_value(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret keys, scrub secrets out of every string value."""
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = _REDACTED
        else:
            event[key] = _scrub_value(event[key])
    return event


def _stringify_paths(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Paths (and names that are not valid UTF-8) become printable strings."""
    for key, raw in event.items():
        value = str(raw) if hasattr(raw, "__fspath__") else raw
        if isinstance(value, str):
            value = display_path(value)
        event[key] = value
    return event


def configure_logging(level: str = "info", stream: TextIO | None = None,
                      json_output: bool | None = None) -> None:
    """Configure structlog for the process. ``json_output`` None: JSON unless a terminal."""
    out = stream or sys.stdout
    use_json = not out.isatty() if json_output is None else json_output
    renderer: Any = (structlog.processors.JSONRenderer(ensure_ascii=False) if use_json
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _stringify_paths,
        redact,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
