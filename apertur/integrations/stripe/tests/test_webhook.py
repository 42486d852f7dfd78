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
from apertur.projects.models import Dispute, ExchangeRate, Payment, Refund, Subscription
from apertur.projects.selectors import payment_list
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


def test_unknown_customer_waits_then_is_given_up(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    with time_machine.travel(at(2026, 3, 1), tick=False):
        paid = events.invoice_paid(customer="cus_9", email="stranger@example.com", amount=1_000, at=at(2026, 3, 1))
        response = deliver(paid)
    assert response.status_code == 200
    assert response.json()["status"] == "waiting" and "unknown customer cus_9" in response.json()["detail"]
    assert Payment.objects.count() == 0 and CommissionEntry.objects.count() == 0
    # Still waiting six days later; after a week it is given up, and is no longer retried with every event.
    for day, status in ((7, "waiting"), (9, "ignored")):
        with time_machine.travel(at(2026, 3, day), tick=False):
            deliver(events.invoice_paid(customer="cus_1", email=customer.email, amount=1_000, at=at(2026, 3, day)))
        row = StripeEvent.objects.get(event_id=paid["id"])
        assert row.status == status, row.detail
    assert row.detail == "gave up waiting after 7 days: unknown customer cus_9"
    assert not Payment.objects.filter(external_id=paid["data"]["object"]["id"]).exists()


def test_unknown_email_without_a_customer_id_is_ignored(world) -> None:  # type: ignore[no-untyped-def]
    paid = events.invoice_paid(customer="cus_9", email="stranger@example.com", amount=1_000, at=at(2026, 3, 1))
    paid["data"]["object"]["customer"] = None
    response = deliver(paid)
    assert response.json()["status"] == "ignored"
    assert response.json()["detail"] == "unknown customer stranger@example.com"


def test_a_subscription_delivered_before_the_first_invoice_waits_for_it() -> None:
    """Stripe sends ``customer.subscription.created`` (no email, no metadata here) before ``invoice.paid``:
    the subscription waits until the invoice tells who the customer is, then changes the plan and
    attributes the customer to the partner whose app they connected."""
    from apertur.oauth.tokens import connect
    from apertur.testing import make_app

    created = make_app()
    customer = make_user("oauth-first@example.com")
    project = create_project(owner=customer, name="P")
    with time_machine.travel(at(2026, 3, 1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    with time_machine.travel(at(2026, 3, 2), tick=False):
        sub = events.subscription(customer="cus_new", lookup_key="pro", at=at(2026, 3, 2))
        assert deliver(sub).json()["status"] == "waiting"
        project.refresh_from_db()
        assert project.plan.name == "Free" and not Attribution.objects.exists()
        paid = events.invoice_paid(customer="cus_new", email=customer.email, amount=2_900, at=at(2026, 3, 2, 13))
        assert deliver(paid).json()["status"] == "processed"
    assert StripeEvent.objects.get(event_id=sub["id"]).status == "processed"
    project.refresh_from_db()
    assert project.plan.name == "Pro"
    attribution = Attribution.objects.get(customer=customer)
    assert (attribution.source, attribution.app, attribution.at) == ("oauth", created.app, at(2026, 3, 2))
    assert CommissionEntry.objects.get(payment__external_id=paid["data"]["object"]["id"]).amount_cents == 290


def test_customer_metadata_links_the_customer_id(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    # Out of order: the invoice (an email Apertur does not know) first, then the customer event naming the user.
    paid = events.invoice_paid(customer="cus_meta", email="billing@acme.example", amount=10_000, at=at(2026, 3, 1))
    assert deliver(paid).json()["status"] == "waiting"
    linked = events.customer(
        customer_id="cus_meta", at=at(2026, 3, 1), metadata={"apertur_user_id": customer.public_id}
    )
    outcome = deliver(linked).json()
    assert (outcome["status"], outcome["detail"]) == ("processed", f"customer cus_meta is {customer.public_id}")
    assert Payment.objects.get(external_id=paid["data"]["object"]["id"]).customer == customer
    assert CommissionEntry.objects.get().amount_cents == 1_000
    # Later events of that customer need neither the email nor the metadata.
    later = events.invoice_paid(customer="cus_meta", email="billing@acme.example", amount=5_000, at=at(2026, 3, 2))
    assert deliver(later).json()["status"] == "processed"
    # A customer event without the metadata, or naming nobody, is not Apertur's.
    for metadata in ({}, {"apertur_user_id": "usr_nobody"}):
        other = events.customer(customer_id="cus_other", at=at(2026, 3, 1), metadata=metadata)
        assert deliver(other).json()["status"] == "ignored"


def test_expanded_customer_metadata_on_an_invoice(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid = events.invoice_paid(customer="cus_x", email="billing@acme.example", amount=10_000, at=at(2026, 3, 1))
    paid["data"]["object"]["customer"] = {
        "id": "cus_x",
        "object": "customer",
        "metadata": {"apertur_user_id": customer.public_id},
    }
    assert deliver(paid).json()["status"] == "processed"
    assert Payment.objects.get().customer == customer
    assert customer.billing_customers.get().external_id == "cus_x"


def test_a_customers_second_stripe_customer_id_is_linked_too(world) -> None:  # type: ignore[no-untyped-def]
    """A user with two Stripe customers (one made again after a deletion, or one per currency): only the first id
    was remembered, so a subscription event naming the second (it carries no email) waited and was given up."""
    _, customer = world
    for n, cus in enumerate(("cus_first", "cus_second"), start=1):
        paid = events.invoice_paid(customer=cus, email="customer@example.com", amount=1_000, at=at(2026, 3, n))
        assert deliver(paid).json()["status"] == "processed"
    assert sorted(customer.billing_customers.values_list("external_id", flat=True)) == ["cus_first", "cus_second"]
    sub = events.subscription(customer="cus_second", lookup_key="pro", at=at(2026, 3, 3))
    assert deliver(sub).json()["status"] == "processed"
    # An id stays its first user's: another user's invoice naming it does not move it.
    make_user("someone@example.com")
    other = events.invoice_paid(customer="cus_first", email="someone@example.com", amount=1_000, at=at(2026, 3, 4))
    deliver(other)
    assert sorted(customer.billing_customers.values_list("external_id", flat=True)) == ["cus_first", "cus_second"]


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


def test_refunds_of_current_api_versions_arrive_as_refund_events(world) -> None:  # type: ignore[no-untyped-def]
    """Since API version 2022-11-15 ``charge.refunded`` lists no refunds; each comes as ``refund.created``
    (before its payment, it waits). The same refund in both kinds of event counts once."""
    _, customer = world
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at(2026, 3, 1), charge_id="ch_1", invoice_id="in_1"
    )
    early = events.refund_created(refund_id="re_1", charge_id="ch_1", amount=5_000, at=at(2026, 3, 2))
    assert deliver(early).json()["status"] == "waiting"
    assert deliver(paid).json()["status"] == "processed"
    assert StripeEvent.objects.get(event_id=early["id"]).status == "processed"
    unlisted = events.charge_refunded(charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, at(2026, 3, 2))])
    del unlisted["data"]["object"]["refunds"]
    outcome = deliver(unlisted).json()
    assert outcome["status"] == "processed" and "refund.created" in outcome["detail"]
    listed = events.charge_refunded(charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, at(2026, 3, 2))])
    assert deliver(listed).json()["status"] == "processed"
    failed = events.refund_created(refund_id="re_2", charge_id="ch_1", amount=1_000, at=at(2026, 3, 3), status="failed")
    assert deliver(failed).json()["status"] == "processed"
    refund = Refund.objects.get(voided_at__isnull=True)
    assert (refund.external_id, refund.amount_cents, refund.created_at) == ("re_1", 5_000, at(2026, 3, 2))
    assert Refund.objects.get(external_id="re_2").voided_at == at(2026, 3, 3)
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


