"""The wire under the Procore client: requests sessions, safe URLs, JSON bodies, and the
one request-retry loop every Procore and storage request goes through.

``RequestRetry.run`` is the request scope (the first of the three retry scopes): it sends a
request again only when the error says so (``ProcoreError.retry_request``), the request may
be repeated (idempotent, or the error says it surely did not run: ``not_run``), its body can
be sent again, and the ``RetryPolicy`` has tries left. When it gives up, the last error is
raised carrying the ``history`` of the earlier tries. Authentication (renew once on 401) is
the API's business (``api``), the whole file's retries the uploader's.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from procore_hotfolder.errors import NetworkError, ProcoreError, Stopping, UnexpectedResponse
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.retry import RetryPolicy

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 10.0
#: Socket block size for request bodies (urllib3 sends 16 KiB blocks by default).
SEND_BLOCK_SIZE = 1024 * 1024
#: Longest description of one failed try kept in an error's ``history``.
MAX_HISTORY_ENTRY = 160

T = TypeVar("T")


def _version() -> str:
    try:
        return metadata.version("procore-hotfolder")
    except metadata.PackageNotFoundError:
        return "0"


DEFAULT_USER_AGENT = f"procore-hotfolder/{_version()}"


def safe_url(url: str | None) -> str | None:
    """``url`` without its query string and fragment (presigned URLs carry signatures)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# --- sessions --------------------------------------------------------------------------------


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


def new_session(user_agent: str, pool: int, *, storage: bool) -> requests.Session:
    """A session for the API and token endpoint, or (``storage``) for the storage service:
    then exactly the ticket's headers plus User-Agent go out, never credentials."""
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


# --- answers ---------------------------------------------------------------------------------


def unexpected(response: requests.Response, message: str) -> UnexpectedResponse:
    """An ``UnexpectedResponse`` for a success answer lacking what it promises."""
    return UnexpectedResponse(
        message, status=response.status_code, request_id=response.headers.get("x-request-id"),
        url=safe_url(response.url))


def read_json(response: requests.Response) -> Any:
    """The answer's JSON (None when empty); ``UnexpectedResponse`` when it is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise unexpected(
            response, f"Procore answered HTTP {response.status_code} with a body that is not JSON",
        ) from exc


def read_object(response: requests.Response, what: str) -> Mapping[str, Any]:
    """The answer's JSON object; ``UnexpectedResponse`` naming ``what`` when it is not one."""
    data = read_json(response)
    if not isinstance(data, Mapping):
        raise unexpected(
            response, f"Procore answered HTTP {response.status_code} without the expected {what}")
    return data


class ServerClock:
    """Procore's clock as last seen: the ``Date`` header of the latest answer from Procore's
    API or token endpoint, and our monotonic time when that answer arrived."""

    def __init__(self) -> None:
        self._seen: tuple[float, float] | None = None

    def note(self, response: requests.Response) -> None:
        """Remember the answer's ``Date`` (ignored when missing or unreadable)."""
        raw = response.headers.get("Date")
        if not raw:
            return
        try:
            seen = email.utils.parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        self._seen = (seen, time.monotonic())

    @property
    def known(self) -> bool:
        """True once an answer with a ``Date`` was seen."""
        return self._seen is not None

    def floor(self) -> float | None:
        """``Date`` plus the time elapsed here since: never ahead of Procore's clock (the
        header is truncated to the second and stamped before the answer arrived)."""
        if self._seen is None:
            return None
        seen, at = self._seen
        return seen + max(0.0, time.monotonic() - at)


# --- the request scope -----------------------------------------------------------------------


def _describe_try(attempt: int, error: ProcoreError) -> str:
    """One line of an error's ``history``: the try's number, reason and safe message."""
    text = f"{attempt}: {error.reason}: {error.message}"
    return text if len(text) <= MAX_HISTORY_ENTRY else text[: MAX_HISTORY_ENTRY - 1] + "…"


class RequestRetry:
    """The request scope, shared by every request of one client (thread-safe: no state).

    ``sleep(seconds)`` returns False when the daemon is stopping; ``rand()`` gives the
    jitter; ``clock()`` is Unix seconds (for the governor's network pause).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        governor: RateGovernor,
        *,
        sleep: Callable[[float], bool],
        rand: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self._policy = policy
        self._governor = governor
        self._sleep = sleep
        self._rand = rand
        self._clock = clock

    def run(
        self,
        what: str,
        attempt: Callable[[], T | ProcoreError],
        *,
        idempotent: bool = True,
        replayable: bool = True,
        before_repeat: Callable[[], None] | None = None,
    ) -> T:
        """``attempt()`` until it returns a result, not an error; ``what`` names the call
        in the ``request_retry`` log events.

        ``attempt`` returns the error that the retry decision is about (what it raises goes
        up untouched). The decision asks the error, and the request: ``idempotent`` False
        (an association POST) repeats only an error that surely did not run; ``replayable``
        False (a body that cannot seek back) repeats nothing. ``before_repeat`` runs after
        the pause, before the next try (rewinds the body). Raises the last error, its
        ``history`` holding the earlier tries, or ``Stopping`` when stopped in a pause.
        """
        history: list[str] = []
        tries = 0
        while True:
            tries += 1
            result = attempt()
            if not isinstance(result, ProcoreError):
                return result
            error = result
            if (not error.retry_request or not (idempotent or error.not_run)
                    or not replayable
                    or not self._policy.more_tries(tries)):
                error.history = tuple(history)
                raise error
            history.append(_describe_try(tries, error))
            self._pause(tries, error, what)
            if before_repeat is not None:
                before_repeat()

    def _pause(self, attempt: int, error: ProcoreError, what: str) -> None:
        delay = self._policy.delay(attempt, retry_after=error.retry_after, rand=self._rand())
        if isinstance(error, NetworkError):
            # The network is likely down for every worker: hold them all briefly.
            self._governor.pause(self._clock() + delay, "network")
        log.info("request_retry", call=what, attempt=attempt, delay=round(delay, 3),
                 **error.as_dict())
        if not self._sleep(delay):
            raise Stopping("stopping: request not retried")
