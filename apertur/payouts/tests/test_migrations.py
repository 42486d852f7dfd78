"""Migrations 0003/0004 (multi-item batches), on data: payouts written before them were sent as PayPal items
``<sender_batch_id>-1`` (one batch each), so that is the item id they get, and it is unique."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("payouts", "0002_reconciliation")]
AFTER = [("payouts", "0004_sender_item_id_unique")]


def test_existing_payouts_get_the_item_id_they_were_sent_with() -> None:
    partners = [make_partner(user=make_user(f"p{n}@migrations.example")) for n in range(2)]
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        before = executor.loader.project_state(BEFORE).apps.get_model("payouts", "Payout")
        rows = [
            before.objects.create(
                partner_id=partner.pk,
                period="2026-09",
                amount_cents=5_000 + n,
                sender_batch_id=f"aptr-{partner.pk}-2026-09-{attempt}",
                batch_number=attempt,
                status="paid",
            )
            for n, (partner, attempt) in enumerate(zip(partners, (1, 2), strict=True))
        ]
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        after = executor.loader.project_state(AFTER).apps.get_model("payouts", "Payout")
        got = {p.pk: (p.sender_batch_id, p.sender_item_id, p.amount_cents) for p in after.objects.all()}
        assert got == {row.pk: (row.sender_batch_id, f"{row.sender_batch_id}-1", row.amount_cents) for row in rows}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
