"""Lists as Procore serves them: pagination headers, Photos, projects and albums."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from procore_hotfolder.emulator import Emulator
from procore_hotfolder.emulator.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE

from .support import COMPANY, PROJECT, Client

_LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def links(response: requests.Response) -> dict[str, str]:
    return {rel: url for url, rel in _LINK.findall(response.headers.get("Link", ""))}


def make_image(client: Client, name: str, album: int | None = None,
               project: int = PROJECT) -> dict[str, Any]:
    uuid = client.upload_file(name.encode(), project=project)
    image: dict[str, Any] = {"image_category_id": album} if album else {"description": ""}
    response = client.call("POST", f"/rest/v1.0/images?project_id={project}",
                           json={"upload_uuid": uuid, "image_name": name, "image": image})
    assert response.status_code == 201, response.text
    return dict(response.json())


def follow(client: Client, path: str) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, following ``next`` the way a client must: its own path and
    query, with the link's ``page`` and ``per_page`` taken over; (items, pages fetched)."""
    items: list[dict[str, Any]] = []
    base, _, query = path.partition("?")
    params = dict(parse_qsl(query))
    pages = 0
    while True:
        response = client.call("GET", f"{base}?{urlencode(params)}")
        assert response.status_code == 200, response.text
        items.extend(response.json())
        pages += 1
        following = links(response).get("next")
        if following is None:
            return items, pages
        assert following.startswith(client.emu.url)
        linked = dict(parse_qsl(urlsplit(following).query))
        params.update(page=linked["page"], per_page=linked["per_page"])


def test_pagination_headers_and_links(emu: Emulator, client: Client) -> None:
    made = [make_image(client, f"p{n}.jpg") for n in range(7)]
    path = f"/rest/v1.0/images?project_id={PROJECT}&per_page=2&sort=id"
    first = client.call("GET", path)
    assert first.headers["Total"] == "7"
    assert first.headers["Per-Page"] == "2"
    assert [i["id"] for i in first.json()] == [m["id"] for m in made[:2]]
    assert set(links(first)) == {"next", "last"}  # page 1: only next and last (Procore's docs)
    next_url = links(first)["next"]
    split = urlsplit(next_url)
    assert f"{split.scheme}://{split.netloc}" == emu.url
    assert split.path == "/rest/v1.0/images"
    # Procore's example: the links carry page and per_page only, not the request's filters
    assert parse_qsl(split.query) == [("page", "2"), ("per_page", "2")]
    assert dict(parse_qsl(urlsplit(links(first)["last"]).query))["page"] == "4"
    second = client.call("GET", path + "&page=2")
    assert set(links(second)) == {"first", "next", "last"}  # page 2: prev would be first
    third = client.call("GET", path + "&page=3")
    assert set(links(third)) == {"first", "prev", "next", "last"}
    assert links(third)["prev"] == f"{emu.url}/rest/v1.0/images?page=2&per_page=2"
    assert links(third)["next"] == f"{emu.url}/rest/v1.0/images?page=4&per_page=2"
    unfiltered = client.call("GET", links(first)["next"].removeprefix(emu.url))
    assert unfiltered.status_code == 400  # followed as given, the link lost its project_id
    last = client.call("GET", path + "&page=4")
    assert len(last.json()) == 1
    assert "next" not in links(last)
    assert set(links(last)) == {"first", "prev"}
    beyond = client.call("GET", path + "&page=9")
    assert beyond.json() == []
    items, pages = follow(client, path)
    assert pages == 4
    assert [i["id"] for i in items] == [m["id"] for m in made]
    bad = client.call("GET", path.replace("per_page=2", "per_page=0"))
    assert bad.status_code == 400


def test_default_page_is_small_and_per_page_is_capped(emu: Emulator, client: Client) -> None:
    for n in range(DEFAULT_PER_PAGE + 1):
        make_image(client, f"d{n}.jpg")
    unpaged = client.call("GET", f"/rest/v1.0/images?project_id={PROJECT}")
    assert len(unpaged.json()) == DEFAULT_PER_PAGE  # a client that does not page misses one
    assert unpaged.headers["Total"] == str(DEFAULT_PER_PAGE + 1)
    assert "next" in links(unpaged)
    huge = client.call("GET", f"/rest/v1.0/images?project_id={PROJECT}&per_page=999999")
    assert huge.headers["Per-Page"] == str(MAX_PER_PAGE)
    assert "Link" not in huge.headers  # one page: no links at all
    companies = client.call("GET", "/rest/v1.0/companies")
    assert companies.headers["Total"] == "1"


