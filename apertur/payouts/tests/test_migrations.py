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


def test_payouts_already_held_get_when_their_hold_began() -> None:
    """0009: a payout PayPal held before ``held_since`` existed gets the time of its last move to ``held`` (the audit
    log), else when it was sent, so the held alert reports it rather than never."""
    import datetime as dt

    from apertur.core.models import AuditEvent

    partner = make_partner(user=make_user("held@migrations.example"))
    executor = MigrationExecutor(connection)
    executor.migrate([("payouts", "0008_paypal_event_name")])
    try:
        before = executor.loader.project_state([("payouts", "0008_paypal_event_name")]).apps.get_model(
            "payouts", "Payout"
        )
        sent = dt.datetime(2026, 4, 15, 13, tzinfo=dt.UTC)
        moved = dt.datetime(2026, 4, 17, 8, tzinfo=dt.UTC)
        common = {"partner_id": partner.pk, "amount_cents": 6_000, "sent_at": sent}
        audited = before.objects.create(period="2026-04", sender_item_id="aptr-h-1", status="held", **common)
        unaudited = before.objects.create(period="2026-05", sender_item_id="aptr-h-2", status="held", **common)
        paid = before.objects.create(period="2026-06", sender_item_id="aptr-h-3", status="paid", **common)
        for at, to in ((sent, "pending"), (moved, "held")):
            AuditEvent.objects.create(
                action="payout.status", object_type="payouts.payout", object_id=str(audited.pk), data={"to": to}, at=at
            )
        executor = MigrationExecutor(connection)
        executor.migrate([("payouts", "0009_held_by_paypal")])
        after = executor.loader.project_state([("payouts", "0009_held_by_paypal")]).apps.get_model("payouts", "Payout")
        got = dict(after.objects.values_list("pk", "held_since"))
        assert got == {audited.pk: moved, unaudited.pk: sent, paid.pk: None}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_payouts_sent_or_processing_have_been_processing_since_they_were_sent() -> None:
    """0011: ``processing_since`` of a payout still sent or processing is when it was sent, so the processing alert
    counts from there; other payouts have none."""
    import datetime as dt

    partner = make_partner(user=make_user("processing@migrations.example"))
    executor = MigrationExecutor(connection)
    executor.migrate([("payouts", "0010_processing_alert")])
    try:
        before = executor.loader.project_state([("payouts", "0010_processing_alert")]).apps.get_model(
            "payouts", "Payout"
        )
        sent = dt.datetime(2026, 4, 15, 13, tzinfo=dt.UTC)
        common = {"partner_id": partner.pk, "amount_cents": 6_000, "sent_at": sent}
        rows = {
            status: before.objects.create(period=f"2026-0{n}", sender_item_id=f"aptr-p-{n}", status=status, **common)
            for n, status in enumerate(("sent", "pending", "paid", "held"), start=1)
        }
        executor = MigrationExecutor(connection)
        executor.migrate([("payouts", "0011_processing_since")])
        after = executor.loader.project_state([("payouts", "0011_processing_since")]).apps.get_model(
            "payouts", "Payout"
        )
        got = dict(after.objects.values_list("pk", "processing_since"))
        assert got == {rows["sent"].pk: sent, rows["pending"].pk: sent, rows["paid"].pk: None, rows["held"].pk: None}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
