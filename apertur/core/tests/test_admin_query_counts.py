"""Admin list pages cost the same number of queries for 3 rows as for 30: a column that reads a related row
(a partner's name is "company (user's email)") must come with its list_select_related."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.referrals.models import Attribution
from apertur.referrals.services import ensure_default_link
from apertur.testing import make_app, make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db


def _partner_with_rows() -> None:
    partner = make_partner()
    make_app(partner)
    ensure_default_link(partner=partner)
    Attribution.objects.create(customer=make_user(), partner=partner, source="referral")


def _queries(browser: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert browser.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/partners/partner/",
        "/admin/referrals/referrallink/",
        "/admin/referrals/attribution/",
        "/admin/oauth/oauthapp/",
        "/admin/accounts/user/",
        "/admin/core/auditevent/",
        "/admin/core/auditevent/?q=partner",  # the search reads the object types, and a subquery of users
    ],
)
def test_an_admin_list_costs_the_same_queries_for_3_rows_as_for_30(url: str) -> None:
    browser = Client()
    browser.force_login(make_staff())
    add: Callable[[], None] = _partner_with_rows
    for _ in range(3):
        add()
    few = _queries(browser, url)
    for _ in range(27):
        add()
    many = _queries(browser, url)
    assert many == few, f"{url}: {few} queries for 3 rows, {many} for 30"


def test_an_attributions_page_costs_the_same_queries_for_3_partners_to_choose_from_as_for_30() -> None:
    """Its partner select names every partner ("company (user's email)")."""
    browser = Client()
    browser.force_login(make_staff())
    for _ in range(3):
        _partner_with_rows()
    url = f"/admin/referrals/attribution/{Attribution.objects.first().pk}/change/"  # type: ignore[union-attr]
    _queries(browser, url)  # the first page also fills the content-type cache
    few = _queries(browser, url)
    for _ in range(27):
        _partner_with_rows()
    many = _queries(browser, url)
    assert many == few, f"{few} queries for 3 partners, {many} for 30"
