"""Migrations 0003/0004: entries written before them get their payment's date and customer, on data (on
PostgreSQL the backfill's deferred foreign-key checks must not block the ALTER TABLE that follows)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.projects.models import Payment, Plan, Project
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
