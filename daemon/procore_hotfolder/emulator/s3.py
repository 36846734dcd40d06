"""A real S3 server as the emulator's storage.

With an ``S3Storage`` configured, Create Upload hands out POST policies and presigned segment
URLs for that server (its endpoint, bucket and credentials) instead of the emulator's own
storage, so the S3 server alone judges what a client sends. The emulator plays Procore's
backend towards it: it starts and completes multipart uploads, and asks what was stored.

Requests are signed with AWS Signature Version 4 (header signing for the emulator's own calls,
query signing for the segment URLs handed to clients), path-style, region us-east-1.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import requests

from . import sigv4

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: What a segment URL's signature covers besides the URL itself: the client must send exactly
#: the SHA-256 it declared for the segment.
PART_SIGNED_HEADERS = ("host", "x-amz-content-sha256")


class S3Error(Exception):
    """The S3 server refused one of the emulator's own calls."""

    def __init__(self, response: requests.Response) -> None:
        self.status = response.status_code
        self.code = _xml_text(response.text, "Code") or "unknown"
        self.detail = _xml_text(response.text, "Message") or response.text[:200]
        super().__init__(f"S3 answered HTTP {self.status} {self.code}: {self.detail}")


def _xml_text(body: str, tag: str) -> str | None:
    found = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.DOTALL)
    return found.group(1) if found else None


@dataclass(frozen=True)
class S3Storage:
    """An S3 endpoint (``http://127.0.0.1:8333``), a bucket in it and credentials for it."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    timeout: float = 30.0

    @property
    def bucket_url(self) -> str:
        """Where form POSTs go (path-style)."""
        return f"{self.endpoint.rstrip('/')}/{self.bucket}"

    def _path(self, key: str) -> str:
        return f"/{self.bucket}/{key}" if key else f"/{self.bucket}"

    def _string_to_sign(self, when: float, canonical_request: str) -> str:
        scope = sigv4.credential(self.access_key, when).split("/", 1)[1]
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        return f"{sigv4.ALGORITHM}\n{sigv4.amz_date(when)}\n{scope}\n{digest}"

    def _sign(self, when: float, canonical_request: str) -> str:
        return sigv4.signature(self.secret_key, sigv4.amz_date(when)[:8],
                               self._string_to_sign(when, canonical_request))

    # --- the emulator's own calls (header signing) -------------------------------------------

    def request(self, method: str, key: str = "", *, query: Sequence[tuple[str, str]] = (),
                body: bytes = b"", headers: Mapping[str, str] | None = None,
                ) -> requests.Response:
        """One signed request to the bucket (or to ``key`` in it)."""
        when = time.time()
        path = quote(self._path(key), safe="/-_.~")
        signed = {
            "host": urlsplit(self.endpoint).netloc,
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
            "x-amz-date": sigv4.amz_date(when),
            **{k.lower(): v for k, v in (headers or {}).items()},
        }
        names = sorted(signed)
        canonical = "\n".join([
            method, path, sigv4.canonical_query(query),
            "".join(f"{name}:{signed[name].strip()}\n" for name in names),
            ";".join(names), signed["x-amz-content-sha256"],
        ])
        signed["authorization"] = (
            f"{sigv4.ALGORITHM} Credential={sigv4.credential(self.access_key, when)}, "
            f"SignedHeaders={';'.join(names)}, Signature={self._sign(when, canonical)}")
        del signed["host"]
        url = self.endpoint.rstrip("/") + path
        if query:
            url += "?" + sigv4.encode_query(query)
        return requests.request(method, url, data=body, headers=signed, timeout=self.timeout)

    def _checked(self, response: requests.Response) -> requests.Response:
        if response.status_code >= 300:
            raise S3Error(response)
        return response

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists already."""
        response = self.request("PUT")
        if response.status_code >= 300 and _xml_text(response.text, "Code") not in (
                "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise S3Error(response)

    def size_of(self, key: str) -> int | None:
        """The stored object's size, or None when there is none."""
        response = self.request("HEAD", key)
        if response.status_code == 404:
            return None
        return int(self._checked(response).headers["Content-Length"])

    def read(self, key: str) -> bytes:
        """The stored object's bytes."""
        return self._checked(self.request("GET", key)).content

    def start_multipart(self, key: str, content_type: str) -> str:
        """CreateMultipartUpload; returns the UploadId."""
        response = self._checked(self.request(
            "POST", key, query=[("uploads", "")], headers={"content-type": content_type}))
        upload_id = _xml_text(response.text, "UploadId")
        if not upload_id:
            raise S3Error(response)
        return upload_id

    def complete_multipart(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        """CompleteMultipartUpload with the parts' ETags in order; S3Error when refused."""
        parts = "".join(f"<Part><PartNumber>{number}</PartNumber><ETag>\"{escape(etag)}\"</ETag>"
                        "</Part>" for number, etag in enumerate(etags, start=1))
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        response = self.request("POST", key, query=[("uploadId", upload_id)], body=body)
        # S3 may answer 200 with an <Error> body once it has started to answer.
        if response.status_code >= 300 or "<Error>" in response.text:
            raise S3Error(response)

    # --- URLs for clients (query signing) ----------------------------------------------------

    def part_url(self, key: str, upload_id: str, number: int, sha256: str, *,
                 when: float, expires: int) -> str:
        """A presigned PUT for part ``number``, valid ``expires`` seconds from ``when``, that
        only accepts a request declaring ``x-amz-content-sha256: sha256``."""
        path = quote(self._path(key), safe="/-_.~")
        pairs = [
            ("partNumber", str(number)),
            ("uploadId", upload_id),
            ("X-Amz-Algorithm", sigv4.ALGORITHM),
            ("X-Amz-Credential", sigv4.credential(self.access_key, when)),
            ("X-Amz-Date", sigv4.amz_date(when)),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", ";".join(PART_SIGNED_HEADERS)),
        ]
        headers = {"host": urlsplit(self.endpoint).netloc, "x-amz-content-sha256": sha256}
        canonical = "\n".join([
            "PUT", path, sigv4.canonical_query(pairs),
            "".join(f"{name}:{headers[name]}\n" for name in PART_SIGNED_HEADERS),
            ";".join(PART_SIGNED_HEADERS), UNSIGNED_PAYLOAD,
        ])
        signature = self._sign(when, canonical)
        return (f"{self.endpoint.rstrip('/')}{path}?{sigv4.encode_query(pairs)}"
                f"&X-Amz-Signature={signature}")
