"""POST /webhooks/stripe end to end: signed Stripe-shaped events, the ledger they write, and the edges."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import balance
from apertur.integrations.stripe import events
from apertur.integrations.stripe.models import RejectedDelivery, StripeEvent
from apertur.projects.models import ExchangeRate, Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_secret"
UTC = dt.UTC


@pytest.fixture(autouse=True)
def _secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def deliver(evt: dict[str, Any], *, secret: str = SECRET) -> Any:
    body = events.encode(evt)
    return Client().post(
        "/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=events.sign(body, secret)
    )


def at(y: int, m: int, d: int, h: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=UTC)


@pytest.fixture
def world():  # type: ignore[no-untyped-def]
    partner = make_partner()
    customer = make_user("customer@example.com")
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(
        customer=customer, partner=partner, source=AttributionSource.REFERRAL, at=at(2026, 2, 20)
    )
    return partner, customer


def test_worked_example(world) -> None:  # type: ignore[no-untyped-def]
    partner, customer = world
    with time_machine.travel(at(2026, 3, 1), tick=False):
        paid = events.invoice_paid(
            customer="cus_1",
            email=customer.email,
            amount=24_999,
            at=at(2026, 3, 1),
            invoice_id="in_1",
            charge_id="ch_1",
        )
        assert deliver(paid).json()["status"] == "processed"
    earned = CommissionEntry.objects.get(kind="earned")
    assert earned.amount_cents == 2_500  # 2,499.9 rounded half up
    assert earned.available_at == at(2026, 3, 31)
    with time_machine.travel(at(2026, 3, 10), tick=False):
        refund = events.charge_refunded(charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, at(2026, 3, 10))])
        assert deliver(refund).json()["status"] == "processed"
        assert CommissionEntry.objects.get(kind="reversal").amount_cents == -500
        ExchangeRate.objects.create(currency="USD", date=dt.date(2026, 3, 10), rate="1.3712")
        usd = events.invoice_paid(
            customer="cus_1", email=customer.email, amount=10_000, currency="usd", at=at(2026, 3, 10), invoice_id="in_2"
        )
        deliver(usd)
    payment = Payment.objects.get(external_id="in_2")
    assert payment.amount_cad_cents == 13_712 and payment.currency == "USD" and payment.amount_cents == 10_000
    assert CommissionEntry.objects.get(payment=payment).amount_cents == 1_371  # 1,371.2
    with time_machine.travel(at(2026, 3, 30, 23), tick=False):
        b = balance(partner=partner)
        assert (b.pending_cents, b.eligible_cents, b.lifetime_cents) == (2_000 + 1_371, 0, 3_371)
    with time_machine.travel(at(2026, 3, 31, 12), tick=False):  # hold over for the March 1 payment
        b = balance(partner=partner)
        assert (b.pending_cents, b.eligible_cents) == (1_371, 2_000)


def test_rate_from_the_balance_transaction(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    with time_machine.travel(at(2026, 3, 1), tick=False):
        deliver(
            events.invoice_paid(
                customer="cus_1",
                email=customer.email,
                amount=10_000,
                currency="usd",
                at=at(2026, 3, 1),
                exchange_rate="1.3712",
            )
        )
    assert Payment.objects.get().amount_cad_cents == 13_712


def test_bad_signature_is_refused_recorded_and_changes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid = events.invoice_paid(customer="cus_1", email=customer.email, amount=24_999, at=at(2026, 3, 1))
    response = deliver(paid, secret="whsec_wrong")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert Payment.objects.count() == 0 and StripeEvent.objects.count() == 0
    assert RejectedDelivery.objects.get().reason.startswith("invalid signature")
    unsigned = Client().post("/webhooks/stripe", events.encode(paid), content_type="application/json")
    assert unsigned.status_code == 400


def test_malformed_event(world) -> None:  # type: ignore[no-untyped-def]
    body = b'{"id": "evt_x", "type": "invoice.paid"}'
    response = Client().post(
        "/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=events.sign(body, SECRET)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    assert StripeEvent.objects.count() == 0 and RejectedDelivery.objects.count() == 1


def test_unknown_customer_is_stored_as_ignored(world) -> None:  # type: ignore[no-untyped-def]
    paid = events.invoice_paid(customer="cus_9", email="stranger@example.com", amount=1_000, at=at(2026, 3, 1))
    response = deliver(paid)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored" and "unknown customer" in response.json()["detail"]
    assert Payment.objects.count() == 0 and CommissionEntry.objects.count() == 0


def test_replays_change_nothing_twice(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at(2026, 3, 1), charge_id="ch_1", invoice_id="in_1"
    )
    refund = events.charge_refunded(charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, at(2026, 3, 2))])
    for evt in (paid, paid, refund, refund):
        assert deliver(evt).status_code == 200
    assert deliver(paid).json()["duplicate"] is True
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


def test_refund_delivered_before_its_payment_waits(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at(2026, 3, 1), charge_id="ch_1", invoice_id="in_1"
    )
    refund = events.charge_refunded(charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, at(2026, 3, 2))])
    assert deliver(refund).json()["status"] == "waiting"
    assert deliver(paid).json()["status"] == "processed"
    assert StripeEvent.objects.filter(status="waiting").count() == 0
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


def test_never_reverses_more_than_was_earned(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    deliver(
        events.invoice_paid(
            customer="cus_1",
            email=customer.email,
            amount=10_000,
            at=at(2026, 3, 1),
            charge_id="ch_1",
            invoice_id="in_1",
        )
    )
    deliver(
        events.charge_refunded(
            charge_id="ch_1",
            invoice_id="in_1",
            refunds=[("re_1", 8_000, at(2026, 3, 2)), ("re_2", 8_000, at(2026, 3, 3))],
        )
    )
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 0


def test_dispute_opened_then_won(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    deliver(
        events.invoice_paid(
            customer="cus_1",
            email=customer.email,
            amount=10_000,
            at=at(2026, 3, 1),
            charge_id="ch_1",
            invoice_id="in_1",
        )
    )
    deliver(
        events.dispute(
            charge_id="ch_1", amount=10_000, at=at(2026, 3, 5), status="needs_response", dispute_id="dp_1", closed=False
        )
    )
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 0
    deliver(
        events.dispute(
            charge_id="ch_1", amount=10_000, at=at(2026, 3, 20), status="won", dispute_id="dp_1", closed=True
        )
    )
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 1_000


def test_payments_before_the_attribution_earn_nothing(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    deliver(events.invoice_paid(customer="cus_1", email=customer.email, amount=10_000, at=at(2026, 2, 19)))
    assert CommissionEntry.objects.count() == 0


def test_subscription_maps_plan_by_lookup_key_and_metadata_user(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    evt = events.subscription(
        customer="cus_2", lookup_key="PRO", at=at(2026, 3, 1), metadata={"apertur_user_id": customer.public_id}
    )
    assert deliver(evt).json()["status"] == "processed"
    assert customer.projects.get().plan.name == "Pro"
    cancel = events.subscription(
        customer="cus_2",
        lookup_key="pro",
        at=at(2026, 4, 1),
        sub_id=evt["data"]["object"]["id"],
        kind="customer.subscription.deleted",
        status="canceled",
    )
    deliver(cancel)
    assert customer.projects.get().plan.name == "Free"


def test_oauth_attribution_when_subscribing() -> None:
    from apertur.oauth.tokens import connect
    from apertur.testing import make_app

    created = make_app()
    customer = make_user("oauth@example.com")
    project = create_project(owner=customer, name="P")
    with time_machine.travel(at(2026, 3, 1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    deliver(events.invoice_paid(customer="cus_3", email=customer.email, amount=24_999, at=at(2026, 3, 2)))
    assert CommissionEntry.objects.count() == 0  # not attributed yet: the payment came first
    deliver(events.subscription(customer="cus_3", lookup_key="pro", at=at(2026, 3, 2)))
    attribution = Attribution.objects.get(customer=customer)
    assert attribution.source == "oauth" and attribution.app == created.app
    # The payment that arrived before its subscription event is now earned (order does not matter).
    assert CommissionEntry.objects.get().amount_cents == 2_500


def test_a_partner_is_never_attributed_its_own_account() -> None:
    from apertur.oauth.tokens import connect
    from apertur.testing import make_app

    created = make_app()
    partner_user = created.app.partner.user
    project = create_project(owner=partner_user, name="Mine")
    connect(app=created.app, project=project, user=partner_user, scopes=["plan:read"])
    deliver(
        events.subscription(
            customer="cus_4", lookup_key="pro", at=at(2026, 3, 2), metadata={"apertur_user_id": partner_user.public_id}
        )
    )
    assert not Attribution.objects.filter(customer=partner_user).exists()
