"""Streaming a request body to a temporary file while hashing it (SHA-256, maybe MD5)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from ..multipart import CHUNK_SIZE, BodyTruncatedError, ByteStream

THREADED_SINK_BYTES = 4 << 20


class Sink:
    """A temporary file in ``directory`` that hashes what is written, up to ``limit`` bytes.

    The caller's thread computes the SHA-256 while a helper thread writes the file (and
    computes the MD5 when ``md5`` is set); hashlib and file writes release the GIL, so the
    two overlap. Chunks must stay unchanged once written (the parsers hand out views of fresh
    buffers).
    """

    def __init__(
        self, directory: Path, expected: int, limit: int | None = None, md5: bool = False
    ) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="incoming-")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if md5 else None
        self._queue: queue.Queue[memoryview | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._writer: threading.Thread | None = None
        if expected > THREADED_SINK_BYTES:  # a thread per small body costs more than it saves
            self._writer = threading.Thread(
                target=self._write_loop, name="procore-emulator-sink", daemon=True
            )
            self._writer.start()
        self._open = True

    def _write_loop(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:  # after an error, keep draining so the producer never blocks
                self._store(chunk)

    def _store(self, chunk: memoryview) -> None:
        try:
            if self.md5 is not None:
                self.md5.update(chunk)
            view = chunk
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
        except OSError as exc:
            self._error = exc

    def write(self, chunk: memoryview) -> None:
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            return  # too large already: keep counting, stop storing
        self.sha256.update(chunk)
        if self._writer is None:
            self._store(chunk)
        else:
            self._queue.put(chunk)

    def _finish(self) -> None:
        if self._open:
            self._open = False
            if self._writer is not None:
                self._queue.put(None)
                self._writer.join()
            self._file.close()

    def keep(self, target: Path) -> None:
        """Finish writing and move the file to ``target``; raises OSError on write errors."""
        self._finish()
        if self._error is not None:
            self.discard()
            raise self._error
        os.replace(self.path, target)

    def discard(self) -> None:
        self._finish()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def md5_digest(self) -> bytes:
        self._finish()
        if self.md5 is None:
            raise RuntimeError("this sink does not compute an MD5")
        return self.md5.digest()


def copy_body(stream: ByteStream, length: int, write: Callable[[memoryview], None]) -> None:
    """Hand exactly ``length`` bytes of ``stream`` to ``write``, chunk by chunk; raises
    BodyTruncatedError when the body ends early."""
    remaining = length
    while remaining > 0:
        data = stream.read(min(CHUNK_SIZE, remaining))
        if not data:
            raise BodyTruncatedError("request body ended before its Content-Length")
        remaining -= len(data)
        write(memoryview(data))
