"""The settle tracker: pure, driven by a fake clock (no sleeps, no files)."""

from __future__ import annotations

from procore_hotfolder.watch.stability import Observation, SettleTracker

SETTLE = 10.0


def _due(tracker: SettleTracker, now: float) -> list[tuple[str, Observation]]:
    return [(key, entry.observation) for key, entry in tracker.due(now)]


def obs(size: int = 100, mtime_ns: int = 1_000, ino: int = 7, dev: int = 1,
        ctime_ns: int = 0) -> Observation:
    return Observation(size=size, mtime_ns=mtime_ns, ino=ino, dev=dev, ctime_ns=ctime_ns)


def test_unchanged_for_settle_time_becomes_due_once() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=0.0, settle_seconds=SETTLE)
    assert _due(tracker, 0.0) == []
    tracker.observe("a", obs(), now=9.9, settle_seconds=SETTLE)
    assert _due(tracker, 9.9) == []
    tracker.observe("a", obs(), now=10.0, settle_seconds=SETTLE)
    assert _due(tracker, 10.0) == [("a", obs())]
    assert "a" not in tracker and len(tracker) == 0
    assert _due(tracker, 20.0) == []


def test_needs_a_confirming_observation_not_just_time() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=0.0, settle_seconds=SETTLE)
    # Time passing alone proves nothing: the file must be looked at again.
    assert _due(tracker, 1000.0) == []


def test_change_restarts_quiet_period_from_observation_time() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(size=10), now=0.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(size=20), now=8.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(size=20), now=12.0, settle_seconds=SETTLE)
    assert _due(tracker, 12.0) == []
    tracker.observe("a", obs(size=20), now=18.0, settle_seconds=SETTLE)
    assert _due(tracker, 18.0) == [("a", obs(size=20))]


def test_old_mtime_still_waits_settle_seconds() -> None:
    # A copy preserving a year-old mtime: the quiet period starts when *we* saw it.
    ancient = obs(mtime_ns=1)
    tracker = SettleTracker()
    tracker.observe("a", ancient, now=5000.0, settle_seconds=SETTLE)
    tracker.observe("a", ancient, now=5001.0, settle_seconds=SETTLE)
    assert _due(tracker, 5001.0) == []


def test_each_field_counts_as_a_change() -> None:
    base = obs(ctime_ns=5)
    for changed in (obs(size=101, ctime_ns=5), obs(mtime_ns=2, ctime_ns=5),
                    obs(ino=8, ctime_ns=5), obs(dev=2, ctime_ns=5), obs(ctime_ns=6)):
        tracker = SettleTracker()
        tracker.observe("a", base, now=0.0, settle_seconds=SETTLE)
        tracker.observe("a", changed, now=10.0, settle_seconds=SETTLE)
        assert _due(tracker, 10.0) == [], changed
        assert tracker.pending()["a"].last_change == 10.0


def test_unknown_ctime_does_not_count_as_change() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(ctime_ns=0), now=0.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(ctime_ns=99), now=10.0, settle_seconds=SETTLE)
    assert [key for key, _ in _due(tracker, 10.0)] == ["a"]


def test_zero_settle_single_observation_suffices() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=3.0, settle_seconds=0.0)
    assert _due(tracker, 3.0) == [("a", obs())]


def test_vanished_file_is_forgotten() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=0.0, settle_seconds=SETTLE)
    tracker.observe("a", None, now=5.0, settle_seconds=SETTLE)
    assert "a" not in tracker
    tracker.observe("a", obs(), now=10.0, settle_seconds=SETTLE)
    assert _due(tracker, 10.0) == []  # starts over
    assert tracker.pending()["a"].first_seen == 10.0


def test_empty_file_never_due_and_overdue_after_timeout() -> None:
    tracker = SettleTracker()
    tracker.observe("e", obs(size=0), now=0.0, settle_seconds=SETTLE)
    tracker.observe("e", obs(size=0), now=50.0, settle_seconds=SETTLE)
    assert _due(tracker, 50.0) == []
    assert tracker.empty_overdue(50.0, timeout=100.0) == []
    # A touch (new mtime, still empty) does not restart the empty clock.
    tracker.observe("e", obs(size=0, mtime_ns=5), now=60.0, settle_seconds=SETTLE)
    assert tracker.empty_overdue(100.0, timeout=100.0) == ["e"]
    assert "e" not in tracker


def test_empty_file_that_gets_content_settles_normally() -> None:
    tracker = SettleTracker()
    tracker.observe("e", obs(size=0), now=0.0, settle_seconds=SETTLE)
    tracker.observe("e", obs(size=5), now=90.0, settle_seconds=SETTLE)
    assert tracker.empty_overdue(200.0, timeout=100.0) == []
    tracker.observe("e", obs(size=5), now=100.0, settle_seconds=SETTLE)
    assert _due(tracker, 100.0) == [("e", obs(size=5))]


