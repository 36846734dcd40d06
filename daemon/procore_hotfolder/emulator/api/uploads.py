"""Uploads (v1.1): Create, Show and Complete Upload, and the check that an Upload named by
a Documents file, version or image is stored and belongs to the request's project."""

from __future__ import annotations

import mimetypes
import re
import secrets
from typing import Any

from .. import profiles, views
from ..records import UploadRecord, new_ulid
from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply
from .access import check_company, check_project
from .request import ApiRequest, forbidden, unprocessable
from .s3_targets import complete_in_s3, refresh_from_s3, target_s3

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NOT_FOUND = {"errors": {"base": ["Not found"]}}
_EXPIRED = {"errors": {"base": ["Upload has expired"]}}


def _upload_scope(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> int | None:
    """The project id (None for company uploads) named by the path, after access checks."""
    scope, ident = args[0], int(args[1])
    check_company(state)
    if scope == "companies":
        if ident != request.company_id:
            raise forbidden("The company in the path does not match Procore-Company-Id")
        return None
    check_project(state, ident, request)
    return ident


def _validate_segments(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise unprocessable("segments", "must be a non-empty array")
    if len(raw) > 10_000:
        raise unprocessable("segments", "too many segments (at most 10000)")
    segments: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise unprocessable("segments", f"segment {index} must be an object")
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise unprocessable("segments", f"segment {index} size must be a positive integer")
        sha = item.get("sha256")
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise unprocessable("segments", f"segment {index} sha256 must be 64 hex digits")
        if size > profiles.MAX_SEGMENT:
            raise unprocessable("segments", f"segment {index} is larger than 5 GiB")
        if index < len(raw) - 1 and size < profiles.MIN_SEGMENT:
            raise unprocessable("segments", f"segment {index} is smaller than 5 MiB")
        try:
            md5 = profiles.normalize_md5(item.get("md5"))
        except (TypeError, ValueError) as exc:
            raise unprocessable("segments", f"segment {index} md5: {exc}") from exc
        segment: dict[str, Any] = {"size": size, "sha256": sha.lower()}
        if md5:
            segment["md5"] = md5
        segments.append(segment)
    return segments


def create_upload(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = _upload_scope(state, request, args)
    body = request.body if isinstance(request.body, dict) else {}
    filename = body.get("response_filename")
    if not isinstance(filename, str) or not filename.strip():
        raise unprocessable("response_filename", "can't be blank")
    size = body.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise unprocessable("size", "must be an integer greater than or equal to 0")
    forced_type = body.get("response_content_type")
    if forced_type is not None and not isinstance(forced_type, str):
        raise unprocessable("response_content_type", "must be a string")
    content_type = forced_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    segments = None
    if body.get("segments") is not None:
        segments = _validate_segments(body["segments"])
        total = sum(s["size"] for s in segments)
        if size is not None and size != total:
            raise unprocessable("size", "does not match the sum of the segment sizes")
    ttl = state.faults.ttl_for_new_upload()
    uuid = new_ulid(request.now)
    record = UploadRecord(
        uuid=uuid,
        company_id=request.company_id,
        project_id=project_id,
        response_filename=filename,
        declared_size=size,
        content_type=content_type,
        segments=segments,
        created_at=request.now,
        expires_at=request.now + ttl,
        bucket=state.s3.bucket if state.s3 else profiles.bucket_for(request.company_id),
        key=profiles.key_for(request.company_id, project_id, uuid, request.now),
    )
    if state.s3 is not None:
        target_s3(state.s3, record, body, ttl)
    elif segments is None:
        disposition = profiles.content_disposition(
            filename, bool(body.get("attachment_content_disposition"))
        )
        record.url = profiles.storage_url(state.base_url, record.bucket)
        record.fields = profiles.post_form(
            record, state.secret_key, state.access_key, disposition, ttl
        )
    else:
        record.upload_id = secrets.token_urlsafe(48)
        record.segment_views = profiles.segment_views(
            record, state.base_url, state.secret_key, state.access_key, ttl
        )
    with state.lock:
        state.uploads[uuid] = record
        state.uploads_by_key[(record.bucket, record.key)] = uuid
        state.buckets.add(record.bucket)
    return json_reply(201, views.upload_view(record))


def _find_upload(
    state: EmulatorState, request: ApiRequest, project_id: int | None, uuid: str
) -> UploadRecord:
    # An Upload deleted for being left unfiled past its retention is simply gone: 404.
    state.purge_unfiled(request.now, uuid)
    with state.lock:
        record = state.uploads.get(uuid)
    if record is None or record.company_id != request.company_id or record.project_id != project_id:
        raise ApiError(404, _NOT_FOUND)
    return record


def show_upload(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    record = _find_upload(state, request, _upload_scope(state, request, args), args[2])
    refresh_from_s3(state, record)
    with state.lock:
        return json_reply(200, views.upload_view(record))


def _strip_etag(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return str(value.strip('"'))


def complete_upload(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    record = _find_upload(state, request, _upload_scope(state, request, args), args[2])
    if record.segments is None:
        raise unprocessable("segments", "this upload is not segmented")
    given = request.body.get("segments") if isinstance(request.body, dict) else None
    if not isinstance(given, list) or not all(isinstance(g, dict) for g in given):
        raise unprocessable("segments", "must be an array of objects with an etag")
    etags = [_strip_etag(g.get("etag")) for g in given]
    if state.s3 is not None and record.status != "complete":
        if request.now >= record.expires_at:
            raise ApiError(410, _EXPIRED)
        return complete_in_s3(state, state.s3, record, record.segments, etags)
    with state.lock:
        if record.status == "complete":
            if etags == record.completed_etags:
                return json_reply(200, views.upload_view(record))
            raise unprocessable("segments", "the upload is already complete with other etags")
        if request.now >= record.expires_at:
            raise ApiError(410, _EXPIRED)
        if len(etags) != len(record.segments):
            raise unprocessable(
                "segments", f"expected {len(record.segments)} segments, got {len(etags)}"
            )
        for number, (etag, item, declared) in enumerate(
            zip(etags, given, record.segments, strict=True), start=1
        ):
            part = record.parts.get(number)
            if part is None:
                raise unprocessable("segments", f"segment {number} has not been uploaded")
            if etag != part[0]:
                raise unprocessable("segments", f"segment {number} etag does not match")
            if item.get("size") is not None and item.get("size") != declared["size"]:
                raise unprocessable("segments", f"segment {number} size does not match")
            sha = item.get("sha256")
            if sha is not None and str(sha).lower() != declared["sha256"]:
                raise unprocessable("segments", f"segment {number} sha256 does not match")
        snapshot = dict(record.parts)
    size, sha256 = state.hash_parts(record.uuid, len(etags))
    with state.lock:
        if record.status == "complete":
            if etags == record.completed_etags:
                return json_reply(200, views.upload_view(record))
            raise unprocessable("segments", "the upload is already complete with other etags")
        if record.parts != snapshot:
            raise ApiError(409, {"errors": {"base": ["segments changed during completion"]}})
        record.status = "complete"
        record.completed_etags = etags
        record.stored_size = size
        record.stored_sha256 = sha256
        record.store_count += 1
        return json_reply(200, views.upload_view(record))


def usable_upload(
    state: EmulatorState, request: ApiRequest, project_id: int, raw_uuid: Any
) -> UploadRecord:
    """A stored Upload of this company and project, or 422 ``upload_uuid is invalid``.

    An Upload deleted by retention is refused like one that never existed: Procore does not
    document the answer, and a plain validation error (not a 404 or 410 that says "gone")
    is the least convenient for a client, which must work out by itself that the Upload
    expired and that it has to upload the bytes again."""
    if isinstance(raw_uuid, str):
        state.purge_unfiled(request.now, raw_uuid)
    with state.lock:
        record = state.uploads.get(raw_uuid) if isinstance(raw_uuid, str) else None
    if record is not None:
        refresh_from_s3(state, record)
    with state.lock:
        if (
            record is None
            or record.company_id != request.company_id
            or record.project_id != (project_id or None)  # COMPANY_SCOPE: company Uploads
            or record.status != "complete"
        ):
            raise unprocessable("upload_uuid", "is invalid")
        return record