def test_image_shape_is_procores(emu: Emulator, client: Client) -> None:
    uuid = client.upload_file(b"jpeg bytes")
    created = client.call("POST", f"/rest/v1.0/images?project_id={PROJECT}", json={
        "upload_uuid": uuid, "image_name": "Site 1.jpg", "image": {"description": ""}})
    assert created.status_code == 201
    listed = client.call("GET", f"/rest/v1.0/images?project_id={PROJECT}").json()
    for image in (created.json(), listed[0]):
        assert image["filename"] == "Site 1.jpg"
        assert image["size"] == len(b"jpeg bytes")
        assert image["image_category_id"] is None
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", image["created_at"])
        assert set(image["uploader"]) >= {"id", "name"}
        assert "name" not in image
        assert "image_name" not in image
        assert uuid not in json.dumps(image)
    nameless = client.call("POST", f"/rest/v1.0/images?project_id={PROJECT}", json={
        "upload_uuid": client.upload_file(b"x"), "image": {"description": ""}})
    assert nameless.status_code == 422
    assert nameless.json() == {"errors": {"image_name": ["can't be blank"]}}


def test_image_filters_and_sort(emu: Emulator, client: Client) -> None:
    album = emu.create_album(COMPANY, PROJECT, "Site")
    older = make_image(client, "a.jpg", album)
    with emu.lock:  # an image from yesterday
        emu.state.images[older["id"]].created_at -= 86_400
    newer = make_image(client, "b.jpg", album)
    loose = make_image(client, "c.jpg")
    base = f"/rest/v1.0/images?project_id={PROJECT}"

    def ids(query: str) -> list[int]:
        response = client.call("GET", base + query)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()]

    assert ids("") == [loose["id"], newer["id"], older["id"]]  # undocumented: newest first
    assert ids("&sort=created_at") == [older["id"], newer["id"], loose["id"]]
    assert ids(f"&image_category_id={album}&sort=id") == [older["id"], newer["id"]]
    assert ids(f"&image_category_id={album}&sort=-id") == [newer["id"], older["id"]]
    # not documented: ignored, so the whole project's images come back
    assert len(ids(f"&filters[image_category_id]={album}")) == 3
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert set(ids(f"&filters[created_at]={today}...{today}")) == {newer["id"], loose["id"]}
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert set(ids(f"&filters[created_at]={start}...{end}")) == {newer["id"], loose["id"]}
    uploader = newer["uploader"]["id"]
    assert len(ids(f"&filters[uploader_id]={uploader}")) == 3
    assert ids(f"&filters[uploader_id]={uploader + 1}") == []
    assert ids("&filters[query]=b.jp") == [newer["id"]]
    assert client.call("GET", base + "&sort=bogus").status_code == 400
    assert client.call("GET", base + "&filters[created_at]=yesterday").status_code == 400
    # Procore promises neither the sort nor the date filter: switched off, every image
    # comes back oldest first
    emu.faults.images_ignore_sort_and_dates = True
    assert ids(f"&sort=-created_at&filters[created_at]={start}...{end}") == [
        older["id"], newer["id"], loose["id"]]
    assert ids(f"&image_category_id={album}&sort=-id") == [older["id"], newer["id"]]


def test_projects_and_albums_discovery(emu: Emulator, client: Client) -> None:
    emu.auto_create = False
    first = emu.create_project(COMPANY, "Tower", "T-1")
    second = emu.create_project(COMPANY, "Bridge", "B-7")
    closed = emu.create_project(COMPANY, "Old Job", "O-1", active=False)
    emu.create_project(COMPANY + 1, "Elsewhere")
    for version in ("v1.0", "v1.1"):
        listed = client.call("GET", f"/rest/{version}/projects?company_id={COMPANY}")
        assert listed.status_code == 200
        assert [p["id"] for p in listed.json()] == [first, second]  # active ones only
        assert listed.headers["Total"] == "2"
        tower = listed.json()[0]
        assert (tower["name"], tower["project_number"], tower["active"]) == ("Tower", "T-1", True)
        assert tower["company"]["id"] == COMPANY
        assert first > 2**32
    every = client.call("GET", f"/rest/v1.1/projects?company_id={COMPANY}&filters[by_status]=All")
    assert [p["id"] for p in every.json()] == [first, second, closed]
    named = client.call("GET", f"/rest/v1.1/projects?company_id={COMPANY}&filters[name]=brid")
    assert [p["id"] for p in named.json()] == [second]
    shown = client.call("GET", f"/rest/v1.0/projects/{second}?company_id={COMPANY}")
    assert shown.json()["name"] == "Bridge"
    assert client.call("GET", "/rest/v1.0/projects").status_code == 400
    assert client.call("GET", f"/rest/v1.0/projects/{second}?company_id={COMPANY}"
                              ).headers["x-request-id"]
    # Without auto_create an unknown project does not exist, everywhere.
    unknown = first + 1000
    assert client.call("GET", f"/rest/v1.0/projects/{unknown}?company_id={COMPANY}"
                       ).status_code == 404
    assert client.call("GET", f"/rest/v1.0/folders?project_id={unknown}").status_code == 404
    assert client.call("POST", f"/rest/v1.1/projects/{unknown}/uploads",
                       json={"response_filename": "a.pdf"}).status_code == 404
    album = emu.create_album(COMPANY, first, "Progress")
    requests.post(emu.url + "/_emulator/albums",
                  json={"company_id": COMPANY, "project_id": first, "name": "Handover"})
    made = client.call("POST", f"/rest/v1.0/image_categories?project_id={first}",
                       json={"image_category": {"name": "Snags"}})
    assert made.status_code == 201
    albums = client.call("GET", f"/rest/v1.0/image_categories?project_id={first}")
    assert [a["name"] for a in albums.json()] == ["Progress", "Handover", "Snags"]
    assert albums.headers["Per-Page"] == str(DEFAULT_PER_PAGE)
    make_image(client, "in-album.jpg", album, project=first)
    one = client.call("GET", f"/rest/v1.0/image_categories/{album}?project_id={first}").json()
    assert (one["id"], one["name"], one["count"]) == (album, "Progress", 1)
    stranger = client.upload_file(b"x", project=first)
    refused = client.call("POST", f"/rest/v1.0/images?project_id={first}", json={
        "upload_uuid": stranger, "image_name": "x.jpg", "image": {"image_category_id": 77}})
    assert refused.status_code == 422  # no such album while auto_create is off
    emu.remove_project(COMPANY, second)
    assert client.call("GET", f"/rest/v1.0/projects/{second}?company_id={COMPANY}"
                       ).status_code == 404


