"""Sending the bytes to the storage service (S3 or its like): the form POST of a single
upload and the PUT of one segment, each through the request scope (``RequestRetry``) when
its body can be sent again from the start.

Storage requests are not API calls: no token, no company header, no rate governor. Only the
ticket's fields or headers (plus User-Agent) go out; no storage URL's query string (it holds
the signature) appears in an error or a log event.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import requests
import structlog
from requests_toolbelt.multipart.encoder import MultipartEncoder

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.errors import ProcoreError, UnexpectedResponse
from procore_hotfolder.procore.error_mapping import error_from_exception, error_from_response
from procore_hotfolder.procore.http import CONNECT_TIMEOUT, RequestRetry, safe_url
from procore_hotfolder.procore.tickets import Body, SegmentTicket, UploadTicket

log = structlog.get_logger(__name__)


class Storage:
    """Sends bodies to storage URLs from Upload tickets (thread-safe)."""

    def __init__(
        self,
        settings: ProcoreSettings,
        session: requests.Session,
        retry: RequestRetry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._retry = retry
        self._clock = clock
        self.reconfigure(settings)

    def reconfigure(self, settings: ProcoreSettings) -> None:
        """Use the timeout of ``settings`` from the next request on."""
        self._timeout = (CONNECT_TIMEOUT, settings.timeout_seconds)

    def post_form(
        self, ticket: UploadTicket, body: Body, *, filename: str, content_type: str | None,
    ) -> None:
        """POST the file to storage as multipart/form-data: the ticket's fields unaltered
        and in order, then ``file`` last. Streams ``body`` (needs ``read(n)`` and a length
        via ``__len__``/``len``/``fileno``); never holds the file in memory.

        Retried at the request level when ``body`` can seek back. Raises ``UploadExpired``
        (403 and the like: create a new Upload), ``ContentMismatch``, ``StorageRejected``,
        ``NetworkError``/``ServerError`` after the tries, ``Stopping``.
        """
        if not ticket.url:
            raise ValueError("this ticket is for a segmented upload")
        url = ticket.url
        part_type = content_type or next(
            (v for k, v in ticket.fields if k.lower() == "content-type"), None,
        ) or "application/octet-stream"
        rewind = _Rewind(body)
        redirect_ok = any(k.lower() == "success_action_redirect" for k, _ in ticket.fields)

        def attempt() -> ProcoreError | None:
            form = _StreamedForm(MultipartEncoder(
                fields=[*ticket.fields, ("file", (filename, body, part_type))]))
            try:
                response = self._session.post(
                    url, data=form, timeout=self._timeout, allow_redirects=False,
                    headers={"Content-Type": form.content_type})
            except requests.RequestException as exc:
                return error_from_exception(exc, url=url)
            try:
                if 200 <= response.status_code < 300 or (
                        redirect_ok and response.status_code in (301, 302, 303)):
                    log.debug("storage_posted", uuid=ticket.uuid, status=response.status_code)
                    return None
                return error_from_response(response, storage=True, now=self._clock())
            finally:
                response.close()

        self._retry.run("storage POST", attempt, replayable=rewind.possible,
                        before_repeat=rewind.rewind)

    def put_segment(self, segment: SegmentTicket, body: Body | bytes) -> str:
        """PUT one segment's bytes with exactly the ticket's headers; returns the ETag
        (quotes stripped). Raises like ``post_form``; ``UnexpectedResponse`` without ETag.
        """
        headers = dict(segment.headers)
        rewind = _Rewind(body)

        def attempt() -> str | ProcoreError:
            try:
                response = self._session.put(segment.url, data=body, headers=headers,
                                             timeout=self._timeout, allow_redirects=False)
            except requests.RequestException as exc:
                return error_from_exception(exc, url=segment.url)
            try:
                if 200 <= response.status_code < 300:
                    etag = response.headers.get("ETag", "").strip().strip('"')
                    if not etag:
                        raise UnexpectedResponse(
                            f"storage accepted segment {segment.number} without an ETag",
                            status=response.status_code, url=safe_url(segment.url))
                    return etag
                return error_from_response(response, storage=True, now=self._clock())
            finally:
                response.close()

        return self._retry.run(f"segment PUT {segment.number}", attempt,
                               replayable=rewind.possible, before_repeat=rewind.rewind)


class _StreamedForm:
    """A requests-toolbelt ``MultipartEncoder`` sent part by part: its boundary, part headers
    and small fields as the encoder made them, the file's blocks straight from the file.

    The encoder's own ``read()`` copies every block through a buffer that grows and is
    truncated again (fresh pages for every MiB), which costs about 0.5 s of CPU per GiB,
    as much as the SHA-256; here each block goes to the socket as read. Everything around
    the file (boundaries, headers, the small fields) goes out in one piece before it and one
    after, not a send per field. ``len()`` is what is left of the encoder's exact length.
    """

    def __init__(self, encoder: MultipartEncoder) -> None:
        self.content_type: str = encoder.content_type
        self._length: int = encoder.len
        boundary = encoder.boundary.encode()
        pieces: list[Any] = []
        framing = bytearray()
        for part in encoder.parts:
            framing += boundary + b"\r\n" + part.headers
            if isinstance(part.body, io.BytesIO):  # a field's value, already in memory
                framing += part.body.read()
            else:  # the file: streamed
                pieces += [bytes(framing), part.body]
                framing.clear()
            framing += b"\r\n"
        pieces.append(bytes(framing + boundary + b"--\r\n"))
        self._pieces = iter(pieces)
        self._current: Any = next(self._pieces)
        self.bytes_read = 0

    def __len__(self) -> int:
        return self._length - self.bytes_read

    def read(self, size: int = -1) -> bytes:
        data = b""
        while self._current is not None and not data:
            if isinstance(self._current, bytes):
                data = self._current
                self._current = next(self._pieces, None)
            else:
                data = self._current.read(size)
                if not data:
                    self._current = next(self._pieces, None)
        self.bytes_read += len(data)
        return data


class _Rewind:
    """Remembers where a body started, so a retry can send it again from there."""

    def __init__(self, body: object) -> None:
        self._body = body
        self._start: int | None = None
        tell = getattr(body, "tell", None)
        if callable(tell) and callable(getattr(body, "seek", None)):
            try:
                self._start = int(tell())
            except (OSError, ValueError):
                self._start = None

    @property
    def possible(self) -> bool:
        return self._start is not None or isinstance(self._body, bytes | bytearray | memoryview)

    def rewind(self) -> None:
        if self._start is not None:
            self._body.seek(self._start)  # type: ignore[attr-defined]
