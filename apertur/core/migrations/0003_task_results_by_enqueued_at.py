"""An index on django-tasks' task results in the order the admin lists them, newest first (``(enqueued_at, id)``,
read backwards): without it each load of ``/admin/django_tasks_database/dbtaskresult/`` sorted the whole table
(0.4 s at 500,000 results, and a busy day keeps millions for 14 days).

The table is django-tasks' (its app ``django_tasks_database``), so the index is not in its models' state: it is
created here by name, online on PostgreSQL (``CONCURRENTLY``, outside a transaction: tasks keep being queued while
it builds), ``IF NOT EXISTS`` so a rerun is harmless. Its price is one more B-tree entry per row version of a task
(its insert, its claim and its end: the status is in django-tasks' partial index, so those updates are never HOT
anyway), on an ever-increasing key appended at the index's right edge."""

from django.db import migrations

INDEX = "task_result_enqueued"


def _table(apps, schema_editor):
    model = apps.get_model("django_tasks_database", "DBTaskResult")
    return schema_editor.quote_name(model._meta.db_table)


def create(apps, schema_editor):
    online = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE INDEX{online} IF NOT EXISTS {INDEX} ON {_table(apps, schema_editor)} (enqueued_at, id)"
    )


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
