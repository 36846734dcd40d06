"""A presigned ``UploadPart`` PUT of one segment: signature, expiry, exact length, SHA-256
(and MD5 when declared) checked, then the part stored."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .. import sigv4
from ..multipart import BodyTruncatedError
from ..records import UploadRecord
from ..state import EmulatorState
from ..wire import DropConnection, Reply, s3_error
from .request import NO_LENGTH, Refused, StorageRequest, discard_body, refuse
from .sink import Sink, copy_body

_BAD_DIGEST = "The Content-MD5 you specified did not match what we received."
_INTERNAL = "We encountered an internal error. Please try again."


def _part_target(
    state: EmulatorState, request: StorageRequest
) -> tuple[UploadRecord, int, dict[str, Any]]:
    """The Upload and part a presigned PUT addresses, after signature and expiry checks."""
    if request.headers.get("Authorization"):
        raise refuse(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            {"ArgumentName": "Authorization"},
        )
    params = dict(request.query)
    if "partNumber" not in params or "uploadId" not in params:
        raise refuse(400, "InvalidRequest", "Only presigned part uploads are supported.")
    if not sigv4.verify_presigned(
        state.secret_key, state.access_key, "PUT", request.path, request.query
    ):
        raise refuse(
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
        raise refuse(
            404,
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, "
            "or the upload may have been aborted or completed.",
        )
    if request.now >= record.expires_at:
        raise refuse(403, "AccessDenied", "Request has expired")
    number = int(params["partNumber"]) if params["partNumber"].isdigit() else 0
    if not 1 <= number <= len(record.segments):
        raise refuse(
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
    """Everything that can be checked before reading a part's body; raises Refused."""
    record, number, declared = _part_target(state, request)
    if request.content_length is None:
        raise refuse(411, "MissingContentLength", NO_LENGTH)
    if request.content_length != declared["size"]:
        raise refuse(
            400,
            "IncompleteBody",
            "The request body does not have the size declared for this segment.",
        )
    claimed = request.headers.get("x-amz-content-sha256", "").lower()
    if claimed != declared["sha256"]:
        raise Refused(_sha_mismatch(claimed, declared["sha256"]))
    md5_header = request.headers.get("Content-MD5")
    if declared.get("md5") and md5_header != declared["md5"]:
        raise refuse(400, "BadDigest", _BAD_DIGEST)
    if number in state.faults.failing_segments:
        raise refuse(500, "InternalError", _INTERNAL)
    return _Part(record, number, request.content_length, claimed, md5_header)


def put_part(state: EmulatorState, request: StorageRequest) -> Reply:
    """A presigned ``UploadPart`` PUT: exact length, SHA-256 (and MD5 when declared) checked."""
    try:
        part = _check_part(state, request)
    except Refused as refused:
        return discard_body(request, refused.reply)
    record, number, claimed, md5_header = part.record, part.number, part.sha256, part.md5_header
    sink = Sink(state.temp_dir(), part.length, md5=True)
    try:
        copy_body(request.stream, part.length, sink.write)
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
