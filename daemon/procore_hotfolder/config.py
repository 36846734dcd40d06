"""Configuration: frozen, typed settings loaded from TOML, every problem reported at once.

``load_config(path)`` returns a ``Config`` or raises ``ConfigError`` listing each problem
with the key it concerns. Relative paths are resolved against the configuration file's
directory. The client secret comes from ``$PROCORE_CLIENT_SECRET``, else from
``client_secret_file`` (a relative name is looked up in ``$CREDENTIALS_DIRECTORY`` first).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from procore_hotfolder.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/procore-hotfolder/config.toml")
CONFIG_ENV = "PROCORE_HOTFOLDER_CONFIG"
SECRET_ENV = "PROCORE_CLIENT_SECRET"  # noqa: S105 - the variable name, not a secret
MIB = 1024 * 1024
MIN_SEGMENT_BYTES = 5 * MIB

Destination = Literal["none", "documents", "photos"]
NameClash = Literal["version", "rename", "fail"]
WatchMode = Literal["auto", "events", "poll"]


@dataclass(frozen=True)
class ProcoreSettings:
    api_url: str
    login_url: str
    company_id: int
    client_id: str
    client_secret: str = field(repr=False)
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: Path
    settle_seconds: float = 10.0
    rescan_seconds: float = 300.0
    workers: int = 4
    max_attempts: int = 5
    empty_file_timeout_seconds: float = 3600.0
    poll_seconds: float = 5.0
    segment_threshold_bytes: int = 100 * MIB
    segment_size_bytes: int = 16 * MIB
    segment_parallelism: int = 4
    log_level: str = "info"
    #: A ceiling below Procore's own limit (None: Procore's headers alone pace the calls).
    max_api_calls_per_hour: int | None = None
    metrics_listen: tuple[str, int] | None = None  # loopback (host, port); None: no metrics


@dataclass(frozen=True)
class FolderSettings:
    path: Path
    project_id: int | None
    archive_dir: Path
    failed_dir: Path
    destination: Destination = "none"
    documents_folder_id: int | None = None
    #: documents: the drop folder's subfolders become Procore folders below the target.
    mirror_subfolders: bool = True
    #: documents: what a name already filed in the Procore folder leads to.
    on_name_clash: NameClash = "version"
    photos_album_id: int | None = None
    exclude: tuple[str, ...] = ()
    settle_seconds: float = 10.0
    watch: WatchMode = "auto"
    recursive: bool = True
    response_content_type: str | None = None


@dataclass(frozen=True)
class Config:
    procore: ProcoreSettings
    daemon: DaemonSettings
    folders: tuple[FolderSettings, ...]
    source: Path | None = None

    def folder_for(self, path: Path) -> FolderSettings | None:
        """The watched folder containing ``path`` (the deepest one), or None."""
        best: FolderSettings | None = None
        for folder in self.folders:
            inside = path == folder.path or folder.path in path.parents
            if inside and (best is None or len(folder.path.parts) > len(best.path.parts)):
                best = folder
        return best


def default_config_path() -> Path:
    """``$PROCORE_HOTFOLDER_CONFIG``, else ``/etc/procore-hotfolder/config.toml``."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


# --- loading -------------------------------------------------------------------------------

