"""Typed readers of TOML values for ``config``: each checks one key and reports a problem
under that key's name, so that ``parse_config`` can list every problem at once.

A reader returns the value (or the default) and never raises; what is wrong goes to the
``Problems`` it is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SECRET_ENV = "PROCORE_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret


class Problems:
    """Collects problems while reading the configuration, so all are reported together."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def unknown_keys(self, table: Mapping[str, Any], known: set[str], prefix: str) -> None:
        for key in sorted(set(table) - known):
            self.add(f"{prefix}{key}", "unknown key")


def table_of(raw: Mapping[str, Any], name: str, problems: Problems) -> Mapping[str, Any]:
    """The sub-table ``name`` of ``raw`` (empty when absent or not a table)."""
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.add(name, "must be a table")
        return {}
    return value


def typed(
    table: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    prefix: str,
    problems: Problems,
    *,
    required: bool = False,
) -> Any:
    """``table[key]`` when it is of ``kind``; else None (and a problem, unless it is absent
    and not ``required``)."""
    if key not in table:
        if required:
            problems.add(prefix + key, "is required")
        return None
    value = table[key]
    # bool is an int subclass: refuse true/false where a number is expected.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        problems.add(prefix + key, f"must be {_kind_name(kind)}, got a boolean")
        return None
    if not isinstance(value, kind):
        problems.add(prefix + key, f"must be {_kind_name(kind)}, got {type(value).__name__}")
        return None
    return value


def choice(raw: str | None, allowed: tuple[str, ...], default: str, key: str,
           problems: Problems) -> str:
    """``raw`` when it is one of ``allowed``; else ``default``, and a problem naming ``key``
    unless ``raw`` is absent."""
    if raw is None:
        return default
    if raw not in allowed:
        problems.add(key, f"must be one of {', '.join(allowed)}; got {raw!r}")
        return default
    return raw


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def positive_number(
    table: Mapping[str, Any], key: str, default: float, prefix: str, problems: Problems,
    *, minimum: float = 0.0, allow_zero: bool = False,
) -> float:
    value = typed(table, key, (int, float), prefix, problems)
    if value is None:
        return default
    if value < minimum or (value == 0 and not allow_zero):
        problems.add(prefix + key, f"must be greater than {minimum:g}" if not allow_zero
                     else f"must be at least {minimum:g}")
        return default
    return float(value)


def positive_int(
    table: Mapping[str, Any], key: str, default: int, prefix: str, problems: Problems,
    *, minimum: int = 1, maximum: int | None = None,
) -> int:
    value = typed(table, key, int, prefix, problems)
    if value is None:
        return default
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        problems.add(prefix + key, f"must be {bound}, got {value}")
        return default
    return int(value)


def optional_id(
    table: Mapping[str, Any], key: str, prefix: str, problems: Problems,
) -> int | None:
    """A Procore id (a positive integer), or None when absent or invalid."""
    value = typed(table, key, int, prefix, problems)
    if value is not None and value <= 0:
        problems.add(prefix + key, "must be a positive integer")
        return None
    return int(value) if value is not None else None


def url(table: Mapping[str, Any], key: str, default: str, problems: Problems,
        prefix: str = "procore.") -> str:
    """``<prefix><key>``: an https:// URL (http:// only for loopback), without a trailing
    slash."""
    value = typed(table, key, str, prefix, problems)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(prefix + key, f"must be an https:// URL, got {_shown(value, prefix)}")
        return default
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        problems.add(prefix + key, "http:// is accepted only for loopback hosts; use https:// "
                     f"({_shown(value, prefix)})")
    return str(value).rstrip("/")


def _shown(value: str, prefix: str) -> str:
    """A URL as a problem may quote it: Procore's URLs whole; any other (an alert webhook's
    path is its secret) by scheme and host only."""
    if prefix == "procore.":
        return repr(value)
    parts = urlsplit(value)
    return repr(f"{parts.scheme}://{parts.hostname}/..." if parts.hostname else parts.scheme)


def listen_address(table: Mapping[str, Any], key: str, prefix: str,
                   problems: Problems) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:port`` for IPv6) on loopback only, or None when absent."""
    value = typed(table, key, str, prefix, problems)
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.add(prefix + key, f'must be "host:port", e.g. "127.0.0.1:9464"; got {value!r}')
        return None
    if not is_loopback(host):
        problems.add(prefix + key,
                     f"must be a loopback address (127.0.0.1, ::1 or localhost); got {value!r}")
        return None
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_secret(
    table: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str], problems: Problems,
) -> str | None:
    """The client secret: ``$PROCORE_CLIENT_SECRET``, else the file ``procore.client_secret_file``
    names (a relative name is looked up in ``$CREDENTIALS_DIRECTORY``, then ``base_dir``)."""
    from_env = environ.get(SECRET_ENV, "").strip()
    if from_env:
        return from_env
    if "client_secret_file" not in table:
        problems.add("procore.client_secret_file", f"is required (or set ${SECRET_ENV})")
        return None
    return secret_file(table, "client_secret_file", "procore.", problems, base_dir=base_dir,
                       environ=environ, hint=f"; or set ${SECRET_ENV}")


def secret_file(
    table: Mapping[str, Any], key: str, prefix: str, problems: Problems, *, base_dir: Path,
    environ: Mapping[str, str], hint: str = "",
) -> str | None:
    """The secret in the file ``<prefix><key>`` names (its content, stripped): a relative name
    is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd's ``LoadCredential=``) first, then in
    ``base_dir``. None when the key is absent or the file unusable (a problem then)."""
    name = typed(table, key, str, prefix, problems)
    if name is None:
        return None
    candidates: list[Path] = []
    given = Path(name)
    if given.is_absolute():
        candidates.append(given)
    else:
        creds = environ.get("CREDENTIALS_DIRECTORY")
        if creds:
            candidates.append(Path(creds) / given)
        candidates.append(base_dir / given)
    for candidate in candidates:
        try:
            secret = candidate.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.add(prefix + key, f"cannot read {candidate}: {exc.__class__.__name__}")
            return None
        if not secret:
            problems.add(prefix + key, f"{candidate} is empty")
            return None
        return secret
    tried = ", ".join(str(c) for c in candidates)
    problems.add(prefix + key, f"file not found (looked in {tried}){hint}")
    return None


def resolve(value: str, base_dir: Path) -> Path:
    """``value`` as a path (``~`` expanded), relative to ``base_dir`` unless absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def string_list(table: Mapping[str, Any], key: str, prefix: str,
                problems: Problems) -> tuple[str, ...]:
    """A list of non-empty strings (empty when absent or invalid)."""
    value = typed(table, key, list, prefix, problems)
    if value is None:
        return ()
    bad = [item for item in value if not isinstance(item, str) or not item]
    if bad:
        problems.add(prefix + key, f"entries must be non-empty strings, got {bad[0]!r}")
        return ()
    return tuple(value)


def email_address(value: str, key: str, problems: Problems) -> bool:
    """True when ``value`` is a bare address (``name@host``): no display name, no spaces, no
    line breaks (which would let a value write its own mail headers)."""
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>,;\"" for c in value):
        problems.add(key, f'must be an e-mail address like "it@example.com", got {value!r}')
        return False
    return True
