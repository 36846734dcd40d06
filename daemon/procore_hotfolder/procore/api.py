"""One Procore API request, and the lists and objects read with it.

``Api.call`` puts a request through every layer: the token (``auth``), the company header,
the rate governor, the authentication scope (a 401 renews the token once and sends once
more, not counted as a try) and the request scope (``RequestRetry``). Association POSTs pass
``idempotent=False``: repeated only when they surely did not run (connection refused, 429).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import structlog

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.errors import ProcoreError
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.procore.auth import TokenSource
from procore_hotfolder.procore.error_mapping import error_from_exception, error_from_response
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.http import (
    CONNECT_TIMEOUT,
    RequestRetry,
    ServerClock,
    read_json,
    read_object,
    unexpected,
)

log = structlog.get_logger(__name__)


class Api:
    """Requests below ``{api_url}/rest/`` (thread-safe)."""

    metrics: MetricsHooks = NULL_METRICS

    def __init__(
        self,
        settings: ProcoreSettings,
        session: requests.Session,
        *,
        auth: TokenSource,
        governor: RateGovernor,
        retry: RequestRetry,
        server_clock: ServerClock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._auth = auth
        self._governor = governor
        self._retry = retry
        self._server_clock = server_clock
        self._clock = clock
        self.reconfigure(settings)

    def reconfigure(self, settings: ProcoreSettings) -> None:
        """Use ``settings`` (API URL, company, timeout) from the next request on."""
        self._base = settings.api_url.rstrip("/")
        self._timeout = (CONNECT_TIMEOUT, settings.timeout_seconds)
        self._session.headers["Procore-Company-Id"] = str(settings.company_id)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool,
        expect: Sequence[int] = (200, 201),
    ) -> requests.Response:
        """One API request with auth, pacing and request-level retry; ``path`` is below
        ``/rest/``.

        ``idempotent`` False (association POSTs): repeated only when it surely did not run
        (connection refused, 429, 401). Raises the typed ``ProcoreError`` (its ``history``
        holding the earlier tries) or ``Stopping``.
        """
        url = f"{self._base}/rest/{path}"
        what = f"{method} {path}"
        renewed = False

        def attempt() -> requests.Response | ProcoreError:
            nonlocal renewed
            token, answer = self._send(method, url, params, json_body, expect)
            if isinstance(answer, ProcoreError) and answer.status == 401 and not renewed:
                # Authentication scope: renew once, send once more (the call did not run).
                renewed = True
                self._auth.invalidate(token)
                log.info("token_refused", call=what, request_id=answer.request_id)
                answer = self._send(method, url, params, json_body, expect)[1]
            return answer

        return self._retry.run(what, attempt, idempotent=idempotent)

    def _send(
        self, method: str, url: str, params: Mapping[str, Any] | None, body: Any,
        expect: Sequence[int],
    ) -> tuple[str, requests.Response | ProcoreError]:
        """Send once: (the token used, the answer or the error it maps to)."""
        token = self._auth.current()
        self._governor.acquire()
        try:
            response = self._session.request(
                method, url, params=params, json=body, timeout=self._timeout,
                headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            self._governor.observe(0, {})
            self.metrics.api_request(None)
            return token, error_from_exception(exc, url=url)
        except BaseException:
            self._governor.observe(0, {})  # the governor counts the calls in flight
            raise
        self._governor.observe(response.status_code, response.headers)
        self._server_clock.note(response)
        self.metrics.api_request(response.status_code)
        if response.status_code in expect:
            return token, response
        return token, error_from_response(response, now=self._clock())

    def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """GET one object below ``/rest/``; ``UnexpectedResponse`` when not a JSON object."""
        return read_object(self.call("GET", path, params=params, idempotent=True), "object")

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
            response = self.call("GET", path, params=query, idempotent=True)
            data = read_json(response)
            if isinstance(data, Mapping):
                data = next((v for v in data.values() if isinstance(v, list)), None)
            if not isinstance(data, list):
                raise unexpected(response, f"Procore answered HTTP {response.status_code} "
                                           "to a list request without a list")
            yield from (item for item in data if isinstance(item, Mapping))
            following = next_page(response, query)
            if following is None:
                return
            query = following


def next_page(response: requests.Response, query: Mapping[str, Any]) -> dict[str, Any] | None:
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
