"""The ledger table's indexes: every commission entry written (a million in a bulk ledger) and every entry a
payout marks paid updates each of them, so the table keeps only the ones its queries use."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection


def _indexes(constraints: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in constraints.values() if (c["index"] or c["unique"]) and not c["primary_key"]]


@pytest.mark.django_db
def test_commission_entries_keep_only_the_indexes_their_queries_use() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "commissions_commissionentry")
    indexed = sorted(tuple(c["columns"][:2]) for c in _indexes(constraints))
    # Besides the primary key: the unique source key, the payment's foreign key (a refund finds its payment's entries),
    # the partner's covering index (partner, paid_at, id; its INCLUDE columns, PostgreSQL only, left out here) and the
    # dashboard's two small partial indexes (reversals and clawbacks; re-earnings), which earned entries never enter.
    expected = [
        ("source_key",),
        ("payment_id",),
        ("partner_id", "paid_at"),
        ("partner_id", "payment_id"),
        ("partner_id",),
    ]
    assert indexed == sorted(expected), indexed
