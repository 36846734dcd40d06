"""A storage request as the handlers see it, and the refusal they raise before any byte of
the body is stored."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from ..multipart import ByteStream, drain_stream
from ..wire import Reply, s3_error

#: Bodies up to this size are read and discarded after an early error, so the connection
#: stays usable; larger ones are cut off by closing the connection after the answer.
DRAIN_LIMIT = 64 << 20
NO_LENGTH = "You must provide the Content-Length HTTP header."


@dataclass
class StorageRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Message
    stream: ByteStream
    content_length: int | None
    now: float


class Refused(Exception):
    """A check failed: ``reply`` is S3's refusal (raised by checks, answered by handlers)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def refuse(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> Refused:
    return Refused(s3_error(status, code, message, extra))


def discard_body(request: StorageRequest, reply: Reply) -> Reply:
    """Consume a small unread body so the connection stays usable, or close it afterwards."""
    length = request.content_length or 0
    if request.headers.get("Transfer-Encoding") or length > DRAIN_LIMIT:
        reply.close = True
    elif length:
        drain_stream(request.stream, length)
    return reply