def paid_24_999(customer: Any) -> None:
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at(2026, 3, 1), charge_id="ch_1", invoice_id="in_1"
    )
    assert deliver(paid).json()["status"] == "processed"


def ledger() -> list[tuple[str, int]]:
    return sorted(CommissionEntry.objects.values_list("kind", "amount_cents"))


def test_a_refund_that_fails_after_it_was_counted_gives_its_commission_back(world) -> None:  # type: ignore[no-untyped-def]
    """A pending refund takes its 10 % back at once; when Stripe reports it failed (or canceled) no money left, so
    it is earned again, once, however many events say so."""
    _, customer = world
    paid_24_999(customer)
    kept = events.refund_created(refund_id="re_1", charge_id="ch_1", amount=5_000, at=at(2026, 3, 2))
    pending = events.refund_created(
        refund_id="re_2", charge_id="ch_1", amount=10_000, at=at(2026, 3, 3), status="pending"
    )
    assert deliver(kept).json()["status"] == deliver(pending).json()["status"] == "processed"
    assert ledger() == [("earned", 2_500), ("reversal", -1_000), ("reversal", -500)]
    failed = events.refund_created(
        refund_id="re_2", charge_id="ch_1", amount=10_000, at=at(2026, 3, 3), status="failed",
        type="refund.updated", event_at=at(2026, 3, 6),
    )  # fmt: skip
    outcome = deliver(failed).json()
    assert outcome["status"] == "processed" and "voided" in outcome["detail"]
    assert ledger() == [("earned", 1_000), ("earned", 2_500), ("reversal", -1_000), ("reversal", -500)]
    again = CommissionEntry.objects.get(kind="earned", amount_cents=1_000)
    assert again.available_at == at(2026, 3, 31)  # with the earning it restores (its hold ends after the failure)
    # The same failure again (refund.failed, the older charge.refund.updated) and the late created event: no change.
    for kind in ("refund.failed", "charge.refund.updated"):
        late = events.refund_created(
            refund_id="re_2", charge_id="ch_1", amount=10_000, at=at(2026, 3, 3), status="failed", type=kind,
            event_at=at(2026, 3, 7),
        )  # fmt: skip
        assert deliver(late).json()["status"] == "processed"
    replay = events.refund_created(
        refund_id="re_2", charge_id="ch_1", amount=10_000, at=at(2026, 3, 3), status="pending"
    )
    assert deliver(replay).json()["status"] == "processed"
    assert sum(amount for _, amount in ledger()) == 2_000
    assert Refund.objects.get(external_id="re_2").voided_at == at(2026, 3, 6)


