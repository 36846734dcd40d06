"""The pure parts of filing: which listed record may be ours, and the plans' JSON."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from procore_hotfolder.destinations import PLAN_VERSION, DocumentPlan, PhotoPlan
from procore_hotfolder.destinations.documents import _latest_number, _same_name
from procore_hotfolder.destinations.photos import _newer_than
from procore_hotfolder.destinations.protocol import is_name_clash
from procore_hotfolder.errors import ValidationFailed


def _items(*created: str) -> Iterator[Mapping[str, Any]]:
    return iter([{"id": i, "created_at": c} for i, c in enumerate(created)])


T = 1_800_000_000  # 2027-01-15T08:00:00Z


def test_newest_first_listing_stops_at_the_first_older_item() -> None:
    listed = _items("2027-01-15T08:00:05Z", "2027-01-15T08:00:00Z", "2027-01-15T07:59:59Z",
                    "2027-01-15T09:00:00Z")  # the last is never read
    assert [i["id"] for i in _newer_than(listed, T)] == [0, 1]
    # Nothing new at all: stops once two items show the order.
    listed = _items("2027-01-15T07:59:59Z", "2027-01-15T07:00:00Z", "2027-01-15T09:00:00Z")
    assert list(_newer_than(listed, T)) == []


def test_a_listing_out_of_order_is_filtered_without_stopping() -> None:
    listed = _items("2027-01-15T07:00:00Z", "2027-01-15T08:00:01Z", "2027-01-15T06:00:00Z",
                    "2027-01-15T08:30:00Z")
    assert [i["id"] for i in _newer_than(listed, T)] == [1, 3]


def test_renamed_names_match_only_when_procore_may_have_renamed() -> None:
    assert _same_name("plan.pdf", "plan.pdf", renamed=False)
    assert not _same_name("plan (1).pdf", "plan.pdf", renamed=False)
    assert _same_name("plan (1).pdf", "plan.pdf", renamed=True)
    assert not _same_name("plan (1).dwg", "plan.pdf", renamed=True)
    assert not _same_name("other.pdf", "plan.pdf", renamed=True)
    assert _same_name("README (2)", "README", renamed=True)


def test_latest_version_number_from_numbers_else_count() -> None:
    assert _latest_number({"file_versions": [{"number": 3}]}) == 3  # latest only
    assert _latest_number({"file_versions": [{}, {}]}) == 2
    assert _latest_number({}) == 0


def test_which_422s_may_be_a_name_clash() -> None:
    def error(text: str) -> ValidationFailed:
        return ValidationFailed(f"Procore answered HTTP 422: {text}", status=422)

    assert is_name_clash(error("name has already been taken"))
    assert is_name_clash(error("A file with that name already exists"))
    assert not is_name_clash(error("upload_uuid is invalid"))


def test_plans_carry_their_version_and_kind() -> None:
    photo = PhotoPlan(name="a.jpg", album_id=7, size=10, not_before=1.5)
    assert photo.to_json() == {"v": PLAN_VERSION, "kind": "photos", "name": "a.jpg",
                               "album_id": 7, "size": 10, "not_before": 1.5}
    document = DocumentPlan(parent_id=None, where="Documents", name="x.pdf", size=1,
                            unique_name=False, version_of=None, versions_before=0,
                            not_before=None, mirrored=False)
    raw = document.to_json()
    assert raw["v"] == PLAN_VERSION and raw["kind"] == "documents"
    assert DocumentPlan(**{k: v for k, v in raw.items() if k not in ("v", "kind")}) == document
