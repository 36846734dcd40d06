"""Routing rules: each ``[[folders.rules]]`` table read and checked, every problem named
``folders[N].rules[M].key``, and the templates (``{job}``, ``{date}_{name}``) the rules
render.

A rule is a frozen value: the whole-path regular expression (compiled), the project (by id,
or a template of its number), the destination and its target (a Documents path template or
folder id; an album name template or id), the name and description templates and the clash
policy. Which rule matches a file, and what its templates give, is ``upload.routing``'s
work; how a template reads and renders is here, in ``Template``, its one home.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from procore_hotfolder.config.values import Problems, choice, optional_id, typed

Destination = Literal["none", "documents", "photos"]
NameClash = Literal["version", "rename", "fail"]

DESTINATIONS: tuple[Destination, ...] = ("documents", "photos", "none")
NAME_CLASHES: tuple[NameClash, ...] = ("version", "rename", "fail")

#: The fields every template may use besides the expression's named groups: the file's
#: name, its stem and extension (no dot), its folder below the drop folder ("" at the top),
#: and the date (YYYY-MM-DD) and time (HHMMSS) of its modification.
FILE_FIELDS: tuple[str, ...] = ("name", "stem", "ext", "parent", "date", "time")

_RULE_KEYS = {
    "match", "project_number", "project_id", "destination", "documents_path",
    "documents_folder_id", "photos_album", "photos_album_id", "name", "description",
    "on_name_clash",
}
_TEMPLATE_KEYS = ("project_number", "documents_path", "photos_album", "name", "description")


@dataclass(frozen=True)
class Template:
    """A text with ``{field}`` places, Python's format syntax reduced to plain names: no
    positional ``{}``, no attribute or index (``{a.b}``, ``{a[0]}``), no conversion
    (``{a!r}``); a format spec for text is allowed (``{sheet:0>4}``). ``{{`` and ``}}`` are
    literal braces."""

    text: str
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """The template ``text``; raises ``ValueError`` saying what is wrong with it."""
        fields: list[str] = []
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(f"is not a valid template ({exc})") from exc
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if not field.isidentifier():
                raise ValueError(f"{{{field}}} is not a field name (write {{job}}, not "
                                 "{}, {0}, {a.b} or {a[0]})")
            if conversion:
                raise ValueError(f"{{{field}!{conversion}}}: conversions are not allowed")
            if spec and "{" in spec:
                raise ValueError(f"{{{field}:{spec}}}: nested fields are not allowed")
            try:
                format("", spec or "")
            except ValueError as exc:
                raise ValueError(f"{{{field}:{spec}}}: {exc}") from exc
            if field not in fields:
                fields.append(field)
        return cls(text, tuple(fields))

    def render(self, values: Mapping[str, str | None]) -> str:
        """The text with each field replaced by its value (None and absent: empty)."""
        out: list[str] = []
        for literal, field, spec, _ in string.Formatter().parse(self.text):
            out.append(literal)
            if field is not None:
                out.append(format(values.get(field) or "", spec or ""))
        return "".join(out)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class RoutingRule:
    """One ``[[folders.rules]]`` table, checked. ``index`` is its place among the folder's
    rules (the first match wins); ``project_id`` is the folder's when the rule names no
    project (None with ``project_number`` None: the company)."""

    index: int
    match: re.Pattern[str]
    destination: Destination
    project_id: int | None = None
    project_number: Template | None = None
    documents_path: Template | None = None
    documents_folder_id: int | None = None
    photos_album: Template | None = None
    photos_album_id: int | None = None
    name: Template | None = None
    description: Template | None = None
    on_name_clash: NameClash = "version"

    @property
    def groups(self) -> tuple[str, ...]:
        """The expression's named groups, in their order."""
        return tuple(self.match.groupindex)


