"""The stored upload ticket is a versioned value: the journal keeps it across releases."""

from __future__ import annotations

import json

import pytest

from procore_hotfolder.procore import SegmentSpec, SegmentTicket, UploadTicket
from procore_hotfolder.procore.tickets import (
    SEGMENTS_VERSION,
    TICKET_VERSION,
    segments_from_json,
    segments_to_json,
)

TICKET = UploadTicket(uuid="01J0UPLOAD", url="https://storage.invalid/bucket",
                      fields=(("key", "uploads/01J0UPLOAD"), ("policy", "p")),
                      segments=(SegmentTicket(number=1, url="https://storage.invalid/1",
                                              headers=(("Content-MD5", "m"),)),),
                      created_at=1_700_000_000.5)


def test_the_stored_form_carries_its_version_and_reads_back() -> None:
    text = TICKET.to_json()
    assert json.loads(text)["v"] == TICKET_VERSION
    assert UploadTicket.from_json(text) == TICKET


def test_a_row_written_before_versions_reads_as_version_1() -> None:
    raw = json.loads(TICKET.to_json())
    del raw["v"]
    assert UploadTicket.from_json(json.dumps(raw)) == TICKET


@pytest.mark.parametrize("text", [
    json.dumps({**json.loads(TICKET.to_json()), "v": TICKET_VERSION + 1}),
    '{"url": null}',
    "not json",
])
def test_an_unknown_version_or_a_malformed_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="upload ticket"):
        UploadTicket.from_json(text)


SPECS = [SegmentSpec(size=5 * 2**20, sha256="a" * 64, md5="b" * 32),
         SegmentSpec(size=10, sha256="c" * 64)]


def test_segments_are_stored_with_their_version_and_read_back() -> None:
    text = segments_to_json(SPECS)
    assert json.loads(text)["v"] == SEGMENTS_VERSION
    assert segments_from_json(text) == SPECS


def test_segments_written_before_versions_are_a_bare_list() -> None:
    old = json.dumps([s.__dict__ for s in SPECS])  # what the journal held before tags
    assert segments_from_json(old) == SPECS


@pytest.mark.parametrize("text", ['{"v": 2, "segments": []}', '{"v": 1}', '"x"'])
def test_unknown_or_malformed_segments_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="segments"):
        segments_from_json(text)
