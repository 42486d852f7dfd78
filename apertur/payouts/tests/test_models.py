"""The payout links' indexes: a payout run writes one link per entry it pays, so the table keeps only the
indexes its queries use."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection


def _indexes(constraints: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in constraints.values() if (c["index"] or c["unique"]) and not c["primary_key"]]


@pytest.mark.django_db
def test_payout_links_keep_only_the_indexes_their_queries_use() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "payouts_payoutentry")
    indexed = sorted(tuple(c["columns"]) for c in _indexes(constraints))
    # Besides the primary key: the pair (lookups by payout use its first column) and an entry's live link.
    assert indexed == sorted([("payout_id", "entry_id"), ("entry_id",)]), indexed
    # The partial unique index is the rule "one live payout per entry": a migration must never lose it.
    live = [c for c in constraints.values() if c["columns"] == ["entry_id"] and (c["index"] or c["unique"])]
    assert len(live) == 1 and live[0]["unique"], live
