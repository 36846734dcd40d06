"""Configuration: frozen, typed settings loaded from TOML, every problem reported at once.

``load_config(path)`` returns a ``Config`` or raises ``ConfigError`` listing each problem
with the key it concerns. Relative paths are resolved against the configuration file's
directory. The client secret comes from ``$PROCORE_CLIENT_SECRET``, else from
``client_secret_file`` (a relative name is looked up in ``$CREDENTIALS_DIRECTORY`` first);
the SMTP password of ``[alerts]`` from ``smtp_password_file`` alone, looked up the same way.
Each key is read by one of the typed readers in ``config.values``; the tables' shapes, their
known keys and the checks across keys live here, but for the routing rules of a folder
(``[[folders.rules]]``), read in ``config.rules``.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from procore_hotfolder.config.alerts import AlertSettings, read_alerts
from procore_hotfolder.config.rules import (
    DESTINATIONS,
    NAME_CLASHES,
    Destination,
    NameClash,
    RoutingRule,
    Template,
    read_rules,
)
from procore_hotfolder.config.values import (
    Problems,
    choice,
    client_secret,
    listen_address,
    optional_id,
    positive_int,
    positive_number,
    resolve,
    table_of,
    typed,
    url,
)
from procore_hotfolder.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/procore-hotfolder/config.toml")
CONFIG_ENV = "PROCORE_HOTFOLDER_CONFIG"
MIB = 1024 * 1024

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "AlertSettings",
    "Config",
    "DaemonSettings",
    "Destination",
    "FolderSettings",
    "NameClash",
    "ProcoreSettings",
    "RoutingRule",
    "Template",
    "WatchMode",
    "default_config_path",
    "load_config",
    "parse_config",
]

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
    #: Where the files no rule matches go (all the folder's files when it has no rules);
    #: unused ("none") in a folder of rules only (``own_target`` false).
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
    #: Routing rules, in order: the first whose ``match`` fits a file decides where it goes.
    rules: tuple[RoutingRule, ...] = ()
    #: The folder's own keys (``project_id``, ``destination`` and its target) serve the files
    #: no rule matches. False: a folder of rules only, whose unmatched files fail
    #: (``no_rule_matched``).
    own_target: bool = True

    @property
    def unfiled(self) -> bool:
        """The folder's own destination is ``none``: what it uploads by its own keys is filed
        nowhere, and Procore deletes those Uploads after 7 days."""
        return self.own_target and self.destination == "none"


@dataclass(frozen=True)
class Config:
    procore: ProcoreSettings
    daemon: DaemonSettings
    folders: tuple[FolderSettings, ...]
    source: Path | None = None
    #: None: no ``[alerts]`` section, nobody is told (the log, metrics and status remain).
    alerts: AlertSettings | None = None

    def folder_for(self, path: Path) -> FolderSettings | None:
        """The watched folder containing ``path`` (the deepest one), or None."""
        best: FolderSettings | None = None
        for folder in self.folders:
            inside = path == folder.path or folder.path in path.parents
            if inside and (best is None or len(folder.path.parts) > len(best.path.parts)):
                best = folder
        return best

    def folder_at(self, path: Path) -> FolderSettings | None:
        """The watched folder whose path is ``path`` (a journal row's ``folder``), or None."""
        for folder in self.folders:
            if folder.path == path:
                return folder
        return None


class Current:
    """The configuration in force in a running daemon: the one holder every reader asks.

    Only the reload (SIGHUP: ``Service._reload``) calls ``set``; every other part calls the
    holder (``current()``) for the ``Config`` in force now. A reader asks once per unit of
    work and keeps what it got until that unit is done: the pipeline once per file (a file in
    progress keeps the settings it started with), the scheduler once per tick, the scanner
    once per round. A key read that way needs no code in the reload; only what acts on a
    change (the watches of the folders, the number of workers, the Procore client's token,
    the rate ceiling, the log level) is told by the reload. Thread-safe: a reload swaps one
    frozen value for another, so a reader never sees half of each.
    """

    def __init__(self, config: Config) -> None:
        self._lock = threading.Lock()
        self._config = config

    def __call__(self) -> Config:
        with self._lock:
            return self._config

    def set(self, config: Config) -> None:
        """Make ``config`` the configuration in force (the reload alone calls this)."""
        with self._lock:
            self._config = config


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
    "mirror_subfolders", "on_name_clash", "rules",
}
_TOP_KEYS = {"procore", "daemon", "folders", "alerts"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


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
    problems = Problems()
    problems.unknown_keys(raw, _TOP_KEYS, "")
    procore = _procore(table_of(raw, "procore", problems), base_dir, environ, problems)
    daemon = _daemon(table_of(raw, "daemon", problems), base_dir, problems)
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
    alerts = (read_alerts(table_of(raw, "alerts", problems), base_dir, environ, problems)
              if "alerts" in raw else None)
    if problems.items or procore is None or daemon is None:
        raise ConfigError(problems.items or ["configuration incomplete"])
    return Config(procore=procore, daemon=daemon, folders=tuple(folders), source=source,
                  alerts=alerts)


def _procore(
    table: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str], problems: Problems,
) -> ProcoreSettings | None:
    p = "procore."
    problems.unknown_keys(table, _PROCORE_KEYS, p)
    api_url = url(table, "api_url", "https://api.procore.com", problems)
    login_url = url(table, "login_url", "https://login.procore.com", problems)
    company_id = typed(table, "company_id", int, p, problems, required=True)
    if company_id is not None and company_id <= 0:
        problems.add(p + "company_id", "must be a positive integer")
    client_id = typed(table, "client_id", str, p, problems, required=True)
    if client_id is not None and not client_id.strip():
        problems.add(p + "client_id", "must not be empty")
    timeout = positive_number(table, "timeout_seconds", 60.0, p, problems)
    secret = client_secret(table, base_dir, environ, problems)
    if company_id is None or client_id is None or secret is None:
        return None
    return ProcoreSettings(api_url=api_url, login_url=login_url, company_id=company_id,
                           client_id=client_id, client_secret=secret, timeout_seconds=timeout)


