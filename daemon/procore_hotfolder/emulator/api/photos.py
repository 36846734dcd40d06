"""Photos: Create/List Images and the albums Procore calls Image Categories."""

from __future__ import annotations

import datetime
import math
from typing import Any

from .. import views
from ..records import SERVICE_ACCOUNT, Album, Image
from ..state import EmulatorState
from ..wire import ApiError, Reply, json_reply
from .access import query_project
from .request import ApiRequest, body_object, page, positive_int, unprocessable
from .uploads import usable_upload

_SERVICE_ACCOUNT_ID = SERVICE_ACCOUNT["id"]


def album_for(state: EmulatorState, request: ApiRequest, project_id: int, raw: Any) -> Album:
    """The album (image category) ``raw`` of this project; made up on first use while
    ``state.auto_create`` holds, else 422. What Procore answers for an unknown
    ``image_category_id`` is not documented: the least convenient reading is a refusal."""
    album_id = positive_int(raw)
    if album_id is None:
        raise unprocessable("image_category_id", "is invalid")
    with state.lock:
        album = state.albums.get(album_id)
        if album is None and state.auto_create:
            album = Album(album_id, request.company_id, project_id, f"Album {album_id}", False,
                          request.now)
            state.albums[album_id] = album
        if album is None or (album.company_id, album.project_id) != (
            request.company_id, project_id,
        ):
            raise unprocessable("image_category", "must exist")
        return album


