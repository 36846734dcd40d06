"""The values an Upload is described by: where it is created, its segments, and the ticket
Procore answers with (kept in the journal as JSON), plus the body shape storage reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class UploadTarget:
    """Where Uploads are created: a project, or the company when ``project_id`` is None."""

    company_id: int
    project_id: int | None

    def path(self) -> str:
        """``projects/{id}`` or ``companies/{id}``."""
        if self.project_id is not None:
            return f"projects/{self.project_id}"
        return f"companies/{self.company_id}"


@dataclass(frozen=True)
class SegmentSpec:
    """One segment of a segmented upload: size, SHA-256 (hex), optional MD5 (hex)."""

    size: int
    sha256: str
    md5: str | None = None


#: The forms of ``UploadTicket.to_json`` and ``segments_to_json`` in the journal; bump one,
#: and read the old form, when it changes.
TICKET_VERSION = 1
SEGMENTS_VERSION = 1


def segments_to_json(specs: Sequence[SegmentSpec]) -> str:
    """The segments of a file as the journal keeps them (sizes and hashes), tagged with
    ``SEGMENTS_VERSION``."""
    return json.dumps({"v": SEGMENTS_VERSION,
                       "segments": [{"size": s.size, "sha256": s.sha256, "md5": s.md5}
                                    for s in specs]}, separators=(",", ":"))


def segments_from_json(text: str) -> list[SegmentSpec]:
    """The inverse of ``segments_to_json`` (a bare list is the form before tags). Raises
    ValueError on a malformed text or an unknown version."""
    raw = json.loads(text)
    if isinstance(raw, list):
        raw = {"v": 1, "segments": raw}
    version = raw.get("v") if isinstance(raw, dict) else None
    if version != SEGMENTS_VERSION:
        raise ValueError(f"segments of unknown version {version!r}")
    try:
        return [SegmentSpec(size=int(s["size"]), sha256=str(s["sha256"]),
                            md5=None if s.get("md5") is None else str(s["md5"]))
                for s in raw["segments"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed segments: {exc.__class__.__name__}") from exc


@dataclass(frozen=True)
class SegmentTicket:
    """Where and how to PUT one segment (``number`` is 1-based)."""

    number: int
    url: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class UploadTicket:
    """A created Upload: its UUID and where to send the bytes.

    Non-segmented: ``url`` and ``fields`` (kept in the order Procore gave). Segmented:
    ``segments``. ``created_at`` is the client's clock at creation (storage refuses a form
    POST started more than an hour later).
    """

    uuid: str
    url: str | None
    fields: tuple[tuple[str, str], ...]
    segments: tuple[SegmentTicket, ...]
    created_at: float

    def to_json(self) -> str:
        """A JSON text for the journal (it holds the storage policy: keep it private),
        tagged with ``TICKET_VERSION`` so that a later form can tell an old row apart."""
        return json.dumps({
            "v": TICKET_VERSION,
            "uuid": self.uuid,
            "url": self.url,
            "fields": [list(pair) for pair in self.fields],
            "segments": [
                {"number": s.number, "url": s.url, "headers": [list(h) for h in s.headers]}
                for s in self.segments
            ],
            "created_at": self.created_at,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str) -> UploadTicket:
        """The inverse of ``to_json``; raises ValueError on a malformed text or a version
        this daemon does not know (a row without ``v`` is version 1: the form before tags)."""
        try:
            raw = json.loads(s)
            version = raw.get("v", 1)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed upload ticket: {exc.__class__.__name__}") from exc
        if version != TICKET_VERSION:
            raise ValueError(f"upload ticket of unknown version {version!r}")
        try:
            return cls(
                uuid=str(raw["uuid"]),
                url=None if raw.get("url") is None else str(raw["url"]),
                fields=tuple((str(k), str(v)) for k, v in raw.get("fields", [])),
                segments=tuple(
                    SegmentTicket(
                        number=int(seg["number"]),
                        url=str(seg["url"]),
                        headers=tuple((str(k), str(v)) for k, v in seg.get("headers", [])),
                    )
                    for seg in raw.get("segments", [])
                ),
                created_at=float(raw["created_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed upload ticket: {exc.__class__.__name__}") from exc


class Body(Protocol):
    """A readable binary body (the file or a segment of it)."""

    def read(self, size: int = -1, /) -> bytes: ...