def _daemon(table: Mapping[str, Any], base_dir: Path, problems: Problems) -> DaemonSettings:
    p = "daemon."
    problems.unknown_keys(table, _DAEMON_KEYS, p)
    state_raw = typed(table, "state_dir", str, p, problems)
    state_dir = resolve(state_raw, base_dir) if state_raw else Path("/var/lib/procore-hotfolder")
    log_level = typed(table, "log_level", str, p, problems) or "info"
    if log_level.lower() not in _LOG_LEVELS:
        problems.add(p + "log_level", f"must be one of {sorted(_LOG_LEVELS)}, got {log_level!r}")
        log_level = "info"
    segment_size = positive_int(table, "segment_size_mib", 16, p, problems, minimum=5,
                                 maximum=5 * 1024)
    threshold = positive_int(table, "segment_threshold_mib", 100, p, problems, minimum=5,
                              maximum=5 * 1024)
    return DaemonSettings(
        state_dir=state_dir,
        settle_seconds=positive_number(table, "settle_seconds", 10.0, p, problems,
                                        allow_zero=True),
        rescan_seconds=positive_number(table, "rescan_seconds", 300.0, p, problems),
        workers=positive_int(table, "workers", 4, p, problems, maximum=64),
        max_attempts=positive_int(table, "max_attempts", 5, p, problems, maximum=1000),
        empty_file_timeout_seconds=positive_number(
            table, "empty_file_timeout_seconds", 3600.0, p, problems),
        poll_seconds=positive_number(table, "poll_seconds", 5.0, p, problems),
        segment_threshold_bytes=threshold * MIB,
        segment_size_bytes=segment_size * MIB,
        segment_parallelism=positive_int(table, "segment_parallelism", 4, p, problems,
                                          maximum=32),
        log_level=log_level.lower(),
        max_api_calls_per_hour=positive_int(table, "max_api_calls_per_hour", 0, p, problems,
                                             maximum=1_000_000) or None,
        metrics_listen=listen_address(table, "metrics_listen", p, problems),
    )


def _folder(
    table: Mapping[str, Any], prefix: str, base_dir: Path, daemon: DaemonSettings,
    problems: Problems,
) -> FolderSettings | None:
    problems.unknown_keys(table, _FOLDER_KEYS, prefix)
    places = _folder_places(table, prefix, base_dir, problems)
    if places is None:
        return None
    path, archive_dir, failed_dir = places
    filing = _folder_filing(table, prefix, problems)
    rules = read_rules(table, prefix, folder_project_id=filing["project_id"],
                       folder_clash=filing["on_name_clash"], problems=problems)
    exclude_raw = typed(table, "exclude", list, prefix, problems) or []
    exclude: list[str] = []
    for item in exclude_raw:
        if isinstance(item, str) and item:
            exclude.append(item)
        else:
            problems.add(prefix + "exclude", f"entries must be non-empty strings, got {item!r}")
    watch_raw = typed(table, "watch", str, prefix, problems) or None
    watch = cast(WatchMode, choice(watch_raw, ("auto", "events", "poll"), "auto",
                                   prefix + "watch", problems))
    recursive = typed(table, "recursive", bool, prefix, problems)
    content_type = typed(table, "response_content_type", str, prefix, problems)
    settle = positive_number(table, "settle_seconds", daemon.settle_seconds, prefix, problems,
                             allow_zero=True)
    return FolderSettings(
        path=path, archive_dir=archive_dir, failed_dir=failed_dir, **filing,
        exclude=tuple(exclude), settle_seconds=settle, watch=watch,
        recursive=True if recursive is None else recursive,
        response_content_type=content_type or None, rules=rules,
    )


