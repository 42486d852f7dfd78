"""Races of the commission ledger, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from apertur.accounts.models import User
from apertur.commissions import services
from apertur.commissions.models import CommissionEntry
from apertur.partners.models import Partner
from apertur.projects.models import Payment, Project, Refund
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.referrals.services import drop_unproven_referral
from apertur.testing import make_partner, make_user, while_paused

UTC = dt.UTC


def _one_then_the_other(first: Callable[[], Any], second: Callable[[], Any]) -> dict[str, Any]:
    """``first`` in a transaction held open (what it wrote uncommitted) while ``second`` starts in its own and reaches
    the lock ``first`` holds; then ``first`` commits. Returns each actor's result (or exception) by name."""
    held, release = threading.Event(), threading.Event()

    def held_open() -> Any:
        with transaction.atomic():
            result = first()
            held.set()
            assert release.wait(timeout=10)
        return result

    outcome = while_paused(held_open, lambda: transaction.atomic()(second)(), paused=held, go=release)
    assert not any(isinstance(value, Exception) for value in outcome.values()), outcome
    return outcome


PAID_AT = dt.datetime(2026, 3, 2, 12, tzinfo=UTC)


def _paid(customer: User, n: int = 1) -> Payment:
    return Payment.objects.create(
        project=Project.objects.filter(owner=customer).first() or create_project(owner=customer, name="Weddings"),
        customer=customer,
        external_id=f"in_{n}",
        charge_id=f"ch_{n}",
        amount_cents=24_999,
        amount_cad_cents=24_999,
        paid_at=PAID_AT,
    )


def _attribute(customer: User, partner: Partner, source: str) -> Attribution:
    return Attribution.objects.create(
        customer=customer, partner=partner, source=source, at=PAID_AT - dt.timedelta(days=1)
    )


def _refund(payment: Payment) -> CommissionEntry | None:
    made = Refund.objects.create(
        payment=payment,
        external_id="re_1",
        amount_cents=5_000,
        amount_cad_cents=5_000,
        created_at=PAID_AT + dt.timedelta(days=1),
    )
    return services.on_refund(refund=made)


def _in_order(first: str, actions: dict[str, Callable[[], Any]]) -> None:
    second = next(name for name in actions if name != first)
    _one_then_the_other(actions[first], actions[second])


@pytest.mark.parametrize("first", ["earning", "refund"])
def test_an_earning_and_a_refund_of_one_payment_at_once_each_see_the_other(postgres_only: None, first: str) -> None:
    """A subscription event attributing the customer through OAuth earns on a payment already stored
    (``on_payment``) while a refund of that payment is recorded by another delivery (``on_refund``). The refund's
    settlement looked for the earning before taking the payment's lock, and the earning took no lock at all: each
    read before the other committed, the refund found nothing to reverse and the earning no refund to net, and the
    partner kept 10 % of money given back. Whichever transaction comes second now waits for the first and sees
    what it wrote."""
    partner, customer = make_partner(), make_user()
    payment = _paid(customer)

    def earning() -> Any:
        _attribute(customer, partner, AttributionSource.OAUTH)
        return services.on_payment(payment=payment)

    _in_order(first, {"earning": earning, "refund": lambda: _refund(payment)})
    # 10 % of 249.99 earned, 10 % of the 50.00 refunded taken back: whichever came first.
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


@pytest.mark.parametrize("first", ["backfill", "refund"])
def test_a_backfill_and_a_refund_of_one_payment_at_once_each_see_the_other(postgres_only: None, first: str) -> None:
    """The bulk ledger path (``on_payments``, a backfill of the ledger) writes a chunk's earnings then reads the
    chunk's refunds; a refund recorded meanwhile (``on_refund``) looked for the earning before the backfill
    committed it, and the backfill read the refunds before the refund committed: neither netted it, and the
    partner kept 10 % of money given back. The backfill now takes the payments' locks after writing their
    earnings, as ``on_payment`` does for one: whichever comes second waits for the first and sees what it wrote."""
    partner, customer = make_partner(), make_user()
    _attribute(customer, partner, AttributionSource.REFERRAL)
    payment = _paid(customer)
    # In the actor's transaction, the chunk's own is a savepoint: the first actor's locks last until it commits.
    backfill = lambda: services.on_payments(pipeline=False)  # noqa: E731
    _in_order(first, {"backfill": backfill, "refund": lambda: _refund(payment)})
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