def create_image(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """Create Image: top-level ``upload_uuid`` and ``image_name`` and an ``image`` object with
    at least one attribute. ``image_name`` is "Required when using an upload_uuid" (Procore's
    OpenAPI), so it is refused when missing; it becomes the image's ``filename`` as given
    (Procore documents no other derivation). The answer is the ``Image`` schema, 201."""
    project_id = query_project(state, request, "photos")
    body = request.body if isinstance(request.body, dict) else {}
    attributes = body.get("image")
    if not isinstance(attributes, dict) or not attributes:
        raise unprocessable("image", "can't be blank")
    name = body.get("image_name")
    if not isinstance(name, str) or not name.strip():
        raise unprocessable("image_name", "can't be blank")
    category = attributes.get("image_category_id")
    album = None if category is None else album_for(state, request, project_id, category)
    with state.lock:
        record = usable_upload(state, request, project_id, body.get("upload_uuid"))
        image = Image(
            state.next_id("image"),
            request.company_id,
            project_id,
            name,
            album.id if album else None,
            record.uuid,
            record.stored_size or 0,
            dict(attributes),
            request.now,
        )
        state.images[image.id] = image
        state.association_counts[record.uuid] += 1
        return json_reply(201, views.image_view(state, image))


def _instant(text: str) -> tuple[float, bool]:
    """An ISO-8601 date or date-time as (Unix seconds, whether it was a bare date)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = datetime.date.fromisoformat(value)
            moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
            return moment.timestamp(), True
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, {"errors": {"filters": [f"invalid date {value!r}"]}}) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp(), False


def time_range(raw: str) -> tuple[float, float]:
    """``A...B`` (ISO-8601 dates or date-times, Procore's range form) as [start, end) over
    whole seconds, both ends included (a bare date as the end includes that whole day)."""
    first, dots, second = raw.partition("...")
    if not dots:
        second = first
    start, _ = _instant(first)
    end, whole_day = _instant(second)
    return start, end + (86_400 if whole_day else 1)


_IMAGE_SORTS = {
    "created_at": lambda i: (i.created_at, i.id),
    "updated_at": lambda i: (i.created_at, i.id),
    "taken_at": lambda i: (i.created_at, i.id),
    "id": lambda i: (i.id,),
    "filename": lambda i: (i.name, i.id),
    "size": lambda i: (i.size, i.id),
}


def list_images(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """List Images, paginated. Filters (Procore's OpenAPI, List Images: see
    ``docs/ProjectManagementPhotosImagesApi.md`` of the generated procore_sdk):
    ``image_category_id`` (a top-level parameter), ``filters[created_at]`` (``A...B``),
    ``filters[uploader_id]`` (our spec), ``filters[query]`` (filename and description),
    ``filters[id]`` (comma-separated); ``sort`` names a field, ``-`` first for reverse. A
    parameter Procore does not document (``filters[image_category_id]`` among them) is
    ignored, as Rails ignores unknown parameters: the least convenient reading, the list
    comes back unfiltered. With no ``sort`` the order is not documented: newest first
    here, so pages shift while images are added. Procore does not promise that ``sort`` and
    ``filters[created_at]`` are honoured: ``faults.images_ignore_sort_and_dates`` makes
    them ignored (every image, oldest first)."""
    project_id = query_project(state, request, "photos")
    query = request.query
    wanted = positive_int(query.get("image_category_id"))
    created = query.get("filters[created_at]")
    sort = query.get("sort", "-created_at")
    if state.faults.images_ignore_sort_and_dates:
        created, sort = None, "id"
    window = time_range(created) if created else None
    uploader = query.get("filters[uploader_id]")
    text = query.get("filters[query]", "").lower()
    ids_raw = query.get("filters[id]")
    ids = {int(v) for v in ids_raw.split(",") if v.strip().isdigit()} if ids_raw else None
    key = _IMAGE_SORTS.get(sort.removeprefix("-"))
    if key is None:
        raise ApiError(400, {"errors": {"sort": ["is invalid"]}})
    with state.lock:
        chosen = [
            i
            for i in state.images.values()
            if (i.company_id, i.project_id) == (request.company_id, project_id)
            and (wanted is None or i.image_category_id == wanted)
            and (window is None or window[0] <= math.floor(i.created_at) < window[1])
            and (uploader is None or uploader == str(_SERVICE_ACCOUNT_ID))
            and (not text or text in i.name.lower()
                 or text in str(i.attributes.get("description") or "").lower())
            and (ids is None or i.id in ids)
        ]
        chosen.sort(key=key, reverse=sort.startswith("-"))
        images = [views.image_view(state, i) for i in chosen]
    return page(state, request, images)


def list_albums(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """List Image Categories (albums) of a project, ``GET /rest/v1.0/image_categories``,
    paginated, in ``position`` then id order."""
    project_id = query_project(state, request, "photos")
    with state.lock:
        albums = sorted(
            (a for a in state.albums.values()
             if (a.company_id, a.project_id) == (request.company_id, project_id)),
            key=lambda a: (a.position, a.id),
        )
        items = [views.album_view(state, a) for a in albums]
    return page(state, request, items)


def show_album(state: EmulatorState, request: ApiRequest, args: tuple[str, ...]) -> Reply:
    project_id = query_project(state, request, "photos")
    with state.lock:
        album = state.albums.get(int(args[0]))
        if album is None or (album.company_id, album.project_id) != (
            request.company_id, project_id,
        ):
            raise ApiError(404, {"errors": {"base": ["Image category not found"]}})
        return json_reply(200, views.album_view(state, album))


def create_album(state: EmulatorState, request: ApiRequest, _: tuple[str, ...]) -> Reply:
    """Create Image Category, ``POST /rest/v1.0/image_categories?project_id=``, as Procore's
    OpenAPI has it (``RestV10ImageCategoriesPost``, "Create a new Photo Album (Category) for
    Images"): ``project_id`` a required query parameter; the body's ``image_category``
    object required, with ``name`` (required), ``private`` (boolean, default false) and
    ``album_cover_id``; 201 with ``id``, ``name``, ``position``, ``album_cover_id``,
    ``created_at``, ``private``, ``count``. Procore's own Elixir SDK sends ``project_id`` in
    the body as well (``lib/procore/resources/image_categories.ex``); it is accepted and
    must agree. Not documented, so the least convenient readings: a second album of a name
    that exists is created (no uniqueness: a client must look before it creates, and never
    repeat a create blindly), and a ``private`` that is not a boolean is refused (422)."""
    project_id = query_project(state, request, "photos")
    spec = body_object(request.body, "image_category")
    in_body = request.body.get("project_id") if isinstance(request.body, dict) else None
    if in_body is not None and positive_int(in_body) != project_id:
        raise unprocessable("project_id", "does not match the project_id parameter")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise unprocessable("name", "can't be blank")
    private = spec.get("private", False)
    if not isinstance(private, bool):
        raise unprocessable("private", "must be true or false")
    album = state.add_album(request.company_id, project_id, name, private, request.now)
    with state.lock:
        view = views.album_view(state, album)
        view["album_cover_id"] = None
        return json_reply(201, view)
