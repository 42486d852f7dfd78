"""Races of the commission ledger, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from apertur.commissions import services
from apertur.commissions.models import CommissionEntry
from apertur.projects.models import Payment, Refund
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user, record_outcome, wait_until_blocked

UTC = dt.UTC


@pytest.mark.parametrize("first", ["earning", "refund"])
def test_an_earning_and_a_refund_of_one_payment_at_once_each_see_the_other(postgres_only: None, first: str) -> None:
    """A subscription event attributing the customer through OAuth earns on a payment already stored
    (``on_payment``) while a refund of that payment is recorded by another delivery (``on_refund``). The refund's
    settlement looked for the earning before taking the payment's lock, and the earning took no lock at all: each
    read before the other committed, the refund found nothing to reverse and the earning no refund to net, and the
    partner kept 10 % of money given back. Whichever transaction comes second now waits for the first and sees
    what it wrote."""
    partner = make_partner()
    customer = make_user()
    project = create_project(owner=customer, name="Weddings")
    paid_at = dt.datetime(2026, 3, 2, 12, tzinfo=UTC)
    payment = Payment.objects.create(
        project=project,
        customer=customer,
        external_id="in_1",
        charge_id="ch_1",
        amount_cents=24_999,
        amount_cad_cents=24_999,
        paid_at=paid_at,
    )
    held, release = threading.Event(), threading.Event()

    def earning() -> Any:
        Attribution.objects.create(
            customer=customer, partner=partner, source=AttributionSource.OAUTH, at=paid_at - dt.timedelta(days=1)
        )
        return services.on_payment(payment=payment)

    def refund() -> Any:
        made = Refund.objects.create(
            payment=payment,
            external_id="re_1",
            amount_cents=5_000,
            amount_cad_cents=5_000,
            created_at=paid_at + dt.timedelta(days=1),
        )
        return services.on_refund(refund=made)

    actions: dict[str, Callable[[], Any]] = {"earning": earning, "refund": refund}

    def held_open(action: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with transaction.atomic():
                result = action()
                held.set()  # its transaction holds what it wrote, uncommitted
                assert release.wait(timeout=10)
            return result

        return run

    def in_a_transaction(action: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: transaction.atomic()(action)()

    second = "refund" if first == "earning" else "earning"
    outcome: dict[str, Any] = {}
    one = threading.Thread(target=record_outcome, args=(outcome, first, held_open(actions[first])))
    two = threading.Thread(target=record_outcome, args=(outcome, second, in_a_transaction(actions[second])))
    one.start()
    try:
        assert held.wait(timeout=10)
        two.start()
        wait_until_blocked(two)  # the second waits for the first's lock (it used to run through, missing it)
    finally:
        release.set()
        one.join(timeout=30)
        if two.ident is not None:  # started
            two.join(timeout=30)
    assert not any(isinstance(value, Exception) for value in outcome.values()), outcome
    # 10 % of 249.99 earned, 10 % of the 50.00 refunded taken back: whichever came first.
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]
