"""How `make test` shares the suite between its two side-by-side runs (Makefile, SQLITE_SHARE and POSTGRES_SHARE),
and the faster flush the PostgreSQL run empties its tables with after a transactional test (conftest.py)."""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.expression import Expression
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection

from apertur.accounts.models import User
from apertur.projects.models import Project
from apertur.projects.services import create_project
from apertur.testing import make_app, make_partner, make_user

ROOT = Path(__file__).resolve().parent.parent


def _share(name: str) -> Expression:
    found = re.search(rf"^{name} = (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, f"{name} is not set in the Makefile"
    return Expression.compile(found.group(1))


def _markers() -> list[str]:
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return [line.split(":", 1)[0] for line in pytest_ini["markers"]]


def test_the_two_runs_together_take_every_test() -> None:
    """Whatever markers a test carries, at least one of the two runs selects it (``-m`` reads marker names only)."""
    sqlite, postgres = _share("SQLITE_SHARE"), _share("POSTGRES_SHARE")
    markers = _markers()
    assert {"browser", "own_database"} <= set(markers)
    for size in range(len(markers) + 1):
        for carried in itertools.combinations(markers, size):
            taken = [run.evaluate(lambda name, carried=carried: name in carried) for run in (sqlite, postgres)]  # type: ignore[misc]
            assert any(taken), f"a test marked {carried or 'with nothing'} runs in neither side-by-side run"


def test_each_test_that_does_not_depend_on_the_suite_database_runs_once() -> None:
    sqlite, postgres = _share("SQLITE_SHARE"), _share("POSTGRES_SHARE")
    for marker, runs_in in (("browser", postgres), ("own_database", sqlite)):
        selected = [run.evaluate(lambda name, marker=marker: name == marker) for run in (sqlite, postgres)]  # type: ignore[misc]
        assert selected.count(True) == 1 and runs_in.evaluate(lambda name, marker=marker: name == marker)  # type: ignore[misc]
    assert sqlite.evaluate(lambda name: False) and postgres.evaluate(lambda name: False)


def test_the_postgresql_flush_empties_linked_tables_without_truncate(postgres_only: Any) -> None:
    """Rows that point at each other (a user, the project it owns, a partner and its OAuth app) go in one flush
    of DELETEs, whatever the order of the tables: Django's foreign keys are deferred to the commit. A flush that
    resets the sequences keeps Django's TRUNCATE."""
    owner = make_user("flush@example.com")
    create_project(owner=owner, name="Flush")
    make_app(make_partner(user=owner))
    # The owners' tables first: a DELETE of a parent before its children only works with the keys deferred.
    found = connection.introspection.django_table_names(only_existing=True, include_views=False)
    parents = [User._meta.db_table, Project._meta.db_table]
    tables = parents + [table for table in found if table not in parents]
    statements = connection.ops.sql_flush(no_style(), tables)
    assert statements[0] == "SET CONSTRAINTS ALL DEFERRED"
    assert statements[1].startswith("LOCK TABLE ") and statements[1].endswith(" IN EXCLUSIVE MODE")
    assert all(s.startswith("DELETE FROM ") for s in statements[2:]) and len(statements) == len(tables) + 2

    connection.ops.execute_sql_flush(statements)  # what the flush command runs, in one transaction

    with connection.cursor() as cursor:
        left = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            left[table] = cursor.fetchone()[0]
    assert not any(left.values()), left
    call_command("flush", verbosity=0, interactive=False)  # and the command itself, as pytest-django calls it
    assert connection.ops.sql_flush(no_style(), tables, reset_sequences=True)[0].startswith("TRUNCATE")


def test_a_test_that_drives_chromium_is_a_browser_test(browser: Any, request: pytest.FixtureRequest) -> None:
    """Not marked here: conftest marks every test that asks for Chromium, the marker the split reads."""
    assert request.node.get_closest_marker("browser") is not None


def test_a_fixture_of_its_own_named_browser_does_not_make_a_browser_test() -> None:
    """apertur/accounts/tests/test_account.py has a ``browser`` fixture of its own (a signed-in Django test client,
    no Chromium): its tests depend on the suite's database and belong in both runs, not in the PostgreSQL run
    only. Only conftest's Chromium fixtures (``browser``, ``page``) make a test a browser test."""
    import subprocess
    import sys

    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "browser",
         "apertur/accounts/tests/test_account.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode in {0, 5}, listed.stdout + listed.stderr
    browser_tests = [line for line in listed.stdout.splitlines() if "::" in line]
    assert browser_tests == [], browser_tests


def test_the_postgresql_flush_waits_for_a_writer_and_removes_what_it_commits(postgres_only: Any) -> None:
    """Like TRUNCATE: a transaction still writing when the flush starts (a live server's request) is waited for, and
    the row it commits goes too. A bare DELETE would have finished at once and left that row to the next test."""
    import threading
    import time

    import psycopg
    from django.db import connections

    db = connection.settings_dict
    writer = psycopg.connect(
        dbname=db["NAME"], host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"] or None
    )
    writer.execute(
        "INSERT INTO django_session (session_key, session_data, expire_date) VALUES ('late', '', now())"
    )  # not committed yet
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    statements = connection.ops.sql_flush(no_style(), tables)
    done = threading.Event()

    def flush() -> None:
        try:
            connections["default"].ops.execute_sql_flush(statements)
            done.set()
        finally:
            connections["default"].close()

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    try:
        time.sleep(0.5)
        assert not done.is_set()  # waiting for the writer's lock
    finally:
        writer.commit()
        writer.close()
    flusher.join(timeout=20)
    assert done.is_set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_session")
        assert cursor.fetchone()[0] == 0
