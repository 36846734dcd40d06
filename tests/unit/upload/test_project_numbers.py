"""Project numbers to projects: exact numbers, one reading of the list for every lookup, a
new reading for a number not found at most once per refresh period for all callers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from procore_hotfolder.errors import (
    AmbiguousProjectNumber,
    NetworkError,
    UnknownProjectNumber,
)
from procore_hotfolder.procore.projects import Project
from procore_hotfolder.upload.project_numbers import REFRESH_SECONDS, ProjectNumbers
from tests.conftest import wait_for


def project(ident: int, number: str | None, name: str = "") -> Project:
    return Project(id=ident, name=name or f"P{ident}", project_number=number, active=True)


class Company:
    """The company's projects as List Projects would give them, and a clock."""

    def __init__(self, *projects: Project) -> None:
        self.projects = list(projects)
        self.now = 1000.0
        self.reads = 0
        self.fail_after: int | None = None  # raise after yielding this many projects

    def fetch(self) -> Iterator[Project]:
        self.reads += 1
        for index, item in enumerate(self.projects):
            if self.fail_after is not None and index >= self.fail_after:
                raise NetworkError("connection dropped on page 2")
            yield item

    def numbers(self) -> ProjectNumbers:
        return ProjectNumbers(self.fetch, clock=lambda: self.now)


def test_numbers_match_exactly_and_the_list_is_read_once() -> None:
    company = Company(project(1, "0042"), project(2, "42"), project(3, "A-100"),
                      project(4, None))
    numbers = company.numbers()
    assert numbers.resolve("0042").id == 1
    assert numbers.resolve("42").id == 2
    assert numbers.resolve("A-100").id == 3
    assert numbers.project(4) == project(4, None)
    assert numbers.project(99) is None
    assert company.reads == numbers.fetches == 1  # every lookup after the first costs nothing


@pytest.mark.parametrize("asked", ["042", "00042", "a-100", "A-100 ", " 42", ""])
def test_near_misses_are_unknown(asked: str) -> None:
    numbers = Company(project(1, "0042"), project(2, "42"), project(3, "A-100")).numbers()
    with pytest.raises(UnknownProjectNumber) as caught:
        numbers.resolve(asked)
    assert caught.value.reason == "unknown_project_number" and not caught.value.retryable
    assert caught.value.as_dict()["project_number"] == asked


def test_several_projects_with_one_number_are_ambiguous() -> None:
    numbers = Company(project(7, "24017"), project(3, "24017"), project(5, "1")).numbers()
    with pytest.raises(AmbiguousProjectNumber) as caught:
        numbers.resolve("24017")
    assert caught.value.project_ids == [3, 7]
    assert caught.value.as_dict()["reason"] == "ambiguous_project_number"


def test_a_missing_number_reads_the_list_again_at_most_once_per_period() -> None:
    company = Company(project(1, "100"))
    numbers = company.numbers()
    numbers.resolve("100")
    company.projects.append(project(2, "200"))  # a new project in Procore
    company.now += REFRESH_SECONDS - 1
    with pytest.raises(UnknownProjectNumber):
        numbers.resolve("200")  # read too recently: not read again
    with pytest.raises(UnknownProjectNumber):
        numbers.resolve("999")
    assert company.reads == 1
    company.now += 1
    assert numbers.resolve("200").id == 2  # old enough: read again, found
    for _ in range(50):
        with pytest.raises(UnknownProjectNumber):
            numbers.resolve("999")  # a scanner's bad number, over and over
    assert company.reads == 2
    company.now += REFRESH_SECONDS
    with pytest.raises(UnknownProjectNumber):
        numbers.resolve("999")
    assert company.reads == 3


def test_an_ambiguity_that_was_fixed_in_procore_is_read_again() -> None:
    company = Company(project(1, "7"), project(2, "7"))
    numbers = company.numbers()
    with pytest.raises(AmbiguousProjectNumber):
        numbers.resolve("7")
    company.projects[1] = project(2, "8")
    company.now += REFRESH_SECONDS
    assert numbers.resolve("7").id == 1
    assert company.reads == 2


def test_forget_reads_afresh_however_recent() -> None:
    company = Company(project(1, "100"))
    numbers = company.numbers()
    numbers.resolve("100")
    company.projects.append(project(2, "200"))
    numbers.forget()  # a reload
    assert numbers.resolve("200").id == 2
    assert company.reads == 2


def test_a_retry_lets_the_next_miss_read_at_once_then_the_period_holds_again() -> None:
    """`retry` (SIGUSR1): the operator may have just created the project the retried file
    names; one reading for it, however recent the list, and then the period again for the
    files that simply keep missing."""
    company = Company(project(1, "100"))
    numbers = company.numbers()
    numbers.resolve("100")
    numbers.allow_refresh()
    assert company.reads == 1  # nothing read for the permission itself
    company.projects.append(project(2, "200"))  # created a second after the list was read
    assert numbers.resolve("100").id == 1  # a number found does not spend it
    assert numbers.resolve("200").id == 2  # the miss reads at once
    for _ in range(20):
        with pytest.raises(UnknownProjectNumber):
            numbers.resolve("999")
    assert company.reads == 2


def test_a_retry_whose_reading_fails_stays_allowed() -> None:
    company = Company(project(1, "100"))
    numbers = company.numbers()
    numbers.resolve("100")
    company.projects.append(project(2, "200"))
    numbers.allow_refresh()
    company.fail_after = 1
    with pytest.raises(NetworkError):
        numbers.resolve("200")
    company.fail_after = None
    assert numbers.resolve("200").id == 2
    assert company.reads == 3


def test_a_listing_that_fails_half_way_keeps_the_old_list() -> None:
    company = Company(project(1, "100"), project(2, "200"))
    numbers = company.numbers()
    assert numbers.resolve("100").id == 1
    company.projects.append(project(3, "300"))
    company.fail_after = 2
    company.now += REFRESH_SECONDS
    with pytest.raises(NetworkError):
        numbers.resolve("300")
    assert numbers.resolve("200").id == 2  # the old list, whole
    company.fail_after = None
    assert numbers.resolve("300").id == 3  # the failed reading did not count as one


def test_workers_missing_at_once_share_one_reading() -> None:
    company = Company(project(1, "100"))
    entered = threading.Event()
    release = threading.Event()

    def slow_fetch() -> Iterator[Project]:
        if company.reads:  # the second reading stays in progress while the others arrive
            entered.set()
            release.wait(10)
        return company.fetch()

    numbers = ProjectNumbers(slow_fetch, clock=lambda: company.now)
    numbers.resolve("100")
    company.now += REFRESH_SECONDS
    outcomes: list[str] = []

    def worker() -> None:
        try:
            numbers.resolve("404")
        except UnknownProjectNumber:
            outcomes.append("unknown")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_for(entered.is_set, timeout=10, message="a reading started")
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes == ["unknown"] * 8
    assert company.reads == 2  # the first reading, and one more for all eight misses
