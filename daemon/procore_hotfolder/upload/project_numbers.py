"""Which project a project number names: the company's projects as List Projects shows them,
read once and kept, shared by every worker (thread-safe).

A routed file then costs what a fixed-target file costs: no API call to find its project
once the list is known. The list is read again only when a number is not found, or found
on several projects (a new project, a renumbered one), and then at most once every
``refresh_seconds`` (300 s by default) for all callers together: a scanner that keeps
producing files with a number no project carries costs one listing per five minutes, not
one per file. ``forget`` drops the list (a reload: the next lookup reads it afresh);
``allow_refresh`` lets the next number not found read it at once, however recent it is
(`retry`: the operator may have just created the project the retried files name; one
reading per `retry`, then the five minutes again). Numbers match exactly: ``"0042"`` is not
``"42"``, and case and spaces count.

The list is materialised whole before it replaces the old one: a listing that fails half
way (its error goes to the caller) leaves the old list in place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog

from procore_hotfolder.errors import AmbiguousProjectNumber, UnknownProjectNumber
from procore_hotfolder.procore.projects import Project

log = structlog.get_logger(__name__)

#: A number not found reads the list again at most this often (seconds, all callers).
REFRESH_SECONDS = 300.0


@dataclass(frozen=True)
class _Directory:
    """One reading of the list: projects by number and by id, and when it was read."""

    by_number: Mapping[str, tuple[Project, ...]]
    by_id: Mapping[int, Project]
    read_at: float
    generation: int


class ProjectNumbers:
    """Project numbers to projects (see the module docstring). ``fetch`` lists the company's
    projects (every page); ``clock`` is monotonic seconds."""

    def __init__(self, fetch: Callable[[], Iterable[Project]], *,
                 clock: Callable[[], float] = time.monotonic,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()  # one reading at a time; the others wait for it
        self._directory: _Directory | None = None
        self._generation = 0
        # Set by ``allow_refresh`` (from a signal handler: a plain assignment, no lock),
        # cleared by the reading it allows.
        self._refresh_allowed = False
        #: How many times the list was read (one or more API calls each: one per page).
        self.fetches = 0

    def resolve(self, number: str) -> Project:
        """The one project whose number is exactly ``number``.

        Raises ``UnknownProjectNumber`` (none) or ``AmbiguousProjectNumber`` (several), after
        reading the list again when it is old enough; the typed ``ProcoreError`` when the
        list cannot be read; never for another caller's number.
        """
        directory = self._current()
        found = directory.by_number.get(number, ())
        if len(found) != 1:
            directory = self._refreshed(directory)
            found = directory.by_number.get(number, ())
        if not found:
            raise UnknownProjectNumber(
                f"no project carries the project number {number!r} among the "
                f"{len(directory.by_id)} active projects this service account can see "
                "(`procore-hotfolder projects` lists them; a project it was not granted, "
                "or an inactive one, is not among them)", number=number)
        if len(found) > 1:
            ids = sorted(p.id for p in found)
            raise AmbiguousProjectNumber(
                f"{len(found)} projects carry the project number {number!r} (ids "
                f"{', '.join(map(str, ids))}): give them distinct numbers in Procore, or use "
                "project_id in the rule", number=number, project_ids=ids)
        return found[0]

    def project(self, project_id: int) -> Project | None:
        """The listed project of that id (its number and name), or None when the list does
        not show it; reads the list only when it has never been read."""
        return self._current().by_id.get(project_id)

    def forget(self) -> None:
        """Drop the list: the next lookup reads it afresh, however recent it was. Takes no
        lock (a reading in progress is not waited for: it is as fresh as any)."""
        self._directory = None

    def allow_refresh(self) -> None:
        """Let the next number not found (or found on several projects) read the list
        again at once, however recent it is; later ones wait ``refresh_seconds`` again.
        Safe in a signal handler: it only sets a flag."""
        self._refresh_allowed = True

    # --- the list --------------------------------------------------------------------------

    def _current(self) -> _Directory:
        directory = self._directory
        if directory is not None:
            return directory
        with self._lock:
            # Another caller may have read it while this one waited for the lock.
            return self._directory or self._read()

    def _refreshed(self, seen: _Directory) -> _Directory:
        """The list read again, unless another caller did so since ``seen`` was read, or it
        was read less than ``refresh_seconds`` ago: then the list as it is."""
        with self._lock:
            current = self._directory
            if current is None:
                return self._read()
            if current.generation != seen.generation:
                return current  # read again while this caller waited: that reading serves
            if self._clock() - current.read_at < self._refresh_seconds \
                    and not self._refresh_allowed:
                return current
            return self._read()

    def _read(self) -> _Directory:
        """Read the whole list (the caller holds the lock)."""
        # This reading serves what was allowed before it; a failed one leaves it allowed.
        allowed, self._refresh_allowed = self._refresh_allowed, False
        try:
            projects = list(self._fetch())
        except BaseException:
            self._refresh_allowed = self._refresh_allowed or allowed
            raise
        by_number: dict[str, list[Project]] = {}
        for project in projects:
            if project.project_number is not None:
                by_number.setdefault(project.project_number, []).append(project)
        self._generation += 1
        self.fetches += 1
        directory = _Directory(
            by_number={k: tuple(v) for k, v in by_number.items()},
            by_id={p.id: p for p in projects}, read_at=self._clock(),
            generation=self._generation)
        self._directory = directory
        log.info("project_list_read", projects=len(projects), numbers=len(by_number))
        return directory
