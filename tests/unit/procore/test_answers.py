"""Reading Procore's answers, one rule each, as the destinations and the discovery commands
share them."""

from __future__ import annotations

from typing import Any

import pytest

from procore_hotfolder.errors import ValidationFailed
from procore_hotfolder.procore.answers import as_int, as_time, is_live, is_name_clash


@pytest.mark.parametrize(("value", "expected"), [
    (42, 42), ("42", 42), (" 7 ", 7), (None, None), ("", None), ("4.2", None),
    ("abc", None), ([], None), (True, None), (False, None),
], ids=["int", "numeric-string", "padded", "missing", "empty", "decimal-string", "text",
        "list", "true-is-no-id", "false-is-no-id"])
def test_as_int(value: Any, expected: int | None) -> None:
    assert as_int(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-19T23:48:15Z", 1795132095.0), ("2026-11-19T23:48:15.5+00:00", 1795132095.5),
    ("", None), (None, None), ("yesterday", None), (1795132095, None),
])
def test_as_time(value: Any, expected: float | None) -> None:
    assert as_time(value) == expected


def test_live_unless_in_the_recycle_bin() -> None:
    assert is_live({"id": 1}) and is_live({"is_deleted": False})
    assert not is_live({"is_deleted": True})


def test_which_422s_may_be_a_name_clash() -> None:
    def error(text: str) -> ValidationFailed:
        return ValidationFailed(f"Procore answered HTTP 422: {text}", status=422)

    assert is_name_clash(error("name has already been taken"))
    assert is_name_clash(error("A file with that name already exists"))
    assert not is_name_clash(error("upload_uuid is invalid"))
