"""The ledger table's indexes: every commission entry written (a million in a bulk ledger) and every entry a
payout marks paid updates each of them, so the table keeps only the ones its queries use."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

COVERED = ["available_at", "amount_cents", "kind", "customer_id", "payment_id"]


def _indexes(constraints: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in constraints.values() if (c["index"] or c["unique"]) and not c["primary_key"]]


def _definition(name: str) -> str:
    """The index's SQL as the database keeps it (its WHERE clause included)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        row = cursor.fetchone()
    assert row is not None, name
    return " ".join(str(row[0]).replace('"', "").split())


@pytest.mark.django_db
def test_commission_entries_keep_only_the_indexes_their_queries_use() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "commissions_commissionentry")
    indexed = sorted(tuple(c["columns"]) for c in _indexes(constraints))
    # Besides the primary key: the unique source key, the payment's foreign key (a refund finds its payment's
    # entries), the partner's covering index (partner, paid_at, id, with INCLUDE columns on PostgreSQL only) and
    # the dashboard's two small partial indexes (reversals and clawbacks; re-earnings), which earned entries of a
    # payment's own never enter.
    covering = ("partner_id", "paid_at", "id", *(COVERED if connection.vendor == "postgresql" else []))
    expected = [("source_key",), ("payment_id",), covering, ("partner_id", "payment_id"), ("partner_id",)]
    assert indexed == sorted(expected), indexed
    taken_back = _definition("commission_taken_back")
    assert "WHERE" in taken_back and "reversal" in taken_back and "clawback" in taken_back, taken_back
    re_earned = _definition("commission_re_earned")
    assert "WHERE" in re_earned and "earned:%" in re_earned, re_earned