_PROCORE_KEYS = {
    "api_url", "login_url", "company_id", "client_id", "client_secret_file", "timeout_seconds",
}
_DAEMON_KEYS = {
    "state_dir", "settle_seconds", "rescan_seconds", "workers", "max_attempts",
    "empty_file_timeout_seconds", "poll_seconds", "segment_threshold_mib", "segment_size_mib",
    "segment_parallelism", "log_level", "max_api_calls_per_hour", "metrics_listen",
}
_FOLDER_KEYS = {
    "path", "project_id", "archive_dir", "failed_dir", "destination", "documents_folder_id",
    "photos_album_id", "exclude", "settle_seconds", "watch", "recursive", "response_content_type",
    "mirror_subfolders", "on_name_clash",
}
_TOP_KEYS = {"procore", "daemon", "folders"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


class _Problems:
    """Collects problems while reading one table, so all are reported together."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def unknown_keys(self, table: Mapping[str, Any], known: set[str], prefix: str) -> None:
        for key in sorted(set(table) - known):
            self.add(f"{prefix}{key}", "unknown key")


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at ``path``.

    Raises ``ConfigError`` with every problem found (each naming its key).
    """
    env = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: configuration file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from exc
    return parse_config(raw, base_dir=path.resolve().parent, environ=env, source=path)


def parse_config(
    raw: Mapping[str, Any],
    *,
    base_dir: Path,
    environ: Mapping[str, str],
    source: Path | None = None,
) -> Config:
    """Validate an already-parsed TOML document; see ``load_config``."""
    problems = _Problems()
    problems.unknown_keys(raw, _TOP_KEYS, "")
    procore = _procore(_table(raw, "procore", problems), base_dir, environ, problems)
    daemon = _daemon(_table(raw, "daemon", problems), base_dir, problems)
    folders_raw = raw.get("folders")
    folders: list[FolderSettings] = []
    if not isinstance(folders_raw, list) or not folders_raw:
        problems.add("folders", "at least one [[folders]] table is required")
    else:
        for index, entry in enumerate(folders_raw):
            prefix = f"folders[{index}]."
            if not isinstance(entry, dict):
                problems.add(f"folders[{index}]", "must be a table")
                continue
            folder = _folder(entry, prefix, base_dir, daemon, problems)
            if folder is not None:
                folders.append(folder)
        _check_overlaps(folders, problems)
    if problems.items or procore is None or daemon is None:
        raise ConfigError(problems.items or ["configuration incomplete"])
    return Config(procore=procore, daemon=daemon, folders=tuple(folders), source=source)


def _table(raw: Mapping[str, Any], name: str, problems: _Problems) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.add(name, "must be a table")
        return {}
    return value


def _get(
    table: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    prefix: str,
    problems: _Problems,
    *,
    required: bool = False,
) -> Any:
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


def _choice(raw: str | None, allowed: tuple[str, ...], default: str, key: str,
            problems: _Problems) -> str:
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


def _positive_number(
    table: Mapping[str, Any], key: str, default: float, prefix: str, problems: _Problems,
    *, minimum: float = 0.0, allow_zero: bool = False,
) -> float:
    value = _get(table, key, (int, float), prefix, problems)
    if value is None:
        return default
    if value < minimum or (value == 0 and not allow_zero):
        problems.add(prefix + key, f"must be greater than {minimum:g}" if not allow_zero
                     else f"must be at least {minimum:g}")
        return default
    return float(value)


def _positive_int(
    table: Mapping[str, Any], key: str, default: int, prefix: str, problems: _Problems,
    *, minimum: int = 1, maximum: int | None = None,
) -> int:
    value = _get(table, key, int, prefix, problems)
    if value is None:
        return default
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        problems.add(prefix + key, f"must be {bound}, got {value}")
        return default
    return int(value)


def _url(table: Mapping[str, Any], key: str, default: str, problems: _Problems) -> str:
    value = _get(table, key, str, "procore.", problems)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add("procore." + key, f"must be an https:// URL, got {value!r}")
        return default
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        problems.add("procore." + key,
                     f"http:// is accepted only for loopback hosts; use https:// ({value!r})")
    return str(value).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _procore(
    table: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str], problems: _Problems,
) -> ProcoreSettings | None:
    p = "procore."
    problems.unknown_keys(table, _PROCORE_KEYS, p)
    api_url = _url(table, "api_url", "https://api.procore.com", problems)
    login_url = _url(table, "login_url", "https://login.procore.com", problems)
    company_id = _get(table, "company_id", int, p, problems, required=True)
    if company_id is not None and company_id <= 0:
        problems.add(p + "company_id", "must be a positive integer")
    client_id = _get(table, "client_id", str, p, problems, required=True)
    if client_id is not None and not client_id.strip():
        problems.add(p + "client_id", "must not be empty")
    timeout = _positive_number(table, "timeout_seconds", 60.0, p, problems)
    secret = _client_secret(table, base_dir, environ, problems)
    if company_id is None or client_id is None or secret is None:
        return None
    return ProcoreSettings(api_url=api_url, login_url=login_url, company_id=company_id,
                           client_id=client_id, client_secret=secret, timeout_seconds=timeout)


