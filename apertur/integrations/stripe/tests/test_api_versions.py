"""Events of Stripe API versions since 2025-03-31 (basil): an invoice names neither its charge nor its PaymentIntent
(an ``invoice_payment.paid`` event says which payment paid it), a charge no longer names its invoice, and the
subscription's details (with its metadata) moved to the invoice's ``parent``. Refunds and disputes, which name the
charge and the PaymentIntent, must still find their payment, in whatever order Stripe delivers."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.db import transaction

from apertur.commissions.models import CommissionEntry
from apertur.integrations.stripe import events
from apertur.integrations.stripe.models import StripeEvent
from apertur.integrations.stripe.services import receive
from apertur.projects.models import Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
PAID = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def customer() -> Any:
    """A referred customer with two projects; Stripe knows them under another email and a customer id nothing
    has linked yet: only the subscription's metadata says who they are."""
    user = make_user("ada@example.com")
    create_project(owner=user, name="First")
    create_project(owner=user, name="Weddings")
    Attribution.objects.create(
        customer=user, partner=make_partner(), source=AttributionSource.REFERRAL, at=PAID - dt.timedelta(days=30)
    )
    return user


def basil_history(customer: Any, *, via: str = "payment_intent") -> dict[str, dict[str, Any]]:
    weddings = customer.projects.get(name="Weddings")
    meta = {"apertur_user_id": customer.public_id, "apertur_project_id": weddings.public_id}
    later = PAID + dt.timedelta(days=3)
    pi = "pi_1" if via == "payment_intent" else None
    return {
        "paid": events.invoice_paid(
            customer="cus_basil", email="ada@work.example", amount=24_999, at=PAID, invoice_id="in_1",
            subscription_metadata=meta, api_version=events.BASIL, event_id="evt_paid",
        ),
        "invoice_payment": events.invoice_payment_paid(
            invoice_id="in_1", amount=24_999, at=PAID, payment_intent=pi, charge_id="ch_1", event_id="evt_inpay"
        ),
        "refund": events.refund_created(
            refund_id="re_1", charge_id="ch_1", payment_intent=pi, amount=5_000, at=later, event_id="evt_refund"
        ),
    }  # fmt: skip


@pytest.mark.parametrize("via", ["payment_intent", "charge"])
@pytest.mark.parametrize("order", list(itertools.permutations(["paid", "invoice_payment", "refund"])))
def test_a_refund_finds_its_payment_in_any_order(customer: Any, order: tuple[str, ...], via: str) -> None:
    """Regression: an invoice of these versions gave no charge, so the payment was stored without one and its
    refunds waited for a payment that had come: given up after 7 days, the commission kept on refunded money."""
    history = basil_history(customer, via=via)
    for name in order:
        with transaction.atomic():
            receive(history[name])
    statuses = dict(StripeEvent.objects.values_list("event_id", "status"))
    assert statuses == {"evt_paid": "processed", "evt_inpay": "processed", "evt_refund": "processed"}, (
        StripeEvent.objects.values_list("event_id", "detail")
    )
    payment = Payment.objects.get()
    assert payment.project.name == "Weddings"  # the subscription's apertur_project_id, now under parent
    assert payment.customer == customer
    assert sorted(CommissionEntry.objects.values_list("kind", "amount_cents")) == [
        ("earned", 2_500),
        ("reversal", -500),
    ]


def test_a_dispute_and_a_charge_refunded_of_these_versions_find_their_payment(customer: Any) -> None:
    history = basil_history(customer)
    receive(history["paid"])
    dispute = events.dispute(
        charge_id="ch_1", payment_intent="pi_1", amount=24_999, at=PAID + dt.timedelta(days=5),
        status="needs_response", dispute_id="dp_1", closed=False,
    )  # fmt: skip
    assert receive(dispute).status == "waiting"  # nothing says yet which payment ch_1 and pi_1 are
    # A charge of these versions names its PaymentIntent, no invoice, and lists no refunds.
    charge = events.event(
        "charge.refunded",
        {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 5_000},
        PAID + dt.timedelta(days=3),
        api_version=events.BASIL,
    )
    assert receive(charge).status == "waiting"
    assert receive(history["invoice_payment"]).status == "processed"
    statuses = dict(StripeEvent.objects.values_list("type", "status"))
    assert statuses["charge.dispute.created"] == "processed" and statuses["charge.refunded"] == "processed"
    assert Payment.objects.get().charge_id == "ch_1"
    assert sorted(CommissionEntry.objects.values_list("kind", "amount_cents")) == [
        ("earned", 2_500),
        ("reversal", -2_500),
    ]


def test_the_older_shape_names_the_subscription_metadata_too(customer: Any) -> None:
    weddings = customer.projects.get(name="Weddings")
    paid = events.invoice_paid(
        customer="cus_old", email="ada@work.example", amount=1_000, at=PAID,
        subscription_metadata={"apertur_user_id": customer.public_id, "apertur_project_id": weddings.public_id},
    )  # fmt: skip
    assert receive(paid).status == "processed"
    assert Payment.objects.get().project == weddings
