"""The stored upload ticket is a versioned value: the journal keeps it across releases."""

from __future__ import annotations

import json

import pytest

from procore_hotfolder.procore import SegmentTicket, UploadTicket
from procore_hotfolder.procore.tickets import TICKET_VERSION

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