def test_admin_setup_of_a_company(emu: Emulator, client: Client) -> None:
    made = requests.post(emu.url + "/_emulator/projects",
                         json={"company_id": COMPANY, "name": "Depot", "project_number": "D-2"})
    assert made.status_code == 201
    project = made.json()["id"]
    folder = requests.post(emu.url + "/_emulator/folders",
                           json={"company_id": COMPANY, "project_id": project, "name": "Scans"})
    assert folder.status_code == 201
    again = requests.post(emu.url + "/_emulator/folders",
                          json={"company_id": COMPANY, "project_id": project, "name": "Scans"})
    assert again.status_code == 422
    assert again.json() == {"errors": {"name": ["has already been taken"]}}
    sub = emu.create_folder(COMPANY, project, "2026", parent_id=folder.json()["id"])
    root = client.call("GET", f"/rest/v1.0/folders?project_id={project}").json()
    assert [f["name"] for f in root["folders"]] == ["Scans"]
    shown = client.call("GET", f"/rest/v1.0/folders/{folder.json()['id']}?project_id={project}")
    assert [f["id"] for f in shown.json()["folders"]] == [sub]
    assert [p["name"] for p in emu.projects] == ["Depot"]
    assert requests.post(emu.url + "/_emulator/projects", json={}).status_code == 400


def test_create_album_as_procore_documents_it(emu: Emulator, client: Client) -> None:
    """Create Image Category: ``image_category`` with its ``name`` required, ``project_id`` a
    query parameter (the body's, if sent, must agree), no uniqueness of names."""
    emu.auto_create = False
    project = emu.create_project(COMPANY, "Tower", "T-1")
    path = f"/rest/v1.0/image_categories?project_id={project}"
    made = client.call("POST", path, json={"image_category": {"name": "Level 2"}})
    assert made.status_code == 201, made.text
    album = made.json()
    assert {"id", "name", "position", "album_cover_id", "created_at", "private",
            "count"} <= set(album)
    assert (album["name"], album["private"], album["count"]) == ("Level 2", False, 0)
    again = client.call("POST", path, json={"image_category": {"name": "Level 2"},
                                            "project_id": project})
    assert again.status_code == 201 and again.json()["id"] != album["id"]
    listed = client.call("GET", path).json()
    assert [a["name"] for a in listed] == ["Level 2", "Level 2"]
    for body, status in [({"name": "Flat"}, 400), ({"image_category": {}}, 422),
                         ({"image_category": {"name": " "}}, 422),
                         ({"image_category": {"name": "x", "private": "yes"}}, 422),
                         ({"image_category": {"name": "x"}, "project_id": project + 1}, 422)]:
        assert client.call("POST", path, json=body).status_code == status, body
    assert client.call("POST", "/rest/v1.0/image_categories",
                       json={"image_category": {"name": "x"}}).status_code == 400


def test_project_numbers_as_procore_shows_them(emu: Emulator, client: Client) -> None:
    """``project_number`` is a string, kept as given (leading zeros); only v1.1 filters by it."""
    emu.auto_create = False
    zero = emu.create_project(COMPANY, "Depot", "0042")
    plain = emu.create_project(COMPANY, "Yard", "42")
    emu.create_project(COMPANY + 1, "Elsewhere", "0042")
    shown = client.call("GET", f"/rest/v1.0/projects/{zero}?company_id={COMPANY}").json()
    assert shown["project_number"] == "0042"
    v10 = client.call("GET", f"/rest/v1.0/projects?company_id={COMPANY}"
                             "&filters[project_number]=0042")
    assert [p["id"] for p in v10.json()] == [zero, plain]  # v1.0 ignores the filter
    v11 = client.call("GET", f"/rest/v1.1/projects?company_id={COMPANY}"
                             "&filters[project_number]=0042")
    assert [p["id"] for p in v11.json()] == [zero]
