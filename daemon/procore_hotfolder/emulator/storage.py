"""The emulated S3: form POST with a SigV4 policy, and presigned segment (part) PUTs.

Bodies are streamed to a temporary file in ``data_dir`` while being hashed, then renamed into
place only when every check passed, so a refused or interrupted request never counts as stored.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from . import profiles, sigv4
from .multipart import (
    CHUNK_SIZE,
    BodyTruncatedError,
    ByteStream,
    MultipartError,
    MultipartParser,
    drain_stream,
    parse_header_params,
)
from .records import UploadRecord
from .state import EmulatorState
from .wire import DropConnection, Reply, s3_error

#: S3 refuses form fields preceding the file that add up to more than this.
MAX_PRE_DATA = 64 * 1024
#: Bodies up to this size are read and discarded after an early error, so the connection
#: stays usable; larger ones are cut off by closing the connection after the answer.
DRAIN_LIMIT = 64 << 20
_ALWAYS_ALLOWED = frozenset({"policy", "x-amz-signature", "file"})
THREADED_SINK_BYTES = 4 << 20
_NO_LENGTH = "You must provide the Content-Length HTTP header."
_BAD_DIGEST = "The Content-MD5 you specified did not match what we received."
_INTERNAL = "We encountered an internal error. Please try again."


@dataclass
class StorageRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Message
    stream: ByteStream
    content_length: int | None
    now: float


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _refuse(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> _Refused:
    return _Refused(s3_error(status, code, message, extra))


def discard_body(request: StorageRequest, reply: Reply) -> Reply:
    """Consume a small unread body so the connection stays usable, or close it afterwards."""
    length = request.content_length or 0
    if request.headers.get("Transfer-Encoding") or length > DRAIN_LIMIT:
        reply.close = True
    elif length:
        drain_stream(request.stream, length)
    return reply


class _Sink:
    """A temporary file in ``directory`` that hashes what is written, up to ``limit`` bytes.

    The caller's thread computes the SHA-256 while a helper thread writes the file (and
    computes the MD5 when ``md5`` is set); hashlib and file writes release the GIL, so the
    two overlap. Chunks must stay unchanged once written (the parsers hand out views of fresh
    buffers).
    """

    def __init__(
        self, directory: Path, expected: int, limit: int | None = None, md5: bool = False
    ) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="incoming-")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if md5 else None
        self._queue: queue.Queue[memoryview | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._writer: threading.Thread | None = None
        if expected > THREADED_SINK_BYTES:  # a thread per small body costs more than it saves
            self._writer = threading.Thread(
                target=self._write_loop, name="procore-emulator-sink", daemon=True
            )
            self._writer.start()
        self._open = True

    def _write_loop(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:  # after an error, keep draining so the producer never blocks
                self._store(chunk)

    def _store(self, chunk: memoryview) -> None:
        try:
            if self.md5 is not None:
                self.md5.update(chunk)
            view = chunk
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
        except OSError as exc:
            self._error = exc

    def write(self, chunk: memoryview) -> None:
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            return  # too large already: keep counting, stop storing
        self.sha256.update(chunk)
        if self._writer is None:
            self._store(chunk)
        else:
            self._queue.put(chunk)

    def _finish(self) -> None:
        if self._open:
            self._open = False
            if self._writer is not None:
                self._queue.put(None)
                self._writer.join()
            self._file.close()

    def keep(self, target: Path) -> None:
        """Finish writing and move the file to ``target``; raises OSError on write errors."""
        self._finish()
        if self._error is not None:
            self.discard()
            raise self._error
        os.replace(self.path, target)

    def discard(self) -> None:
        self._finish()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def md5_digest(self) -> bytes:
        self._finish()
        if self.md5 is None:
            raise RuntimeError("this sink does not compute an MD5")
        return self.md5.digest()


# --- form POST -------------------------------------------------------------------------------


@dataclass
class _Form:
    bucket: str
    fields: dict[str, str]  # lower-cased names
    record: UploadRecord
    min_size: int
    max_size: int


def _condition_text(op: str, name: str, value: Any) -> str:
    return json.dumps([op, f"${name}", value], separators=(", ", ": "))


def _field(fields: Mapping[str, str], bucket: str, name: str) -> str | None:
    return bucket if name == "bucket" else fields.get(name)


def _check_conditions(
    conditions: Any, fields: Mapping[str, str], bucket: str
) -> tuple[set[str], int, int]:
    """Raise on the first failed condition; (covered field names, min size, max size)."""
    if not isinstance(conditions, list):
        raise _refuse(400, "InvalidPolicyDocument", "Invalid Policy: Invalid 'conditions' value.")
    covered: set[str] = set()
    min_size, max_size = 0, profiles.MAX_POST
    for condition in conditions:
        checks: list[tuple[str, str, Any]] = []
        if isinstance(condition, dict) and len(condition) == 1:
            name, value = next(iter(condition.items()))
            checks.append(("eq", name.lower(), value))
        elif (
            isinstance(condition, list)
            and len(condition) == 3
            and condition[0] == "content-length-range"
        ):
            low, high = condition[1], condition[2]
            if not isinstance(low, int) or not isinstance(high, int):
                raise _refuse(400, "InvalidPolicyDocument", "Invalid Policy: bad range.")
            min_size, max_size = low, high
            continue
        elif (
            isinstance(condition, list)
            and len(condition) == 3
            and condition[0] in ("eq", "starts-with")
            and isinstance(condition[1], str)
            and condition[1].startswith("$")
        ):
            checks.append((condition[0], condition[1][1:].lower(), condition[2]))
        else:
            raise _refuse(400, "InvalidPolicyDocument", "Invalid Policy: Invalid condition.")
        for op, name, expected in checks:
            covered.add(name)
            actual = _field(fields, bucket, name)
            ok = actual is not None and isinstance(expected, str)
            if ok and op == "eq":
                ok = actual == expected
            elif ok:
                ok = str(actual).startswith(expected)
            if not ok:
                raise _refuse(
                    403,
                    "AccessDenied",
                    "Invalid according to Policy: Policy Condition failed: "
                    + _condition_text(op, name, expected),
                )
    return covered, min_size, max_size


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise _refuse(
            400,
            "InvalidArgument",
            f"Bucket POST must contain a field named '{name}'.  If it is specified, "
            "please check the order of the fields.",
            {"ArgumentName": name, "ArgumentValue": ""},
        )
    return value


def _check_form(
    state: EmulatorState, bucket: str, raw_fields: list[tuple[str, str]], now: float
) -> _Form:
    """Everything S3 checks once it reaches the file part; raises _Refused."""
    fields: dict[str, str] = {}
    for name, value in raw_fields:
        lower = name.lower()
        if lower in fields:
            raise _refuse(400, "InvalidArgument", f"Duplicate form field: {name}")
        fields[lower] = value
    key = _required(fields, "key")
    if "policy" not in fields:
        raise _refuse(403, "AccessDenied", "Access Denied")
    algorithm = _required(fields, "x-amz-algorithm")
    cred = _required(fields, "x-amz-credential")
    _required(fields, "x-amz-date")
    given = _required(fields, "x-amz-signature")
    if algorithm != sigv4.ALGORITHM:
        raise _refuse(
            400, "InvalidArgument", "Only AWS4-HMAC-SHA256 is supported.",
            {"ArgumentName": "x-amz-algorithm", "ArgumentValue": algorithm},
        )  # fmt: skip
    scope = sigv4.parse_credential(cred)
    if scope is None:
        raise _refuse(400, "InvalidArgument", "Invalid credential scope in x-amz-credential.")
    if scope[0] != state.access_key:
        raise _refuse(
            403, "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )  # fmt: skip
    expected = sigv4.signature(state.secret_key, scope[1], fields["policy"])
    if not hmac.compare_digest(expected, given):
        raise _refuse(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    try:
        document = sigv4.decode_policy(fields["policy"])
        expiration = sigv4.parse_expiration(str(document["expiration"]))
    except (ValueError, KeyError) as exc:
        raise _refuse(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from exc
    if now >= expiration:
        raise _refuse(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    covered, min_size, max_size = _check_conditions(document.get("conditions"), fields, bucket)
    for name in fields:
        if name not in covered and name not in _ALWAYS_ALLOWED and not name.startswith("x-ignore-"):
            raise _refuse(
                403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {name}"
            )
    with state.lock:
        uuid = state.uploads_by_key.get((bucket, key))
        record = state.uploads.get(uuid) if uuid else None
    if record is None or record.segments is not None:
        raise _refuse(403, "AccessDenied", "Access Denied")
    return _Form(bucket, fields, record, min_size, max_size)


def _post_reply(state: EmulatorState, form: _Form, etag: str) -> Reply:
    location = f"{state.base_url}/storage/{form.bucket}/{quote(form.record.key, safe='/')}"
    headers = {"ETag": etag, "Location": location}
    status = form.fields.get("success_action_status", "204")
    if status == "201":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<PostResponse><Location>{escape(location)}</Location>"
            f"<Bucket>{escape(form.bucket)}</Bucket><Key>{escape(form.record.key)}</Key>"
            f"<ETag>{escape(etag)}</ETag></PostResponse>"
        ).encode()
        return Reply(201, body, "application/xml", headers)
    if status == "200":
        return Reply(200, b"", None, headers)
    return Reply(204, b"", None, headers)


def post_object(state: EmulatorState, request: StorageRequest) -> Reply:
    """A browser-style form POST of one object (``file`` last; later parts are ignored)."""
    parts = request.path.strip("/").split("/")
    bucket = parts[1] if len(parts) == 2 else ""
    if request.headers.get("Authorization"):
        reply = s3_error(
            400, "InvalidArgument", "Unsupported Authorization Type",
            {"ArgumentName": "Authorization"},
        )  # fmt: skip
        return discard_body(request, reply)
    with state.lock:
        known = bucket in state.buckets
    if not known:
        reply = s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
        return discard_body(request, reply)
    kind, params = parse_header_params(request.headers.get("Content-Type", ""))
    if kind != "multipart/form-data" or not params.get("boundary"):
        reply = s3_error(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            {"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
        )
        return discard_body(request, reply)
    if request.content_length is None:
        return s3_error(411, "MissingContentLength", _NO_LENGTH, close=True)
    parser = MultipartParser(
        request.stream, request.content_length, params["boundary"].encode("latin-1")
    )
    try:
        return _receive_form(state, request, parser, bucket)
    except BodyTruncatedError as exc:
        raise DropConnection from exc
    except MultipartError:
        parser.drain()
        return s3_error(
            400,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        )


def _receive_form(
    state: EmulatorState, request: StorageRequest, parser: MultipartParser, bucket: str
) -> Reply:
    raw_fields: list[tuple[str, str]] = []
    pre_data = 0
    while True:
        part = parser.next_part()
        if part is None:
            return s3_error(
                400, "InvalidArgument", "POST requires exactly one file upload per request.",
                {"ArgumentName": "file", "ArgumentValue": "0"},
            )  # fmt: skip
        if part.name.lower() == "file":
            break
        try:
            value = parser.read_value(MAX_PRE_DATA - pre_data)
        except MultipartError:
            parser.drain()
            return s3_error(
                400,
                "MaxPostPreDataLengthExceededError",
                "Your POST request fields preceeding the upload file was too large.",
            )
        pre_data += len(value)
        raw_fields.append((part.name, value.decode("utf-8", "replace")))
    try:
        form = _check_form(state, bucket, raw_fields, request.now)
    except _Refused as refused:
        parser.drain()
        return refused.reply
    sink = _Sink(state.temp_dir(), request.content_length or 0, limit=form.max_size)
    try:
        for chunk in parser.iter_data():
            sink.write(chunk)
        parser.drain()  # S3 ignores everything after the file
        if sink.size > form.max_size:
            sink.discard()
            return s3_error(
                400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                {"ProposedSize": str(sink.size), "MaxSizeAllowed": str(form.max_size)},
            )  # fmt: skip
        if sink.size < form.min_size:
            sink.discard()
            return s3_error(
                400, "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                {"ProposedSize": str(sink.size), "MinSizeAllowed": str(form.min_size)},
            )  # fmt: skip
        sink.keep(state.object_path(form.record.uuid))
    except BaseException:
        sink.discard()
        raise
    # S3 uses the MD5 here; the emulator saves that hash for POSTs (clients must treat ETags
    # as opaque anyway: S3's are not MD5s for encrypted or multipart objects either).
    etag = f'"{sink.sha256.hexdigest()[:32]}"'
    with state.lock:
        record = form.record
        record.status = "complete"
        record.stored_size = sink.size
        record.stored_sha256 = sink.sha256.hexdigest()
        record.store_count += 1
    return _post_reply(state, form, etag)


# --- segment PUT -----------------------------------------------------------------------------


def _part_target(
    state: EmulatorState, request: StorageRequest
) -> tuple[UploadRecord, int, dict[str, Any]]:
    """The Upload and part a presigned PUT addresses, after signature and expiry checks."""
    if request.headers.get("Authorization"):
        raise _refuse(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            {"ArgumentName": "Authorization"},
        )
    params = dict(request.query)
    if "partNumber" not in params or "uploadId" not in params:
        raise _refuse(400, "InvalidRequest", "Only presigned part uploads are supported.")
    if not sigv4.verify_presigned(
        state.secret_key, state.access_key, "PUT", request.path, request.query
    ):
        raise _refuse(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    bucket, _, key = request.path.removeprefix("/storage/").partition("/")
    with state.lock:
        uuid = state.uploads_by_key.get((bucket, key))
        record = state.uploads.get(uuid) if uuid else None
        usable = (
            record is not None
            and record.segments is not None
            and record.upload_id == params["uploadId"]
            and record.status != "complete"
        )
    if not usable or record is None or record.segments is None:
        raise _refuse(
            404,
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, "
            "or the upload may have been aborted or completed.",
        )
    if request.now >= record.expires_at:
        raise _refuse(403, "AccessDenied", "Request has expired")
    number = int(params["partNumber"]) if params["partNumber"].isdigit() else 0
    if not 1 <= number <= len(record.segments):
        raise _refuse(
            400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"
        )
    return record, number, record.segments[number - 1]


@dataclass
class _Part:
    record: UploadRecord
    number: int
    length: int
    sha256: str  # the declared (and claimed) SHA-256
    md5_header: str | None


def _check_part(state: EmulatorState, request: StorageRequest) -> _Part:
    """Everything that can be checked before reading a part's body; raises _Refused."""
    record, number, declared = _part_target(state, request)
    if request.content_length is None:
        raise _refuse(411, "MissingContentLength", _NO_LENGTH)
    if request.content_length != declared["size"]:
        raise _refuse(
            400,
            "IncompleteBody",
            "The request body does not have the size declared for this segment.",
        )
    claimed = request.headers.get("x-amz-content-sha256", "").lower()
    if claimed != declared["sha256"]:
        raise _Refused(_sha_mismatch(claimed, declared["sha256"]))
    md5_header = request.headers.get("Content-MD5")
    if declared.get("md5") and md5_header != declared["md5"]:
        raise _refuse(400, "BadDigest", _BAD_DIGEST)
    if number in state.faults.failing_segments:
        raise _refuse(500, "InternalError", _INTERNAL)
    return _Part(record, number, request.content_length, claimed, md5_header)


