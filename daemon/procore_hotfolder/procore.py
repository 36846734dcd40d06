"""The Procore client: OAuth token, Uploads (v1.1), storage POST/PUT, Documents and Photos.

One layer per concern:

- ``error_mapping`` turns every HTTP answer or socket error into one typed ``ProcoreError``
  (the only place that knows status codes and body shapes);
- ``ProcoreClient._call`` runs one API request: token, company header, rate governor,
  request-level retry (``RetryPolicy``) for retryable errors on idempotent or harmless calls,
  renew-once-and-retry-once on 401;
- the public methods are the Procore operations the uploader needs.

Association POSTs (Documents files, file versions, images) are never repeated when their
outcome is unknown (timeout, dropped connection, 5xx): the error goes to the caller, which
looks first. They are repeated only when the request certainly did not run (connection
refused, 429, 401).

Nothing secret leaves this module: no token, client secret, policy, signature, credential or
storage-URL query string appears in an exception message or a log event.
"""

from __future__ import annotations

import email.utils
import io
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests_toolbelt.multipart.encoder import MultipartEncoder

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.error_mapping import (
    error_from_exception,
    error_from_response,
    never_sent,
    safe_url,
)
from procore_hotfolder.errors import (
    AuthenticationError,
    Conflict,
    NetworkError,
    NotFound,
    ProcoreError,
    RateLimited,
    RequestTimeout,
    ServerError,
    ServiceUnavailable,
    Stopping,
    UnexpectedResponse,
    UploadExpired,
    ValidationFailed,
)
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.model import utc_iso
from procore_hotfolder.ratelimit import RateGovernor
from procore_hotfolder.retry import RetryPolicy

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 10.0
#: Socket block size for request bodies (urllib3 sends 16 KiB blocks by default).
SEND_BLOCK_SIZE = 1024 * 1024
#: Errors the request scope retries. ``UploadExpired``, ``ContentMismatch`` and
#: ``UnexpectedResponse`` are retryable too, but only by the whole-file scope (a new Upload,
#: a new read of the file).
REQUEST_RETRYABLE: tuple[type[ProcoreError], ...] = (
    NetworkError, RateLimited, ServiceUnavailable, ServerError, RequestTimeout,
)


def _version() -> str:
    try:
        return metadata.version("procore-hotfolder")
    except metadata.PackageNotFoundError:
        return "0"


DEFAULT_USER_AGENT = f"procore-hotfolder/{_version()}"


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadTarget:
    """Where Uploads are created: a project, or the company when ``project_id`` is None."""

    company_id: int
    project_id: int | None

    def path(self) -> str:
        """``projects/{id}`` or ``companies/{id}``."""
        if self.project_id is not None:
            return f"projects/{self.project_id}"
        return f"companies/{self.company_id}"


@dataclass(frozen=True)
class SegmentSpec:
    """One segment of a segmented upload: size, SHA-256 (hex), optional MD5 (hex)."""

    size: int
    sha256: str
    md5: str | None = None


