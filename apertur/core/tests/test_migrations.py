"""Core migration 0003 (the task results' ``(enqueued_at, id)`` index, built by raw SQL on django-tasks' table): it
applies, reverses and reruns, and on PostgreSQL ends with one valid index after a failed build or beside a second
``migrate``."""

from __future__ import annotations

import importlib
import threading
from typing import Any

import pytest
from django.apps import apps as global_apps
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django_tasks_db.models import DBTaskResult

from apertur.testing import record_outcome
from apertur.webhooks.tasks import deliver_webhook

pytestmark = pytest.mark.django_db(transaction=True)

migration = importlib.import_module("apertur.core.migrations.0003_task_results_by_enqueued_at")
BEFORE = [("core", "0002_idempotency_keys")]
TABLE = DBTaskResult._meta.db_table


def _index() -> str:
    """``valid``, ``invalid`` or ``absent``."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [migration.INDEX])
            row = cursor.fetchone()
            return "absent" if row is None else "valid" if row[0] else "invalid"
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = %s", [migration.INDEX])
        return "valid" if cursor.fetchone() else "absent"


def _migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def _create_in_own_connection() -> None:
    try:
        with connection.schema_editor(atomic=False) as editor:
            migration.create(global_apps, editor)
    finally:
        connection.close()


def test_it_reverses_applies_and_reruns() -> None:
    assert _index() == "valid"
    _migrate(BEFORE)
    try:
        assert _index() == "absent"
    finally:
        _migrate()
    assert _index() == "valid"
    _create_in_own_connection()  # the RunPython again: a rerun on a database that has it
    assert _index() == "valid"


def test_a_rerun_replaces_the_invalid_index_a_failed_build_left(postgres_only: None) -> None:
    """A CONCURRENTLY build that fails (or is killed) leaves an invalid index under its name, which no query uses;
    ``IF NOT EXISTS`` kept it and the migration was recorded as done."""
    for _ in range(2):  # two results of one queue
        deliver_webhook.enqueue(0)
    _migrate(BEFORE)
    try:
        with connection.cursor() as cursor, pytest.raises(Exception, match="could not create unique index"):
            cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {migration.INDEX} ON {TABLE} (queue_name)")
        assert _index() == "invalid"
    finally:
        _migrate()
    assert _index() == "valid"


def test_two_migrates_at_once_end_with_one_valid_index(postgres_only: None) -> None:
    """Tasks are queued while a build runs (a transaction writing the table makes the build wait for it). A second
    ``migrate`` meanwhile made the first build wait for it while it waited for the first's lock on the table: a
    deadlock, the first rolled back, and the second kept its invalid index (``IF NOT EXISTS``) and succeeded."""
    _migrate(BEFORE)
    outcome: dict[str, Any] = {}
    writing, release = threading.Event(), threading.Event()

    def queueing() -> None:  # a task queued, its transaction still open
        try:
            with transaction.atomic():
                DBTaskResult.objects.update(priority=F("priority"))
                writing.set()
                assert release.wait(timeout=30)
        finally:
            connection.close()

    def seen(sql: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return bool(cursor.fetchone()[0])

    threads = [threading.Thread(target=queueing)]
    try:
        threads[0].start()
        assert writing.wait(timeout=10)
        for name in ("first", "second"):
            thread = threading.Thread(target=record_outcome, args=(outcome, name, _create_in_own_connection))
            threads.append(thread)
            thread.start()
            if name == "first":  # its index is in the catalog: it is building, and waits for the writer
                assert _wait_for(lambda: seen(f"SELECT to_regclass('{migration.INDEX}') IS NOT NULL"))
        # the second is under way: waiting for the first's lock on the table (before), or polling for its own
        assert _wait_for(
            lambda: seen(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND (query ILIKE"
                " 'SELECT pg_try_advisory_lock%%' OR (query ILIKE 'CREATE INDEX%%' AND wait_event = 'relation'))"
            )
        )
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=60)
    try:
        assert outcome == {"first": None, "second": None}, outcome
        assert _index() == "valid"
    finally:
        _migrate()


def _wait_for(condition: Any, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
