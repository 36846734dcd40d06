"""PURE domain model: what one look at a file saw (its version), a file's states, the moves
allowed between them, backoff arithmetic, and the one way each of time, an odd file name and
a skipped name is written down.

No clocks, files or sockets here: callers pass ``now`` and random numbers in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from procore_hotfolder.errors import JournalError


@dataclass(frozen=True, slots=True)
class Observation:
    """What one ``lstat()`` of a candidate file saw."""

    size: int
    mtime_ns: int
    ino: int
    dev: int
    ctime_ns: int = 0

    @property
    def version(self) -> tuple[int, int, int, int]:
        """A file's identity, "this version of this file": size, mtime, inode, device."""
        return (self.size, self.mtime_ns, self.ino, self.dev)

    def same_version(self, other: Observation) -> bool:
        """True when ``other`` shows the same version of the same file (``version``).
        ``ctime_ns`` is left aside: a chmod changes it, not the bytes."""
        return self.version == other.version

    def unchanged_since(self, other: Observation) -> bool:
        """``same_version``, and not even touched: for settling, a change of ``ctime_ns``
        restarts the quiet period too. It is compared only when both sides know it (0 means
        "not recorded"), so an observation rebuilt from the journal still matches a fresh
        ``lstat()``."""
        return self.same_version(other) and not (
            self.ctime_ns and other.ctime_ns and self.ctime_ns != other.ctime_ns)


class FileState(StrEnum):
    """Where one settled file stands. Each step with an effect outside the process is a state."""

    QUEUED = "queued"            # settled and fingerprinted; waiting for a worker (or a retry time)
    UPLOADING = "uploading"      # a worker owns it; an Upload may exist (ticket kept for reuse)
    STORED = "stored"            # the bytes are confirmed stored under the Upload
    ASSOCIATING = "associating"  # a Documents/Photos create was sent: outcome may be unknown
    ASSOCIATED = "associated"    # filed in Procore (resource id known)
    LEDGERED = "ledgered"        # ledger line durable, written before the move (older releases)
    ARCHIVED = "archived"        # done: original moved to the archive (or gone), ledger line
    FAILED = "failed"            # done: moved to failed_dir (or kept in place) with a reason
    CHANGED = "changed"          # done for this version: the file changed; it settles again
    VANISHED = "vanished"        # done: the file disappeared before it was uploaded
    RETRIED = "retried"          # done: a failure the operator put back (see `retry`)


TERMINAL = frozenset({FileState.ARCHIVED, FileState.FAILED, FileState.CHANGED,
                      FileState.VANISHED, FileState.RETRIED})
ACTIVE = frozenset(set(FileState) - TERMINAL)
#: Active states a worker is busy with, for `status`.
IN_FLIGHT = frozenset({FileState.UPLOADING, FileState.STORED, FileState.ASSOCIATING,
                       FileState.ASSOCIATED, FileState.LEDGERED})

_ABANDON = {FileState.FAILED, FileState.CHANGED, FileState.VANISHED}

ALLOWED_MOVES: dict[FileState, frozenset[FileState]] = {
    FileState.QUEUED: frozenset({FileState.UPLOADING, *_ABANDON}),
    FileState.UPLOADING: frozenset({FileState.QUEUED, FileState.UPLOADING, FileState.STORED,
                                    *_ABANDON}),
    # STORED (nothing to file) and ASSOCIATED -> ARCHIVED: moved, then the ledger line.
    FileState.STORED: frozenset({FileState.ASSOCIATING, FileState.ARCHIVED, *_ABANDON}),
    # Never ASSOCIATING -> FAILED: a filing whose outcome is unknown is looked up first (back
    # to STORED when Procore does not have it), so a filed file is never failed.
    FileState.ASSOCIATING: frozenset({FileState.ASSOCIATED, FileState.STORED}),
    FileState.ASSOCIATED: frozenset({FileState.ARCHIVED, FileState.CHANGED}),
    # Only rows of older releases are LEDGERED (they wrote the ledger line before the move).
    FileState.LEDGERED: frozenset({FileState.ARCHIVED, FileState.CHANGED}),
    FileState.ARCHIVED: frozenset(),
    FileState.FAILED: frozenset({FileState.RETRIED}),
    FileState.CHANGED: frozenset(),
    FileState.VANISHED: frozenset(),
    FileState.RETRIED: frozenset(),
}


def check_move(current: FileState, target: FileState) -> None:
    """Raise ``JournalError`` unless ``current -> target`` is an allowed move."""
    if target not in ALLOWED_MOVES[current]:
        raise JournalError(f"illegal state move {current} -> {target}")


