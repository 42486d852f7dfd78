"""django-tasks' list of task results at scale (a row per webhook delivery, destination copy and mail, kept 14 days:
millions on a busy day): every query it sends uses an index. No ``SELECT DISTINCT`` over the table for the filters,
no ``COUNT(*)`` of the whole table on PostgreSQL, no sort of the table for its newest-first order; and the filters
still list what they did. The plans and the SQL are checked, deterministic; the figures are in docs/performance.md."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult, get_date_max

from apertur.testing import make_staff, plan_with_indexes

URL = "/admin/django_tasks_database/dbtaskresult/"
TABLE = DBTaskResult._meta.db_table
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def browser(db: None) -> Client:
    client = Client()
    client.force_login(make_staff())
    return client


def _results(count: int, *, queues: tuple[str, ...] = ("default",)) -> list[DBTaskResult]:
    DBTaskResult.objects.all().delete()  # only these rows
    rows = [
        DBTaskResult(
            status=TaskResultStatus.FAILED if n % 3 == 0 else TaskResultStatus.SUCCESSFUL,
            args_kwargs={"args": [n], "kwargs": {}},
            # A task no longer in the code (its name shown from the path): a real one would refuse other queues.
            task_path="apertur.retired.tasks.deliver",
            queue_name=queues[n % len(queues)],
            backend_name="default",
            run_after=get_date_max(),
            finished_at=NOW,
        )
        for n in range(count)
    ]
    DBTaskResult.objects.bulk_create(rows)
    for n, row in enumerate(rows):  # enqueued_at is auto_now_add: set afterwards, one hour apart, oldest first
        DBTaskResult.objects.filter(pk=row.pk).update(enqueued_at=NOW - dt.timedelta(hours=count - n))
    return rows


def _sql(browser: Client, query: str = "") -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert browser.get(f"{URL}?{query}").status_code == 200
    return [q["sql"] for q in captured.captured_queries if TABLE in q["sql"]]


def test_the_filters_read_their_values_without_select_distinct_over_the_table(browser: Client) -> None:
    """django-tasks' own list read ``SELECT DISTINCT priority`` and ``SELECT DISTINCT queue_name`` on every load."""
    _results(4, queues=("default", "mail"))
    sql = _sql(browser)
    assert not [q for q in sql if "DISTINCT" in q.upper()], sql
    html = browser.get(URL).content.decode()
    for queue in ("default", "mail"):
        assert f"?queue_name={queue}" in html  # the queue filter still lists every queue present
    assert "?status__exact=FAILED" in html


def test_the_list_is_newest_first_and_filters_by_status_and_queue(browser: Client) -> None:
    rows = _results(6, queues=("default", "mail"))
    listed = list(browser.get(URL).context["cl"].result_list)
    assert [row.pk for row in listed] == [row.pk for row in reversed(rows)]
    failed = browser.get(URL, {"status__exact": "FAILED"}).context["cl"].result_list
    assert {row.pk for row in failed} == {rows[0].pk, rows[3].pk}
    mail = browser.get(URL, {"queue_name": "mail"}).context["cl"].result_list
    assert {row.pk for row in mail} == {rows[1].pk, rows[3].pk, rows[5].pk}
    html = browser.get(URL, {"queue_name": "mail"}).content.decode()
    assert re.search(r"(?<!about )\b3 task results", html, re.IGNORECASE)  # filtered: counted exactly


def test_the_list_costs_the_same_queries_for_3_results_as_for_30(browser: Client) -> None:
    _results(3)
    few = len(_sql(browser))
    _results(30, queues=("default", "mail", "slow"))
    assert len(_sql(browser)) == few


def test_the_newest_first_order_is_read_from_an_index(browser: Client, postgres_only: None) -> None:
    """Without ``task_result_enqueued`` (core migration 0003) each load sorted the whole table."""
    _results(5)
    queryset = browser.get(URL).context["cl"].queryset[:100]
    assert "task_result_enqueued" in plan_with_indexes(queryset), plan_with_indexes(queryset)


def test_the_index_exists_on_every_database(db: None) -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    assert constraints["task_result_enqueued"]["columns"] == ["enqueued_at", "id"]


def test_a_large_table_on_postgresql_is_not_counted(
    browser: Client, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unfiltered, the count is the planner's estimate and the page says "about" (``COUNT(*)``, twice, read every
    row); facets, a count per filter value over the whole table, are off."""
    _results(5)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(TABLE)}")
    monkeypatch.setattr(admin.site.get_model_admin(DBTaskResult).paginator, "exact_below", 1, raising=False)
    sql = _sql(browser) + _sql(browser, "_facets=1")
    assert not [q for q in sql if "COUNT(" in q.upper()], sql
    assert re.search(r"about \d+ task results", browser.get(URL).content.decode(), re.IGNORECASE)
