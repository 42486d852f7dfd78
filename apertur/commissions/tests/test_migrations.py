"""Migrations 0003/0004: entries written before them get their payment's date and customer, on data (on
PostgreSQL the backfill's deferred foreign-key checks must not block the ALTER TABLE that follows)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.projects.models import Payment, Plan, Project
from apertur.projects.services import create_project
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("commissions", "0002_partner_notice")]
AFTER = [("commissions", "0004_entry_indexes")]


def test_backfill_copies_each_payments_date_and_customer() -> None:
    # Partners, projects and payments are untouched by these migrations: made with today's models.
    partner = make_partner()
    customer = make_user("customer@migrations.example")
    plan = Plan.objects.create(
        name="Migration plan", price_cents=100, uploads_per_month=1, storage_bytes=1, max_active_sessions=1,
        max_file_bytes=1,
    )  # fmt: skip
    project = Project.objects.create(owner=customer, name="P", plan=plan)
    paid = [dt.datetime(2026, 3, day, 12, tzinfo=dt.UTC) for day in (1, 2)]
    payments = [
        Payment.objects.create(
            project=project, customer=who, external_id=f"in_m{n}", amount_cents=1_000, paid_at=paid_at
        )
        for n, (paid_at, who) in enumerate(zip(paid, (customer, None), strict=True))
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        entry_model = executor.loader.project_state(BEFORE).apps.get_model("commissions", "CommissionEntry")
        for payment in payments:
            entry_model.objects.create(
                partner_id=partner.pk,
                payment_id=payment.pk,
                kind="earned",
                amount_cents=100,
                available_at=payment.paid_at + dt.timedelta(days=30),
                source_key=f"earned:{payment.pk}",
            )
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        after = executor.loader.project_state(AFTER).apps.get_model("commissions", "CommissionEntry")
        rows = list(after.objects.order_by("payment_id").values_list("paid_at", "customer_id"))
        assert rows == [(paid[0], customer.pk), (paid[1], None)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


PAID_COLUMN = [("commissions", "0006_dashboard_indexes"), ("payouts", "0005_unused_indexes")]
PAID_DERIVED = [("commissions", "0007_paid_derived_from_payouts"), ("payouts", "0006_entry_link_without_constraint")]


def test_paid_out_at_goes_only_when_the_payout_links_say_the_same() -> None:
    """0007 drops ``paid_out_at`` for the links' word: it stops, changing nothing, where the two disagree."""
    from apertur.commissions.models import CommissionEntry

    partner = make_partner()
    customer = make_user("paid@migrations.example")
    project = create_project(owner=customer, name="P")
    sent = dt.datetime(2026, 4, 15, 13, tzinfo=dt.UTC)
    payments = [
        Payment.objects.create(
            project=project,
            customer=customer,
            external_id=f"in_p{n}",
            amount_cents=1_000,
            paid_at=dt.datetime(2026, 3, 1 + n, 12, tzinfo=dt.UTC),
        )
        for n in range(3)
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(PAID_COLUMN)
    try:
        old = executor.loader.project_state(PAID_COLUMN).apps
        entry_model = old.get_model("commissions", "CommissionEntry")
        entries = [
            entry_model.objects.create(
                partner_id=partner.pk,
                payment_id=payment.pk,
                paid_at=payment.paid_at,
                kind="earned",
                amount_cents=100,
                available_at=payment.paid_at + dt.timedelta(days=30),
                source_key=f"earned:{payment.pk}",
                paid_out_at=sent if n < 2 else None,
            )
            for n, payment in enumerate(payments)
        ]
        payout = old.get_model("payouts", "Payout").objects.create(
            partner_id=partner.pk, period="2026-04", amount_cents=100, status="sent",
            sender_batch_id="aptr-1-2026-04-1", sender_item_id="aptr-1-2026-04-1", sent_at=sent,
        )  # fmt: skip
        old.get_model("payouts", "PayoutEntry").objects.create(payout_id=payout.pk, entry_id=entries[0].pk)
        # entries[1] says paid, but no payout links it: refused, and the column is still there.
        executor = MigrationExecutor(connection)
        with pytest.raises(RuntimeError, match="1 commission entries are marked paid"):
            executor.migrate(PAID_DERIVED)
        assert entry_model.objects.filter(paid_out_at__isnull=False).count() == 2
        entry_model.objects.filter(pk=entries[1].pk).update(paid_out_at=None)
        executor = MigrationExecutor(connection)
        executor.migrate(PAID_DERIVED)
        assert list(CommissionEntry.objects.paid().values_list("pk", flat=True)) == [entries[0].pk]
        assert {e.pk for e in CommissionEntry.objects.unpaid()} == {entries[1].pk, entries[2].pk}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
