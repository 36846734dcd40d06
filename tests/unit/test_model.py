"""The state table and backoff arithmetic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procore_hotfolder.errors import JournalError
from procore_hotfolder.model import (
    ALLOWED_MOVES,
    MAX_SEGMENTS,
    TERMINAL,
    Backoff,
    FileState,
    check_move,
    display_path,
    display_values,
    procore_name,
    segment_size_for,
    ticket_reusable,
)


def test_terminal_states_have_no_way_out_but_retry() -> None:
    for state in TERMINAL:
        allowed = ALLOWED_MOVES[state]
        assert allowed <= {FileState.RETRIED}, state


def test_illegal_move_raises() -> None:
    check_move(FileState.QUEUED, FileState.UPLOADING)
    with pytest.raises(JournalError):
        check_move(FileState.QUEUED, FileState.ARCHIVED)
    with pytest.raises(JournalError):
        check_move(FileState.ARCHIVED, FileState.QUEUED)


def test_an_uploaded_file_can_never_fail() -> None:
    for state in (FileState.ASSOCIATED, FileState.LEDGERED):
        assert FileState.FAILED not in ALLOWED_MOVES[state]


def test_backoff_grows_caps_and_honours_server_delay() -> None:
    backoff = Backoff(base=2.0, cap=60.0, jitter=0.0)
    assert [backoff.delay(n, rand=0.5) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff.delay(30, rand=0.5) == 60.0
    assert backoff.delay(1, rand=0.5, retry_after=42.0) == 42.0
    jittered = Backoff(base=10.0, cap=100.0, jitter=0.5)
    assert jittered.delay(1, rand=0.0) == 5.0
    assert jittered.delay(1, rand=0.999) == pytest.approx(14.99)


def test_ticket_reuse_window() -> None:
    assert ticket_reusable(1000.0, 1000.0 + 60)
    assert not ticket_reusable(1000.0, 1000.0 + 3600)
    assert not ticket_reusable(1000.0, 900.0)


def test_segment_size_grows_to_stay_within_s3s_part_limit() -> None:
    mib, gib = 1024 * 1024, 1024 ** 3
    assert segment_size_for(1 * gib, 16 * mib) == 16 * mib
    assert segment_size_for(MAX_SEGMENTS * 16 * mib, 16 * mib) == 16 * mib  # exactly fits
    grown = segment_size_for(500 * gib, 16 * mib)
    assert grown % mib == 0 and grown > 16 * mib
    assert -(-500 * gib // grown) <= MAX_SEGMENTS
    assert -(-500 * gib // (grown - mib)) > MAX_SEGMENTS  # the smallest whole MiB that fits


def test_an_undecodable_name_is_displayed_one_way() -> None:
    odd = os.fsdecode(b"caf\xe9 \xff.pdf")
    assert display_path(odd) == "caf\\xe9 \\xff.pdf"
    assert display_path(Path("/d") / odd) == "/d/caf\\xe9 \\xff.pdf"
    assert display_path("Ünïcødé.pdf") == "Ünïcødé.pdf"  # valid UTF-8 is left alone
    assert display_values({"a": [odd, 3], "b": (Path(odd),), "c": None}) == {
        "a": ["caf\\xe9 \\xff.pdf", 3], "b": ["caf\\xe9 \\xff.pdf"], "c": None}


def test_procore_is_given_the_name_with_u_fffd_and_never_a_backslash() -> None:
    odd = os.fsdecode(b"caf\xe9 \xff.pdf")
    assert procore_name(Path("/d") / odd) == "caf\ufffd \ufffd.pdf"
    assert procore_name(Path("/d/Ünïcødé.pdf")) == "Ünïcødé.pdf"
