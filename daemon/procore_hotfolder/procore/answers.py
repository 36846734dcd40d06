"""Reading the fields of Procore's JSON answers the same way everywhere: an id, a time, a
record in the recycle bin, a refusal because a name is taken.

PURE: values in, values out; an unreadable field is None (or False), never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from procore_hotfolder.errors import ValidationFailed


def as_int(value: Any) -> int | None:
    """An id or a count as Procore sends it (a number, or a numeric string); None when it is
    missing or unreadable. A JSON ``true``/``false`` is no number, whatever Python's ``int``
    makes of it."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_time(value: Any) -> float | None:
    """Procore's ISO-8601 ``created_at`` as Unix seconds (None when unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def is_live(entry: Mapping[str, Any]) -> bool:
    """Not in Procore's recycle bin."""
    return not entry.get("is_deleted")


def is_name_clash(error: ValidationFailed) -> bool:
    """A 422 that may say "this name is taken" (Procore: ``name has already been taken``)."""
    text = error.message.lower()
    return "taken" in text or ("name" in text and "exist" in text)
