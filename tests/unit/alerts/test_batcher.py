"""The batcher's rules as tables: scripts of reports at fake times and what each ``due`` or
``flush`` hands out. Pure: no thread, no clock, no sleep.

Thresholds as the example configuration has them: a pause is told after 15 min (900 s), a file
waiting 120 min (7,200 s) is stuck, a window lasts 60 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.alerts.batcher import Batch, Batcher, Thresholds
from procore_hotfolder.alerts.events import (
    BacklogStuck,
    FileFailed,
    FolderPaused,
    FolderResumed,
    HeldFolder,
)

LIMITS = Thresholds(paused_seconds=900, oldest_waiting_seconds=7200, batch_seconds=60)
A, B = Path("/drop/a"), Path("/drop/b")
EVERY = None


def failed(now: float, name: str) -> FileFailed:
    return FileFailed(now, A / name, "validation", "File name is invalid", 1, 422, "req-1",
                      A / "Failed" / name)


def summary(batch: Batch | None) -> str | None:
    """``file_failed:x.pdf folder_paused:a ...`` in the batch's order (None: no batch)."""
    if batch is None:
        return None
    words = []
    for event in batch.events:
        if isinstance(event, FileFailed | BacklogStuck):
            words.append(f"{event.kind}:{event.path.name}")
        else:
            assert isinstance(event, FolderPaused | FolderResumed)
            words.append(f"{event.kind}:{'every' if event.folder is None else event.folder.name}")
    if batch.omitted:
        words.append(f"+{batch.omitted}")
    return " ".join(words)


def holds(*pairs: tuple[Path | None, float]) -> list[HeldFolder]:
    return [HeldFolder(folder, "permission", "Forbidden", since) for folder, since in pairs]


def run(batcher: Batcher, script: list[tuple[Any, ...]]) -> list[tuple[str, float, Any]]:
    """Plays ``script``; returns (step, time, got, expected) of each due/flush that differs."""
    wrong = []
    for step in script:
        what, now = step[0], step[1]
        if what == "fail":
            batcher.file_failed(now, failed(now, step[2]))
        elif what == "holds":
            batcher.holds(now, step[2])
        elif what == "backlog":
            batcher.backlog(now, step[2], step[3])
        else:
            got = summary(batcher.due(now) if what == "due" else batcher.flush(now))
            if got != step[2]:
                wrong.append((what, now, got, step[2]))
    return wrong