def put_part(state: EmulatorState, request: StorageRequest) -> Reply:
    """A presigned ``UploadPart`` PUT: exact length, SHA-256 (and MD5 when declared) checked."""
    try:
        part = _check_part(state, request)
    except _Refused as refused:
        return discard_body(request, refused.reply)
    record, number, claimed, md5_header = part.record, part.number, part.sha256, part.md5_header
    sink = _Sink(state.temp_dir(), part.length, md5=True)
    try:
        _copy(request.stream, part.length, sink.write)
        sha = sink.sha256.hexdigest()
        if sha != claimed:
            sink.discard()
            return _sha_mismatch(claimed, sha)
        md5 = sink.md5_digest()
        if md5_header and not _md5_matches(md5_header, md5):
            sink.discard()
            return s3_error(400, "BadDigest", _BAD_DIGEST)
        sink.keep(state.part_path(record.uuid, number))
    except BodyTruncatedError as exc:
        sink.discard()
        raise DropConnection from exc
    except BaseException:
        sink.discard()
        raise
    with state.lock:
        record.parts[number] = (md5.hex(), sink.size, sha)
    return Reply(200, b"", None, {"ETag": f'"{md5.hex()}"'})


def _sha_mismatch(claimed: str, computed: str) -> Reply:
    return s3_error(
        400,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        {"ClientComputedContentSHA256": claimed, "S3ComputedContentSHA256": computed},
    )


def _md5_matches(header: str, digest: bytes) -> bool:
    try:
        return base64.b64decode(header, validate=True) == digest
    except (ValueError, binascii.Error):
        return False


def _copy(stream: ByteStream, length: int, write: Callable[[memoryview], None]) -> None:
    remaining = length
    while remaining > 0:
        data = stream.read(min(CHUNK_SIZE, remaining))
        if not data:
            raise BodyTruncatedError("request body ended before its Content-Length")
        remaining -= len(data)
        write(memoryview(data))
