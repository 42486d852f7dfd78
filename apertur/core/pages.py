"""Numbered pages for the portal's tables (the API uses cursors: apertur/api/pagination.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.paginator import Paginator

T = TypeVar("T")


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


def page_of(items: Any, *, page: int | str | None, size: int, rows: Callable[[Iterable[Any]], Iterable[T]]) -> Page[T]:
    """Page ``page`` of ``items`` (a queryset), ``size`` rows, turned into ``rows``; an invalid or too large page
    number gives the nearest page."""
    found = Paginator(items, size).get_page(page)
    return Page(
        rows=list(rows(found.object_list)),
        number=found.number,
        num_pages=found.paginator.num_pages,
        count=found.paginator.count,
    )
