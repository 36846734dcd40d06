"""PURE: where a file goes, by its path below the drop folder: the folder's routing rules
(the first whose ``match`` fits the whole path decides), else the folder's own keys.

``route_file(folder, relative, mtime)`` answers a ``Route``: a frozen value naming the rule
that matched and the groups it captured, the project (by id, or by a number still to be
looked up among the company's projects: ``project_numbers``), the target (which the
destination builds itself from the rule or the folder's keys, ``upload.destinations``: a
Documents folder path below the project's root or below a folder id, with its clash policy;
an album by name or id; nothing), the name the file is filed under and its description. A
route is stored as versioned JSON (``to_json``/``from_json``, ``"v": 1``): the journal keeps
the route a file was given from the creation of its Upload on, so that a restart, or a
reload that changes the rules, does not send a half-filed file elsewhere. A file with no
route raises ``NoRuleMatched`` (the rules tried are in it, for the failure's sidecar) or
``InvalidRoute``.

Templates see the expression's named groups (None when a group did not take part: empty
text) and ``{name}``, ``{stem}``, ``{ext}`` (no dot), ``{parent}`` (the file's folder below
the drop folder, ``/`` between levels, empty at the top), ``{date}`` (YYYY-MM-DD) and
``{time}`` (HHMMSS) of the file's modification time, in ``tz`` (the machine's local time
unless given). What they render is made valid UTF-8 for Procore (bytes of the file's name
that are not UTF-8 become U+FFFD, as ``model.procore_name`` does); a ``/`` in a rendered
name becomes ``_``; a Documents path is split at ``/``, each folder name trimmed, empty
ones dropped (``Scans/{parent}`` at the top is ``Scans``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from procore_hotfolder.config import FolderSettings, RoutingRule, Template
from procore_hotfolder.errors import InvalidRoute, NoRuleMatched
from procore_hotfolder.upload.destinations import Target, destination_for
from procore_hotfolder.upload.destinations.protocol import stored_id

#: Version tag of the route JSON written now (``"v"``).
ROUTE_VERSION = 1


# --- the value -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where one file goes; see the module docstring. ``rule`` is the index of the rule that
    matched (None: the folder's own keys); the project is ``project_id`` or, until it is
    looked up, ``project_number`` (both None: the company). ``target`` is its destination's
    (``upload.destinations``): a Documents folder path and clash policy, an album, nothing."""

    rule: int | None
    groups: tuple[tuple[str, str | None], ...]
    project_id: int | None
    project_number: str | None
    target: Target
    name: str
    description: str | None = None

    @property
    def destination(self) -> str:
        """``documents``, ``photos`` or ``none``."""
        return self.target.kind

    @property
    def needs_lookup(self) -> bool:
        """The project is named by its number and its id is not known yet."""
        return self.project_id is None and self.project_number is not None

    def with_project(self, project_id: int) -> Route:
        """This route with its project's id (looked up by its number)."""
        return replace(self, project_id=project_id)

    def to_json(self) -> dict[str, Any]:
        """The route as the journal stores it (``"v": ROUTE_VERSION``)."""
        return {
            "v": ROUTE_VERSION, "rule": self.rule, "groups": dict(self.groups),
            "project": {"id": self.project_id, "number": self.project_number},
            "destination": self.destination, "target": self.target.to_json(),
            "name": self.name, "description": self.description,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Route:
        """The route ``to_json`` wrote. Raises ``ValueError`` for a version this code does
        not know (named in the message) or a malformed value."""
        version = raw.get("v")
        if version != ROUTE_VERSION:
            raise ValueError(f"route version {version!r} is not known here (this daemon reads "
                             f"version {ROUTE_VERSION})")
        try:
            destination = raw["destination"]
            try:
                kind = destination_for(str(destination))
            except KeyError:
                raise ValueError(f"unknown destination {destination!r}") from None
            target = kind.load_target(raw["target"])
            project = raw["project"]
            groups = tuple((str(k), None if v is None else str(v))
                           for k, v in dict(raw["groups"]).items())
            number = project["number"]
            description = raw["description"]
            return cls(rule=stored_id(raw["rule"]), groups=groups,
                       project_id=stored_id(project["id"]),
                       project_number=None if number is None else str(number),
                       target=target, name=str(raw["name"]),
                       description=None if description is None else str(description))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed route: {exc!r}") from exc


# --- deciding --------------------------------------------------------------------------------


def relative_path(folder: FolderSettings, path: Path) -> str:
    """``path`` below the folder, ``/`` between levels (what ``match`` is matched against).
    Raises ``ValueError`` when it is not inside the folder."""
    return path.relative_to(folder.path).as_posix()


def file_fields(relative: str, mtime: float, tz: datetime.tzinfo | None = None
                ) -> dict[str, str]:
    """The template fields of the file at ``relative`` (``name``, ``stem``, ``ext``,
    ``parent``, ``date``, ``time``), as the file system gives the name (not cleaned)."""
    pure = PurePosixPath(relative)
    moment = datetime.datetime.fromtimestamp(mtime, tz)
    parent = pure.parent.as_posix()
    return {"name": pure.name, "stem": pure.stem, "ext": pure.suffix.removeprefix("."),
            "parent": "" if parent == "." else parent,
            "date": moment.strftime("%Y-%m-%d"), "time": moment.strftime("%H%M%S")}


def route_file(folder: FolderSettings, relative: str, mtime: float, *,
               tz: datetime.tzinfo | None = None) -> Route:
    """Where the file at ``relative`` (below ``folder``, ``/`` between levels) goes: the first
    rule whose ``match`` fits the whole of ``relative``, else the folder's own keys.

    Raises ``NoRuleMatched`` (no rule fits and the folder has no destination of its own) or
    ``InvalidRoute`` (the rule's name renders empty).
    """
    for rule in folder.rules:
        found = rule.match.fullmatch(relative)
        if found is not None:
            return _by_rule(rule, found.groupdict(), file_fields(relative, mtime, tz))
    if folder.own_target:
        return folder_route(folder, relative)
    tried = [{"rule": rule.index, "match": rule.match.pattern} for rule in folder.rules]
    raise NoRuleMatched(
        f"no rule of the folder matches {_clean(relative)!r} (whole path below the folder), "
        "and the folder has no destination of its own", relative=_clean(relative),
        rules_tried=list(tried))


def _by_rule(rule: RoutingRule, groups: dict[str, str | None], fields: dict[str, str]
             ) -> Route:
    values: dict[str, str | None] = {**groups, **fields}

    def text(template: Template | None) -> str | None:
        return None if template is None else _clean(template.render(values)).strip()

    target = destination_for(rule).rule_target(rule, text)
    name = (text(rule.name) if rule.name is not None else _clean(fields["name"])) or ""
    name = name.replace("/", "_")
    if not name:
        raise InvalidRoute(f"rule {rule.index}: its name template {str(rule.name)!r} gives an "
                           "empty name for this file")
    number = text(rule.project_number)
    if rule.project_number is not None and not number:
        raise InvalidRoute(f"rule {rule.index}: its project_number template "
                           f"{str(rule.project_number)!r} gives an empty number for this file")
    return Route(rule=rule.index, groups=tuple((k, None if v is None else _clean(v))
                                               for k, v in groups.items()),
                 project_id=rule.project_id if number is None else None,
                 project_number=number, target=target, name=name,
                 description=text(rule.description) or None)


def folder_route(folder: FolderSettings, relative: str) -> Route:
    """Where the file at ``relative`` goes by the folder's own keys, as a folder without
    rules has always filed (Documents mirror the drop folder's subfolders below
    ``documents_folder_id`` unless ``mirror_subfolders`` is false); also the route of a
    journal row from before routes were kept."""
    pure = PurePosixPath(relative)
    return Route(rule=None, groups=(), project_id=folder.project_id, project_number=None,
                 target=destination_for(folder).folder_target(folder, pure),
                 name=_clean(pure.name))


def _clean(text: str) -> str:
    """``text`` as valid UTF-8 for Procore: bytes of a file name that were not UTF-8 (kept by
    ``os.fsdecode`` as lone surrogates) become U+FFFD, as in ``model.procore_name``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