@dataclass(frozen=True)
class Backoff:
    """Whole-file retry delays: exponential with jitter, capped. An immutable value."""

    base: float = 5.0
    cap: float = 600.0
    jitter: float = 0.2

    def delay(self, attempt: int, *, retry_after: float | None = None, rand: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``; ``rand`` in [0, 1). The arguments
        are ``RetryPolicy.delay``'s, in its order and keyword-only: two floats side by side
        are too easy to swap."""
        raw = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        spread = raw * self.jitter * (2 * rand - 1)
        return float(max(retry_after or 0.0, raw + spread, 0.0))


@dataclass(frozen=True)
class Spacing:
    """A wait that does not grow: ``least`` seconds and up to ``spread`` more at random (so
    that files that failed together do not come back together). An immutable value."""

    least: float
    spread: float

    def delay(self, *, rand: float) -> float:
        """Seconds to wait; ``rand`` in [0, 1)."""
        return self.least + self.spread * rand


#: An Upload's storage target must be used within an hour of its creation (Procore). Reuse a
#: stored ticket only while comfortably inside that window.
UPLOAD_REUSE_SECONDS = 50 * 60


def ticket_reusable(created_at: float, now: float) -> bool:
    """True while an Upload created at ``created_at`` can still receive bytes."""
    return 0 <= now - created_at < UPLOAD_REUSE_SECONDS


def utc_iso(when: float) -> str:
    """``2026-11-19T23:48:15Z``: Unix seconds as UTC ISO-8601 to the second, the one form of
    time in the ledger, sidecars, `status` and the queries sent to Procore."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def display_path(text: str | os.PathLike[str]) -> str:
    """A path or file name as valid UTF-8 text for people and text files (ledger, sidecars).

    ``os.fsdecode`` keeps bytes that are not UTF-8 as lone surrogates; they appear here as
    ``\\xNN`` (``caf\\xe9.pdf``), so the line stays UTF-8 and still shows which byte it was.
    """
    raw = os.fspath(text)
    if raw.isascii():  # nearly every name, and every log field: nothing to do
        return raw
    return raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def procore_name(path: Path) -> str:
    """The file's name as Procore is given it (Upload, document, photo): valid UTF-8, with
    bytes that are not UTF-8 as U+FFFD. Not ``display_path``'s ``\\xNN``: a backslash in
    a name Procore shows (and Procore Drive syncs to Windows) is asking for trouble."""
    return os.fsencode(path.name).decode("utf-8", "replace")


def display_values(value: object) -> object:
    """``value`` with every string and path in it (inside mappings, their keys too, lists
    and tuples) rendered by ``display_path``: for JSON written to the ledger, sidecars and
    status.json."""
    if isinstance(value, str | os.PathLike):
        return display_path(value)
    if isinstance(value, Mapping):
        return {display_values(k): display_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [display_values(v) for v in value]
    return value


#: Why a scan passes over a symbolic link.
SYMLINK_SKIP = "symlinks are never followed"


def not_a_file_skip(kind: str) -> str:
    """Why a scan passes over a FIFO, socket, device or other non-file (``kind``)."""
    return f"a {kind} is never opened or uploaded"


def describe_state(state: FileState) -> str:
    """A phrase for `explain` and `status`."""
    return {
        FileState.QUEUED: "settled, queued for upload",
        FileState.UPLOADING: "uploading",
        FileState.STORED: "bytes stored in Procore, finishing",
        FileState.ASSOCIATING: "being filed in Procore",
        FileState.ASSOCIATED: "filed in Procore, archiving",
        FileState.LEDGERED: "recorded in the ledger, archiving",
        FileState.ARCHIVED: "uploaded and archived",
        FileState.FAILED: "failed",
        FileState.CHANGED: "changed after it settled; settling again",
        FileState.VANISHED: "disappeared before upload",
        FileState.RETRIED: "failed, then put back for another try",
    }[state]


#: S3 takes at most this many parts in one multipart upload.
MAX_SEGMENTS = 10_000
_MIB = 1024 * 1024


def segment_size_for(file_size: int, configured: int) -> int:
    """The segment size for a file: ``configured``, or the smallest whole number of MiB above
    it that keeps the file within ``MAX_SEGMENTS`` segments (16 MiB segments stop at 156 GiB)."""
    needed = -(-file_size // MAX_SEGMENTS)  # ceiling division
    if needed <= configured:
        return configured
    return -(-needed // _MIB) * _MIB
