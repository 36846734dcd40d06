"""AWS Signature Version 4 pieces the emulated storage needs: POST policies and presigned PUTs.

POST policies are signed exactly as S3 expects (hex HMAC-SHA256 of the base64 policy with the
derived signing key). Presigned segment URLs use the same key derivation over a simplified
canonical request (method, path, sorted query without the signature); clients never compute
it, they only copy the URL.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
REGION = "us-east-1"
SERVICE = "s3"
TERMINATOR = "aws4_request"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str) -> bytes:
    """The SigV4 signing key for ``date`` (yyyymmdd) in us-east-1/s3."""
    k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k_region = _hmac(k_date, REGION)
    k_service = _hmac(k_region, SERVICE)
    return _hmac(k_service, TERMINATOR)


def signature(secret_key: str, date: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of ``string_to_sign`` with the signing key for ``date``."""
    return hmac.new(
        signing_key(secret_key, date), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def amz_date(when: float) -> str:
    """``yyyymmddTHHMMSSZ`` in UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))


def credential(access_key: str, when: float) -> str:
    """``<access key>/<yyyymmdd>/us-east-1/s3/aws4_request``."""
    return f"{access_key}/{amz_date(when)[:8]}/{REGION}/{SERVICE}/{TERMINATOR}"


def parse_credential(value: str) -> tuple[str, str] | None:
    """(access key, date) from a credential scope, or None when it is not one of ours."""
    parts = value.split("/")
    if len(parts) != 5 or parts[2:] != [REGION, SERVICE, TERMINATOR]:
        return None
    if len(parts[1]) != 8 or not parts[1].isdigit():
        return None
    return parts[0], parts[1]


def iso_expiration(when: float) -> str:
    """Policy ``expiration`` format: ``2026-11-19T23:48:15.123Z``."""
    millis = round((when - int(when)) * 1000)
    if millis >= 1000:
        when, millis = when + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{millis:03d}Z"


def parse_expiration(value: str) -> float:
    """Unix time of a policy ``expiration``; raises ValueError when malformed."""
    if not value.endswith("Z"):
        raise ValueError("expiration must be UTC")
    main, _, fraction = value[:-1].partition(".")
    parsed = time.strptime(main, "%Y-%m-%dT%H:%M:%S")
    seconds = float(calendar.timegm(parsed))
    if fraction:
        if not fraction.isdigit():
            raise ValueError("bad fraction")
        seconds += float("0." + fraction)
    return seconds


def encode_policy(expiration: float, conditions: Sequence[Any]) -> str:
    """The base64 policy document."""
    document = {"expiration": iso_expiration(expiration), "conditions": list(conditions)}
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def decode_policy(policy: str) -> dict[str, Any]:
    """The policy JSON; raises ValueError when it is not base64 of a JSON object."""
    raw = base64.b64decode(policy.encode("ascii"), validate=True)
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise TypeError("policy is not an object")
    return document


# --- presigned segment URLs ----------------------------------------------------------------


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """``k=v&...`` in the given order, RFC 3986-encoded as SigV4 wants."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Sorted, RFC 3986-encoded query without ``X-Amz-Signature``."""
    return encode_query(sorted((k, v) for k, v in pairs if k != "X-Amz-Signature"))


def presign_string(method: str, path: str, pairs: Sequence[tuple[str, str]]) -> str:
    """What a presigned URL's signature covers."""
    return f"{ALGORITHM}\n{method}\n{quote(path, safe='/-_.~')}\n{canonical_query(pairs)}"


def presign_query(
    secret_key: str,
    access_key: str,
    method: str,
    path: str,
    *,
    params: Sequence[tuple[str, str]],
    when: float,
    expires: int,
) -> str:
    """The full query string (signature last) of a presigned URL for ``path``."""
    pairs = [
        *params,
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", credential(access_key, when)),
        ("X-Amz-Date", amz_date(when)),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "content-length;host;x-amz-content-sha256"),
    ]
    sig = signature(secret_key, amz_date(when)[:8], presign_string(method, path, pairs))
    return f"{encode_query(pairs)}&X-Amz-Signature={sig}"


def verify_presigned(
    secret_key: str, access_key: str, method: str, path: str, pairs: Sequence[tuple[str, str]]
) -> bool:
    """True when the query carries a valid signature of ours for this method and path."""
    values = dict(pairs)
    given = values.get("X-Amz-Signature", "")
    scope = parse_credential(values.get("X-Amz-Credential", ""))
    if not given or scope is None or scope[0] != access_key:
        return False
    if values.get("X-Amz-Algorithm") != ALGORITHM:
        return False
    expected = signature(secret_key, scope[1], presign_string(method, path, pairs))
    return hmac.compare_digest(expected, given)
