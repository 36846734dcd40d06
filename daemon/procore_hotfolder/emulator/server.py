"""The emulator as tests and the command line run it: ``Emulator`` serves in a background
thread (tests, ``demo``) and is the handle to inspect, fault and set it up; ``serve()`` runs
it until a signal arrives (``procore-hotfolder emulator``). The HTTP side is in ``httpd``.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from . import inspection, views
from .api.documents import add_folder
from .faults import Faults
from .httpd import EmulatorHTTPServer
from .records import RequestRecord, UploadRecord
from .s3 import S3Storage
from .state import EmulatorState

log = logging.getLogger("procore_hotfolder.emulator")


class Emulator:
    """A local Procore on ``host:port``; see the package docstring for the full contract."""

    def __init__(
        self,
        client_id: str = "emulator-client",
        client_secret: str = "emulator-secret",  # noqa: S107 - the emulator's demo secret
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        *,
        s3: S3Storage | None = None,
        api_latency_seconds: float = 0.0,
    ) -> None:
        """``api_latency_seconds`` delays every API answer (not token or storage requests),
        for benchmarks of a simulated round trip; it is ``faults.delay_seconds``."""
        self.host = host
        self.port = port
        self.faults = Faults()
        if api_latency_seconds < 0:
            raise ValueError("api_latency_seconds must be >= 0")
        self.faults.delay_seconds = float(api_latency_seconds)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="procore-emulator-")
            directory = Path(self._tempdir.name)
        else:
            directory = Path(data_dir)
            directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = directory
        self.state = EmulatorState(self.faults, client_id, client_secret, directory, s3)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        if self._stopped:
            raise RuntimeError("a stopped Emulator cannot be restarted")
        server = EmulatorHTTPServer((self.host, self.port), self.state)
        self._server = server
        self.port = int(server.server_address[1])
        self.state.base_url = self.url
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="procore-emulator",
            daemon=True,
        )
        self._thread.start()
        log.info("procore emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, join threads, remove an own data dir."""
        if self._stopped:
            return
        self._stopped = True
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_all(timeout=5.0)
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r})"

    @property
    def url(self) -> str:
        """``http://host:port``: both the login and the API base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- inspection ------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        return self.state.lock

    @property
    def uploads(self) -> dict[str, UploadRecord]:
        """uuid -> UploadRecord (live; hold ``lock`` while reading)."""
        return self.state.uploads

    def stored_uploads(self) -> list[UploadRecord]:
        """Uploads whose bytes were stored completely."""
        with self.lock:
            return [r for r in self.state.uploads.values() if r.status == "complete"]

    def stored_path(self, uuid: str) -> Path:
        """The file holding an Upload's stored bytes (segments assembled)."""
        return self.state.stored_path(uuid)

    def associations(self, uuid: str) -> int:
        """How many Documents file versions and images use this Upload."""
        return self.state.associations(uuid)

    @property
    def documents(self) -> list[dict[str, Any]]:
        return inspection.documents(self.state)

    @property
    def images(self) -> list[dict[str, Any]]:
        return inspection.image_list(self.state)

    @property
    def folders(self) -> list[dict[str, Any]]:
        return inspection.folder_list(self.state)

    def open_connections(self) -> int:
        """Client connections the emulator is still handling (a request may be in flight)."""
        server = self._server
        return 0 if server is None else server.open_connections()

    @property
    def request_log(self) -> list[RequestRecord]:
        with self.lock:
            return list(self.state.request_log)

    def count(self, status: int | None = None, kind: str | None = None) -> int:
        """Requests answered with ``status`` (0 = dropped) of ``kind`` (token/api/storage)."""
        return self.state.count(status, kind)

    def summary(self) -> dict[str, Any]:
        """What ``GET /_emulator/state`` returns."""
        return inspection.summary(self.state)

    @property
    def rate_limited(self) -> dict[str, int]:
        """429s the rate windows gave so far, by window ("hourly", "spike"); injected 429s
        (``fail_next(status=429)``) are not in it but are in ``count(status=429)``."""
        with self.lock:
            return dict(self.state.rates.refused)

    def purge_unfiled_uploads(self) -> list[str]:
        """Delete now every Upload left unfiled past ``faults.upload_retention``; their uuids.
        (The API also deletes such an Upload lazily, whenever a request names it.)"""
        return self.state.purge_unfiled(time.time())

    @property
    def purged_uploads(self) -> dict[str, float]:
        """uuid -> Unix time at which retention deleted the Upload."""
        with self.lock:
            return dict(self.state.purged_uploads)

    # --- refusals --------------------------------------------------------------------------

    def refuse_project(self, project_id: int, reason: str = "not_granted",
                       tool: str | None = None) -> None:
        """From now on the project answers 403: ``reason`` "not_granted" (the service
        account has not been granted it; it also drops out of List Projects) or
        "tool_disabled" with ``tool`` "documents" or "photos". See ``Faults.refuse_project``.
        """
        self.faults.refuse_project(project_id, reason, tool)

    def allow_project(self, project_id: int, tool: str | None = None) -> None:
        """Lift the project's refusals (just ``tool``'s when given)."""
        self.faults.allow_project(project_id, tool)

    def disconnect_app(self) -> None:
        """The app is no longer connected to the company: every company and project call
        answers 403 "App is not connected to this company" until ``connect_app``."""
        self.faults.app_disconnected = True

    def connect_app(self) -> None:
        self.faults.app_disconnected = False

    # --- setting up a company --------------------------------------------------------------

    @property
    def auto_create(self) -> bool:
        """True (the default): any project or album id a client names exists, made up on
        first use. False: only those created below exist; others answer 404 (422 for an
        album named in Create Image)."""
        return self.state.auto_create

    @auto_create.setter
    def auto_create(self, value: bool) -> None:
        self.state.auto_create = bool(value)

    def create_project(self, company_id: int, name: str, project_number: str | None = None,
                       *, active: bool = True, project_id: int | None = None) -> int:
        """Create a project (a fresh id above 2**32 unless ``project_id``); returns its id."""
        return self.state.add_project(company_id, name, project_number, active=active,
                                      project_id=project_id).id

    def remove_project(self, company_id: int, project_id: int) -> None:
        """Delete a project: it answers 404 from now on, even while ``auto_create`` holds."""
        self.state.remove_project(company_id, project_id)

    def create_album(self, company_id: int, project_id: int, name: str, *,
                     private: bool = False) -> int:
        """Create a Photos album (image category); returns its id."""
        return self.state.add_album(company_id, project_id, name, private).id

    def create_folder(self, company_id: int, project_id: int, name: str,
                      parent_id: int | None = None) -> int:
        """Create a Documents folder (under the root when ``parent_id`` is None; ``project_id``
        0, ``api.documents.COMPANY_SCOPE``, for company Documents); returns its id. Raises
        ``ApiError`` (422) when the name is taken under that parent."""
        return add_folder(self.state, company_id, project_id, name, parent_id=parent_id,
                          now=time.time()).id

    def recycle_document(self, file_id: int) -> None:
        """Move a Documents file to the recycle bin (as Delete Project File does): it stays
        listed with ``is_deleted`` true and its name is free for a new file."""
        self.state.recycle_file(file_id)

    def delete_folder(self, folder_id: int) -> None:
        """Delete a Documents folder and its subfolders: a cached id answers 404 from now
        on; their files go to the recycle bin."""
        self.state.delete_folder(folder_id)

    @property
    def projects(self) -> list[dict[str, Any]]:
        """Every project as Show Project shows it."""
        with self.lock:
            return [views.project_view(p) for p in self.state.projects.values()]


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    client_id: str = "emulator-client",
    client_secret: str = "emulator-secret",  # noqa: S107 - the emulator's demo secret
    *,
    ready: Callable[[Emulator], object] | None = None,
    data_dir: str | Path | None = None,
    s3: S3Storage | None = None,
    api_latency_seconds: float = 0.0,
) -> None:
    """Serve the emulator until SIGINT/SIGTERM (or KeyboardInterrupt); ``ready(emulator)`` is
    called once it accepts connections. Raises OSError when the address cannot be bound."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    with Emulator(client_id, client_secret, host, port, data_dir, s3=s3,
                  api_latency_seconds=api_latency_seconds) as emulator:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        try:
            if ready is not None:
                ready(emulator)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            log.info("procore emulator stopping")
