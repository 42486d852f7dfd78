"""Query expressions, and queries, the ORM lacks."""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.db.models.lookups import In
from django.db.models.sql.compiler import SQLCompiler


class AnyOf(In):
    """``lhs IN (subquery)``, sent to PostgreSQL as ``lhs = ANY(ARRAY(subquery))``; any other database gets ``IN``.
    Used as ``.filter(AnyOf(F("pk"), queryset))``.

    Why: for ``IN (subquery)`` PostgreSQL cannot tell how few distinct values the subquery yields (the 1,812
    customers in the 18,110 entries of the largest partner) and hash-joins the whole outer table (every user of
    the platform); ``ARRAY(subquery)`` is computed once and its values probed by index."""

    def __init__(self, lhs: Any, rhs: Any) -> None:
        # As ``field__in=queryset`` gives it: the subquery's Query, whose ordering ``In`` clears and to which it
        # adds the primary key when no column was selected (a QuerySet itself would skip both).
        super().__init__(lhs, rhs.query if isinstance(rhs, QuerySet) else rhs)

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        if self.rhs_is_direct_value():
            return self.as_sql(compiler, connection)  # a list of values: IN as usual
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)  # "(SELECT …)"
        return f"{lhs} = ANY(ARRAY{rhs})", (*lhs_params, *rhs_params)


def distinct_values(model: type[models.Model], field_name: str, *, using: str = "default") -> list[Any]:
    """The distinct values of a column, in order, read by a loose index scan: each value is the first one above the
    previous in the column's index (``MIN(col) WHERE col > prev``), so the cost is one index probe per distinct value
    whatever the table's size. The column must lead an index. ``SELECT DISTINCT`` (what ``.distinct()`` sends) reads
    every row instead: 0.3 s on PostgreSQL over 3 M audit events with five actions. A recursive CTE with ``MIN``,
    the same text on PostgreSQL and SQLite."""
    connection = connections[using]
    table = connection.ops.quote_name(model._meta.db_table)
    field = model._meta.get_field(field_name)
    assert isinstance(field, models.Field)  # a column, not a reverse relation
    column = connection.ops.quote_name(str(field.column))
    # Names from the model, quoted: no input reaches the text.
    first_above = f"SELECT MIN({column}) FROM {table} WHERE {column} > v.value"  # noqa: S608
    sql = (
        f"WITH RECURSIVE v(value) AS (SELECT MIN({column}) FROM {table} "  # noqa: S608
        f"UNION ALL SELECT ({first_above}) FROM v WHERE v.value IS NOT NULL) "
        "SELECT value FROM v WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [value for (value,) in cursor.fetchall()]
