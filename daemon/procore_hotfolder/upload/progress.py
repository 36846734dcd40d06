"""Progress of the uploads running now: bytes sent (for `status`), when each last moved (for
the service's watchdog), and an ``upload_progress`` log line every few seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: An upload in progress logs ``upload_progress`` this often.
PROGRESS_EVERY_SECONDS = 5.0


@dataclass
class Progress:
    """Bytes sent for the files being uploaded now (shared with `status`), and when each
    file's upload last moved (read or sent a block: the service's watchdog looks).
    ``log_every``: seconds between two ``upload_progress`` lines of one upload."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[str, dict[str, float]] = field(default_factory=dict)
    moved: dict[str, float] = field(default_factory=dict)  # path -> time.monotonic()
    log_every: float = PROGRESS_EVERY_SECONDS

    def update(self, path: Path, sent: int, total: int, started: float) -> None:
        with self.lock:
            self.files[str(path)] = {"sent": sent, "total": total, "started": started}
            self.moved[str(path)] = time.monotonic()

    def touch(self, path: Path) -> None:
        """The upload of ``path`` moved without sending (e.g. a hashing pass)."""
        with self.lock:
            self.moved[str(path)] = time.monotonic()

    def last_moved(self, path: Path) -> float | None:
        with self.lock:
            return self.moved.get(str(path))

    def done(self, path: Path) -> None:
        with self.lock:
            self.files.pop(str(path), None)
            self.moved.pop(str(path), None)

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {k: dict(v) for k, v in self.files.items()}


class ProgressLog:
    """Meters one upload of ``total`` bytes: feeds ``Progress`` on every block and logs
    ``upload_progress`` (with the Upload's ``uuid``) every ``Progress.log_every`` seconds.

    ``add`` may be called from several threads (parallel segments); ``set`` from one.
    """

    def __init__(self, path: Path, total: int, progress: Progress, clock: Callable[[], float],
                 uuid: str) -> None:
        self._path = path
        self._total = total
        self._progress = progress
        self._clock = clock
        self._uuid = uuid
        self._started = clock()
        self._last = self._started
        self._lock = threading.Lock()
        self._sent = 0

    def add(self, delta: int) -> None:
        """``delta`` more bytes were sent."""
        with self._lock:
            self._sent += delta
            self.set(self._sent)

    def set(self, sent: int) -> None:
        """``sent`` bytes were sent so far."""
        now = self._clock()
        self._progress.update(self._path, sent, self._total, self._started)
        if now - self._last >= self._progress.log_every:
            self._last = now
            elapsed = max(now - self._started, 1e-6)
            log.info("upload_progress", uuid=self._uuid, bytes=sent, total=self._total,
                     percent=round(100.0 * sent / max(self._total, 1), 1),
                     rate_mib_s=round(sent / elapsed / 1048576, 2))
