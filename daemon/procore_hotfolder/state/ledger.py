"""The upload ledger: ``state_dir/uploads.jsonl``, one durable JSON line per uploaded file.

Every line is UTF-8: names that are not keep their odd bytes as ``\\xNN``
(``model.display_path``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from procore_hotfolder.model import display_values

LEDGER_NAME = "uploads.jsonl"


class Ledger:
    """Appends lines with ``O_APPEND`` and fsyncs each before returning (thread-safe)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LEDGER_NAME
        self._lock = threading.Lock()

    def append(self, entry: Mapping[str, object]) -> None:
        """Write ``entry`` as one line and make it durable. Raises ``OSError``."""
        line = json.dumps(display_values(entry), ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                self._repair_torn_tail(fd)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)

    def _repair_torn_tail(self, fd: int) -> None:
        """After a crash mid-write the file may end without a newline: end that line first."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                os.write(fd, b"\n")

    def line_for(self, uuid: str) -> dict[str, Any] | None:
        """The line of Upload ``uuid``, when the ledger has one already (crash recovery: a
        whole read of the file), else None. A torn line is no line."""
        needle = json.dumps(uuid).encode()
        try:
            with open(self.path, "rb") as f:
                for raw in f:
                    if needle in raw:
                        try:
                            entry = json.loads(raw)
                        except ValueError:
                            continue
                        if isinstance(entry, dict) and entry.get("uuid") == uuid:
                            return entry
        except FileNotFoundError:
            return None
        return None
