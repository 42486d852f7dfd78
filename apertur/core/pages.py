"""Numbered pages for the portal's tables (the API uses cursors: apertur/api/pagination.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.paginator import Paginator

T = TypeVar("T")
PAGE_SIZE = 25  # rows of a portal table page unless the table says otherwise


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: list[T]
    number: int
    num_pages: int
    count: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def previous_number(self) -> int:
        return self.number - 1

    @property
    def next_number(self) -> int:
        return self.number + 1


def page_of(
    items: Any,
    *,
    page: int | str | None,
    size: int,
    rows: Callable[[Iterable[Any]], Iterable[T]],
    late_join: bool = False,
    late_rows: Any = None,
    count: int | None = None,
) -> Page[T]:
    """Page ``page`` of ``items`` (a queryset), ``size`` rows, turned into ``rows``; an invalid or too large page
    number gives the nearest page.

    ``late_join``: read the page's primary keys first (sorting and skipping over the queryset without its
    ``select_related`` joins), then only those rows with their joins. An OFFSET over a joined queryset builds
    every skipped row (page 40 of a partner's earnings joined 1,000 payments, projects and customers to show
    25); one more query, the same rows in the same order. ``late_rows``: the queryset those rows are read from by
    primary key (default ``items``), e.g. ``items`` without the filters that chose the page, which need not be
    tested again on 25 known keys; it must give each of those rows exactly as ``items`` would.

    ``count``: the number of items when the caller already has it (read with the object that owns them), which
    spares the ``COUNT(*)`` query. It is trusted, not checked: it must be exactly the number of ``items`` (too
    large, and the last pages come out empty; too small, and the last rows cannot be reached)."""
    paginator = Paginator(items, size)
    if count is not None:
        paginator.count = count  # a cached_property: set, it is never computed
    found = paginator.get_page(_at_least_one(page))
    objects: Iterable[Any] = found.object_list
    if late_join:
        start = (found.number - 1) * size
        ids = list(items[start : start + size].values_list("pk", flat=True))
        source = items if late_rows is None else late_rows
        by_id = {obj.pk: obj for obj in source.filter(pk__in=ids)} if ids else {}
        objects = [by_id[pk] for pk in ids if pk in by_id]
    return Page(
        rows=list(rows(objects)),
        number=found.number,
        num_pages=found.paginator.num_pages,
        count=found.paginator.count,
    )


def _at_least_one(page: int | str | None) -> int | str | None:
    """``page``, or 1 when it is a number under 1: ``Paginator.get_page`` gives the last page for those, which is
    not the nearest one."""
    try:
        number = int(page)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return page  # not a number: get_page gives the first page
    return max(number, 1)
