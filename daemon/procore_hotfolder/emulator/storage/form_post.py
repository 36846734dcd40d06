"""The browser-style form POST of one object: S3's checks of the SigV4 policy and its
conditions, the size range, then the object stored."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from .. import profiles, sigv4
from ..multipart import BodyTruncatedError, MultipartError, MultipartParser, parse_header_params
from ..records import UploadRecord
from ..state import EmulatorState
from ..wire import DropConnection, Reply, s3_error
from .request import NO_LENGTH, Refused, StorageRequest, discard_body, refuse
from .sink import Sink

#: S3 refuses form fields preceding the file that add up to more than this.
MAX_PRE_DATA = 64 * 1024
_ALWAYS_ALLOWED = frozenset({"policy", "x-amz-signature", "file"})


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
        raise refuse(400, "InvalidPolicyDocument", "Invalid Policy: Invalid 'conditions' value.")
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
                raise refuse(400, "InvalidPolicyDocument", "Invalid Policy: bad range.")
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
            raise refuse(400, "InvalidPolicyDocument", "Invalid Policy: Invalid condition.")
        for op, name, expected in checks:
            covered.add(name)
            actual = _field(fields, bucket, name)
            ok = actual is not None and isinstance(expected, str)
            if ok and op == "eq":
                ok = actual == expected
            elif ok:
                ok = str(actual).startswith(expected)
            if not ok:
                raise refuse(
                    403,
                    "AccessDenied",
                    "Invalid according to Policy: Policy Condition failed: "
                    + _condition_text(op, name, expected),
                )
    return covered, min_size, max_size


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise refuse(
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
    """Everything S3 checks once it reaches the file part; raises Refused."""
    fields: dict[str, str] = {}
    for name, value in raw_fields:
        lower = name.lower()
        if lower in fields:
            raise refuse(400, "InvalidArgument", f"Duplicate form field: {name}")
        fields[lower] = value
    key = _required(fields, "key")
    if "policy" not in fields:
        raise refuse(403, "AccessDenied", "Access Denied")
    algorithm = _required(fields, "x-amz-algorithm")
    cred = _required(fields, "x-amz-credential")
    _required(fields, "x-amz-date")
    given = _required(fields, "x-amz-signature")
    if algorithm != sigv4.ALGORITHM:
        raise refuse(
            400, "InvalidArgument", "Only AWS4-HMAC-SHA256 is supported.",
            {"ArgumentName": "x-amz-algorithm", "ArgumentValue": algorithm},
        )  # fmt: skip
    scope = sigv4.parse_credential(cred)
    if scope is None:
        raise refuse(400, "InvalidArgument", "Invalid credential scope in x-amz-credential.")
    if scope[0] != state.access_key:
        raise refuse(
            403, "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )  # fmt: skip
    expected = sigv4.signature(state.secret_key, scope[1], fields["policy"])
    if not hmac.compare_digest(expected, given):
        raise refuse(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    try:
        document = sigv4.decode_policy(fields["policy"])
        expiration = sigv4.parse_expiration(str(document["expiration"]))
    except (ValueError, KeyError) as exc:
        raise refuse(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from exc
    if now >= expiration:
        raise refuse(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    covered, min_size, max_size = _check_conditions(document.get("conditions"), fields, bucket)
    for name in fields:
        if name not in covered and name not in _ALWAYS_ALLOWED and not name.startswith("x-ignore-"):
            raise refuse(
                403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {name}"
            )
    with state.lock:
        uuid = state.uploads_by_key.get((bucket, key))
        record = state.uploads.get(uuid) if uuid else None
    if record is None or record.segments is not None:
        raise refuse(403, "AccessDenied", "Access Denied")
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
        return s3_error(411, "MissingContentLength", NO_LENGTH, close=True)
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
    except Refused as refused:
        parser.drain()
        return refused.reply
    sink = Sink(state.temp_dir(), request.content_length or 0, limit=form.max_size)
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
