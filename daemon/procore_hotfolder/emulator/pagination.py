"""Procore's list pagination: ``page``/``per_page`` in, ``Total``, ``Per-Page`` and ``Link`` out.

Source: Procore's "Using Pagination" page (``procore/documentation``,
``plan_your_app/pagination.md``, formerly ``api_essentials/pagination.md``;
developers.procore.com/documentation/pagination):

- ``page`` is 1-based, ``per_page`` the page size; the older page stated a maximum of 10,000,
  the current one only recommends at most 2,000. We cap at 2,000 (the smaller reading).
- Answers carry ``Total`` (all items), ``Per-Page`` and a ``Link`` header of RFC 5988 links
  whose URLs are absolute.
- The link URLs of Procore's example carry ``page`` and ``per_page`` ONLY: the request was
  ``/rest/v1.0/punch_items?project_id=14406&per_page=5&page=3``, its links are
  ``/rest/v1.0/punch_items?page=4&per_page=5``. So the links keep the path and drop every
  other parameter (``project_id``, filters, ``sort``): a client that follows a link as it
  is loses its filters; it must carry its own query and take over only ``page`` (and
  ``per_page``) from the link.
- "If page=1, the Link header includes next and last. If page=2, ... first, next, and last.
  If page=3 ..., first, prev, next, and last": so ``prev`` is left out when it would equal
  ``first``. "On the last page, next is omitted"; ``last`` is left out there too (like the
  api-pagination gem Procore's headers come from: the smaller header), and a single-page
  list has no ``Link`` header at all.

Not documented, so the least convenient reading: the default ``per_page`` is small
(``DEFAULT_PER_PAGE``), so a client that does not page misses items; a ``page`` or
``per_page`` that is not a positive integer answers 400; a page past the end is an empty list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from .wire import ApiError

T = TypeVar("T")

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 2_000


def _positive(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, {"errors": {name: ["must be a positive integer"]}})
    return int(raw)


def page_url(base_url: str, path: str, per_page: int, page: int) -> str:
    """The absolute URL of ``page`` as Procore's example writes it: the request's path with
    ``page`` and ``per_page`` only (the request's other parameters are not repeated)."""
    return f"{base_url}{path}?page={page}&per_page={per_page}"


def paginate(
    items: Sequence[T],
    query: dict[str, str],
    *,
    base_url: str,
    path: str,
    default_per_page: int = DEFAULT_PER_PAGE,
) -> tuple[list[T], dict[str, str]]:
    """One page of ``items`` and its headers (``Total``, ``Per-Page``, maybe ``Link``).

    Raises ApiError(400) when ``page`` or ``per_page`` is not a positive integer.
    """
    per_page = min(_positive(query.get("per_page"), "per_page", default_per_page), MAX_PER_PAGE)
    page = _positive(query.get("page"), "page", 1)
    last = max(1, math.ceil(len(items) / per_page))
    start = (page - 1) * per_page
    chosen = list(items[start : start + per_page])
    headers = {"Total": str(len(items)), "Per-Page": str(per_page)}
    links: list[tuple[int, str]] = []
    if page > 1:
        links.append((1, "first"))
    if page > 2:  # on page 2 "prev" would equal "first": Procore leaves it out
        links.append((min(page - 1, last), "prev"))
    if page < last:
        links.append((page + 1, "next"))
        links.append((last, "last"))
    if links:
        headers["Link"] = ", ".join(
            f'<{page_url(base_url, path, per_page, number)}>; rel="{rel}"'
            for number, rel in links
        )
    return chosen, headers
