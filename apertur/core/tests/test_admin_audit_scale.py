"""The audit log's admin list at scale (millions of rows: one per OAuth token refresh): every query it sends uses an
index. No ``SELECT DISTINCT`` over the table for the filters, no ``COUNT(*)`` of the whole table on PostgreSQL, no
``UPPER(…) LIKE '%…%'`` over every row for a search; and the filters and the search still find what they did."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.core.models import AuditEvent
from apertur.testing import make_staff, make_user

pytestmark = pytest.mark.django_db

URL = "/admin/core/auditevent/"


@pytest.fixture
def browser() -> Client:
    client = Client()
    client.force_login(make_staff())
    return client


def _events() -> dict[str, AuditEvent]:
    ada = make_user("ada@example.com")
    bob = make_user("bob@example.org")
    AuditEvent.objects.all().delete()  # the users' signups: only these rows
    rows = {
        "refresh": AuditEvent(action="oauth.token_refreshed", object_type="token", object_id="12345", actor=ada),
        "refresh_other": AuditEvent(action="oauth.token_refreshed", object_type="token", object_id="123456"),
        "revoked": AuditEvent(action="oauth.revoked", object_type="connection", object_id="77", actor=bob),
        "approved": AuditEvent(action="partner.approved", object_type="partner", object_id="12345", actor=bob),
        "payout": AuditEvent(action="payout.sent", object_type="payout", object_id="9"),
    }
    for row in rows.values():
        row.save()
    return rows


def _ids(browser: Client, query: str) -> set[int]:
    response = browser.get(f"{URL}?{query}")
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def _sql(browser: Client, query: str = "") -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert browser.get(f"{URL}?{query}").status_code == 200
    return [q["sql"] for q in captured.captured_queries if "core_auditevent" in q["sql"]]


def test_the_filters_list_every_action_and_object_type_present(browser: Client) -> None:
    _events()
    html = browser.get(URL).content.decode()
    for action in ("oauth.token_refreshed", "oauth.revoked", "partner.approved", "payout.sent"):
        assert f"?action={action}" in html
    for object_type in ("token", "connection", "partner", "payout"):
        assert f"?object_type={object_type}" in html


def test_the_filters_read_their_values_without_select_distinct_over_the_table(browser: Client) -> None:
    _events()
    sql = _sql(browser)
    assert not [q for q in sql if "DISTINCT" in q.upper()], sql


def test_filtering_finds_the_rows_and_counts_them_exactly(browser: Client) -> None:
    rows = _events()
    assert _ids(browser, "action=oauth.token_refreshed") == {rows["refresh"].pk, rows["refresh_other"].pk}
    assert _ids(browser, "object_type=partner") == {rows["approved"].pk}
    html = browser.get(f"{URL}?action=oauth.token_refreshed").content.decode()
    assert re.search(r"(?<!about )\b2 audit events", html)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("12345", {"refresh", "approved"}),  # one object's id, exactly: not 123456
        ("object_type=token&q=12345", {"refresh"}),  # one object: its type and id
        ("oauth.", {"refresh", "refresh_other", "revoked"}),  # actions starting so
        ("oauth.revoked", {"revoked"}),
        ("ada@example.com", {"refresh"}),  # the actor's email
        ("BOB@", {"revoked", "approved"}),  # its start, in any case
        ("bob@ 12345", {"approved"}),  # several words: each matches
        ("example.com", set()),  # not the middle of an email
        ("ada", set()),  # nor a start without its @: "a" would name most users
        ("2345", set()),  # nor of an id
    ],
)
def test_the_search_finds_the_events_of_one_object_action_or_actor(
    browser: Client, search: str, expected: set[str]
) -> None:
    rows = _events()
    query = search if "=" in search else f"q={search}"
    assert _ids(browser, query) == {rows[name].pk for name in expected}


def test_the_search_reads_by_index_not_a_pattern_over_every_row(browser: Client) -> None:
    """Django's own search (``icontains``) was ``UPPER(col) LIKE UPPER('%word%')`` on each field, joined to every
    event's actor: no index can answer it."""
    _events()
    sql = _sql(browser, "q=ada%40example.com")
    assert sql
    for q in sql:
        assert "UPPER(" not in q.upper(), q
        assert "'%" not in q, q  # a pattern with a leading wildcard
        assert not ("COUNT(" in q.upper() and "JOIN" in q.upper()), q


def test_the_list_of_a_large_table_on_postgresql_counts_no_rows_and_says_about(
    browser: Client, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unfiltered, the count is the planner's estimate (``COUNT(*)`` read all 3 M rows); filtered, it is exact."""
    _events()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE core_auditevent")
    # As if the table held millions (core.admin.EstimatedCountPaginator counts a small one exactly).
    monkeypatch.setattr(admin.site.get_model_admin(AuditEvent).paginator, "exact_below", 1, raising=False)
    sql = _sql(browser)
    assert not [q for q in sql if "COUNT(" in q.upper()], sql
    html = browser.get(URL).content.decode()
    assert re.search(r"about \d+ audit events", html)
    assert not re.search(r"\d+ results? \(", html)  # the search bar's "N results (Show all)", without "about"
    filtered = _sql(browser, "action=payout.sent")
    assert [q for q in filtered if "COUNT(" in q.upper()]
    assert "about" not in browser.get(f"{URL}?action=payout.sent").content.decode()


def test_a_small_or_unanalysed_table_is_counted_exactly(browser: Client) -> None:
    _events()
    html = browser.get(URL).content.decode()
    assert re.search(r"(?<!about )\b5 audit events", html)
