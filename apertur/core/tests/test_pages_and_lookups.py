"""``core.pages.page_of`` given its count, and the ``AnyOf`` lookup (the same rows as ``__in``)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from apertur.accounts.models import User
from apertur.core.lookups import AnyOf
from apertur.core.pages import page_of
from apertur.testing import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def users() -> list[User]:
    return [make_user(f"{name}@anyof.example") for name in ("ann", "abe", "bob", "cyd", "amy")]


def test_any_of_a_subquery_is_in_a_subquery(users: list[User]) -> None:
    some = User.objects.filter(email__startswith="a", email__endswith="@anyof.example").values("pk")
    expected = list(User.objects.filter(pk__in=some).order_by("pk"))
    assert len(expected) == 3
    assert list(User.objects.filter(AnyOf(F("pk"), some)).order_by("pk")) == expected
    assert list(User.objects.filter(AnyOf(F("pk"), some.distinct())).order_by("pk")) == expected
    nobody = User.objects.filter(email="nobody@anyof.example").values("pk")
    assert not User.objects.filter(AnyOf(F("pk"), nobody)).exists()
    # A queryset of whole rows, ordered, works as with __in: its primary key, its ordering dropped.
    whole = User.objects.filter(email__startswith="a", email__endswith="@anyof.example").order_by("-email")
    assert list(User.objects.filter(AnyOf(F("pk"), whole)).order_by("pk")) == expected


def test_any_of_a_list_is_in_a_list(users: list[User]) -> None:
    wanted = [users[0].pk, users[2].pk]
    assert list(User.objects.filter(AnyOf(F("pk"), wanted)).order_by("pk")) == [users[0], users[2]]


def test_page_of_given_its_count_does_not_count(users: list[User]) -> None:
    items = User.objects.filter(email__endswith="@anyof.example").order_by("email")

    def page(n: int, **kwargs: int) -> tuple[object, int]:
        with CaptureQueriesContext(connection) as ctx:
            found = page_of(items, page=n, size=2, rows=lambda rows: [u.email for u in rows], **kwargs)
        return found, len(ctx.captured_queries)

    for n in (1, 3, 99):
        counted, with_count = page(n)
        given, without_count = page(n, count=5)
        assert given == counted
        assert without_count == with_count - 1
    assert page(99, count=5)[0].number == 3  # type: ignore[attr-defined]  # too large: the last page
    # The count is trusted: a caller must give the exact number (a larger one would promise empty pages).
    assert page(4, count=9)[0].rows == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("asked", "number"), [(0, 1), (-3, 1), ("0", 1), ("-1", 1), ("nope", 1), (2, 2), (99, 3)])
def test_page_of_gives_the_nearest_page(users: list[User], asked: int | str, number: int) -> None:
    """A page number under 1 is nearest the first page, not the last (Paginator.get_page gives the last one)."""
    items = User.objects.filter(email__endswith="@anyof.example").order_by("email")
    assert page_of(items, page=asked, size=2, rows=list).number == number
