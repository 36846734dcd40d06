"""How long the waiting files take: the pace meter and the per-folder estimate of `status`."""

from __future__ import annotations

from typing import Any

from procore_hotfolder.commands.reporting import _estimate, format_status
from procore_hotfolder.engine.pace import PaceLimit, PaceMeter


def test_the_pace_is_measured_over_the_last_quarter_hour() -> None:
    meter = PaceMeter()
    assert meter.files_per_hour(0.0) is None
    for n in range(300):  # one upload every 2 s for 10 minutes
        meter.completed(2.0 * n)
    assert meter.files_per_hour(600.0) == 1800.0
    for n in range(300, 1200):  # then one every 12 s: older buckets drop out
        meter.completed(600.0 + 12.0 * (n - 300))
    assert abs((meter.files_per_hour(11400.0) or 0) - 300.0) < 10


def _folder(path: str, waiting: int, queued: int) -> dict[str, Any]:
    return {"path": path, "project_id": 7, "destination": "documents", "watch": "events",
            "unavailable": None, "paused": None, "warning": None, "waiting": waiting,
            "oldest_waiting_seconds": None, "queued": queued, "uploading": 0, "failed": 0,
            "archived": 0, "last_upload": None}


def test_folders_taken_in_turn_share_the_pace() -> None:
    """300 files/h over two folders taken in turn: 20 waiting in one are done after 40
    uploads (20 of each), the 1,220 of the other after all 1,240."""
    folders = [_folder("/a", 10, 10), _folder("/b", 20, 1200)]
    _estimate(folders, 300.0)
    assert folders[0]["estimate_seconds"] == round(40 / 300 * 3600)
    assert folders[1]["estimate_seconds"] == round(1240 / 300 * 3600)
    report = {"daemon": {"running": True, "pid": 1, "paused": None}, "uploading": {},
              "pace": {"files_per_hour": 300.0, "bound_by": "quota"}, "folders": folders}
    text = format_status(report)
    assert "1,220 waiting, about 4.1 h at 300 files/h (bound by Procore's API quota)" in text


def test_no_estimate_without_a_pace() -> None:
    folders = [_folder("/a", 5, 0)]
    _estimate(folders, None)
    assert folders[0]["estimate_seconds"] is None
    report = {"daemon": {"running": True, "pid": 1, "paused": None}, "uploading": {},
              "pace": {}, "folders": folders}
    assert "the pace is not known yet" in format_status(report)


def test_what_holds_the_pace_back() -> None:
    """A pause first; else the quota once workers waited for it over a quarter of the
    time, looked at every ten seconds at most; else the uploads themselves."""
    limit = PaceLimit(now=0.0)
    assert limit.bound_by(paused=True, now=1.0, quota_wait_seconds=0.0, workers=2) == "pause"
    # 2 workers over 10 s: 6 s waited is 30 %.
    assert limit.bound_by(paused=False, now=10.0, quota_wait_seconds=6.0,
                          workers=2) == "quota"
    # Not ten seconds since the last look: the verdict stands, whatever the total.
    assert limit.bound_by(paused=False, now=15.0, quota_wait_seconds=6.0,
                          workers=2) == "quota"
    # 4 s more waited over the next 10 s by 2 workers: 20 %.
    assert limit.bound_by(paused=False, now=20.0, quota_wait_seconds=10.0,
                          workers=2) == "uploads"
