"""OAuth client credentials: the service account's access token, renewed ahead of expiry,
one renewal at a time for every worker, forgotten when the API refuses it.

The token request goes through the request scope (``RequestRetry``: network errors, 429,
5xx); refused credentials (400/401/403) are an ``AuthenticationError`` at once. Neither the
client secret nor a token appears in an error message or a log event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests
import structlog

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.errors import AuthenticationError, ProcoreError, UnexpectedResponse
from procore_hotfolder.procore.error_mapping import error_from_exception, error_from_response
from procore_hotfolder.procore.http import (
    CONNECT_TIMEOUT,
    RequestRetry,
    ServerClock,
    safe_url,
)

log = structlog.get_logger(__name__)

#: Settings whose change makes the current token worthless (another account, server or
#: company): a reload with any of them changed drops it.
_IDENTITY = ("client_id", "client_secret", "login_url", "api_url", "company_id")


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float


class TokenSource:
    """The current access token (thread-safe). ``clock`` is Unix seconds; answers of the
    token endpoint tell ``server_clock`` Procore's time."""

    def __init__(
        self,
        settings: ProcoreSettings,
        session: requests.Session,
        retry: RequestRetry,
        server_clock: ServerClock,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._session = session
        self._retry = retry
        self._server_clock = server_clock
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._use(settings)

    def _use(self, settings: ProcoreSettings) -> None:
        self._settings = settings
        self._url = settings.login_url.rstrip("/") + "/oauth/token"
        self._timeout = (CONNECT_TIMEOUT, settings.timeout_seconds)

    def reconfigure(self, settings: ProcoreSettings) -> None:
        """Use ``settings`` for the next token; new credentials or another login server,
        company or API drop the current token, so a rotated secret is used at once."""
        old = self._settings
        self._use(settings)
        if any(getattr(old, k) != getattr(settings, k) for k in _IDENTITY):
            with self._lock:
                self._token = None

    def current(self) -> str:
        """The token, obtained or renewed first when missing or close to expiry.

        Raises ``AuthenticationError`` (credentials refused), ``NetworkError`` and the other
        request-scope errors after their tries, ``UnexpectedResponse``, ``Stopping``.
        """
        token = self._token
        if token is not None and self._clock() < token.renew_at:
            return token.value
        with self._lock:  # one renewal at a time for every worker
            token = self._token
            if token is not None and self._clock() < token.renew_at:
                return token.value
            token = self._fetch()
            self._token = token
            return token.value

    def invalidate(self, value: str) -> None:
        """Forget the token ``value`` (refused by the API) unless already replaced."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def ensure_server_clock(self) -> None:
        """Obtain a token now when no answer has told Procore's clock yet (the token
        endpoint's answer carries a ``Date`` too). Raises like ``current``."""
        if self._server_clock.known:
            return
        with self._lock:
            if not self._server_clock.known:
                self._token = self._fetch()

    def _fetch(self) -> _Token:
        data = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
        }
        url = self._url

        def attempt() -> tuple[requests.Response, float] | ProcoreError:
            started = self._clock()
            try:
                response = self._session.post(url, data=data, timeout=self._timeout)
            except requests.RequestException as exc:
                return error_from_exception(exc, url=url)
            self._server_clock.note(response)
            if response.status_code == 200:
                return response, started
            return self._refused(response)

        try:
            response, started = self._retry.run("token", attempt)
        except ProcoreError as error:
            log.warning("token_failed", **error.as_dict(), attempt=len(error.history) + 1)
            raise
        return self._parse(response, started)

    def _refused(self, response: requests.Response) -> ProcoreError:
        error = error_from_response(response, now=self._clock())
        error.message = self._redact(error.message)
        error.args = (error.message,)
        if response.status_code in (400, 401, 403):
            return AuthenticationError(
                "the token endpoint refused the client credentials "
                f"(check client_id and the client secret): {error.message}",
                status=error.status, code=error.code, request_id=error.request_id,
                url=safe_url(self._url))
        return error

    def _parse(self, response: requests.Response, started: float) -> _Token:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, Mapping):
            data = {}
        value = data.get("access_token")
        if not isinstance(value, str) or not value:
            raise UnexpectedResponse("the token endpoint answered without an access_token",
                                     status=response.status_code,
                                     request_id=response.headers.get("x-request-id"))
        try:
            lifetime = float(data.get("expires_in", 5400))
        except (TypeError, ValueError):
            lifetime = 5400.0
        lifetime = max(lifetime, 0.0)
        # Renew ahead of expiry: with less than min(60 s, 20 % of the lifetime) left.
        margin = min(60.0, 0.2 * lifetime)
        log.info("token_renewed", expires_in=lifetime)
        return _Token(value=value, renew_at=started + lifetime - margin)

    def _redact(self, text: str) -> str:
        secrets = [self._settings.client_secret]
        token = self._token
        if token is not None:
            secrets.append(token.value)
        for secret in secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text