def test_a_refund_failure_delivered_first_takes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid_24_999(customer)
    failed = events.refund_created(
        refund_id="re_2", charge_id="ch_1", amount=10_000, at=at(2026, 3, 3), status="canceled",
        type="refund.updated", event_at=at(2026, 3, 6),
    )  # fmt: skip
    created = events.refund_created(
        refund_id="re_2", charge_id="ch_1", amount=10_000, at=at(2026, 3, 3), status="pending"
    )
    assert deliver(failed).json()["status"] == deliver(created).json()["status"] == "processed"
    assert ledger() == [("earned", 2_500)]


def test_charge_refunded_counts_only_refunds_that_may_return_money(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid_24_999(customer)
    listed = events.charge_refunded(
        charge_id="ch_1",
        invoice_id="in_1",
        refunds=[("re_1", 5_000, at(2026, 3, 2)), ("re_2", 10_000, at(2026, 3, 3)), ("re_3", 24_999, at(2026, 3, 4))],
        statuses={"re_2": "failed", "re_3": "canceled"},
    )
    outcome = deliver(listed).json()
    assert outcome["status"] == "processed" and "2 failed or canceled" in outcome["detail"]
    assert ledger() == [("earned", 2_500), ("reversal", -500)]
    payment = Payment.objects.get(external_id="in_1")
    assert payment_list(project=payment.project).get().refunded_cents == 5_000  # the billing history too


def test_an_inquiry_takes_nothing_and_closes_without_a_trace(world) -> None:  # type: ignore[no-untyped-def]
    """Stripe's inquiries (``warning_*``) withdraw no money: the commission stays until one escalates."""
    _, customer = world
    paid_24_999(customer)
    for status, closed, day in (("warning_needs_response", False, 5), ("warning_closed", True, 20)):
        evt = events.dispute(
            charge_id="ch_1", amount=24_999, at=at(2026, 3, day), opened_at=at(2026, 3, 5), status=status,
            dispute_id="du_1", closed=closed,
        )  # fmt: skip
        assert deliver(evt).json()["status"] == "processed"
        assert ledger() == [("earned", 2_500)]
    assert Dispute.objects.get().status == "inquiry_closed"


@pytest.mark.parametrize("order", ["in order", "escalation first"])
def test_an_escalated_inquiry_is_a_chargeback(world, order: str) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    paid_24_999(customer)

    def evt(status: str, day: int, kind: str) -> dict[str, Any]:
        return events.dispute(
            charge_id="ch_1", amount=24_999, at=at(2026, 3, day), opened_at=at(2026, 3, 5), status=status,
            dispute_id="du_1", closed=False, type=kind,
        )  # fmt: skip

    inquiry = evt("warning_needs_response", 5, "charge.dispute.created")
    escalated = evt("needs_response", 9, "charge.dispute.updated")
    for event in [inquiry, escalated] if order == "in order" else [escalated, inquiry]:
        assert deliver(event).json()["status"] == "processed"
    assert Dispute.objects.get().status == "open"
    assert ledger() == [("earned", 2_500), ("reversal", -2_500)]
    lost = events.dispute(
        charge_id="ch_1", amount=24_999, at=at(2026, 3, 30), opened_at=at(2026, 3, 5), status="lost",
        dispute_id="du_1", closed=True,
    )  # fmt: skip
    assert deliver(lost).json()["status"] == "processed"
    assert Dispute.objects.get().status == "lost" and sum(a for _, a in ledger()) == 0


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


def test_cancelling_an_old_subscription_keeps_the_plan_a_newer_one_pays_for(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    meta = {"apertur_user_id": customer.public_id}

    def sub(sub_id: str, key: str, day: int, kind: str = "customer.subscription.created") -> dict[str, Any]:
        status = "canceled" if kind.endswith("deleted") else "active"
        return events.subscription(
            customer="cus_2", lookup_key=key, at=at(2026, 3, day), sub_id=sub_id, kind=kind, status=status,
            metadata=meta, started=at(2026, 3, 1 if sub_id == "sub_old" else 10),
        )  # fmt: skip

    for evt in (sub("sub_old", "pro", 1), sub("sub_new", "business", 10)):
        assert deliver(evt).json()["status"] == "processed"
    assert customer.projects.get().plan.name == "Business"
    assert deliver(sub("sub_old", "pro", 12, "customer.subscription.deleted")).json()["status"] == "processed"
    assert customer.projects.get().plan.name == "Business"  # was Free: the newer subscription still pays
    assert deliver(sub("sub_new", "business", 20, "customer.subscription.deleted")).json()["status"] == "processed"
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


def test_only_subscribing_or_upgrading_after_connecting_attributes() -> None:
    """A customer already on Pro who connects an app afterwards: a routine update of the same subscription
    on the same plan (a renewal) is neither subscribing nor upgrading; moving up to Business is."""
    from apertur.oauth.tokens import connect
    from apertur.testing import make_app

    created = make_app()
    customer = make_user("already-pro@example.com")
    project = create_project(owner=customer, name="P")
    meta = {"apertur_user_id": customer.public_id}
    deliver(events.subscription(customer="cus_r", lookup_key="pro", at=at(2026, 2, 1), sub_id="sub_r", metadata=meta))
    with time_machine.travel(at(2026, 3, 1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])

    def updated(lookup_key: str, when: dt.datetime) -> str:
        evt = events.subscription(
            customer="cus_r",
            lookup_key=lookup_key,
            at=when,
            sub_id="sub_r",
            metadata=meta,
            kind="customer.subscription.updated",
        )
        return str(deliver(evt).json()["status"])

    assert updated("pro", at(2026, 3, 2)) == "processed"  # a renewal
    assert not Attribution.objects.filter(customer=customer).exists()
    assert updated("business", at(2026, 3, 5)) == "processed"  # an upgrade
    attribution = Attribution.objects.get(customer=customer)
    assert (attribution.source, attribution.at) == ("oauth", at(2026, 3, 5))


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


@pytest.mark.parametrize(
    ("statuses", "plans", "shown"),
    [
        # The first payment failed: Stripe creates the subscription `incomplete`, then, unpaid after 23 hours,
        # `incomplete_expired` (terminal: the invoice is voided, nothing more is billed).
        (["incomplete", "incomplete_expired"], ["Free", "Free"], "Canceled"),
        (["incomplete", "active"], ["Free", "Business"], "Active"),
        # Stripe gave up retrying a renewal (`unpaid`), or a trial ended with no payment method (`paused`).
        (["active", "unpaid", "active"], ["Business", "Free", "Business"], "Active"),
        (["trialing", "paused"], ["Business", "Free"], "Paused"),
        (["active", "past_due"], ["Business", "Business"], "Past due"),  # Stripe still retrying: kept
    ],
)
def test_only_a_subscription_being_paid_for_gives_its_plan(world, statuses, plans, shown) -> None:  # type: ignore[no-untyped-def]
    """Regression: every status Stripe has but ours four was stored as `active`, so a subscription whose first
    payment failed (`incomplete`, then `incomplete_expired`) put the project on the paid plan for good, with no
    payment ever made, and the billing page said "Active"."""
    _, customer = world
    meta = {"apertur_user_id": customer.public_id}
    for day, (status, plan) in enumerate(zip(statuses, plans, strict=True), start=1):
        kind = "customer.subscription.created" if day == 1 else "customer.subscription.updated"
        evt = events.subscription(
            customer="cus_2", lookup_key="business", at=at(2026, 3, day), sub_id="sub_1", status=status,
            metadata=meta, kind=kind, started=at(2026, 3, 1),
        )  # fmt: skip
        assert deliver(evt).json()["status"] == "processed"
        assert customer.projects.get().plan.name == plan, status
    page = Client()
    page.force_login(customer)
    html = page.get(f"/projects/{customer.projects.get().public_id}/billing").content.decode()
    if shown == "Canceled":
        assert "None: the Free plan is free" in html
    else:
        assert f">{shown}</span>" in html


@pytest.mark.parametrize("kind", ["charge.dispute.created", "charge.dispute.closed"])
def test_a_prevented_dispute_takes_nothing_and_is_closed(world, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Regression: Stripe's ``prevented`` status (API 2025-08-27: the dispute was blocked or resolved before it became
    a chargeback, so no money was withdrawn for it) was taken for an open chargeback: the commission was reversed and
    the dispute stayed open for ever."""
    _, customer = world
    paid_24_999(customer)
    evt = events.dispute(
        charge_id="ch_1", amount=24_999, at=at(2026, 3, 6), opened_at=at(2026, 3, 5), status="prevented",
        dispute_id="du_1", closed=False, type=kind,
    )  # fmt: skip
    assert deliver(evt).json()["status"] == "processed"
    assert ledger() == [("earned", 2_500)]
    dispute = Dispute.objects.get()
    assert dispute.status == "inquiry_closed" and dispute.closed_at == at(2026, 3, 6)


def test_a_chargeback_prevented_later_is_earned_again_once(world) -> None:  # type: ignore[no-untyped-def]
    """A dispute recorded as a chargeback that Stripe then reports ``prevented`` gave the money back: as a win, earned
    again once, however many times the event is delivered."""
    _, customer = world
    paid_24_999(customer)
    opened = events.dispute(
        charge_id="ch_1", amount=24_999, at=at(2026, 3, 5), status="needs_response", dispute_id="du_1", closed=False
    )
    deliver(opened)
    assert sum(a for _, a in ledger()) == 0
    prevented = events.dispute(
        charge_id="ch_1", amount=24_999, at=at(2026, 3, 9), opened_at=at(2026, 3, 5), status="prevented",
        dispute_id="du_1", closed=True,
    )  # fmt: skip
    for _ in range(2):
        assert deliver(prevented).json()["status"] == "processed"
    assert ledger() == [("earned", 2_500), ("earned", 2_500), ("reversal", -2_500)]
    assert Dispute.objects.get().status == "won"


def _subscription_with_items(customer: Any, keys: list[str], **kwargs: Any) -> dict[str, Any]:
    evt = events.subscription(customer="cus_1", lookup_key=keys[0], at=at(2026, 3, 1), sub_id="sub_m", **kwargs)
    evt["data"]["object"]["items"]["data"] = [{"price": {"lookup_key": key, "currency": "cad"}} for key in keys]
    return evt


@pytest.mark.parametrize(
    ("keys", "plan"),
    [
        (["extra_storage", "pro"], "Pro"),  # an add-on listed first
        (["pro", "business"], "Business"),
        (["business", None, "pro"], "Business"),  # a price without a lookup_key
    ],
)
def test_a_subscription_with_several_items_gives_the_highest_plan_they_name(world, keys, plan) -> None:  # type: ignore[no-untyped-def]
    """Regression: only the first item's price was read, so an add-on listed first made the whole subscription
    ignored, and a second, dearer plan item was never seen."""
    _, customer = world
    meta = {"apertur_user_id": customer.public_id}
    assert deliver(_subscription_with_items(customer, keys, metadata=meta)).json()["status"] == "processed"
    assert Subscription.objects.get(external_id="sub_m").plan.name == plan
    assert customer.projects.get().plan.name == plan


def test_a_subscription_of_add_ons_only_is_ignored(world) -> None:  # type: ignore[no-untyped-def]
    _, customer = world
    meta = {"apertur_user_id": customer.public_id}
    evt = _subscription_with_items(customer, ["extra_storage", "priority_support"], metadata=meta)
    answer = deliver(evt).json()
    assert answer["status"] == "ignored" and "extra_storage" in answer["detail"]


def test_no_first_payment_email_for_a_commission_already_reversed(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """Regression: a customer attributed through OAuth after a payment refunded in full earns the commission and has
    it reversed in the same step; the partner was still emailed that the customer's first payment earned them
    one."""
    from apertur.oauth.tokens import connect
    from apertur.testing import make_app

    created = make_app()
    customer = make_user("refunded@example.com")
    project = create_project(owner=customer, name="P")
    with time_machine.travel(at(2026, 3, 1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    with django_capture_on_commit_callbacks(execute=True):
        deliver(
            events.invoice_paid(
                customer="cus_3", email=customer.email, amount=24_999, at=at(2026, 3, 2), charge_id="ch_3",
                invoice_id="in_3",
            )
        )  # fmt: skip
        deliver(events.charge_refunded(charge_id="ch_3", invoice_id="in_3", refunds=[("re_3", 24_999, at(2026, 3, 3))]))
        deliver(events.subscription(customer="cus_3", lookup_key="pro", at=at(2026, 3, 2)))
    assert Attribution.objects.get(customer=customer).source == "oauth"
    assert ledger() == [("earned", 2_500), ("reversal", -2_500)]
    partner_email = created.app.partner.user.email
    assert [m.subject for m in mailoutbox if m.to == [partner_email]] == []
    # A later payment that keeps its commission is the first one worth announcing.
    with django_capture_on_commit_callbacks(execute=True):
        deliver(events.invoice_paid(customer="cus_3", email=customer.email, amount=10_000, at=at(2026, 4, 2)))
    [mail] = [m for m in mailoutbox if m.to == [partner_email]]
    assert mail.subject == "A customer you connected made their first payment"
    assert "Paid on 2026-04-02" in mail.body
