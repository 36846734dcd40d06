"""The message for a person and for a machine: what it says of each event, the JSON body the
contract fixes, and the commands in it, which a shell and our own parser take as they are."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from datetime import UTC
from pathlib import Path

import pytest

from procore_hotfolder.alerts.batcher import Batch
from procore_hotfolder.alerts.events import BacklogStuck, FileFailed, FolderPaused, FolderResumed
from procore_hotfolder.alerts.message import Commands, Renderer, shell_word
from procore_hotfolder.cli import build_parser

CONFIG = Path("/etc/procore-hotfolder/config.toml")
RENDER = Renderer("scan01", Commands(CONFIG), zone=UTC)
T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z
DROP = Path("/srv/drop/tower-a")


def refused(name: str, *, moved: bool = True) -> FileFailed:
    return FileFailed(T0, DROP / name, "validation", "File name contains invalid characters",
                      1, 422, "7c2e91d0-req", DROP / "Failed" / name if moved else None)


def test_one_failure_says_what_why_where_and_the_command() -> None:
    message = RENDER.batch(Batch((refused("scan 12.pdf"),)))
    assert message.subject == "procore-hotfolder on scan01: scan 12.pdf failed (validation)"
    text = message.text
    assert text.startswith(message.subject + "\n\n")
    for said in ("/srv/drop/tower-a/scan 12.pdf",
                 "why: Procore refused the file [validation] (HTTP 422, request id 7c2e91d0-req)",
                 '"File name contains invalid characters"',
                 "1 attempt, at 2026-11-30 00:53:20 UTC",
                 "now in /srv/drop/tower-a/Failed/scan 12.pdf",
                 "put it back: procore-hotfolder retry -c /etc/procore-hotfolder/config.toml "
                 "'/srv/drop/tower-a/Failed/scan 12.pdf'"):
        assert said in text, said
    assert "at once" not in text  # one file: no "every failed file" line


def test_the_body_is_text_host_and_events() -> None:
    events = (refused("a.pdf"), refused("b.pdf", moved=False),
              FolderPaused(DROP, "permission", "You do not have access", T0 - 1000),
              FolderResumed(None, "authentication", T0 - 4000, T0),
              BacklogStuck(T0, DROP / "old.pdf", T0 - 7500))
    body = RENDER.batch(Batch(events)).body
    assert set(body) == {"text", "host", "events"}
    assert body["host"] == "scan01"
    assert [e["event"] for e in body["events"]] == [
        "file_failed", "file_failed", "folder_paused", "folder_resumed", "backlog_stuck"]
    a, b, paused, resumed, stuck = body["events"]
    assert a == {"event": "file_failed", "time": "2026-11-30T00:53:20Z",
                 "path": "/srv/drop/tower-a/a.pdf",
                 "failed_path": "/srv/drop/tower-a/Failed/a.pdf", "reason": "validation",
                 "detail": "File name contains invalid characters", "attempts": 1,
                 "status": 422, "request_id": "7c2e91d0-req",
                 "retry_command": "procore-hotfolder retry -c "
                                  "/etc/procore-hotfolder/config.toml "
                                  "/srv/drop/tower-a/Failed/a.pdf"}
    assert b["failed_path"] is None and b["retry_command"].endswith(" /srv/drop/tower-a/b.pdf")
    assert paused == {"event": "folder_paused", "folder": "/srv/drop/tower-a",
                      "reason": "permission", "detail": "You do not have access",
                      "since": "2026-11-30T00:36:40Z"}
    assert resumed["folder"] is None and resumed["paused_seconds"] == 4000
    assert stuck["age_seconds"] == 7500 and stuck["explain_command"].startswith(
        "procore-hotfolder explain -c /etc/procore-hotfolder/config.toml ")


def test_a_mixed_batch_reads_as_one_message() -> None:
    message = RENDER.batch(Batch((
        refused("a.pdf"), refused("b.pdf"),
        FolderPaused(DROP, "permission", "You do not have access to this project", T0 - 960),
        FolderResumed(None, "authentication", T0 - 4000, T0),
        BacklogStuck(T0, DROP / "old.pdf", T0 - 7500))))
    assert message.subject == ("procore-hotfolder on scan01: 2 files failed, "
                               "/srv/drop/tower-a paused, every folder resumed, "
                               "a file has waited 2 h 05 min")
    for said in ("2 files failed and will not be tried again",
                 "1. /srv/drop/tower-a/a.pdf", "2. /srv/drop/tower-a/b.pdf",
                 "Put every failed file back at once: procore-hotfolder retry -c "
                 "/etc/procore-hotfolder/config.toml\n",
                 "Folder /srv/drop/tower-a is paused since 2026-11-30 00:37:20 UTC: Procore "
                 "refuses the project (HTTP 403) [permission].",
                 'Procore said: "You do not have access to this project"',
                 "Company Admin > App Management",
                 "Every folder resumed at 2026-11-30 00:53:20 UTC, after 1 h 06 min paused",
                 "/srv/drop/tower-a/old.pdf has waited 2 h 05 min",
                 "Why it waits: procore-hotfolder explain -c /etc/procore-hotfolder/config.toml "
                 "/srv/drop/tower-a/old.pdf"):
        assert said in message.text, said


def test_the_text_lists_twenty_failures_and_counts_the_rest() -> None:
    batch = Batch(tuple(refused(f"{n:03d}.pdf") for n in range(30)), omitted=70)
    message = RENDER.batch(batch)
    assert message.subject == "procore-hotfolder on scan01: 100 files failed"
    assert "20. /srv/drop/tower-a/019.pdf" in message.text
    assert "020.pdf" not in message.text
    assert "... and 80 more files" in message.text
    assert len(message.body["events"]) == 30 and message.body["omitted"] == 70


NAMES = ["scan 12.pdf", "O'Brien $HOME `x`.pdf", "Bauplan Ü-3 (neu).pdf", "new\nline.pdf",
         os.fsdecode(b"caf\xe9 \\ 'q'.pdf"), "-starts-with-dash.pdf"]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_a_path_in_a_command_is_one_word_for_the_shell(tmp_path: Path, name: str) -> None:
    path = DROP / "Failed" / name
    word = shell_word(path)
    assert "\n" not in word and word.isprintable()
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True,
                         check=True).stdout
    assert out == os.fsencode(path)


def test_the_retry_command_is_what_our_parser_reads() -> None:
    name = "O'Brien plan (rev 2).pdf"
    command = RENDER.batch(Batch((refused(name),))).body["events"][0]["retry_command"]
    words = shlex.split(command)
    assert words[0] == "procore-hotfolder"
    args = build_parser().parse_args(words[1:])
    assert args.command == "retry"
    assert args.config == CONFIG
    assert args.paths == [str(DROP / "Failed" / name)]


def test_without_a_known_configuration_the_command_names_none() -> None:
    assert Commands(None).retry(DROP / "a.pdf") == "procore-hotfolder retry /srv/drop/tower-a/a.pdf"


def test_the_test_message() -> None:
    message = RENDER.test(T0, CONFIG)
    assert message.subject == "procore-hotfolder on scan01: test message"
    assert "configuration /etc/procore-hotfolder/config.toml" in message.text
    assert message.body == {"text": message.text, "host": "scan01",
                            "events": [{"event": "test", "time": "2026-11-30T00:53:20Z"}]}


def test_a_file_refused_before_any_try_and_a_folder_that_cannot_be_listed() -> None:
    """A hard link is never sent (no "0 attempts"); a missing drop folder's detail is what
    the daemon found, not Procore's words."""
    linked = FileFailed(T0, DROP / "IMG 0042.jpg", "hard_links", "the file has 2 hard links",
                        0, None, None, DROP / "Failed" / "IMG 0042.jpg")
    text = RENDER.batch(Batch((linked, FolderPaused(DROP, "folder_unavailable", "missing",
                                                    T0 - 1000)))).text
    assert "why: the file has more than one hard link, so it is not uploaded [hard_links]\n" \
           in text
    assert "not sent to Procore, at 2026-11-30 00:53:20 UTC; now in" in text
    assert "0 attempts" not in text
    assert "the drop folder is missing or unreadable [folder_unavailable]" in text
    assert 'What the daemon found: "missing"' in text and "Procore said" not in text
