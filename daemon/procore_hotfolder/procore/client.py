"""``ProcoreClient``: the one object the rest of the daemon talks to Procore through.

A facade over the package's layers, one per concern:

- ``http``: sessions, safe URLs, and ``RequestRetry``, the request scope every request
  goes through (retryable errors on idempotent or harmless calls, with the server's delay);
- ``error_mapping``: every HTTP answer or socket error as one typed ``ProcoreError``;
- ``auth``: the OAuth token; ``api``: one API request (token, company header, rate
  governor, renew once on 401) and paginated lists; ``governor``: the pacing;
- ``uploads`` (the Upload protocol, v1.1) with ``storage`` (the bytes' POST/PUT);
- ``filing``: Documents and Photos.

Nothing secret leaves the package: no token, client secret, policy, signature, credential
or storage-URL query string appears in an exception message or a log event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from procore_hotfolder.config import ProcoreSettings
from procore_hotfolder.metrics import MetricsHooks
from procore_hotfolder.procore.api import Api
from procore_hotfolder.procore.auth import TokenSource
from procore_hotfolder.procore.filing import FilingRequests
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.http import (
    DEFAULT_USER_AGENT,
    RequestRetry,
    ServerClock,
    new_session,
)
from procore_hotfolder.procore.retry import RetryPolicy
from procore_hotfolder.procore.storage import Storage
from procore_hotfolder.procore.tickets import (
    Body,
    SegmentSpec,
    SegmentTicket,
    UploadTarget,
    UploadTicket,
)
from procore_hotfolder.procore.uploads import UploadProtocol, UploadsV11


class ProcoreClient:
    """Thread-safe Procore client shared by every worker; see the module docstring.

    ``sleep(seconds)`` waits between tries of a request and returns False when the daemon
    is stopping (default: the governor's ``sleep``); ``clock`` is Unix seconds; ``rand``
    gives the retries' jitter.
    """

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
        retry = RequestRetry(policy, governor, sleep=sleep if sleep is not None else governor.sleep,
                             rand=rand, clock=clock)
        self._server_clock = ServerClock()
        self._sessions = (
            api_session := new_session(user_agent, pool_size, storage=False),
            token_session := new_session(user_agent, 2, storage=False),
            storage_session := new_session(user_agent, pool_size, storage=True),
        )
        self._auth = TokenSource(settings, token_session, retry, self._server_clock,
                                 clock=clock)
        self._api = Api(settings, api_session, auth=self._auth, governor=governor, retry=retry,
                        server_clock=self._server_clock, clock=clock)
        self._storage = Storage(settings, storage_session, retry, clock=clock)
        self._uploads: UploadProtocol = UploadsV11(self._api, self._storage, clock)
        self._filing = FilingRequests(settings, self._api)

    @property
    def metrics(self) -> MetricsHooks:
        """The metrics hooks API requests report to (``attach_metrics`` sets them)."""
        return self._api.metrics

    @metrics.setter
    def metrics(self, hooks: MetricsHooks) -> None:
        self._api.metrics = hooks

    def reconfigure(self, settings: ProcoreSettings) -> None:
        """Use ``settings`` from the next request on (a reload). New credentials or another
        login server, company or API drop the current token, so a rotated secret is used at
        once; requests in flight finish with what they started with."""
        if settings == self._settings:
            return
        self._settings = settings
        for layer in (self._api, self._storage, self._filing, self._auth):
            layer.reconfigure(settings)

    def close(self) -> None:
        """Close the connection pools."""
        for session in self._sessions:
            session.close()

    # --- authentication and Procore's clock -----------------------------------------------

    def ensure_token(self) -> None:
        """Obtain a token now, or renew it if it is close to expiry.

        Raises ``AuthenticationError`` (credentials refused), ``NetworkError`` and other
        retryable errors when the token endpoint cannot be reached, ``Stopping``.
        """
        self._auth.current()

    def procore_time_floor(self) -> float | None:
        """A time (Unix seconds, Procore's clock) that has certainly passed on Procore's side.

        From the ``Date`` header of the latest answer from Procore's API or token endpoint:
        the header is truncated to the second and was stamped before the answer arrived, so
        ``Date + time elapsed here since`` never runs ahead of Procore's clock. A record that
        Procore creates after this call returns therefore carries a ``created_at`` at or after
        the value. With no answer seen yet a token is obtained first (no API call); None when
        even that gave no ``Date``.
        """
        self._auth.ensure_server_clock()
        return self._server_clock.floor()

    # --- reading --------------------------------------------------------------------------

    def get_pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, per_page: int = 100,
        max_pages: int = 1000,
    ) -> Iterator[Mapping[str, Any]]:
        """The items of a paginated Procore list below ``/rest/``, lazily (``Api.get_pages``:
        follows the ``Link`` header)."""
        return self._api.get_pages(path, params, per_page=per_page, max_pages=max_pages)

    def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """GET one object below ``/rest/`` (Show Project, Show Folder, ...). Raises the typed
        ``ProcoreError``; ``UnexpectedResponse`` when the answer is not a JSON object."""
        return self._api.get_object(path, params)

    # --- uploads (``UploadsV11`` has the contracts) ---------------------------------------

    def create_upload(
        self,
        target: UploadTarget,
        filename: str,
        size: int,
        *,
        content_type: str | None = None,
        segments: Sequence[SegmentSpec] | None = None,
    ) -> UploadTicket:
        """Create an Upload (segmented when ``segments`` is given)."""
        return self._uploads.create(target, filename, size, content_type=content_type,
                                    segments=segments)

    def store_file(
        self, ticket: UploadTicket, body: Body, *, filename: str, content_type: str | None,
    ) -> None:
        """POST the file to storage as multipart/form-data (``Storage.post_form``)."""
        self._uploads.send_file(ticket, body, filename=filename, content_type=content_type)

    def store_segment(self, segment: SegmentTicket, body: Body | bytes) -> str:
        """PUT one segment's bytes; returns the ETag (``Storage.put_segment``)."""
        return self._uploads.send_segment(segment, body)

    def complete_upload(
        self, target: UploadTarget, uuid: str, parts: Sequence[tuple[str, SegmentSpec]],
    ) -> Mapping[str, Any]:
        """Complete the segmented Upload with each part's ETag, size and SHA-256, in order;
        a refused repeat of a completion that went through is success."""
        return self._uploads.complete(target, uuid, parts)

    def show_upload(self, target: UploadTarget, uuid: str) -> Mapping[str, Any]:
        """GET the Upload. A 404 raises ``UploadExpired`` (gone, or never ours)."""
        return self._uploads.show(target, uuid)

    def upload_is_stored(self, target: UploadTarget, uuid: str) -> bool:
        """Whether the Upload's bytes are stored (``UploadsV11.is_stored``)."""
        return self._uploads.is_stored(target, uuid)

    # --- Documents and Photos (``FilingRequests`` has the contracts) ----------------------

    def folder_listing(
        self, project_id: int | None, folder_id: int | None, *, files: bool = True,
        folders: bool = True,
    ) -> Mapping[str, Any]:
        """One Documents folder (the root when ``folder_id`` is None) with its children."""
        return self._filing.folder_listing(project_id, folder_id, files=files, folders=folders)

    def create_folder(self, project_id: int | None, parent_id: int | None, name: str
                      ) -> Mapping[str, Any]:
        """Create Documents folder ``name`` in ``parent_id`` (the root when None)."""
        return self._filing.create_folder(project_id, parent_id, name)

    def create_document(
        self, project_id: int | None, parent_id: int | None, name: str, upload_uuid: str,
        *, unique_name: bool = False, description: str | None = None,
    ) -> Mapping[str, Any]:
        """File the Upload in Documents (not repeated when the outcome is unknown)."""
        return self._filing.create_document(project_id, parent_id, name, upload_uuid,
                                            unique_name=unique_name, description=description)

    def create_file_version(
        self, project_id: int | None, file_id: int, upload_uuid: str,
    ) -> Mapping[str, Any]:
        """Add the Upload as a new version of Documents file ``file_id``."""
        return self._filing.create_file_version(project_id, file_id, upload_uuid)

    def create_image(
        self, project_id: int, upload_uuid: str, image_name: str, album_id: int | None,
        *, description: str | None = None,
    ) -> Mapping[str, Any]:
        """Add the Upload to Photos (album ``album_id``, else unsorted)."""
        return self._filing.create_image(project_id, upload_uuid, image_name, album_id,
                                         description=description)

    def create_album(self, project_id: int, name: str) -> Mapping[str, Any]:
        """Create Photos album (image category) ``name`` in the project (not repeated when
        the outcome is unknown: look first)."""
        return self._filing.create_album(project_id, name)

    def images_since(
        self, project_id: int, album_id: int | None, since: float, until: float,
    ) -> Iterator[Mapping[str, Any]]:
        """Images of the project (of album ``album_id``) created in ``[since, until]``."""
        return self._filing.images_since(project_id, album_id, since, until)
