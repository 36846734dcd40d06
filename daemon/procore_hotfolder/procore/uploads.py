"""Procore's Upload protocol: create an Upload, send its bytes, complete it, show it.

``UploadProtocol`` is what the client needs of a version of the protocol; ``UploadsV11`` is
Procore's v1.1 (``/rest/v1.1/{projects|companies}/{id}/uploads``): a single form POST to
storage, or segments PUT to storage one by one and completed with their ETags. A v2.1 twin
implements the same methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import requests
import structlog

from procore_hotfolder.errors import (
    Conflict,
    NotFound,
    ProcoreError,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.procore.api import Api
from procore_hotfolder.procore.http import read_object, unexpected
from procore_hotfolder.procore.storage import Storage
from procore_hotfolder.procore.tickets import (
    Body,
    SegmentSpec,
    SegmentTicket,
    UploadTarget,
    UploadTicket,
)

log = structlog.get_logger(__name__)


class UploadProtocol(Protocol):
    """One version of Procore's Upload protocol (see ``UploadsV11`` for the contracts)."""

    def create(
        self, target: UploadTarget, filename: str, size: int, *,
        content_type: str | None = None, segments: Sequence[SegmentSpec] | None = None,
    ) -> UploadTicket: ...

    def send_file(self, ticket: UploadTicket, body: Body, *, filename: str,
                  content_type: str | None) -> None: ...

    def send_segment(self, segment: SegmentTicket, body: Body | bytes) -> str: ...

    def complete(self, target: UploadTarget, uuid: str,
                 parts: Sequence[tuple[str, SegmentSpec]]) -> Mapping[str, Any]: ...

    def show(self, target: UploadTarget, uuid: str) -> Mapping[str, Any]: ...

    def is_stored(self, target: UploadTarget, uuid: str) -> bool: ...


class UploadsV11:
    """Procore's Upload API v1.1 (thread-safe); ``clock`` (Unix seconds) stamps tickets."""

    def __init__(self, api: Api, storage: Storage, clock: Callable[[], float]) -> None:
        self._api = api
        self._storage = storage
        self._clock = clock

    def create(
        self, target: UploadTarget, filename: str, size: int, *,
        content_type: str | None = None, segments: Sequence[SegmentSpec] | None = None,
    ) -> UploadTicket:
        """Create an Upload (segmented when ``segments`` is given).

        Retried at the request level: a duplicate unused Upload is harmless. Raises
        ``UnexpectedResponse`` when the answer lacks the uuid, url or segments.
        """
        body: dict[str, Any] = {"response_filename": filename, "size": size}
        if content_type:
            body["response_content_type"] = content_type
        if segments:
            body["segments"] = [
                {"size": s.size, "sha256": s.sha256, **({"md5": s.md5} if s.md5 else {})}
                for s in segments
            ]
        created_at = self._clock()
        response = self._api.call("POST", f"v1.1/{target.path()}/uploads", json_body=body,
                                  idempotent=True, expect=(200, 201))
        data = read_object(response, "upload")
        return _ticket(data, response, created_at, segmented=bool(segments),
                       expected_segments=len(segments) if segments else 0)

    def send_file(self, ticket: UploadTicket, body: Body, *, filename: str,
                  content_type: str | None) -> None:
        """The single form POST to storage (``Storage.post_form``)."""
        self._storage.post_form(ticket, body, filename=filename, content_type=content_type)

    def send_segment(self, segment: SegmentTicket, body: Body | bytes) -> str:
        """One segment's PUT to storage (``Storage.put_segment``); returns its ETag."""
        return self._storage.put_segment(segment, body)

    def complete(self, target: UploadTarget, uuid: str,
                 parts: Sequence[tuple[str, SegmentSpec]]) -> Mapping[str, Any]:
        """PATCH the segmented Upload complete with each part's ETag, size and SHA-256, in
        order. A repeat after a lost answer may be refused (404/410/422): the Upload is then
        shown, and if it is complete that is success. Raises ``UploadExpired`` (404/410),
        ``ValidationFailed`` (422) and the other typed errors."""
        body = {"segments": [{"etag": etag, "size": spec.size, "sha256": spec.sha256}
                             for etag, spec in parts]}
        path = f"v1.1/{target.path()}/uploads/{uuid}"
        try:
            response = self._api.call("PATCH", path, json_body=body, idempotent=True)
        except (UploadExpired, ValidationFailed, NotFound, Conflict) as refused:
            # Maybe an earlier PATCH (a retry here, or an earlier attempt of the whole file)
            # went through and only its answer was lost: look before calling it a failure.
            try:
                shown = self.show(target, uuid)
            except ProcoreError:
                raise _as_expired(refused) from None
            if str(shown.get("status", "")).lower() == "complete":
                log.info("upload_already_complete", uuid=uuid)
                return shown
            raise _as_expired(refused) from None
        return read_object(response, "upload")

    def show(self, target: UploadTarget, uuid: str) -> Mapping[str, Any]:
        """GET the Upload (whether its bytes are stored is in its ``status``). A 404 raises
        ``UploadExpired`` (gone, or never ours)."""
        path = f"v1.1/{target.path()}/uploads/{uuid}"
        try:
            response = self._api.call("GET", path, idempotent=True)
        except NotFound as exc:
            raise _as_expired(exc) from None
        return read_object(response, "upload")

    def is_stored(self, target: UploadTarget, uuid: str) -> bool:
        """Whether Show Upload says the Upload's bytes are stored (a resumed Upload whose
        answer a crash lost). Procore documents ``status: "ready"`` before and
        ``"complete"`` after a segmented completion; what a form POST leaves is
        unconfirmed, so the words a storage-backed status may take all count."""
        shown = self.show(target, uuid)
        return str(shown.get("status", "")).lower() in _STORED_STATUSES