def _client_secret(
    table: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str], problems: _Problems,
) -> str | None:
    key = "procore.client_secret_file"
    from_env = environ.get(SECRET_ENV, "").strip()
    if from_env:
        return from_env
    name = _get(table, "client_secret_file", str, "procore.", problems)
    if name is None:
        if "client_secret_file" not in table:
            problems.add(key, f"is required (or set ${SECRET_ENV})")
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
            problems.add(key, f"cannot read {candidate}: {exc.__class__.__name__}")
            return None
        if not secret:
            problems.add(key, f"{candidate} is empty")
            return None
        return secret
    tried = ", ".join(str(c) for c in candidates)
    problems.add(key, f"file not found (looked in {tried}); or set ${SECRET_ENV}")
    return None


def _daemon(table: Mapping[str, Any], base_dir: Path, problems: _Problems) -> DaemonSettings:
    p = "daemon."
    problems.unknown_keys(table, _DAEMON_KEYS, p)
    state_raw = _get(table, "state_dir", str, p, problems)
    state_dir = _resolve(state_raw, base_dir) if state_raw else Path("/var/lib/procore-hotfolder")
    log_level = _get(table, "log_level", str, p, problems) or "info"
    if log_level.lower() not in _LOG_LEVELS:
        problems.add(p + "log_level", f"must be one of {sorted(_LOG_LEVELS)}, got {log_level!r}")
        log_level = "info"
    segment_size = _positive_int(table, "segment_size_mib", 16, p, problems, minimum=5,
                                 maximum=5 * 1024)
    threshold = _positive_int(table, "segment_threshold_mib", 100, p, problems, minimum=5,
                              maximum=5 * 1024)
    return DaemonSettings(
        state_dir=state_dir,
        settle_seconds=_positive_number(table, "settle_seconds", 10.0, p, problems,
                                        allow_zero=True),
        rescan_seconds=_positive_number(table, "rescan_seconds", 300.0, p, problems),
        workers=_positive_int(table, "workers", 4, p, problems, maximum=64),
        max_attempts=_positive_int(table, "max_attempts", 5, p, problems, maximum=1000),
        empty_file_timeout_seconds=_positive_number(
            table, "empty_file_timeout_seconds", 3600.0, p, problems),
        poll_seconds=_positive_number(table, "poll_seconds", 5.0, p, problems),
        segment_threshold_bytes=threshold * MIB,
        segment_size_bytes=segment_size * MIB,
        segment_parallelism=_positive_int(table, "segment_parallelism", 4, p, problems,
                                          maximum=32),
        log_level=log_level.lower(),
        max_api_calls_per_hour=_positive_int(table, "max_api_calls_per_hour", 0, p, problems,
                                             maximum=1_000_000) or None,
        metrics_listen=_metrics_listen(table, problems),
    )


def _metrics_listen(table: Mapping[str, Any], problems: _Problems) -> tuple[str, int] | None:
    """``daemon.metrics_listen``: ``host:port`` (``[::1]:port`` for IPv6) on loopback only:
    the endpoint has no authentication, so it must not be reachable from the network."""
    value = _get(table, "metrics_listen", str, "daemon.", problems)
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.add("daemon.metrics_listen",
                     f'must be "host:port", e.g. "127.0.0.1:9464"; got {value!r}')
        return None
    if not _is_loopback(host):
        problems.add("daemon.metrics_listen",
                     f"must be a loopback address (127.0.0.1, ::1 or localhost); got {value!r}")
        return None
    return host, int(port)


