"""Per-company storage targets: bucket, key layout, form fields (set and order) and policy.

Real Procore hands out storage URLs and form fields that differ between companies and change
over time, so clients must copy them verbatim. The emulator picks one of a few layouts from the
company id, which makes hard-coded fields fail the policy check in tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from typing import Any
from urllib.parse import quote

from . import sigv4
from .records import UploadRecord

MIB = 1 << 20
MIN_SEGMENT = 5 * MIB
MAX_SEGMENT = 5 << 30
MAX_POST = 5 << 30
VARIANTS = 4

_BUCKET_PREFIX = ("pro-core-emu", "prostore-emu-us", "procore-uploads-emu", "pc-emu-storage")


def variant_of(company_id: int) -> int:
    return company_id % VARIANTS


def bucket_for(company_id: int) -> str:
    digest = hashlib.sha256(f"bucket:{company_id}".encode()).hexdigest()[:10]
    return f"{_BUCKET_PREFIX[variant_of(company_id)]}-{digest}"


def key_for(company_id: int, project_id: int | None, uuid: str, now: float) -> str:
    variant = variant_of(company_id)
    if variant == 0:
        scope = f"companies/{company_id}"
        return f"{scope}/projects/{project_id}/{uuid}" if project_id else f"{scope}/{uuid}"
    if variant == 1:
        return f"uploads/{uuid}"
    if variant == 2:
        return time.strftime(f"{company_id}/%Y/%m/", time.gmtime(now)) + uuid
    digest = hashlib.sha256(uuid.encode()).hexdigest()[:8]
    return f"prostore/{digest}/{uuid}"


def content_disposition(filename: str, attachment: bool) -> str:
    """``inline; filename="x.pdf"`` with an RFC 5987 ``filename*`` for non-ASCII names."""
    kind = "attachment" if attachment else "inline"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def storage_url(base_url: str, bucket: str) -> str:
    return f"{base_url}/storage/{bucket}"


def post_form(
    record: UploadRecord, secret_key: str, access_key: str, disposition: str, ttl: float
) -> dict[str, str]:
    """The ordered form fields (with a signed SigV4 POST policy) for a non-segmented Upload."""
    variant = variant_of(record.company_id)
    now = record.created_at
    date = sigv4.amz_date(now)
    cred = sigv4.credential(access_key, now)
    signed = {"x-amz-algorithm": sigv4.ALGORITHM, "x-amz-credential": cred, "x-amz-date": date}
    max_size = record.declared_size if record.declared_size is not None else MAX_POST
    min_size = 1 if variant % 2 else 0
    fields: dict[str, str]
    if variant == 0:
        fields = {
            "key": record.key,
            "Content-Type": record.content_type,
            "Content-Disposition": disposition,
            **signed,
        }
    elif variant == 1:
        fields = {
            "acl": "private",
            "key": record.key,
            "success_action_status": "201",
            "Content-Type": record.content_type,
            "Content-Disposition": disposition,
            "x-amz-meta-upload-uuid": record.uuid,
            "x-amz-credential": cred,
            "x-amz-algorithm": sigv4.ALGORITHM,
            "x-amz-date": date,
        }
    elif variant == 2:
        fields = {
            "key": record.key,
            "Cache-Control": "private, max-age=0",
            "content-type": record.content_type,
            "content-disposition": disposition,
            "success_action_status": "200",
            "x-amz-server-side-encryption": "AES256",
            "x-amz-meta-company-id": str(record.company_id),
            **signed,
        }
    else:
        fields = {
            **signed,
            "Content-Type": record.content_type,
            "Content-Disposition": disposition,
            "x-amz-meta-original-filename": quote(record.response_filename, safe=""),
            "key": record.key,
        }
    conditions: list[Any] = [{"bucket": record.bucket}]
    for index, (name, value) in enumerate(fields.items()):
        if variant == 3 and name == "key":
            conditions.append(["starts-with", "$key", value.rsplit("/", 1)[0] + "/"])
        elif variant == 0 or (variant == 2 and index % 2):
            conditions.append({name: value})
        else:
            conditions.append(["eq", f"${name}", value])
    conditions.append(["content-length-range", min_size, max_size])
    policy = sigv4.encode_policy(now + ttl, conditions)
    signature = sigv4.signature(secret_key, date[:8], policy)
    ordered = list(fields.items())
    # Where the policy sits among the fields differs too; the signature follows it.
    at = {0: 3, 1: len(ordered), 2: len(ordered), 3: 0}[variant]
    ordered[at:at] = [("policy", policy), ("x-amz-signature", signature)]
    return dict(ordered)


def normalize_md5(value: Any) -> str | None:
    """Base64 of an MD5 given as hex or base64; None when absent; ValueError when invalid."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError("md5 must be a string")
    if len(value) == 32:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError("md5 is neither hex nor base64") from exc
    if len(raw) != 16:
        raise ValueError("md5 must be 16 bytes")
    return value


def segment_views(
    record: UploadRecord, base_url: str, secret_key: str, access_key: str, ttl: float
) -> list[dict[str, Any]]:
    """Each segment's presigned PUT ``url`` and the ``headers`` to send with it."""
    views: list[dict[str, Any]] = []
    path = f"/storage/{record.bucket}/{record.key}"
    for number, segment in enumerate(record.segments or [], start=1):
        query = sigv4.presign_query(
            secret_key,
            access_key,
            "PUT",
            path,
            params=[("partNumber", str(number)), ("uploadId", record.upload_id)],
            when=record.created_at,
            expires=max(1, int(ttl)),
        )
        headers = {
            "x-amz-content-sha256": segment["sha256"],
            "content-length": str(segment["size"]),
        }
        if segment.get("md5"):
            headers["content-md5"] = segment["md5"]
        views.append({"url": f"{base_url}{quote(path, safe='/-_.~')}?{query}", "headers": headers})
    return views