def test_pending_snapshot_and_first_seen_kept_across_changes() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(size=1), now=1.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(size=2), now=4.0, settle_seconds=SETTLE)
    pending = tracker.pending()
    assert pending["a"].first_seen == 1.0
    assert pending["a"].last_change == 4.0
    assert pending["a"].observation == obs(size=2)
    tracker.forget("a")
    assert "a" in pending and "a" not in tracker  # the snapshot is a copy


def test_the_file_whose_quiet_period_ended_is_due() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=0.0, settle_seconds=SETTLE)
    tracker.observe("b", obs(), now=3.0, settle_seconds=2.0)
    tracker.observe("b", obs(), now=5.0, settle_seconds=2.0)
    assert [k for k, _ in _due(tracker, 5.0)] == ["b"]
    tracker.observe("a", obs(), now=9.9, settle_seconds=SETTLE)
    assert _due(tracker, 9.9) == []  # a's quiet period ends at 10
    tracker.observe("a", obs(), now=10.0, settle_seconds=SETTLE)
    assert [k for k, _ in _due(tracker, 10.0)] == ["a"]


def test_recheck_names_only_the_files_whose_quiet_period_ran() -> None:
    """A tick looks at the files due for a look, not at every file waiting (a backlog of
    thousands costs nothing per tick)."""
    tracker = SettleTracker()
    for i in range(10_000):
        tracker.observe(f"f{i}", obs(ino=i), now=float(i % 10), settle_seconds=SETTLE)
    assert tracker.to_recheck(SETTLE - 0.5) == []
    first = tracker.to_recheck(SETTLE + 0.5)  # those first seen at 0
    assert len(first) == 1000 and all(int(k[1:]) % 10 == 0 for k in first)
    assert tracker.to_recheck(SETTLE + 0.5) == []  # each named once
    for key in first:
        tracker.observe(key, obs(ino=int(key[1:])), SETTLE + 0.5, SETTLE)
    assert len(_due(tracker, SETTLE + 0.5)) == 1000


def test_recheck_after_a_change_waits_for_the_new_quiet_period() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(size=1), now=0.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(size=2), now=1.0, settle_seconds=SETTLE)
    assert tracker.to_recheck(SETTLE + 0.5) == []  # the first period no longer counts
    assert tracker.to_recheck(SETTLE + 1.0) == ["a"]


def test_an_empty_file_is_looked_at_again_every_quiet_period() -> None:
    tracker = SettleTracker()
    tracker.observe("e", obs(size=0), now=0.0, settle_seconds=SETTLE)
    assert tracker.to_recheck(SETTLE) == ["e"]
    tracker.observe("e", obs(size=0), now=SETTLE, settle_seconds=SETTLE)
    assert tracker.to_recheck(SETTLE + 1) == []
    assert tracker.to_recheck(2 * SETTLE) == ["e"]
    assert tracker.waiting_with_content() == 0 and len(tracker) == 1


def test_a_held_file_waits_and_becomes_due_again_once_looked_at() -> None:
    """Settled, but a writer holds it: it stays tracked (not "about to settle"), is looked at
    again at the recheck time, and keeps when the hold began."""
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=0.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(), now=10.0, settle_seconds=SETTLE)
    [(key, entry)] = tracker.due(10.0)
    tracker.hold(key, entry, "lease refused", now=10.0, recheck_at=20.0)
    assert "a" in tracker and tracker.held() == 1 and tracker.waiting_with_content() == 0
    assert tracker.pending()["a"].held == "lease refused"
    assert _due(tracker, 19.0) == []  # not due without a new look
    assert tracker.to_recheck(20.0) == ["a"]
    tracker.observe("a", obs(), now=20.0, settle_seconds=SETTLE)  # unchanged: due at once
    [(_, again)] = tracker.due(20.0)
    assert again.held == "lease refused" and again.held_since == 10.0
    tracker.hold("a", again, "lease refused", now=20.0, recheck_at=30.0)
    assert tracker.pending()["a"].held_since == 10.0  # the same hold goes on


def test_a_held_file_that_changes_settles_again_from_the_change() -> None:
    tracker = SettleTracker()
    tracker.observe("a", obs(), now=0.0, settle_seconds=SETTLE)
    tracker.observe("a", obs(), now=10.0, settle_seconds=SETTLE)
    [(key, entry)] = tracker.due(10.0)
    tracker.hold(key, entry, "inotify", now=10.0, recheck_at=20.0)
    tracker.observe("a", obs(size=200), now=15.0, settle_seconds=SETTLE)  # the writer wrote
    assert tracker.held() == 0 and tracker.pending()["a"].held is None
    assert tracker.waiting_with_content() == 1
    tracker.observe("a", obs(size=200), now=24.0, settle_seconds=SETTLE)
    assert _due(tracker, 24.0) == []
    tracker.observe("a", obs(size=200), now=25.0, settle_seconds=SETTLE)
    assert _due(tracker, 25.0) == [("a", obs(size=200))]
    assert len(tracker) == 0 and tracker.held() == 0
