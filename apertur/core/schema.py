"""Migration operations for large tables: on PostgreSQL an index is built and dropped ``CONCURRENTLY``, so the
ledger keeps taking reads and writes while it builds (docs/deploy.md, "Migrations on deploy"); elsewhere
(SQLite, the zero-setup default) the plain operations. A migration using them sets ``atomic = False``:
PostgreSQL refuses ``CONCURRENTLY`` inside a transaction."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex


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
    """``AddIndexConcurrently`` on PostgreSQL, ``AddIndex`` elsewhere."""

    _plain = AddIndex


class RemoveIndexOnline(_Online, RemoveIndexConcurrently):
    """``RemoveIndexConcurrently`` on PostgreSQL, ``RemoveIndex`` elsewhere."""

    _plain = RemoveIndex
