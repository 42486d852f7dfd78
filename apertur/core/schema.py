"""Migration operations for large tables: on PostgreSQL an index is built and dropped ``CONCURRENTLY``, so the
ledger keeps taking reads and writes while it builds (docs/deploy.md, "Migrations on deploy"); elsewhere
(SQLite, the zero-setup default) the plain operations. A migration using them sets ``atomic = False``:
PostgreSQL refuses ``CONCURRENTLY`` inside a transaction.

A rerun, or two ``migrate`` at once, ends with one valid index (:func:`one_index_build`): a ``CONCURRENTLY`` build
that failed or was killed (a timeout, a cancelled deploy) leaves an invalid index under its name, on which a rerun
failed ("already exists") until someone dropped it by hand; and two builds at once could deadlock."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex

#: How often a second build looks again whether the first is done.
POLL_SECONDS = 0.5


@contextmanager
def one_index_build(connection: Any, name: str) -> Iterator[bool]:
    """PostgreSQL, outside a transaction: around the ``CREATE INDEX CONCURRENTLY`` of index ``name``, yields whether
    it must be built. One build at a time (a session advisory lock per name, polled outside any transaction: a build
    waits for every transaction older than its own end, so one blocked on a lock would deadlock it). An index already
    valid is not built again (a rerun); an invalid one (what a failed build leaves, no build running since it would
    hold the lock) is dropped first."""
    key = int.from_bytes(hashlib.sha256(b"apertur index build " + name.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if cursor.fetchone()[0]:
                break
            time.sleep(POLL_SECONDS)
        try:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
            row = cursor.fetchone()
            if row is not None and not row[0]:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {connection.ops.quote_name(name)}")
            yield row is None or not row[0]
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


class _Online:
    """On PostgreSQL the concurrent operation (the next class in the MRO); elsewhere ``_plain``'s."""

    _plain: Any

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]
        else:
            self._plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]
        else:
            self._plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndexOnline(_Online, AddIndexConcurrently):
    """``AddIndexConcurrently`` on PostgreSQL (one build at a time, an invalid leftover replaced, a valid index kept:
    :func:`one_index_build`), ``AddIndex`` elsewhere."""

    _plain = AddIndex

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor != "postgresql" or schema_editor.collect_sql:
            # sqlmigrate prints the SQL: nothing may run (nor be dropped) then
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        with one_index_build(schema_editor.connection, self.index.name) as build:
            if build:
                super().database_forwards(app_label, schema_editor, from_state, to_state)


class RemoveIndexOnline(_Online, RemoveIndexConcurrently):
    """``RemoveIndexConcurrently`` on PostgreSQL, ``RemoveIndex`` elsewhere."""

    _plain = RemoveIndex
