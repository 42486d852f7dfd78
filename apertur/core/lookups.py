"""Query expressions the ORM lacks."""

from __future__ import annotations

from typing import Any

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