@dataclass(frozen=True)
class SegmentTicket:
    """Where and how to PUT one segment (``number`` is 1-based)."""

    number: int
    url: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class UploadTicket:
    """A created Upload: its UUID and where to send the bytes.

    Non-segmented: ``url`` and ``fields`` (kept in the order Procore gave). Segmented:
    ``segments``. ``created_at`` is the client's clock at creation (storage refuses a form
    POST started more than an hour later).
    """

    uuid: str
    url: str | None
    fields: tuple[tuple[str, str], ...]
    segments: tuple[SegmentTicket, ...]
    created_at: float

    def to_json(self) -> str:
        """A JSON text for the journal (it holds the storage policy: keep it private)."""
        return json.dumps({
            "uuid": self.uuid,
            "url": self.url,
            "fields": [list(pair) for pair in self.fields],
            "segments": [
                {"number": s.number, "url": s.url, "headers": [list(h) for h in s.headers]}
                for s in self.segments
            ],
            "created_at": self.created_at,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str) -> UploadTicket:
        """The inverse of ``to_json``; raises ValueError on a malformed text."""
        try:
            raw = json.loads(s)
            return cls(
                uuid=str(raw["uuid"]),
                url=None if raw.get("url") is None else str(raw["url"]),
                fields=tuple((str(k), str(v)) for k, v in raw.get("fields", [])),
                segments=tuple(
                    SegmentTicket(
                        number=int(seg["number"]),
                        url=str(seg["url"]),
                        headers=tuple((str(k), str(v)) for k, v in seg.get("headers", [])),
                    )
                    for seg in raw.get("segments", [])
                ),
                created_at=float(raw["created_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed upload ticket: {exc.__class__.__name__}") from exc


class Body(Protocol):
    """A readable binary body (the file or a segment of it)."""

    def read(self, size: int = -1, /) -> bytes: ...


# --- transport helpers -----------------------------------------------------------------------


class _BigBlockAdapter(HTTPAdapter):
    """Sends request bodies in ``SEND_BLOCK_SIZE`` blocks (urllib3's default is 16 KiB)."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any,
    ) -> None:
        pool_kwargs.setdefault("blocksize", SEND_BLOCK_SIZE)
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def _strip_authorization(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Storage must never see credentials; also keeps ~/.netrc from adding any."""
    request.headers.pop("Authorization", None)
    return request


class _Session(requests.Session):
    """A session that reads proxy and CA-bundle settings from the environment once per origin.

    requests does it on every request, walking all of ``os.environ`` twice (about 0.3 ms, a
    tenth of a small file's upload); the daemon's environment does not change while it runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], dict[str, Any]] = {}

    def merge_environment_settings(  # type: ignore[override]
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any,
    ) -> Any:
        if proxies or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        settings = self._environment.get(origin)
        if settings is None:
            settings = dict(super().merge_environment_settings(url, {}, None, None, None))
            self._environment[origin] = settings
        return {**settings, "proxies": dict(settings["proxies"]),
                "stream": stream if stream is not None else self.stream}


def _new_session(user_agent: str, pool: int, *, storage: bool) -> requests.Session:
    session = _Session()
    adapter = _BigBlockAdapter(pool_connections=4, pool_maxsize=pool)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if storage:
        # Exactly the ticket's headers plus User-Agent: drop requests' defaults.
        session.headers = CaseInsensitiveDict({"User-Agent": user_agent})
        session.auth = _strip_authorization
    else:
        session.headers["User-Agent"] = user_agent
        session.headers["Accept"] = "application/json"
    return session


class _StreamedForm:
    """A requests-toolbelt ``MultipartEncoder`` sent part by part: its boundary, part headers
    and small fields as the encoder made them, the file's blocks straight from the file.

    The encoder's own ``read()`` copies every block through a buffer that grows and is
    truncated again (fresh pages for every MiB), which costs about 0.5 s of CPU per GiB,
    as much as the SHA-256; here each block goes to the socket as read. Everything around
    the file (boundaries, headers, the small fields) goes out in one piece before it and one
    after, not a send per field. ``len()`` is what is left of the encoder's exact length.
    """

    def __init__(self, encoder: MultipartEncoder) -> None:
        self.content_type: str = encoder.content_type
        self._length: int = encoder.len
        boundary = encoder.boundary.encode()
        pieces: list[Any] = []
        framing = bytearray()
        for part in encoder.parts:
            framing += boundary + b"\r\n" + part.headers
            if isinstance(part.body, io.BytesIO):  # a field's value, already in memory
                framing += part.body.read()
            else:  # the file: streamed
                pieces += [bytes(framing), part.body]
                framing.clear()
            framing += b"\r\n"
        pieces.append(bytes(framing + boundary + b"--\r\n"))
        self._pieces = iter(pieces)
        self._current: Any = next(self._pieces)
        self.bytes_read = 0

    def __len__(self) -> int:
        return self._length - self.bytes_read

    def read(self, size: int = -1) -> bytes:
        data = b""
        while self._current is not None and not data:
            if isinstance(self._current, bytes):
                data = self._current
                self._current = next(self._pieces, None)
            else:
                data = self._current.read(size)
                if not data:
                    self._current = next(self._pieces, None)
        self.bytes_read += len(data)
        return data


class _Rewind:
    """Remembers where a body started, so a retry can send it again from there."""

    def __init__(self, body: object) -> None:
        self._body = body
        self._start: int | None = None
        tell = getattr(body, "tell", None)
        if callable(tell) and callable(getattr(body, "seek", None)):
            try:
                self._start = int(tell())
            except (OSError, ValueError):
                self._start = None

    @property
    def possible(self) -> bool:
        return self._start is not None or isinstance(self._body, bytes | bytearray | memoryview)

    def rewind(self) -> None:
        if self._start is not None:
            self._body.seek(self._start)  # type: ignore[attr-defined]


def _json_body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise UnexpectedResponse(
            f"Procore answered HTTP {response.status_code} with a body that is not JSON",
            status=response.status_code, request_id=response.headers.get("x-request-id"),
            url=safe_url(response.url)) from exc


def _mapping(data: Any, what: str, response: requests.Response) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise UnexpectedResponse(
            f"Procore answered HTTP {response.status_code} without the expected {what}",
            status=response.status_code, request_id=response.headers.get("x-request-id"),
            url=safe_url(response.url))
    return data


def _next_page(response: requests.Response, query: Mapping[str, Any]) -> dict[str, Any] | None:
    """The query of the ``next`` page named by the ``Link`` header, or None at the end.

    Only the ``page`` (and ``per_page``) of the link are taken over: the path and the other
    parameters stay ours, so a link to another host cannot redirect the client."""
    link = response.links.get("next") if response.headers.get("Link") else None
    if not link or not link.get("url"):
        return None
    linked = dict(parse_qsl(urlsplit(link["url"]).query))
    try:
        page = int(linked["page"])
    except (KeyError, ValueError):
        return None
    if page <= int(query.get("page", 1)):
        return None  # a link that does not move forward would loop for ever
    following = {**query, "page": page}
    if linked.get("per_page", "").isdigit():
        following["per_page"] = int(linked["per_page"])
    return following


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    """Form fields / headers as ordered pairs, from an object or a list of pairs/objects."""
    if isinstance(raw, Mapping):
        return tuple((str(k), "" if v is None else str(v)) for k, v in raw.items())
    out: list[tuple[str, str]] = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and "name" in item:
                out.append((str(item["name"]), str(item.get("value", ""))))
            elif isinstance(item, list | tuple) and len(item) == 2:
                out.append((str(item[0]), str(item[1])))
            else:
                raise ValueError("unreadable pair")
        return tuple(out)
    if raw is None:
        return ()
    raise ValueError("unreadable pairs")


# --- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float
    expires_at: float


class ProcoreClient:
    """Thread-safe Procore client shared by every worker; see the module docstring."""

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        settings: ProcoreSettings,
        governor: RateGovernor,
        *,
        policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, immutable value
        user_agent: str = DEFAULT_USER_AGENT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], bool] | None = None,
        rand: Callable[[], float] = random.random,
        pool_size: int = 16,
    ) -> None:
        self._settings = settings
        self._governor = governor
        self._policy = policy
        self._clock = clock
        self._sleep = sleep if sleep is not None else governor.sleep
        self._rand = rand
        self._api_base = settings.api_url.rstrip("/")
        self._token_url = settings.login_url.rstrip("/") + "/oauth/token"
        self._timeout = (CONNECT_TIMEOUT, settings.timeout_seconds)
        self._api = _new_session(user_agent, pool_size, storage=False)
        self._api.headers["Procore-Company-Id"] = str(settings.company_id)
        self._token_session = _new_session(user_agent, 2, storage=False)
        self._storage = _new_session(user_agent, pool_size, storage=True)
        self._token_lock = threading.Lock()
        self._token: _Token | None = None
        #: Procore's clock as last seen: (``Date`` header in Unix seconds, our monotonic time
        #: when that answer arrived); see ``procore_time_floor``.
        self._procore_clock: tuple[float, float] | None = None

    def reconfigure(self, settings: ProcoreSettings) -> None:
        """Use ``settings`` from the next request on (a reload). New credentials or another
        login server, company or API drop the current token, so a rotated secret is used at
        once; requests in flight finish with what they started with."""
        if settings == self._settings:
            return
        old = self._settings
        self._settings = settings
        self._api_base = settings.api_url.rstrip("/")
        self._token_url = settings.login_url.rstrip("/") + "/oauth/token"
        self._timeout = (CONNECT_TIMEOUT, settings.timeout_seconds)
        self._api.headers["Procore-Company-Id"] = str(settings.company_id)
        identity = ("client_id", "client_secret", "login_url", "api_url", "company_id")
        if any(getattr(old, k) != getattr(settings, k) for k in identity):
            with self._token_lock:
                self._token = None

    def close(self) -> None:
        """Close the connection pools."""
        for session in (self._api, self._token_session, self._storage):
            session.close()

    # --- authentication -------------------------------------------------------------------

    def ensure_token(self) -> None:
        """Obtain a token now, or renew it if it is close to expiry.

        Raises ``AuthenticationError`` (credentials refused), ``NetworkError`` and other
        retryable errors when the token endpoint cannot be reached, ``Stopping``.
        """
        self._current_token()

    def _current_token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.renew_at:
            return token.value
        with self._token_lock:  # one renewal at a time for every worker
            token = self._token
            if token is not None and self._clock() < token.renew_at:
                return token.value
            token = self._fetch_token()
            self._token = token
            return token.value

    def _invalidate(self, value: str) -> None:
        """Forget the token ``value`` (refused by the API) unless already replaced."""
        with self._token_lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch_token(self) -> _Token:
        data = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
        }
        attempt = 0
        while True:
            attempt += 1
            started = self._clock()
            try:
                response = self._token_session.post(self._token_url, data=data,
                                                    timeout=self._timeout)
            except requests.RequestException as exc:
                error = error_from_exception(exc, url=self._token_url)
            else:
                self._note_procore_time(response)
                if response.status_code == 200:
                    return self._parse_token(response, started)
                error = self._token_error(response)
            if not isinstance(error, REQUEST_RETRYABLE) or not self._policy.more_tries(attempt):
                log.warning("token_failed", **error.as_dict(), attempt=attempt)
                raise error
            self._pause_between(attempt, error, "token")

    def _token_error(self, response: requests.Response) -> ProcoreError:
        error = error_from_response(response, now=self._clock())
        error.message = self._redact(error.message)
        error.args = (error.message,)
        if response.status_code in (400, 401, 403):
            return AuthenticationError(
                "the token endpoint refused the client credentials "
                f"(check client_id and the client secret): {error.message}",
                status=error.status, code=error.code, request_id=error.request_id,
                url=safe_url(self._token_url))
        return error

    def _parse_token(self, response: requests.Response, started: float) -> _Token:
        try:
            data = response.json()
        except ValueError:
            data = None
        value = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(value, str) or not value:
            raise UnexpectedResponse("the token endpoint answered without an access_token",
                                     status=response.status_code,
                                     request_id=response.headers.get("x-request-id"))
        assert isinstance(data, Mapping)
        try:
            lifetime = float(data.get("expires_in", 5400))
        except (TypeError, ValueError):
            lifetime = 5400.0
        lifetime = max(lifetime, 0.0)
        # Renew ahead of expiry: with less than min(60 s, 20 % of the lifetime) left.
        margin = min(60.0, 0.2 * lifetime)
        log.info("token_renewed", expires_in=lifetime)
        return _Token(value=value, renew_at=started + lifetime - margin,
                      expires_at=started + lifetime)

    def _redact(self, text: str) -> str:
        secrets = [self._settings.client_secret]
        token = self._token
        if token is not None:
            secrets.append(token.value)
        for secret in secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    # --- Procore's clock ------------------------------------------------------------------

    def _note_procore_time(self, response: requests.Response) -> None:
        raw = response.headers.get("Date")
        if not raw:
            return
        try:
            seen = email.utils.parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        self._procore_clock = (seen, time.monotonic())

    def procore_time_floor(self) -> float | None:
        """A time (Unix seconds, Procore's clock) that has certainly passed on Procore's side.

        From the ``Date`` header of the latest answer from Procore's API or token endpoint:
        the header is truncated to the second and was stamped before the answer arrived, so
        ``Date + time elapsed here since`` never runs ahead of Procore's clock. A record that
        Procore creates after this call returns therefore carries a ``created_at`` at or after
        the value. With no answer seen yet a token is obtained first (no API call); None when
        even that gave no ``Date``.
        """
        if self._procore_clock is None:
            with self._token_lock:
                if self._procore_clock is None:
                    self._token = self._fetch_token()
        if self._procore_clock is None:
            return None
        seen, at = self._procore_clock
        return seen + max(0.0, time.monotonic() - at)

    # --- the request scope ----------------------------------------------------------------

    def _pause_between(self, attempt: int, error: ProcoreError, what: str) -> None:
        delay = self._policy.delay(attempt, retry_after=error.retry_after, rand=self._rand())
        if isinstance(error, NetworkError):
            # The network is likely down for every worker: hold them all briefly.
            self._governor.pause(self._clock() + delay, "network")
        log.info("request_retry", call=what, attempt=attempt, delay=round(delay, 3),
                 **error.as_dict())
        if not self._sleep(delay):
            raise Stopping("stopping: request not retried")

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool,
        expect: Sequence[int] = (200, 201),
    ) -> requests.Response:
        """One API request with auth, pacing and request-level retry.

        ``idempotent`` False (association POSTs): repeated only when it surely did not run
        (connection refused, 429, 401). Raises the typed ``ProcoreError`` or ``Stopping``.
        """
        url = f"{self._api_base}/rest/{path}"
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            token = self._current_token()
            self._governor.acquire()
            did_not_run = False
            try:
                response = self._api.request(
                    method, url, params=params, json=json_body, timeout=self._timeout,
                    headers={"Authorization": f"Bearer {token}"})
            except requests.RequestException as exc:
                self._governor.observe(0, {})
                self.metrics.api_request(None)
                did_not_run = never_sent(exc)
                error = error_from_exception(exc, url=url)
            else:
                self._governor.observe(response.status_code, response.headers)
                self._note_procore_time(response)
                self.metrics.api_request(response.status_code)
                if response.status_code in expect:
                    return response
                error = error_from_response(response, now=self._clock())
                if response.status_code == 401 and not renewed:
                    # Authentication scope: renew once, retry once (the call did not run).
                    renewed = True
                    self._invalidate(token)
                    log.info("token_refused", call=f"{method} {path}",
                             request_id=error.request_id)
                    attempt -= 1
                    continue
                did_not_run = response.status_code == 429
            retry_ok = idempotent or did_not_run
            if (not isinstance(error, REQUEST_RETRYABLE) or not retry_ok
                    or not self._policy.more_tries(attempt)):
                raise error
            self._pause_between(attempt, error, f"{method} {path}")

    def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return _json_body(self._call("GET", path, params=params, idempotent=True))

    def get_pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, per_page: int = 100,
        max_pages: int = 1000,
    ) -> Iterator[Mapping[str, Any]]:
        """The items of a paginated Procore list, page after page, lazily.

        Procore pages with ``page`` (1-based) and ``per_page`` and answers with ``Total``,
        ``Per-Page`` and a ``Link`` header (``first``, ``prev``, ``next``, ``last``): the
        next page is the ``next`` link, followed until there is none (a short page is not
        proof of the end). A list without a ``Link`` header is one page. The items may come
        as a bare list or wrapped in an object (``{"data": [...]}`` and the like). ``path``
        is below ``/rest/``. Raises the typed ``ProcoreError``, ``UnexpectedResponse`` when a
        page is not a list.
        """
        query: dict[str, Any] = {**(params or {}), "page": 1, "per_page": per_page}
        for _ in range(max_pages):
            response = self._call("GET", path, params=query, idempotent=True)
            data = _json_body(response)
            if isinstance(data, Mapping):
                data = next((v for v in data.values() if isinstance(v, list)), None)
            if not isinstance(data, list):
                raise UnexpectedResponse(
                    f"Procore answered HTTP {response.status_code} to a list request "
                    "without a list", status=response.status_code,
                    request_id=response.headers.get("x-request-id"),
                    url=safe_url(response.url))
            yield from (item for item in data if isinstance(item, Mapping))
            following = _next_page(response, query)
            if following is None:
                return
            query = following

    def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """GET one object below ``/rest/`` (Show Project, Show Folder, ...). Raises the typed
        ``ProcoreError``; ``UnexpectedResponse`` when the answer is not a JSON object."""
        response = self._call("GET", path, params=params, idempotent=True)
        return _mapping(_json_body(response), "object", response)

    # --- access check ---------------------------------------------------------------------

    def check_access(self) -> None:
        """Obtain a token and make one cheap call (a 404 there is fine: not every server has
        the companies list). Raises the typed error otherwise."""
        self.ensure_token()
        try:
            self._call("GET", "v1.0/companies", idempotent=True)
        except NotFound:
            return

    # --- uploads --------------------------------------------------------------------------

    def create_upload(
        self,
        target: UploadTarget,
        filename: str,
        size: int,
        *,
        content_type: str | None = None,
        segments: Sequence[SegmentSpec] | None = None,
    ) -> UploadTicket:
        """Create an Upload (segmented when ``segments`` is given).

        Retried at the request level: a duplicate unused Upload is harmless. Raises
        ``UnexpectedResponse`` when the answer lacks the uuid, url or segments.
        """
        body: dict[str, Any] = {"response_filename": filename, "size": size}
        if content_type:
            body["response_content_type"] = content_type
        if segments:
            body["segments"] = [
                {"size": s.size, "sha256": s.sha256, **({"md5": s.md5} if s.md5 else {})}
                for s in segments
            ]
        created_at = self._clock()
        response = self._call("POST", f"v1.1/{target.path()}/uploads", json_body=body,
                              idempotent=True, expect=(200, 201))
        data = _mapping(_json_body(response), "upload", response)
        return self._ticket(data, response, created_at, segmented=bool(segments),
                            expected_segments=len(segments) if segments else 0)

    def _ticket(
        self, data: Mapping[str, Any], response: requests.Response, created_at: float,
        *, segmented: bool, expected_segments: int,
    ) -> UploadTicket:
        def unexpected(what: str) -> UnexpectedResponse:
            return UnexpectedResponse(
                f"Create Upload answered HTTP {response.status_code} {what}",
                status=response.status_code, request_id=response.headers.get("x-request-id"),
                url=safe_url(response.url))

        uuid = data.get("uuid")
        if not isinstance(uuid, str | int) or isinstance(uuid, bool) or not str(uuid):
            raise unexpected("without a uuid")
        url = data.get("url")
        try:
            fields = _pairs(data.get("fields"))
        except ValueError:
            raise unexpected("with unreadable form fields") from None
        tickets: list[SegmentTicket] = []
        raw_segments = data.get("segments")
        if segmented:
            if not isinstance(raw_segments, list) or len(raw_segments) != expected_segments:
                raise unexpected("without one storage URL per segment")
            for number, seg in enumerate(raw_segments, start=1):
                if not isinstance(seg, Mapping) or not isinstance(seg.get("url"), str):
                    raise unexpected(f"without a URL for segment {number}")
                try:
                    headers = _pairs(seg.get("headers"))
                except ValueError:
                    raise unexpected(f"with unreadable headers for segment {number}") from None
                tickets.append(SegmentTicket(number=number, url=seg["url"], headers=headers))
        elif not isinstance(url, str) or not url:
            raise unexpected("without a storage URL")
        return UploadTicket(uuid=str(uuid), url=url if isinstance(url, str) else None,
                            fields=fields, segments=tuple(tickets), created_at=created_at)

    def store_file(
        self,
        ticket: UploadTicket,
        body: Body,
        *,
        filename: str,
        content_type: str | None,
    ) -> None:
        """POST the file to storage as multipart/form-data: the ticket's fields unaltered
        and in order, then ``file`` last. Streams ``body`` (needs ``read(n)`` and a length
        via ``__len__``/``len``/``fileno``); never holds the file in memory.

        Retried at the request level when ``body`` can seek back. Raises ``UploadExpired``
        (403 and the like: create a new Upload), ``ContentMismatch``, ``StorageRejected``,
        ``NetworkError``/``ServerError`` after the tries, ``Stopping``.
        """
        if not ticket.url:
            raise ValueError("this ticket is for a segmented upload")
        url = ticket.url
        part_type = content_type or next(
            (v for k, v in ticket.fields if k.lower() == "content-type"), None,
        ) or "application/octet-stream"
        rewind = _Rewind(body)
        redirect_ok = any(k.lower() == "success_action_redirect" for k, _ in ticket.fields)
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                rewind.rewind()
            form = _StreamedForm(MultipartEncoder(
                fields=[*ticket.fields, ("file", (filename, body, part_type))]))
            try:
                response = self._storage.post(
                    url, data=form, timeout=self._timeout, allow_redirects=False,
                    headers={"Content-Type": form.content_type})
            except requests.RequestException as exc:
                error = error_from_exception(exc, url=url)
            else:
                try:
                    if 200 <= response.status_code < 300 or (
                            redirect_ok and response.status_code in (301, 302, 303)):
                        log.debug("storage_posted", uuid=ticket.uuid,
                                  status=response.status_code)
                        return
                    error = error_from_response(response, storage=True, now=self._clock())
                finally:
                    response.close()
            if (not isinstance(error, REQUEST_RETRYABLE) or not rewind.possible
                    or not self._policy.more_tries(attempt)):
                raise error
            self._pause_between(attempt, error, "storage POST")

    def store_segment(self, segment: SegmentTicket, body: Body | bytes) -> str:
        """PUT one segment's bytes with exactly the ticket's headers; returns the ETag
        (quotes stripped). Raises like ``store_file``; ``UnexpectedResponse`` without ETag.
        """
        headers = dict(segment.headers)
        rewind = _Rewind(body)
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                rewind.rewind()
            try:
                response = self._storage.put(segment.url, data=body, headers=headers,
                                             timeout=self._timeout, allow_redirects=False)
            except requests.RequestException as exc:
                error = error_from_exception(exc, url=segment.url)
            else:
                try:
                    if 200 <= response.status_code < 300:
                        etag = response.headers.get("ETag", "").strip().strip('"')
                        if not etag:
                            raise UnexpectedResponse(
                                f"storage accepted segment {segment.number} without an ETag",
                                status=response.status_code, url=safe_url(segment.url))
                        return etag
                    error = error_from_response(response, storage=True, now=self._clock())
                finally:
                    response.close()
            if (not isinstance(error, REQUEST_RETRYABLE) or not rewind.possible
                    or not self._policy.more_tries(attempt)):
                raise error
            self._pause_between(attempt, error, f"segment PUT {segment.number}")

    def complete_upload(
        self, target: UploadTarget, uuid: str, parts: Sequence[tuple[str, SegmentSpec]],
    ) -> Mapping[str, Any]:
        """PATCH the segmented Upload complete with each part's ETag, size and SHA-256, in
        order. A repeat after a lost answer may be refused (404/410/422): the Upload is then
        shown, and if it is complete that is success. Raises ``UploadExpired`` (404/410),
        ``ValidationFailed`` (422) and the other typed errors."""
        body = {"segments": [{"etag": etag, "size": spec.size, "sha256": spec.sha256}
                             for etag, spec in parts]}
        path = f"v1.1/{target.path()}/uploads/{uuid}"
        try:
            response = self._call("PATCH", path, json_body=body, idempotent=True)
        except (UploadExpired, ValidationFailed, NotFound, Conflict) as refused:
            # Maybe an earlier PATCH (a retry here, or an earlier attempt of the whole file)
            # went through and only its answer was lost: look before calling it a failure.
            try:
                shown = self.show_upload(target, uuid)
            except ProcoreError:
                raise self._as_expired(refused) from None
            if str(shown.get("status", "")).lower() == "complete":
                log.info("upload_already_complete", uuid=uuid)
                return shown
            raise self._as_expired(refused) from None
        return _mapping(_json_body(response), "upload", response)

    @staticmethod
    def _as_expired(error: ProcoreError) -> ProcoreError:
        if isinstance(error, NotFound):
            return UploadExpired(error.message, status=error.status, code=error.code,
                                 request_id=error.request_id, url=error.url)
        return error

    def show_upload(self, target: UploadTarget, uuid: str) -> Mapping[str, Any]:
        """GET the Upload. A 404 raises ``UploadExpired`` (gone, or never ours)."""
        path = f"v1.1/{target.path()}/uploads/{uuid}"
        try:
            response = self._call("GET", path, idempotent=True)
        except NotFound as exc:
            raise self._as_expired(exc) from None
        return _mapping(_json_body(response), "upload", response)

    # --- Documents and Photos -------------------------------------------------------------

    def _documents(self, project_id: int | None, tail: str) -> tuple[str, dict[str, Any]]:
        """Path and query of a Documents endpoint: the project's (``?project_id=``) or,
        without a project, the company's (``companies/{id}/...``, Procore's Company Folders
        and Files, which take company Uploads)."""
        if project_id is None:
            return f"v1.0/companies/{int(self._settings.company_id)}/{tail}", {}
        return f"v1.0/{tail}", {"project_id": project_id}

    def folder_listing(
        self, project_id: int | None, folder_id: int | None, *, files: bool = True,
        folders: bool = True,
    ) -> Mapping[str, Any]:
        """One Documents folder (the root when ``folder_id`` is None) with its children;
        the company's Documents when ``project_id`` is None.

        Shrunk as Procore's Show Folder allows: only the latest version of each file
        (``show_latest_file_version_only``), and without the child folders (``files``
        only: ``exclude_folders``) or the files (``folders`` only: ``exclude_files``).
        Procore documents no name filter for folder listings. Raises ``NotFound`` for a
        folder that is gone (or not visible to us).
        """
        tail = "folders" if folder_id is None else f"folders/{int(folder_id)}"
        path, params = self._documents(project_id, tail)
        params["show_latest_file_version_only"] = "true"
        if not folders:
            params["exclude_folders"] = "true"
        if not files:
            params["exclude_files"] = "true"
        response = self._call("GET", path, params=params, idempotent=True)
        return _mapping(_json_body(response), "folder", response)

    def create_folder(self, project_id: int | None, parent_id: int | None, name: str
                      ) -> Mapping[str, Any]:
        """Create Documents folder ``name`` in ``parent_id`` (the root when None).

        Repeated by the request scope even when the outcome is unknown: a repeat of a create
        that did run answers 422 "has already been taken" (``ValidationFailed``), which the
        caller resolves by listing the parent, so no second folder can come of it.
        """
        folder: dict[str, Any] = {"name": name}
        if parent_id is not None:
            folder["parent_id"] = parent_id
        path, params = self._documents(project_id, "folders")
        response = self._call("POST", path, params=params, json_body={"folder": folder},
                              idempotent=True)
        return self._created(response, "folder")

    def create_document(
        self, project_id: int | None, parent_id: int | None, name: str, upload_uuid: str,
        *, unique_name: bool = False,
    ) -> Mapping[str, Any]:
        """File the Upload in Documents (root folder when ``parent_id`` is None; the
        company's Documents when ``project_id`` is None).

        Not repeated when the outcome is unknown: a ``NetworkError``/``ServerError`` means
        "maybe created"; look before trying again.
        """
        file: dict[str, Any] = {"name": name, "upload_uuid": upload_uuid,
                                "unique_name": unique_name}
        if parent_id is not None:
            file["parent_id"] = parent_id
        path, params = self._documents(project_id, "files")
        response = self._call("POST", path, params=params, json_body={"file": file},
                              idempotent=False)
        return self._created(response, "file")

    def create_file_version(
        self, project_id: int | None, file_id: int, upload_uuid: str,
    ) -> Mapping[str, Any]:
        """Add the Upload as a new version of Documents file ``file_id`` (not repeated when
        the outcome is unknown)."""
        path, params = self._documents(project_id, "file_versions")
        response = self._call(
            "POST", path, params={**params, "file_id": file_id},
            json_body={"file_version": {"upload_uuid": upload_uuid}}, idempotent=False)
        return self._created(response, "file version")

    def create_image(
        self, project_id: int, upload_uuid: str, image_name: str, album_id: int | None,
    ) -> Mapping[str, Any]:
        """Add the Upload to Photos (album ``album_id``, else unsorted); not repeated when
        the outcome is unknown.

        Procore requires an ``image`` object with at least one attribute. With an album it
        is ``image_category_id``; without one it is ``description: ""``: the value a new
        photo has anyway, valid for the string field, and it changes nothing the user sees
        (unlike ``private``, whose project default we must not override, or a null album
        id, which a strict schema may reject as not an integer).
        """
        image: dict[str, Any] = ({"image_category_id": album_id} if album_id is not None
                                 else {"description": ""})
        response = self._call(
            "POST", "v1.0/images", params={"project_id": project_id},
            json_body={"upload_uuid": upload_uuid, "image_name": image_name, "image": image},
            idempotent=False)
        return self._created(response, "image")

    def images_since(
        self, project_id: int, album_id: int | None, since: float, until: float,
    ) -> Iterator[Mapping[str, Any]]:
        """Images of the project (of album ``album_id`` when given) created in
        ``[since, until]`` (Unix seconds), newest first as far as Procore honours the sort.

        List Images, filtered by album (``image_category_id``) and ``filters[created_at]``,
        sorted ``-created_at``, every page (``get_pages`` follows ``Link``). Lazy: the caller
        stops when it has seen enough. Items carry ``id``, ``filename``, ``size``,
        ``image_category_id``, ``created_at``; not the image name sent nor the upload uuid.
        """
        params: dict[str, Any] = {
            "project_id": project_id, "sort": "-created_at",
            "filters[created_at]": f"{utc_iso(since)}...{utc_iso(until)}",
        }
        if album_id is not None:
            params["image_category_id"] = album_id
        return self.get_pages("v1.0/images", params)

    def _created(self, response: requests.Response, what: str) -> Mapping[str, Any]:
        data = _mapping(_json_body(response), what, response)
        if "id" not in data:
            raise UnexpectedResponse(
                f"Procore created the {what} but its answer has no id",
                status=response.status_code, request_id=response.headers.get("x-request-id"),
                url=safe_url(response.url))
        return data

