"""PURE: a batch of alert events as a person reads it, and as a machine does.

A ``Message`` has a ``subject`` (the e-mail's; also the text's first line, the summary Slack,
Teams and ntfy show), a plain ``text`` and the JSON ``body`` the product contract fixes:
``{"text": ..., "host": ..., "events": [{"event": ..., ...}]}`` (plus ``"omitted": N`` when a
window held more failures than a message lists). The webhook POSTs the body, the command reads
it on standard input, the e-mail is the subject and the text.

Each failure says what happened, the file (where it was dropped, where it is now), Procore's
reason in its words with the HTTP status and request id, and the exact command that puts it
back. The commands are ``procore-hotfolder SUBCOMMAND -c CONFIG PATH``: the console script is
on ``PATH`` in every install (the package's ``/usr/bin``, the venv's symlink), ``-c`` names the
configuration the daemon itself loaded (a default is no guess when it runs with another), and
the path is quoted for a POSIX shell (bash's ``$'...'`` where a name is not UTF-8), so the line
can be pasted as it is. The README's ``phf`` wrapper runs the same subcommand as the service
user; these lines do not assume it exists in the reader's shell.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from procore_hotfolder.alerts.batcher import Batch
from procore_hotfolder.alerts.events import (
    AlertEvent,
    BacklogStuck,
    FileFailed,
    FolderPaused,
    FolderResumed,
)
from procore_hotfolder.model import display_path, utc_iso

PROGRAM = "procore-hotfolder"
#: The pause of a drop folder that cannot be listed (its detail is the daemon's, not Procore's).
FOLDER_UNAVAILABLE = "folder_unavailable"
#: Failures listed in the text (all kept ones are in the JSON).
TEXT_FAILURES = 20

#: A failure's reason, said for a person; Procore's own words (``detail``) follow it.
FAILURE_REASONS = {
    "validation": "Procore refused the file",
    "name_clash": 'a file of that name is already filed there (on_name_clash = "fail")',
    "permission": "Procore refused permission",
    "not_found": "Procore did not find where the file goes",
    "conflict": "Procore reported a conflict",
    "server_error": "Procore kept answering with server errors",
    "storage_rejected": "Procore's storage refused the file",
    "upload_expired": "the upload expired before it was filed",
    "content_mismatch": "what Procore stored differs from the file",
    "unexpected_response": "Procore gave an answer the daemon does not understand",
    "unreadable": "the file cannot be read",
    "request_timeout": "Procore kept giving up on the request (HTTP 408)",
    "filing_unconfirmed": "the filing in Procore could not be confirmed",
    "refused": "the file is not uploaded as it is",
    "hard_links": "the file has more than one hard link, so it is not uploaded",
    "symlink": "the file is a symbolic link, so it is not uploaded",
    "empty": "the file stayed empty (0 bytes)",
    "archive": "the file could not be moved to the archive",
    "no_route": "the routing rules give the file no destination",
    "no_rule_matched": "no routing rule matches the file, and its folder has no destination",
    "unknown_project_number": "no Procore project has the project number its rule gave",
    "ambiguous_project_number": "several Procore projects have the project number its rule "
                                "gave",
    "invalid_route": "the routing rule that matched gives no usable value",
}

#: A pause's reason, said for a person, and what usually ends it.
PAUSE_REASONS = {
    "permission": ("Procore refuses the project (HTTP 403)",
                   "a company admin adds the project to the app's service account (Company "
                   "Admin > App Management) and checks the tool is on in the project; Procore "
                   "resets a service account's projects on every update of the app"),
    "not_found": ("Procore does not find the project or the destination (HTTP 404)",
                  "check project_id and the Documents folder or album in the configuration "
                  "(procore-hotfolder projects / folders / albums list what it sees)"),
    "authentication": ("Procore refuses the service account's login",
                       "the client secret was probably rotated: replace the secret file and "
                       "restart the service"),
    "unavailable": ("Procore is unavailable (HTTP 503)", "it passes by itself"),
    "network": ("Procore cannot be reached (network)",
                "check this machine's network, DNS and proxy"),
    FOLDER_UNAVAILABLE: ("the drop folder is missing or unreadable",
                           "mount the share again (RequiresMountsFor= mounts it first)"),
}


@dataclass(frozen=True)
class Commands:
    """The commands a message tells a person to run, for the configuration ``config``."""

    config: Path | None

    def retry(self, path: Path) -> str:
        """Puts the failed file at ``path`` (where it is now, or where it was dropped) back."""
        return self._line("retry", path)

    def retry_all(self) -> str:
        return self._line("retry", None)

    def explain(self, path: Path) -> str:
        return self._line("explain", path)

    def status(self) -> str:
        return self._line("status", None)

    def _line(self, subcommand: str, path: Path | None) -> str:
        words = [PROGRAM, subcommand]
        if self.config is not None:
            words += ["-c", shell_word(self.config)]
        if path is not None:
            words.append(shell_word(path))
        return " ".join(words)


def shell_word(path: Path) -> str:
    """``path`` as one word of a POSIX shell command line: ``shlex.quote`` (nearly always);
    bash's ``$'...'`` when it has a byte that is not UTF-8 or a control character (each as
    ``\\xNN``), so that the line is still one line of valid text."""
    raw = os.fspath(path)
    if raw.isprintable():
        return shlex.quote(raw)
    out = []
    for char in raw:
        if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8 (os.fsdecode)
            out.append(f"\\x{ord(char) - 0xdc00:02x}")
        elif not char.isprintable():
            out.append("".join(f"\\x{b:02x}" for b in char.encode("utf-8")))
        elif char in "\\'":
            out.append("\\" + char)
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


@dataclass(frozen=True)
class Message:
    """One message for every channel: e-mail subject and text, and the JSON body."""

    subject: str
    text: str
    body: dict[str, Any]

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Renderer:
    """Writes messages for ``host``, naming ``commands``; times in ``zone`` (None: this
    machine's local time)."""

    host: str
    commands: Commands
    zone: tzinfo | None = None

    def batch(self, batch: Batch) -> Message:
        """The message of one batch."""
        subject = f"{PROGRAM} on {self.host}: {self._summary(batch)}"
        sections = [self._failures(batch)] if batch.count(FileFailed.kind) else []
        writers: dict[str, Callable[[Any], str]] = {
            FolderPaused.kind: self._paused, FolderResumed.kind: self._resumed,
            BacklogStuck.kind: self._stuck}
        sections += [writers[e.kind](e) for e in batch.events if e.kind in writers]
        text = "\n\n".join([subject, *sections]) + "\n"
        body: dict[str, Any] = {"text": text, "host": self.host,
                                "events": [self.event_json(e) for e in batch.events]}
        if batch.omitted:
            body["omitted"] = batch.omitted
        return Message(subject, text, body)

    def test(self, now: float, source: Path | None) -> Message:
        """The message ``check --send-test-alert`` sends."""
        subject = f"{PROGRAM} on {self.host}: test message"
        where = f" (configuration {display_path(source)})" if source else ""
        text = (f"{subject}\n\nThis is a test of procore-hotfolder's alerts on {self.host}"
                f"{where}, sent at {self._time(now)} by `{PROGRAM} check --send-test-alert`.\n"
                "When a file fails, a folder stays paused or the queue stops moving, a message "
                "like this one says what happened, Procore's reason and the command to run.\n")
        body = {"text": text, "host": self.host,
                "events": [{"event": "test", "time": utc_iso(now)}]}
        return Message(subject, text, body)

    def event_json(self, event: AlertEvent) -> dict[str, Any]:
        """One entry of the body's ``events``."""
        if isinstance(event, FileFailed):
            return {"event": event.kind, "time": utc_iso(event.time),
                    "path": display_path(event.path),
                    "failed_path": None if event.failed_path is None
                    else display_path(event.failed_path),
                    "reason": event.reason, "detail": event.detail,
                    "attempts": event.attempts, "status": event.status,
                    "request_id": event.request_id,
                    "retry_command": self.commands.retry(event.where)}
        if isinstance(event, FolderPaused):
            return {"event": event.kind, "folder": _folder_json(event.folder),
                    "reason": event.reason, "detail": event.detail,
                    "since": utc_iso(event.since)}
        if isinstance(event, FolderResumed):
            return {"event": event.kind, "folder": _folder_json(event.folder),
                    "reason": event.reason, "since": utc_iso(event.since),
                    "resumed": utc_iso(event.resumed),
                    "paused_seconds": round(event.resumed - event.since)}
        return {"event": event.kind, "time": utc_iso(event.time),
                "path": display_path(event.path), "age_seconds": round(event.age_seconds),
                "waiting_since": utc_iso(event.waiting_since),
                "explain_command": self.commands.explain(event.path)}

    # --- the text ---------------------------------------------------------------------------

    def _summary(self, batch: Batch) -> str:
        parts = []
        failed = batch.count(FileFailed.kind)
        first = next((e for e in batch.events if isinstance(e, FileFailed)), None)
        if failed == 1 and first is not None:
            parts.append(f"{display_path(first.path.name)} failed ({first.reason})")
        elif failed:
            parts.append(f"{failed} files failed")
        for kind, verb in ((FolderPaused.kind, "paused"), (FolderResumed.kind, "resumed")):
            folders = [e.folder for e in batch.events
                       if isinstance(e, FolderPaused | FolderResumed) and e.kind == kind]
            if len(folders) == 1:
                parts.append(f"{_folder_text(folders[0])} {verb}")
            elif folders:
                parts.append(f"{len(folders)} folders {verb}")
        stuck = next((e for e in batch.events if isinstance(e, BacklogStuck)), None)
        if stuck is not None:
            parts.append(f"a file has waited {_duration(stuck.age_seconds)}")
        return ", ".join(parts)

    def _failures(self, batch: Batch) -> str:
        failures = [e for e in batch.events if isinstance(e, FileFailed)]
        total = batch.count(FileFailed.kind)
        lines = [f"{_count(total, 'file')} failed and will not be tried again until someone "
                 "puts them back. Each one moved to its folder's failed folder has a "
                 "<name>.error.json beside it that says why."
                 if total > 1 else
                 "A file failed and will not be tried again until someone puts it back."]
        for number, event in enumerate(failures[:TEXT_FAILURES], start=1):
            lines.append("")
            lines += self._failure(number if total > 1 else None, event)
        unlisted = total - min(len(failures), TEXT_FAILURES)
        if unlisted:
            lines += ["", f"... and {_count(unlisted, 'more file')} (see the failed folders, "
                      "or the log's upload_failed lines)."]
        if total > 1:
            lines += ["", f"Put every failed file back at once: {self.commands.retry_all()}"]
        return "\n".join(lines)

    def _failure(self, number: int | None, event: FileFailed) -> list[str]:
        head = f"{number}. " if number is not None else ""
        pad = " " * len(head)
        said = FAILURE_REASONS.get(event.reason, event.reason.replace("_", " "))
        http = [f"HTTP {event.status}"] if event.status is not None else []
        request = [f"request id {event.request_id}"] if event.request_id else []
        answer = f" ({', '.join(http + request)})" if http or request else ""
        where = (f"now in {display_path(event.failed_path)}" if event.failed_path
                 else "left in place (it could not be moved to the failed folder)")
        # A file refused before any try (a hard link, a file that stayed empty) was never sent.
        tries = (_count(event.attempts, "attempt") if event.attempts
                 else "not sent to Procore")
        return [
            f"{head}{display_path(event.path)}",
            f"{pad}why: {said} [{event.reason}]{answer}",
            f"{pad}     {_quoted(event.detail)}" if event.detail else f"{pad}     (no detail)",
            f"{pad}{tries}, at {self._time(event.time)}; {where}",
            f"{pad}put it back: {self.commands.retry(event.where)}",
        ]

    def _paused(self, event: FolderPaused) -> str:
        said, fix = PAUSE_REASONS.get(event.reason, (event.reason.replace("_", " "), ""))
        who = (f"Folder {display_path(event.folder)} is" if event.folder is not None
               else "Every folder is")
        lines = [f"{who} paused since {self._time(event.since)}: {said} [{event.reason}]."]
        if event.detail:
            said_by = ("What the daemon found" if event.reason == FOLDER_UNAVAILABLE
                       else "Procore said")
            lines.append(f"  {said_by}: {_quoted(event.detail)}")
        lines.append("  No file fails for this: the files wait, and go by themselves once it "
                     "is over.")
        if fix:
            lines.append(f"  What usually fixes it: {fix}; then `systemctl reload "
                         f"{PROGRAM}` checks again at once.")
        lines.append(f"  The queue: {self.commands.status()}")
        return "\n".join(lines)

    def _resumed(self, event: FolderResumed) -> str:
        who = (f"Folder {display_path(event.folder)}" if event.folder is not None
               else "Every folder")
        return (f"{who} resumed at {self._time(event.resumed)}, after "
                f"{_duration(event.resumed - event.since)} paused [{event.reason}].")

    def _stuck(self, event: BacklogStuck) -> str:
        return "\n".join([
            f"{display_path(event.path)} has waited {_duration(event.age_seconds)} (since "
            f"{self._time(event.waiting_since)}) and is not uploaded yet: it is the oldest "
            "file waiting.",
            f"  Why it waits: {self.commands.explain(event.path)}",
            f"  The queue: {self.commands.status()}",
        ])

    def _time(self, when: float) -> str:
        moment = (datetime.fromtimestamp(when, self.zone) if self.zone is not None
                  else datetime.fromtimestamp(when).astimezone())
        return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _folder_text(folder: Path | None) -> str:
    return "every folder" if folder is None else display_path(folder)


def _folder_json(folder: Path | None) -> str | None:
    return None if folder is None else display_path(folder)


def _quoted(text: str) -> str:
    return f'"{" ".join(text.split())}"'


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    """``45 s``, ``16 min``, ``2 h 05 min``, ``3 d 4 h``."""
    total = round(max(seconds, 0.0))
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
