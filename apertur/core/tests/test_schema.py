"""``core.schema.AddIndexOnline`` on PostgreSQL: a rerun after a build that failed (a timeout, a cancelled deploy)
replaces the invalid index it left instead of failing on it, and a rerun on a database that has the index keeps it.
Taken through payouts migration 0012 (``paypal_event_received``), one of the migrations that use it."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.payouts.models import PayPalEvent

pytestmark = pytest.mark.django_db(transaction=True)

INDEX = "paypal_event_received"
BEFORE = [("payouts", "0011_processing_since")]


def _index() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [INDEX])
        row = cursor.fetchone()
    return "absent" if row is None else "valid" if row[0] else "invalid"


def _migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def test_a_rerun_replaces_the_invalid_index_a_failed_build_left(postgres_only: None) -> None:
    for n in range(2):  # two events of one status: a unique build on it fails
        PayPalEvent.objects.create(event_id=f"WH-{n}", event_type="PAYMENT.PAYOUTSBATCH.SUCCESS", payload={})
    _migrate(BEFORE)
    try:
        table = PayPalEvent._meta.db_table
        with connection.cursor() as cursor, pytest.raises(Exception, match="could not create unique index"):
            cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON {table} (status)")
        assert _index() == "invalid"
    finally:
        _migrate()  # failed with "already exists" before
    assert _index() == "valid"


def test_a_rerun_keeps_a_valid_index(postgres_only: None) -> None:
    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration("payouts", "0012_paypal_event_received")
    state = executor.loader.project_state(("payouts", "0011_processing_since"))
    with connection.schema_editor(atomic=False) as editor:  # the operation again, as a migrate that was not recorded
        migration.operations[0].database_forwards("payouts", editor, state, state)  # "already exists" before
    assert _index() == "valid"


def test_sqlmigrate_prints_the_build_and_changes_nothing(postgres_only: None) -> None:
    from django.core.management import call_command

    _migrate(BEFORE)
    try:
        table = PayPalEvent._meta.db_table
        with connection.cursor() as cursor:  # an invalid index a failed build left: a preview must not drop it
            cursor.execute(f"CREATE INDEX {INDEX} ON {table} (status)")
            cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", [INDEX])
        out = io.StringIO()
        call_command("sqlmigrate", "payouts", "0012", stdout=out)
        assert f'CREATE INDEX CONCURRENTLY "{INDEX}"' in out.getvalue()
        assert _index() == "invalid"
    finally:
        _migrate()
    assert _index() == "valid"
