"""An index on django-tasks' task results in the order the admin lists them, newest first (``(enqueued_at, id)``,
read backwards): without it each load of ``/admin/django_tasks_database/dbtaskresult/`` sorted the whole table
(0.4 s at 500,000 results, and a busy day keeps millions for 14 days).

The table is django-tasks' (its app ``django_tasks_database``), so the index is not in its models' state: it is
created here by name, online on PostgreSQL (``CONCURRENTLY``, outside a transaction: tasks keep being queued while
it builds). Its price is one more B-tree entry per row version of a task (its insert, its claim and its end: the
status is in django-tasks' partial index, so those updates are never HOT anyway), on an ever-increasing key appended
at the index's right edge.

A rerun, or two ``migrate`` at once, ends with one valid index (PostgreSQL, ``core.schema.one_index_build``). ``IF NOT EXISTS``
alone did not: a build that failed or was interrupted leaves an invalid index under the name, which it then kept
(unused by any query, the migration recorded as done); and a second build started while the first ran made the
first wait for it while it waited for the first (a deadlock: the first rolled back, its invalid index kept by the
second)."""

from django.db import migrations

from apertur.core.schema import one_index_build

INDEX = "task_result_enqueued"


def _table(apps, schema_editor):
    model = apps.get_model("django_tasks_database", "DBTaskResult")
    return schema_editor.quote_name(model._meta.db_table)


def create(apps, schema_editor):
    table = _table(apps, schema_editor)
    if schema_editor.connection.vendor == "postgresql":
        with one_index_build(schema_editor.connection, INDEX) as build:
            if build:
                schema_editor.execute(f"CREATE INDEX CONCURRENTLY {INDEX} ON {table} (enqueued_at, id)")
    else:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON {table} (enqueued_at, id)")


def drop(apps, schema_editor):
    online = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX{online} IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("core", "0002_idempotency_keys"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