#: Upload ``status`` values that mean the bytes are stored (see ``UploadsV11.is_stored``).
_STORED_STATUSES = frozenset({"complete", "completed", "stored"})


def _as_expired(error: ProcoreError) -> ProcoreError:
    if isinstance(error, NotFound):
        return UploadExpired(error.message, status=error.status, code=error.code,
                             request_id=error.request_id, url=error.url)
    return error


def _ticket(
    data: Mapping[str, Any], response: requests.Response, created_at: float,
    *, segmented: bool, expected_segments: int,
) -> UploadTicket:
    def refused(what: str) -> ProcoreError:
        return unexpected(response, f"Create Upload answered HTTP {response.status_code} {what}")

    uuid = data.get("uuid")
    if not isinstance(uuid, str | int) or isinstance(uuid, bool) or not str(uuid):
        raise refused("without a uuid")
    url = data.get("url")
    try:
        fields = _pairs(data.get("fields"))
    except ValueError:
        raise refused("with unreadable form fields") from None
    tickets: list[SegmentTicket] = []
    raw_segments = data.get("segments")
    if segmented:
        if not isinstance(raw_segments, list) or len(raw_segments) != expected_segments:
            raise refused("without one storage URL per segment")
        for number, seg in enumerate(raw_segments, start=1):
            if not isinstance(seg, Mapping) or not isinstance(seg.get("url"), str):
                raise refused(f"without a URL for segment {number}")
            try:
                headers = _pairs(seg.get("headers"))
            except ValueError:
                raise refused(f"with unreadable headers for segment {number}") from None
            tickets.append(SegmentTicket(number=number, url=seg["url"], headers=headers))
    elif not isinstance(url, str) or not url:
        raise refused("without a storage URL")
    return UploadTicket(uuid=str(uuid), url=url if isinstance(url, str) else None,
                        fields=fields, segments=tuple(tickets), created_at=created_at)


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    """Form fields / headers as ordered pairs, from an object or a list of pairs/objects."""
    if isinstance(raw, Mapping):
        return tuple((str(k), "" if v is None else str(v)) for k, v in raw.items())
    out: list[tuple[str, str]] = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and "name" in item:
                out.append((str(item["name"]), str(item.get("value", ""))))
            elif isinstance(item, list | tuple) and len(item) == 2:
                out.append((str(item[0]), str(item[1])))
            else:
                raise ValueError("unreadable pair")
        return tuple(out)
    if raw is None:
        return ()
    raise ValueError("unreadable pairs")
