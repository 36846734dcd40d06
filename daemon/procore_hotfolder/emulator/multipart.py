"""A streaming ``multipart/form-data`` parser for the storage POST.

The body is read in large chunks and the boundary is searched with ``bytes.find`` over each
chunk, so a 1 GiB file part flows through in about a thousand iterations and is never held in
memory. Part data is handed out as memoryviews over the current chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

CHUNK_SIZE = 1 << 20
MAX_HEADER_BYTES = 16 * 1024


class ByteStream(Protocol):
    """What the parser reads from: ``read(n)`` returns up to n bytes, b"" at the end."""

    def read(self, size: int, /) -> bytes: ...


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


class BodyTruncatedError(ConnectionError):
    """The client sent fewer bytes than its Content-Length announced."""


@dataclass
class PartHeaders:
    """One part's headers: its form ``name``, ``filename`` (None for plain fields) and all."""

    name: str
    filename: str | None
    headers: dict[str, str] = field(default_factory=dict)


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="a"; filename="b"`` into ("form-data", {"name": "a", ...}).

    Parameter names are lower-cased; quoted values may contain ``;`` and backslash escapes.
    """
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return main.strip().lower(), params


class MultipartParser:
    """Reads the parts of one body from ``stream`` (exactly ``length`` bytes are consumed).

    Use ``next_part()`` to advance to each part's headers, then ``read_value()`` or
    ``iter_data()`` for its data (unread data is skipped by the next ``next_part()``), and
    ``drain()`` to consume whatever remains of the body.
    """

    def __init__(
        self, stream: ByteStream, length: int, boundary: bytes, chunk_size: int = CHUNK_SIZE
    ) -> None:
        if not boundary or len(boundary) > 200:
            raise MultipartError("bad boundary")
        self._stream = stream
        self._remaining = length
        self._chunk_size = chunk_size
        self._delimiter = b"\r\n--" + boundary
        # A virtual CRLF in front makes the first boundary look like all the others.
        self._buf = b"\r\n"
        self._pos = 0
        self._state = "preamble"  # preamble | data (unread part data) | boundary | done

    def _fill(self) -> bool:
        """Append the next chunk of the body to the buffer; False at the end of the body."""
        if self._remaining <= 0:
            return False
        data = self._stream.read(min(self._chunk_size, self._remaining))
        if not data:
            raise BodyTruncatedError("request body ended before its Content-Length")
        self._remaining -= len(data)
        # A new buffer each time: memoryviews handed out over the old one stay valid.
        self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def _data(self) -> Iterator[memoryview]:
        """The current part's data up to the next delimiter, which is consumed too."""
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        while True:
            idx = self._buf.find(delimiter, self._pos)
            if idx >= 0:
                if idx > self._pos:
                    # pos stays before the delimiter until the consumer comes back, so an
                    # abandoned iteration still ends at this delimiter.
                    start, self._pos = self._pos, idx
                    yield memoryview(self._buf)[start:idx]
                self._pos = idx + len(delimiter)
                self._state = "boundary"
                return
            safe = len(self._buf) - keep
            if safe > self._pos:
                start, self._pos = self._pos, safe
                yield memoryview(self._buf)[start:safe]
            if not self._fill():
                raise MultipartError("missing closing boundary")

    def _skip_data(self) -> None:
        for _ in self._data():
            pass

    def next_part(self) -> PartHeaders | None:
        """Advance to the next part and return its headers; None after the closing boundary."""
        if self._state == "done":
            return None
        if self._state != "boundary":
            self._skip_data()  # the preamble, or what the caller left of the previous part
        while len(self._buf) - self._pos < 2:
            if not self._fill():
                raise MultipartError("body ends after a boundary")
        if self._buf[self._pos : self._pos + 2] == b"--":
            self._state = "done"
            return None
        # Transport padding may follow the boundary before its CRLF.
        while True:
            eol = self._buf.find(b"\r\n", self._pos)
            if eol >= 0:
                break
            if len(self._buf) - self._pos > 1024 or not self._fill():
                raise MultipartError("boundary line not terminated")
        if self._buf[self._pos : eol].strip(b" \t"):
            raise MultipartError("garbage after boundary")
        self._pos = eol
        while True:
            end = self._buf.find(b"\r\n\r\n", self._pos)
            if end >= 0:
                break
            if len(self._buf) - self._pos > MAX_HEADER_BYTES or not self._fill():
                raise MultipartError("part headers not terminated")
        block = self._buf[self._pos + 2 : end].decode("utf-8", "replace")
        self._pos = end + 4
        self._state = "data"
        headers: dict[str, str] = {}
        for line in block.split("\r\n") if block else []:
            name, colon, value = line.partition(":")
            if not colon:
                raise MultipartError("malformed part header")
            headers[name.strip().lower()] = value.strip()
        disposition, params = parse_header_params(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in params:
            raise MultipartError("part without form-data name")
        return PartHeaders(params["name"], params.get("filename"), headers)

    def read_value(self, limit: int) -> bytes:
        """The current part's whole data; raises MultipartError beyond ``limit`` bytes."""
        pieces: list[bytes] = []
        size = 0
        for chunk in self._data():
            size += len(chunk)
            if size > limit:
                raise MultipartError("form field too large")
            pieces.append(bytes(chunk))
        return b"".join(pieces)

    def iter_data(self) -> Iterator[memoryview]:
        """The current part's data as it arrives (views valid until the next iteration)."""
        return self._data()

    def drain(self) -> None:
        """Consume and discard the rest of the body."""
        self._state = "done"
        self._buf, self._pos = b"", 0
        drain_stream(self._stream, self._remaining, self._chunk_size)
        self._remaining = 0


def drain_stream(stream: ByteStream, length: int, chunk_size: int = CHUNK_SIZE) -> None:
    """Read and discard ``length`` bytes; raises BodyTruncatedError if the stream ends first."""
    while length > 0:
        data = stream.read(min(chunk_size, length))
        if not data:
            raise BodyTruncatedError("request body ended before its Content-Length")
        length -= len(data)
