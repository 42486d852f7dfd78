"""The admin's list of PayPal events at scale (several per payout a month, kept forever): every query it sends uses an
index, as the audit log's and the Stripe events'. No ``SELECT DISTINCT`` over the table (the type filter, the date
hierarchy's years, months or days), no ``COUNT(*)`` of the whole table on PostgreSQL, no sort of the table for its
newest-first order, no ``UPPER(…) LIKE '%…%'`` joined to the payouts for a search; and the filters and the search
still find what they did. The plans and the SQL are checked, deterministic; the figures are in docs/performance.md."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.payouts.models import Payout, PayPalEvent, PayPalEventStatus
from apertur.testing import make_partner, make_staff, plan_with_indexes

URL = "/admin/payouts/paypalevent/"
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
TYPES = ("PAYMENT.PAYOUTSBATCH.SUCCESS", "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "PAYMENT.PAYOUTS-ITEM.FAILED")


@pytest.fixture
def browser(db: None) -> Client:
    client = Client()
    client.force_login(make_staff())
    return client


def _payout(period: str) -> Payout:
    partner = make_partner()
    item = f"aptr-{partner.pk}-{period}-1"
    return Payout.objects.create(
        partner=partner,
        period=period,
        amount_cents=10_000,
        sender_batch_id=item,
        sender_item_id=item,
        paypal_batch_id=f"PB{partner.pk}X{period}",
    )


def _event(n: int, *, payout: Payout | None = None, status: str = PayPalEventStatus.PROCESSED) -> PayPalEvent:
    return PayPalEvent.objects.create(
        event_id=f"WH-{n}",
        event_type=TYPES[n % len(TYPES)],
        payload={"id": f"WH-{n}"},
        status=status,
        payout=payout,
        received_at=NOW - dt.timedelta(days=40 * n),  # over several months and years
    )


def _sql(browser: Client, query: str = "") -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert browser.get(f"{URL}?{query}").status_code == 200
    return [q["sql"] for q in captured.captured_queries if "payouts_paypalevent" in q["sql"]]


def _found(browser: Client, search: str) -> set[str]:
    return {row.event_id for row in browser.get(URL, {"q": search}).context["cl"].result_list}


def test_the_list_reads_no_distinct_nor_pattern_and_still_lists_every_type(browser: Client) -> None:
    """Django's date hierarchy read ``SELECT DISTINCT DATE_TRUNC(…)`` and the type filter ``SELECT DISTINCT
    event_type`` over every event; the search ``UPPER(…) LIKE '%…%'`` over every event joined to its payout."""
    payout = _payout("2026-04")
    for n in range(6):
        _event(n, payout=payout if n % 2 else None)
    sql = _sql(browser) + _sql(browser, "received_at__year=2026") + _sql(browser, f"q={payout.sender_batch_id}")
    bad = [q for q in sql if "DISTINCT" in q.upper() or "UPPER(" in q.upper() or "LIKE" in q.upper()]
    assert not bad, bad
    html = browser.get(URL).content.decode()
    for type in TYPES:
        assert f"?event_type={type}" in html
    assert "received_at__gte=" in html  # the date filter replaces the hierarchy
    newest_first = browser.get(URL).context["cl"].result_list
    assert [row.event_id for row in newest_first] == [f"WH-{n}" for n in range(6)]


def test_the_search_finds_an_event_or_a_payouts_events_exactly(browser: Client) -> None:
    april, may = _payout("2026-04"), _payout("2026-05")
    _event(1, payout=april), _event(2, payout=april), _event(3, payout=may), _event(12)
    assert _found(browser, "WH-1") == {"WH-1"}  # not WH-12
    assert _found(browser, " WH-12 ") == {"WH-12"}
    assert _found(browser, april.sender_batch_id) == {"WH-1", "WH-2"}
    assert _found(browser, may.sender_item_id) == {"WH-3"}
    assert _found(browser, may.paypal_batch_id) == {"WH-3"}
    assert _found(browser, "WH-") == set()  # a start is not enough
    assert _found(browser, april.sender_batch_id[:-2]) == set()
    filtered = browser.get(URL, {"q": april.sender_batch_id, "event_type": TYPES[1]}).context["cl"].result_list
    assert [row.event_id for row in filtered] == ["WH-1"]


def test_the_list_costs_the_same_queries_for_3_events_as_for_30(browser: Client) -> None:
    payout = _payout("2026-04")
    for n in range(3):
        _event(n, payout=payout)
    few = len(_sql(browser))
    for n in range(3, 30):
        _event(n, payout=_payout(f"20{10 + n}-01") if n % 2 else None)
    assert len(_sql(browser)) == few


def test_the_newest_first_order_is_read_from_an_index(browser: Client, postgres_only: None) -> None:
    for n in range(5):
        _event(n)
    queryset = browser.get(URL).context["cl"].queryset[:100]
    assert "paypal_event_received" in plan_with_indexes(queryset), plan_with_indexes(queryset)


def test_a_large_table_on_postgresql_is_not_counted(
    browser: Client, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unfiltered, the count is the planner's estimate and the page says "about"; filtered, it is exact; facets (a
    count per status and type over the whole table) are off."""
    for n in range(5):
        _event(n, status=PayPalEventStatus.RECEIVED if n == 2 else PayPalEventStatus.PROCESSED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payouts_paypalevent")
    monkeypatch.setattr(admin.site.get_model_admin(PayPalEvent).paginator, "exact_below", 1, raising=False)
    sql = _sql(browser) + _sql(browser, "_facets=1")
    assert not [q for q in sql if "COUNT(" in q.upper()], sql
    assert re.search(r"about \d+ PayPal events", browser.get(URL).content.decode())
    html = browser.get(URL, {"status__exact": "received"}).content.decode()
    assert re.search(r"(?<!about )\b1 PayPal event\b", html)