SCRIPTS: dict[str, list[tuple[Any, ...]]] = {
    "a burst of 20 failures is one message": [
        *[("fail", float(t), f"{t:02d}.pdf") for t in range(20)],
        ("due", 59.0, None),
        ("due", 60.0, " ".join(f"file_failed:{t:02d}.pdf" for t in range(20))),
        ("due", 200.0, None),
    ],
    "the window opens with its first event; later ones wait for the next": [
        ("fail", 0.0, "x.pdf"), ("fail", 50.0, "y.pdf"),
        ("due", 60.0, "file_failed:x.pdf file_failed:y.pdf"),
        ("fail", 70.0, "z.pdf"), ("due", 129.0, None),
        ("due", 130.0, "file_failed:z.pdf"),
    ],
    "nothing failed, nothing paused, nothing old: nothing goes out": [
        ("holds", 0.0, []), ("backlog", 0.0, A / "young.pdf", 30.0),
        ("due", 7000.0, None), ("flush", 7100.0, None),
    ],
    "a pause shorter than paused_minutes is never mentioned": [
        ("holds", 0.0, holds((A, 0.0))), ("due", 899.0, None), ("holds", 899.5, []),
        ("due", 5000.0, None),
    ],
    "a pause is told once, after paused_minutes": [
        ("holds", 0.0, holds((A, 0.0))), ("due", 899.0, None), ("due", 900.0, None),
        ("due", 960.0, "folder_paused:a"),
        ("holds", 1000.0, holds((A, 0.0))), ("due", 5000.0, None),
    ],
    "resumed follows a pause that went out": [
        ("holds", 0.0, holds((A, 0.0))), ("due", 960.0, None), ("due", 1020.0,
                                                                 "folder_paused:a"),
        ("holds", 1200.0, []), ("due", 1259.0, None), ("due", 1260.0, "folder_resumed:a"),
        ("holds", 1300.0, []), ("due", 9000.0, None),
    ],
    "paused and resumed within one window go out together": [
        ("holds", 0.0, holds((A, 0.0))), ("due", 900.0, None), ("holds", 930.0, []),
        ("due", 960.0, "folder_paused:a folder_resumed:a"),
    ],
    "every folder (the account) pauses and resumes": [
        ("holds", 0.0, holds((EVERY, 0.0))), ("due", 900.0, None),
        ("due", 960.0, "folder_paused:every"), ("holds", 970.0, []),
        ("due", 1030.0, "folder_resumed:every"),
    ],
    "a told pause that begins anew counts as resumed, the new one waits its turn": [
        ("holds", 0.0, holds((A, 0.0))), ("due", 900.0, None), ("due", 960.0,
                                                                "folder_paused:a"),
        ("holds", 2000.0, holds((A, 1990.0))), ("due", 2060.0, "folder_resumed:a"),
        ("due", 2889.0, None), ("due", 2890.0, None), ("due", 2950.0, "folder_paused:a"),
    ],
    "two folders, each told at its own threshold": [
        ("holds", 0.0, holds((A, 0.0))), ("holds", 100.0, holds((A, 0.0), (B, 100.0))),
        ("due", 900.0, None), ("due", 960.0, "folder_paused:a"),
        ("due", 1000.0, None), ("due", 1060.0, "folder_paused:b"),
        ("holds", 1100.0, holds((B, 100.0))), ("due", 1160.0, "folder_resumed:a"),
    ],
    "the oldest file past oldest_waiting_minutes is told once": [
        ("backlog", 0.0, A / "x.pdf", 7100.0), ("due", 99.0, None), ("due", 100.0, None),
        ("due", 160.0, "backlog_stuck:x.pdf"),
        ("backlog", 200.0, A / "x.pdf", 7300.0), ("due", 90_000.0, None),
    ],
    "a backlog that drains is not stuck: the next oldest is told when it stays": [
        ("backlog", 0.0, A / "x.pdf", 7200.0), ("due", 60.0, "backlog_stuck:x.pdf"),
        ("backlog", 300.0, A / "y.pdf", 7400.0), ("backlog", 400.0, A / "z.pdf", 7500.0),
        ("due", 7599.0, None), ("due", 7600.0, None), ("due", 7660.0, "backlog_stuck:z.pdf"),
    ],
    "after the backlog caught up, the next stuck file is told at its threshold": [
        ("backlog", 0.0, A / "x.pdf", 7200.0), ("due", 60.0, "backlog_stuck:x.pdf"),
        ("backlog", 300.0, A / "y.pdf", 100.0), ("due", 7399.0, None),
        ("due", 7400.0, None), ("due", 7460.0, "backlog_stuck:y.pdf"),
    ],
    "nothing waiting also means caught up": [
        ("backlog", 0.0, A / "x.pdf", 7200.0), ("due", 60.0, "backlog_stuck:x.pdf"),
        ("backlog", 300.0, None, 0.0), ("backlog", 400.0, A / "y.pdf", 8000.0),
        ("due", 460.0, "backlog_stuck:y.pdf"),
    ],
    "one backlog_stuck per window, the latest": [
        ("backlog", 0.0, A / "x.pdf", 7200.0), ("backlog", 10.0, None, 0.0),
        ("backlog", 20.0, A / "y.pdf", 7300.0), ("due", 60.0, "backlog_stuck:y.pdf"),
    ],
    "a failure and a pause share a window": [
        ("holds", 0.0, holds((A, 0.0))), ("backlog", 0.0, A / "old.pdf", 7150.0),
        ("due", 50.0, None), ("due", 110.0, "backlog_stuck:old.pdf"),
        ("fail", 880.0, "f.pdf"), ("due", 900.0, None),
        ("due", 940.0, "file_failed:f.pdf folder_paused:a"),
    ],
    "flush hands out the open window at once, and what crossed its threshold": [
        ("fail", 0.0, "x.pdf"), ("flush", 1.0, "file_failed:x.pdf"), ("flush", 2.0, None),
        ("holds", 3.0, holds((A, 0.0))), ("flush", 899.0, None),
        ("flush", 900.0, "folder_paused:a"),
    ],
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_batcher_script(name: str) -> None:
    assert run(Batcher(LIMITS), SCRIPTS[name]) == []


def test_a_flood_of_failures_is_counted_not_kept() -> None:
    batcher = Batcher(LIMITS, max_events=3)
    for t in range(5):
        batcher.file_failed(float(t), failed(float(t), f"{t}.pdf"))
    batch = batcher.due(60.0)
    assert summary(batch) == "file_failed:0.pdf file_failed:1.pdf file_failed:2.pdf +2"
    assert batch is not None and batch.count("file_failed") == 5


@pytest.mark.parametrize(("script", "expected"), [
    ([], None),
    ([("fail", 10.0, "x.pdf")], 70.0),
    ([("holds", 5.0, holds((A, 0.0)))], 900.0),
    ([("holds", 5.0, holds((A, 0.0), (B, 300.0)))], 900.0),
    ([("backlog", 5.0, A / "x.pdf", 7000.0)], 205.0),
    ([("backlog", 0.0, A / "x.pdf", 7200.0), ("due", 60.0, "backlog_stuck:x.pdf"),
      ("backlog", 300.0, A / "y.pdf", 7400.0)], 7500.0),
    ([("holds", 0.0, holds((A, 0.0))), ("due", 900.0, None)], 960.0),
], ids=["idle", "open-window", "pause", "earliest-pause", "backlog", "backlog-moved",
        "window-after-pause"])
def test_next_due_is_when_something_can_go_out(script: list[tuple[Any, ...]],
                                               expected: float | None) -> None:
    batcher = Batcher(LIMITS)
    assert run(batcher, script) == []
    assert batcher.next_due() == expected
