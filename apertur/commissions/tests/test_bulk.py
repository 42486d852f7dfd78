"""The bulk ledger path (``services.on_payments``) writes exactly what the per-event path (``on_payment``, as the
Stripe webhook calls it) writes for the same payments: same entries, amounts, kinds, availability and source
keys, including refunds and disputes recorded before the earning, payments made before the attribution,
payments that round to nothing, other currencies, customers without an attribution, and chunk boundaries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from apertur.commissions import services
from apertur.commissions.models import CommissionEntry
from apertur.projects.models import Dispute, DisputeStatus, Payment, Refund
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, 12, tzinfo=UTC)


def day(n: int) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def build() -> list[Payment]:
    """Two partners, five customers (one not attributed), payments with every kind of fact around them."""
    partners = [make_partner(), make_partner()]
    payments: list[Payment] = []
    n = 0

    def pay(
        customer: Any, project: Any, at: dt.datetime, cents: int, currency: str = "CAD", rate: str = "1"
    ) -> Payment:
        nonlocal n
        n += 1
        cad = int((Decimal(cents) * Decimal(rate)).quantize(Decimal(1)))
        payment = Payment.objects.create(
            project=project,
            customer=customer,
            external_id=f"in_{n}",
            charge_id=f"ch_{n}",
            amount_cents=cents,
            currency=currency,
            amount_cad_cents=cad,
            cad_rate=Decimal(rate),
            paid_at=at,
        )
        payments.append(payment)
        return payment

    for i in range(5):
        customer = make_user(f"customer{i}@example.com")
        project = create_project(owner=customer, name=f"Project {i}")
        if i < 4:  # customer 4 is nobody's
            Attribution.objects.create(
                customer=customer, partner=partners[i % 2], source=AttributionSource.REFERRAL, at=day(10 * i)
            )
        for month in range(4):
            payment = pay(customer, project, day(30 * month + i), [24_999, 2_499, 4, 9_999][month])
            if month == 1:
                Refund.objects.create(
                    payment=payment,
                    external_id=f"re_{payment.pk}_a",
                    amount_cents=1_000,
                    amount_cad_cents=1_000,
                    created_at=payment.paid_at + dt.timedelta(days=2),
                )
                Refund.objects.create(
                    payment=payment,
                    external_id=f"re_{payment.pk}_b",
                    amount_cents=1_499,
                    amount_cad_cents=1_499,
                    created_at=payment.paid_at + dt.timedelta(days=3),
                )
            if month == 3:
                status = [DisputeStatus.OPEN, DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WON][i % 4]
                Dispute.objects.create(
                    payment=payment,
                    external_id=f"dp_{payment.pk}",
                    amount_cents=payment.amount_cents,
                    status=status,
                    opened_at=payment.paid_at + dt.timedelta(days=5),
                    closed_at=None if status == DisputeStatus.OPEN else payment.paid_at + dt.timedelta(days=9),
                )
        pay(customer, project, day(130 + i), 7_299, "USD", "1.3712")
    return payments


def ledger() -> list[tuple[Any, ...]]:
    return sorted(
        CommissionEntry.objects.values_list(
            "payment_id", "partner_id", "kind", "amount_cents", "available_at", "source_key"
        )
    )


def per_event(payments: list[Payment]) -> list[tuple[Any, ...]]:
    for payment in payments:
        services.on_payment(payment=payment)
    return ledger()


@pytest.mark.parametrize("chunk_size", [1, 7, services.BULK_CHUNK])
def test_bulk_writes_what_the_per_event_path_writes(chunk_size: int) -> None:
    payments = build()
    expected = per_event(payments)
    assert {kind for _, _, kind, *_ in expected} == {"earned", "reversal"}  # refunds and disputes were settled
    CommissionEntry.objects.all().delete()
    result = services.on_payments(chunk_size=chunk_size)
    assert ledger() == expected
    assert result.payments == 4 * 5  # customer 4's payments are nobody's
    assert result.earned == sum(1 for row in expected if row[5].startswith("earned:"))


def test_bulk_is_a_replay_of_what_is_already_there() -> None:
    payments = build()
    expected = per_event(payments)
    again = services.on_payments(chunk_size=5)
    assert (again.earned, again.followed_up) == (0, 0)
    assert ledger() == expected


def test_bulk_completes_a_partly_written_ledger() -> None:
    payments = build()
    expected = per_event(payments)
    CommissionEntry.objects.filter(payment__in=payments[::3]).delete()
    services.on_payments(payments=Payment.objects.filter(pk__in=[p.pk for p in payments]), chunk_size=4)
    assert ledger() == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chunk_size", [1, 3, services.BULK_CHUNK])
def test_pipelined_bulk_writes_what_the_per_event_path_writes(chunk_size: int) -> None:
    # Chunks written from a second thread on its own connection while the next one is read and computed.
    payments = build()
    with transaction.atomic():  # as the Stripe webhook calls it
        expected = per_event(payments)
    CommissionEntry.objects.all().delete()
    result = services.on_payments(chunk_size=chunk_size, pipeline=True)
    assert ledger() == expected
    earned_ids = {row[0] for row in expected if row[5].startswith("earned:")}
    with_facts = set(Refund.objects.values_list("payment_id", flat=True))
    with_facts |= set(Dispute.objects.values_list("payment_id", flat=True))
    assert (result.payments, result.followed_up) == (4 * 5, len(earned_ids & with_facts))
    assert result.earned == sum(1 for row in expected if row[5].startswith("earned:"))


@pytest.mark.django_db(transaction=True)
def test_a_failed_chunk_stops_the_pipeline_and_keeps_the_chunks_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    build()
    CommissionEntry.objects.all().delete()
    real = services._insert_earnings
    calls: list[int] = []

    def failing_second(new: Any) -> list[int]:
        calls.append(len(new))
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(new)

    monkeypatch.setattr(services, "_insert_earnings", failing_second)
    with pytest.raises(RuntimeError, match="database went away"):
        services.on_payments(chunk_size=4, pipeline=True)
    written = CommissionEntry.objects.filter(source_key__startswith="earned:").count()
    assert 0 < written == calls[0]  # the first chunk is committed, the second rolled back, no third written
    assert len(calls) in (2, 3)


def test_no_pipeline_inside_a_transaction() -> None:
    build()
    with pytest.raises(ValueError, match="outside a transaction"):
        services.on_payments(pipeline=True)
    assert services.on_payments().earned > 0  # the default stays on this connection here


def test_a_constraint_error_that_is_not_a_replay_is_raised_not_swallowed() -> None:
    from django.db import IntegrityError

    payments = build()
    per_event(payments[:1])
    earned = CommissionEntry.objects.get(payment=payments[0], source_key=f"earned:{payments[0].pk}")
    fields = {"partner": earned.partner, "kind": "earned", "available_at": earned.available_at}
    # The same source key again: a replay, nothing written.
    again = services._write(payment=payments[0], amount_cents=1, source_key=earned.source_key, **fields)
    assert again is None
    # A different failure (here a missing amount, as code that predates a column would cause) is an error.
    with pytest.raises(IntegrityError):
        services._write(payment=payments[0], amount_cents=None, source_key="refund:new", **fields)
    assert not CommissionEntry.objects.filter(source_key="refund:new").exists()