def read_rules(
    table: Mapping[str, Any], prefix: str, *, folder_project_id: int | None,
    folder_clash: NameClash, problems: Problems,
) -> tuple[RoutingRule, ...]:
    """The folder's ``rules`` (``prefix`` is ``folders[N].``); () when it has none. A rule
    with a problem is left out (the problem is reported: the configuration is refused)."""
    raw = table.get("rules")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        problems.add(prefix + "rules", "must be one or more [[folders.rules]] tables")
        return ()
    rules: list[RoutingRule] = []
    for index, entry in enumerate(raw):
        key = f"{prefix}rules[{index}]"
        if not isinstance(entry, dict):
            problems.add(key, "must be a table")
            continue
        rule = _rule(entry, index, key + ".", folder_project_id=folder_project_id,
                     folder_clash=folder_clash, problems=problems)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(
    table: Mapping[str, Any], index: int, p: str, *, folder_project_id: int | None,
    folder_clash: NameClash, problems: Problems,
) -> RoutingRule | None:
    before = len(problems.items)
    problems.unknown_keys(table, _RULE_KEYS, p)
    match = _expression(table, p, problems)
    destination_raw = typed(table, "destination", str, p, problems, required=True)
    destination = cast(Destination, choice(destination_raw, DESTINATIONS, "none",
                                           p + "destination", problems))
    # Which fields a template may use: the groups are known only when the expression is.
    known = None if match is None else (*match.groupindex, *FILE_FIELDS)
    templates = {key: _template(table, key, p, known, problems) for key in _TEMPLATE_KEYS}
    project_id = optional_id(table, "project_id", p, problems)
    documents_folder_id = optional_id(table, "documents_folder_id", p, problems)
    photos_album_id = optional_id(table, "photos_album_id", p, problems)
    clash_raw = typed(table, "on_name_clash", str, p, problems)
    on_name_clash = cast(NameClash, choice(clash_raw, NAME_CLASHES, folder_clash,
                                           p + "on_name_clash", problems))

    def one_of(first: str, second: str, what: str) -> None:
        if first in table and second in table:
            problems.add(p + second, f"given with {first}: both name the {what}; keep one")

    one_of("project_number", "project_id", "project")
    one_of("documents_path", "documents_folder_id", "Documents folder")
    one_of("photos_album", "photos_album_id", "album")
    if destination_raw in DESTINATIONS:
        for key, wanted in (("documents_path", "documents"), ("documents_folder_id", "documents"),
                            ("on_name_clash", "documents"), ("photos_album", "photos"),
                            ("photos_album_id", "photos")):
            if key in table and destination != wanted:
                problems.add(p + key, f'is used only with destination = "{wanted}"')
        if "description" in table and destination == "none":
            problems.add(p + "description", 'is used only with destination = "documents" or '
                         '"photos"')
    if "project_number" in table and templates["project_number"] is not None \
            and not templates["project_number"].text.strip():
        problems.add(p + "project_number", "must not be empty")
    if project_id is None and "project_number" not in table:
        project_id = folder_project_id  # the folder's project (or the company's Documents)
    if destination == "photos" and project_id is None and "project_number" not in table:
        problems.add(p + "destination", "'photos' needs a project: project_number or "
                     "project_id here, or the folder's project_id (Procore has Photos only in "
                     "projects)")
    if match is None or len(problems.items) > before:
        return None
    return RoutingRule(
        index=index, match=match, destination=destination, project_id=project_id,
        project_number=templates["project_number"], documents_path=templates["documents_path"],
        documents_folder_id=documents_folder_id, photos_album=templates["photos_album"],
        photos_album_id=photos_album_id, name=templates["name"],
        description=templates["description"], on_name_clash=on_name_clash)


def _expression(table: Mapping[str, Any], p: str, problems: Problems) -> re.Pattern[str] | None:
    """``match``: a Python regular expression, matched against the whole path below the
    folder; its named groups must not hide the file fields of the templates."""
    raw = typed(table, "match", str, p, problems, required=True)
    if raw is None:
        return None
    if not raw:
        problems.add(p + "match", "must not be empty")
        return None
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        problems.add(p + "match", f"is not a valid regular expression: {exc}")
        return None
    taken = [g for g in pattern.groupindex if g in FILE_FIELDS]
    if taken:
        problems.add(p + "match", f"group name(s) {', '.join(taken)} would hide the template "
                     f"field(s) of the same name ({', '.join(FILE_FIELDS)}): rename the group")
        return None
    return pattern


def _template(table: Mapping[str, Any], key: str, p: str, known: tuple[str, ...] | None,
              problems: Problems) -> Template | None:
    raw = typed(table, key, str, p, problems)
    if raw is None:
        return None
    try:
        template = Template.parse(raw)
    except ValueError as exc:
        problems.add(p + key, str(exc))
        return None
    unknown = [f for f in template.fields if known is not None and f not in known]
    if unknown:
        groups = [f for f in known or () if f not in FILE_FIELDS]
        offer = (f"the expression's groups ({', '.join(groups)}) and " if groups
                 else "(the expression has no named groups) ")
        problems.add(p + key, f"unknown field(s) {', '.join('{' + f + '}' for f in unknown)}: "
                     f"a template takes {offer}{', '.join('{' + f + '}' for f in FILE_FIELDS)}")
        return None
    return template