@pytest.mark.parametrize("first", ["drop", "payment"])
def test_a_dropped_referral_and_a_first_payment_at_once_agree(postgres_only: None, first: str) -> None:
    """A password reset claims an account whose signup carried a referral and was never confirmed: the referral is
    dropped unless the customer has paid (``drop_unproven_referral``). A first payment recorded meanwhile read the
    attribution before the drop committed and earned on it, while the drop looked for payments before the payment
    committed: the referral was dropped and the partner still earned. Now the payment's earning reads the
    attribution under its lock: after a drop it finds none; before it, the drop waits and sees the payment."""
    partner, customer = make_partner(), make_user()
    create_project(owner=customer, name="Weddings")
    _attribute(customer, partner, AttributionSource.REFERRAL)

    def payment() -> Any:
        return services.on_payment(payment=_paid(customer))

    _in_order(first, {"drop": lambda: drop_unproven_referral(customer=customer), "payment": payment})
    kept = Attribution.objects.filter(customer=customer).exists()
    earned = list(CommissionEntry.objects.values_list("amount_cents", flat=True))
    assert (kept, earned) == ((False, []) if first == "drop" else (True, [2_500]))


def test_a_backfill_and_an_earning_of_one_payment_at_once_do_not_deadlock(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription event re-examining a stored payment (``on_payment``: the attribution's lock, then the payment's,
    then the earning's insert) while a backfill (``on_payments``) writes the same payment's earning. The backfill
    inserted its earning first and took the payment's lock after: the earning's insert waited for the backfill's
    uncommitted row while the backfill waited for the payment's lock the earning held, and PostgreSQL killed one
    of them (deadlock detected). The backfill now takes the payments' locks before it inserts, as ``on_payment``
    does: the second of the two waits for the first, and the payment is earned on once."""
    partner, customer = make_partner(), make_user()
    _attribute(customer, partner, AttributionSource.REFERRAL)
    payment = _paid(customer)
    locked, go = threading.Event(), threading.Event()
    lock_payment = services._lock_payment

    def lock_then_pause(locked_payment: Payment) -> None:
        lock_payment(locked_payment)
        locked.set()
        assert go.wait(timeout=10)

    monkeypatch.setattr(services, "_lock_payment", lock_then_pause)
    outcome = while_paused(
        lambda: services.on_payment(payment=payment),
        lambda: services.on_payments(pipeline=False),
        paused=locked,
        go=go,
    )
    assert outcome["second_waited"]  # the backfill reached the payment's lock the earning holds
    assert not any(isinstance(value, Exception) for value in outcome.values()), outcome
    assert list(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [2_500]


def test_a_backfill_and_an_oauth_attribution_earning_earlier_payments_do_not_deadlock(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription event attributing a customer through OAuth earns on the payments stored before, in the order
    they were paid (Stripe's handler, ``_reapply_payments``), while a backfill writes their earnings in id order.
    Two payments stored out of order (the one paid first has the larger id): the event locked that one and waited
    for the other, which the backfill held while waiting for the first, and PostgreSQL killed one of them. The
    event now takes the customer's payments' locks in id order first, as the backfill does."""
    from apertur.integrations.stripe import handlers

    partner, customer = make_partner(), make_user()
    stored_first = _paid(customer, n=1)
    Payment.objects.filter(pk=stored_first.pk).update(paid_at=PAID_AT + dt.timedelta(days=30))
    paid_first = _paid(customer, n=2)  # paid at PAID_AT: earned first, though its id is the larger
    _attribute(customer, partner, AttributionSource.OAUTH)
    locked, go = threading.Event(), threading.Event()
    lock_payment = services._lock_payment

    def lock_then_pause(payment: Payment) -> None:
        lock_payment(payment)
        if not locked.is_set():
            locked.set()  # the first payment the event earns on: the one paid first
            assert go.wait(timeout=10)

    monkeypatch.setattr(services, "_lock_payment", lock_then_pause)
    outcome = while_paused(
        lambda: transaction.atomic()(handlers._reapply_payments)(customer),
        lambda: services.on_payments(pipeline=False),
        paused=locked,
        go=go,
    )
    assert outcome["second_waited"]
    assert not any(isinstance(value, Exception) for value in outcome.values()), outcome
    assert sorted(CommissionEntry.objects.values_list("payment_id", flat=True)) == sorted(
        [stored_first.pk, paid_first.pk]
    )