def _folder_places(
    table: Mapping[str, Any], prefix: str, base_dir: Path, problems: Problems,
) -> tuple[Path, Path, Path] | None:
    """The watched folder, its archive and its failed folder (None without a path)."""
    path_raw = typed(table, "path", str, prefix, problems, required=True)
    if not path_raw:
        return None
    path = Path(os.path.normpath(resolve(path_raw, base_dir)))
    archive_raw = typed(table, "archive_dir", str, prefix, problems)
    failed_raw = typed(table, "failed_dir", str, prefix, problems)
    archive_dir = Path(os.path.normpath(resolve(archive_raw, path))) if archive_raw \
        else path / ".archive"
    failed_dir = Path(os.path.normpath(resolve(failed_raw, path))) if failed_raw \
        else path / ".failed"
    if archive_dir == path or archive_dir in path.parents:
        problems.add(prefix + "archive_dir", "must not be the watched folder or contain it")
    if failed_dir == path or failed_dir in path.parents:
        problems.add(prefix + "failed_dir", "must not be the watched folder or contain it")
    if archive_dir == failed_dir:
        problems.add(prefix + "failed_dir", "must differ from archive_dir")
    return path, archive_dir, failed_dir


class _Filing(TypedDict):
    """The ``FolderSettings`` fields that say where a folder's files are filed."""

    project_id: int | None
    destination: Destination
    documents_folder_id: int | None
    photos_album_id: int | None
    mirror_subfolders: bool
    on_name_clash: NameClash
    own_target: bool


def _folder_filing(table: Mapping[str, Any], prefix: str, problems: Problems) -> _Filing:
    """Where the folder's files are filed in Procore by its own keys: ``destination`` and its
    target (for the files no rule matches, when it has rules)."""
    # No default: Procore deletes an Upload that is filed nowhere within a week, so each
    # folder must say where its files go (none only on purpose), or route them by rules.
    destination_raw = typed(table, "destination", str, prefix, problems)
    own_target = "destination" in table
    if not own_target and "rules" not in table:
        problems.add(prefix + "destination",
                     'is required: "documents", "photos" or "none" (Procore deletes an Upload '
                     "that is filed nowhere within 7 days), unless [[folders.rules]] route "
                     "the folder's files")
    destination = cast(Destination, choice(destination_raw, DESTINATIONS,
                                           "none", prefix + "destination", problems))
    project_id = optional_id(table, "project_id", prefix, problems)
    if destination == "photos" and project_id is None:
        # Documents without a project file in the company's Documents (Company Folders and
        # Files); Procore has Photos only in projects.
        problems.add(prefix + "destination",
                     "'photos' needs a project_id (Procore has Photos only in projects)")

    def only_with(wanted: str, key: str, value: object) -> None:
        # A key of another destination than the folder's is a mistake worth naming.
        if value is not None and destination != wanted:
            problems.add(prefix + key, f'is used only with destination = "{wanted}"'
                         if own_target else
                         f'is used only with the folder\'s destination = "{wanted}" (a '
                         "rule names its own target)")

    documents_folder_id = optional_id(table, "documents_folder_id", prefix, problems)
    photos_album_id = optional_id(table, "photos_album_id", prefix, problems)
    only_with("documents", "documents_folder_id", documents_folder_id)
    only_with("photos", "photos_album_id", photos_album_id)
    mirror = typed(table, "mirror_subfolders", bool, prefix, problems)
    only_with("documents", "mirror_subfolders", mirror)
    clash_raw = typed(table, "on_name_clash", str, prefix, problems)
    on_name_clash = cast(NameClash, choice(clash_raw, NAME_CLASHES,
                                           "version", prefix + "on_name_clash", problems))
    if own_target:  # a folder of rules only: its on_name_clash is its rules' default
        only_with("documents", "on_name_clash", clash_raw)
    return _Filing(project_id=project_id, destination=destination,
                   documents_folder_id=documents_folder_id, photos_album_id=photos_album_id,
                   mirror_subfolders=True if mirror is None else mirror,
                   on_name_clash=on_name_clash, own_target=own_target)


def _check_overlaps(folders: list[FolderSettings], problems: Problems) -> None:
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
