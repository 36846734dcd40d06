"""Uploads whose bytes a real S3 server stores (``EmulatorState.s3``): their POST policy or
multipart upload and part URLs point at it, and it is asked whether they were stored."""

from __future__ import annotations

from typing import Any

from .. import profiles, views
from ..records import UploadRecord
from ..s3 import S3Error, S3Storage
from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply
from .request import unprocessable


def s3_unavailable(exc: S3Error) -> ApiError:
    return ApiError(502, {"errors": {"base": [f"storage backend: {exc}"]}})


def target_s3(s3: S3Storage, record: UploadRecord, body: dict[str, Any], ttl: float) -> None:
    """Point ``record`` at the S3 server: a POST policy, or a multipart upload and its URLs."""
    if record.segments is None:
        disposition = profiles.content_disposition(
            record.response_filename, bool(body.get("attachment_content_disposition"))
        )
        record.url = s3.bucket_url
        record.fields = profiles.post_form(record, s3.secret_key, s3.access_key, disposition, ttl)
        return
    try:
        record.upload_id = s3.start_multipart(record.key, record.content_type)
    except S3Error as exc:
        raise s3_unavailable(exc) from exc
    issued, lifetime = record.created_at, int(ttl)
    if lifetime < 1:  # handed out expired (a fault): signed as if issued that long ago
        issued, lifetime = record.created_at + ttl - 1, 1
    record.segment_views = []
    for number, segment in enumerate(record.segments, start=1):
        url = s3.part_url(record.key, record.upload_id, number, segment["sha256"],
                          when=issued, expires=lifetime)
        headers = {"x-amz-content-sha256": segment["sha256"],
                   "content-length": str(segment["size"])}
        if segment.get("md5"):
            headers["content-md5"] = segment["md5"]
        record.segment_views.append({"url": url, "headers": headers})


def refresh_from_s3(state: EmulatorState, record: UploadRecord) -> None:
    """A form POST goes to S3 straight from the client: ask S3 whether it was stored."""
    if state.s3 is None or record.segments is not None or record.status == "complete":
        return
    try:
        size = state.s3.size_of(record.key)
    except S3Error as exc:
        raise s3_unavailable(exc) from exc
    if size is not None:
        with state.lock:
            if record.status != "complete":
                record.status, record.stored_size, record.store_count = "complete", size, 1


def complete_in_s3(state: EmulatorState, s3: S3Storage, record: UploadRecord,
                   declared: list[dict[str, Any]], etags: list[str]) -> Reply:
    """Complete the multipart upload in S3, which checks every part and ETag itself."""
    if len(etags) != len(declared):
        raise unprocessable("segments", f"expected {len(declared)} segments, got {len(etags)}")
    try:
        s3.complete_multipart(record.key, record.upload_id, etags)
        size = s3.size_of(record.key)
    except S3Error as exc:
        raise unprocessable("segments", str(exc)) from exc
    with state.lock:
        record.status = "complete"
        record.completed_etags = etags
        record.stored_size = size
        record.store_count += 1
        return json_reply(200, views.upload_view(record))