def _resolve(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def _optional_id(
    table: Mapping[str, Any], key: str, prefix: str, problems: _Problems,
) -> int | None:
    value = _get(table, key, int, prefix, problems)
    if value is not None and value <= 0:
        problems.add(prefix + key, "must be a positive integer")
        return None
    return int(value) if value is not None else None


def _folder(
    table: Mapping[str, Any], prefix: str, base_dir: Path, daemon: DaemonSettings,
    problems: _Problems,
) -> FolderSettings | None:
    problems.unknown_keys(table, _FOLDER_KEYS, prefix)
    path_raw = _get(table, "path", str, prefix, problems, required=True)
    if not path_raw:
        return None
    path = Path(os.path.normpath(_resolve(path_raw, base_dir)))
    archive_raw = _get(table, "archive_dir", str, prefix, problems)
    failed_raw = _get(table, "failed_dir", str, prefix, problems)
    archive_dir = Path(os.path.normpath(_resolve(archive_raw, path))) if archive_raw \
        else path / ".archive"
    failed_dir = Path(os.path.normpath(_resolve(failed_raw, path))) if failed_raw \
        else path / ".failed"
    if archive_dir == path or archive_dir in path.parents:
        problems.add(prefix + "archive_dir", "must not be the watched folder or contain it")
    if failed_dir == path or failed_dir in path.parents:
        problems.add(prefix + "failed_dir", "must not be the watched folder or contain it")
    if archive_dir == failed_dir:
        problems.add(prefix + "failed_dir", "must differ from archive_dir")
    # No default: Procore deletes an Upload that is filed nowhere within a week, so each
    # folder must say where its files go (none only on purpose).
    destination_raw = _get(table, "destination", str, prefix, problems)
    if "destination" not in table:
        problems.add(prefix + "destination",
                     'is required: "documents", "photos" or "none" (Procore deletes an Upload '
                     "that is filed nowhere within 7 days)")
    destination = cast(Destination, _choice(destination_raw, ("documents", "photos", "none"),
                                            "none", prefix + "destination", problems))
    project_id = _optional_id(table, "project_id", prefix, problems)
    if destination == "photos" and project_id is None:
        # Documents without a project file in the company's Documents (Company Folders and
        # Files); Procore has Photos only in projects.
        problems.add(prefix + "destination",
                     "'photos' needs a project_id (Procore has Photos only in projects)")
    documents_folder_id = _optional_id(table, "documents_folder_id", prefix, problems)
    photos_album_id = _optional_id(table, "photos_album_id", prefix, problems)
    if documents_folder_id is not None and destination != "documents":
        problems.add(prefix + "documents_folder_id", 'is used only with destination = "documents"')
    if photos_album_id is not None and destination != "photos":
        problems.add(prefix + "photos_album_id", 'is used only with destination = "photos"')
    mirror = _get(table, "mirror_subfolders", bool, prefix, problems)
    if mirror is not None and destination != "documents":
        problems.add(prefix + "mirror_subfolders", 'is used only with destination = "documents"')
    clash_raw = _get(table, "on_name_clash", str, prefix, problems)
    on_name_clash = cast(NameClash, _choice(clash_raw, ("version", "rename", "fail"),
                                            "version", prefix + "on_name_clash", problems))
    if clash_raw is not None and destination != "documents":
        problems.add(prefix + "on_name_clash", 'is used only with destination = "documents"')
    exclude_raw = _get(table, "exclude", list, prefix, problems) or []
    exclude: list[str] = []
    for item in exclude_raw:
        if isinstance(item, str) and item:
            exclude.append(item)
        else:
            problems.add(prefix + "exclude", f"entries must be non-empty strings, got {item!r}")
    watch_raw = _get(table, "watch", str, prefix, problems) or "auto"
    watch: WatchMode = "auto"
    if watch_raw == "events":
        watch = "events"
    elif watch_raw == "poll":
        watch = "poll"
    elif watch_raw != "auto":
        problems.add(prefix + "watch", f"must be one of auto, events, poll; got {watch_raw!r}")
    recursive = _get(table, "recursive", bool, prefix, problems)
    content_type = _get(table, "response_content_type", str, prefix, problems)
    settle = _positive_number(table, "settle_seconds", daemon.settle_seconds, prefix, problems,
                              allow_zero=True)
    return FolderSettings(
        path=path, project_id=project_id, archive_dir=archive_dir, failed_dir=failed_dir,
        destination=destination, documents_folder_id=documents_folder_id,
        mirror_subfolders=True if mirror is None else mirror, on_name_clash=on_name_clash,
        photos_album_id=photos_album_id, exclude=tuple(exclude), settle_seconds=settle,
        watch=watch, recursive=True if recursive is None else recursive,
        response_content_type=content_type or None,
    )


def _check_overlaps(folders: list[FolderSettings], problems: _Problems) -> None:
    for i, a in enumerate(folders):
        for j, b in enumerate(folders):
            if i < j and a.path == b.path:
                problems.add(f"folders[{j}].path", f"{b.path} is already watched by folders[{i}]")
            elif i != j and (b.path in a.archive_dir.parents or b.path == a.archive_dir):
                # Another folder watching our archive would upload archived files again.
                problems.add(f"folders[{i}].archive_dir",
                             f"{a.archive_dir} lies inside folders[{j}].path {b.path}")
            elif i != j and (b.path in a.failed_dir.parents or b.path == a.failed_dir):
                problems.add(f"folders[{i}].failed_dir",
                             f"{a.failed_dir} lies inside folders[{j}].path {b.path}")
