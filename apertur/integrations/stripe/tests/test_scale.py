"""Stripe events at scale (several rows per payment, tens of millions in time): every processed delivery retries the
events still waiting (``services.retry_waiting``), and that read went over the whole table (0.55 s a delivery at
3 M events, growing with every payment) until the partial index ``stripe_event_waiting``; the admin's list used
Django's defaults (a date hierarchy and ``SELECT DISTINCT type`` over every row, a sort of the table, two counts,
``UPPER(…) LIKE``): 2.3 s a load at 3 M events. The plans and the SQL are checked here, deterministic; the
figures are in docs/performance.md."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.integrations.stripe import services
from apertur.integrations.stripe.models import EventStatus, StripeEvent
from apertur.testing import make_staff, plan_with_indexes

URL = "/admin/stripe_billing/stripeevent/"
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def _event(n: int, status: str = EventStatus.PROCESSED, type: str = "invoice.paid") -> StripeEvent:
    at = NOW - dt.timedelta(hours=n)
    return StripeEvent.objects.create(
        event_id=f"evt_{n}", type=type, created=at, payload={"id": f"evt_{n}"}, status=status, received_at=at
    )


def test_the_waiting_events_are_read_through_their_partial_index(postgres_only: None) -> None:
    for n in range(20):
        _event(n, EventStatus.WAITING if n % 5 == 0 else EventStatus.PROCESSED)
    retried = services.waiting_events().select_for_update()
    given_up = services.waiting_events().filter(received_at__lt=NOW).select_for_update()
    for queryset in (retried, given_up):
        assert "stripe_event_waiting" in plan_with_indexes(queryset), plan_with_indexes(queryset)
    assert [row.event_id for row in services.waiting_events()] == ["evt_15", "evt_10", "evt_5", "evt_0"]


def test_a_failure_reads_the_failed_events_of_its_type_through_their_partial_index(postgres_only: None) -> None:
    """Each failure looks for the oldest failed event of its type (who was told): by ``type`` alone, every event of
    that type was read (millions of ``invoice.paid``) for each failure of a burst."""
    for n in range(20):
        _event(
            n, EventStatus.FAILED if n % 5 == 0 else EventStatus.PROCESSED, ("invoice.paid", "charge.refunded")[n % 2]
        )
    latest = StripeEvent.objects.get(event_id="evt_0")
    queryset = services.failed_of_its_type(latest).values_list("event_id", flat=True)[:1]
    assert "stripe_event_failed" in plan_with_indexes(queryset), plan_with_indexes(queryset)
    assert list(services.failed_of_its_type(latest).values_list("event_id", flat=True)) == ["evt_10"]


@pytest.fixture
def browser(db: None) -> Client:
    client = Client()
    client.force_login(make_staff())
    return client


def _sql(browser: Client, query: str = "") -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert browser.get(f"{URL}?{query}").status_code == 200
    return [q["sql"] for q in captured.captured_queries if "stripe_billing_stripeevent" in q["sql"]]


def test_the_admin_list_reads_no_distinct_and_searches_by_the_unique_id(browser: Client) -> None:
    for n in range(3):
        _event(n, type=("invoice.paid", "charge.refunded", "customer.updated")[n])
    sql = _sql(browser) + _sql(browser, "q=evt_1")
    assert not [q for q in sql if "DISTINCT" in q.upper() or "UPPER(" in q.upper() or "LIKE" in q.upper()], sql
    html = browser.get(URL).content.decode()
    for type in ("invoice.paid", "charge.refunded", "customer.updated"):
        assert f"?type={type}" in html  # the filter still lists every type present
    found = browser.get(URL, {"q": "evt_1"}).context["cl"].result_list
    assert [row.event_id for row in found] == ["evt_1"]
    newest_first = browser.get(URL).context["cl"].result_list
    assert [row.event_id for row in newest_first] == ["evt_0", "evt_1", "evt_2"]


def test_the_admin_list_costs_the_same_queries_for_3_events_as_for_30(browser: Client) -> None:
    for n in range(3):
        _event(n)
    few = len(_sql(browser))
    for n in range(3, 30):
        _event(n, type=f"type.{n % 4}")
    assert len(_sql(browser)) == few
