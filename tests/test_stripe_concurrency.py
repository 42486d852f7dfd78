"""Stripe deliveries racing each other on PostgreSQL (real row locks, parallel connections)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from django.test import Client

from apertur.commissions.models import CommissionEntry
from apertur.integrations.stripe import events
from apertur.integrations.stripe.models import InvoicePaymentLink, StripeEvent
from apertur.projects.models import Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user
from tests.test_concurrency import race

SECRET = "whsec_concurrency_test"
UTC = dt.UTC


def world(settings: Any) -> Any:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    partner = make_partner()
    customer = make_user("racer@example.com")
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(
        customer=customer, partner=partner, source=AttributionSource.REFERRAL, at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    return customer


def post(evt: dict[str, Any]) -> Any:
    body = events.encode(evt)
    return Client().post(
        "/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=events.sign(body, SECRET)
    )


def test_the_same_signed_event_posted_twice_at_once_is_applied_once(postgres_only: None, settings: Any) -> None:
    customer = world(settings)
    paid = events.invoice_paid(
        customer="cus_1",
        email=customer.email,
        amount=24_999,
        at=dt.datetime(2026, 3, 1, 15, tzinfo=UTC),
        invoice_id="in_1",
        charge_id="ch_1",
    )
    results = race(lambda: post(paid), n=2)
    assert all(getattr(r, "status_code", None) == 200 for r in results), results
    answers = sorted((r.json()["duplicate"], r.json()["status"]) for r in results)
    # The loser may answer while the winner is still applying (status waiting) or after (processed).
    assert answers[0] == (False, "processed") and answers[1][0] is True
    assert StripeEvent.objects.count() == 1 and StripeEvent.objects.get().status == "processed"
    assert Payment.objects.count() == 1
    assert list(CommissionEntry.objects.values_list("kind", "amount_cents")) == [("earned", 2_500)]


def test_a_refund_and_a_dispute_at_once_settle_the_payment_once(postgres_only: None, settings: Any) -> None:
    customer = world(settings)
    assert (
        post(
            events.invoice_paid(
                customer="cus_1",
                email=customer.email,
                amount=24_999,
                at=dt.datetime(2026, 3, 1, 15, tzinfo=UTC),
                invoice_id="in_1",
                charge_id="ch_1",
            )
        ).json()["status"]
        == "processed"
    )
    refund = events.charge_refunded(
        charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, dt.datetime(2026, 3, 3, tzinfo=UTC))]
    )
    dispute = events.dispute(
        charge_id="ch_1",
        amount=24_999,
        at=dt.datetime(2026, 3, 4, tzinfo=UTC),
        status="needs_response",
        dispute_id="dp_1",
        closed=False,
    )
    queue = iter([refund, dispute])
    lock = threading.Lock()

    def deliver_next() -> Any:
        with lock:
            evt = next(queue)
        return post(evt)

    results = race(deliver_next, n=2)
    assert all(getattr(r, "status_code", None) == 200 for r in results), results
    assert {r.json()["status"] for r in results} == {"processed"}
    # An open dispute holds the whole commission back, whichever fact was settled first: never below 0.
    amounts = list(CommissionEntry.objects.values_list("amount_cents", flat=True))
    assert sum(amounts) == 0 and len(amounts) <= 3


def test_a_payment_and_its_refund_at_once_end_applied_not_waiting(postgres_only: None, settings: Any) -> None:
    """The refund may be stored while the payment's transaction has not committed yet: it waits, and the
    payment's retry (run after its own commit) applies it, instead of deadlocking or leaving it waiting."""
    customer = world(settings)
    paid = events.invoice_paid(
        customer="cus_1",
        email=customer.email,
        amount=24_999,
        at=dt.datetime(2026, 3, 1, 15, tzinfo=UTC),
        invoice_id="in_1",
        charge_id="ch_1",
    )
    refund = events.charge_refunded(
        charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, dt.datetime(2026, 3, 3, tzinfo=UTC))]
    )
    for _ in range(5):  # the interleavings differ from run to run
        StripeEvent.objects.all().delete()
        CommissionEntry.objects.all().delete()
        Payment.objects.all().delete()
        queue = iter([paid, refund])
        lock = threading.Lock()

        def deliver_round(queue: Any = queue, lock: threading.Lock = lock) -> Any:
            with lock:
                evt = next(queue)
            return post(evt)

        results = race(deliver_round, n=2)
        assert all(getattr(r, "status_code", None) == 200 for r in results), results
        assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}
        assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


def test_a_payment_of_current_api_versions_what_paid_it_and_its_refund_at_once_end_applied(
    postgres_only: None, settings: Any
) -> None:
    """Since API version 2025-03-31 three events make a refunded payment: ``invoice.paid`` (no charge named),
    ``invoice_payment.paid`` (which PaymentIntent paid the invoice) and the refund (naming the PaymentIntent). At
    once, in any interleaving, the refund ends applied once: whichever of the other two commits last retries it."""
    customer = world(settings)
    at = dt.datetime(2026, 3, 1, 15, tzinfo=UTC)
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at, invoice_id="in_1", api_version=events.BASIL
    )
    link = events.invoice_payment_paid(invoice_id="in_1", amount=24_999, at=at, payment_intent="pi_1")
    refund = events.refund_created(
        refund_id="re_1", charge_id="ch_1", payment_intent="pi_1", amount=5_000, at=at + dt.timedelta(days=2)
    )
    for _ in range(5):  # the interleavings differ from run to run
        StripeEvent.objects.all().delete()
        CommissionEntry.objects.all().delete()
        Payment.objects.all().delete()
        InvoicePaymentLink.objects.all().delete()
        queue = iter([paid, link, refund])
        lock = threading.Lock()

        def deliver_round(queue: Any = queue, lock: threading.Lock = lock) -> Any:
            with lock:
                evt = next(queue)
            return post(evt)

        results = race(deliver_round, n=3)
        assert all(getattr(r, "status_code", None) == 200 for r in results), results
        assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}
        assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


def test_passes_giving_up_an_expired_event_at_once_tell_staff_once(
    postgres_only: None, settings: Any, mailoutbox: list[Any]
) -> None:
    """Several workers' periodic passes (and a delivery's retry) reaching an event past its week at once: the rows
    are locked, so it is given up, audited and reported once."""
    import time_machine

    from apertur.core.models import AuditEvent
    from apertur.integrations.stripe import services

    world(settings)
    received = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)
    with time_machine.travel(received, tick=False):
        refund = events.refund_created(refund_id="re_1", charge_id="ch_none", amount=1_000, at=received)
        assert services.receive(refund).status == "waiting"
    with time_machine.travel(received + dt.timedelta(days=8), tick=False):
        results = race(lambda: services.retry_waiting_pass(received + dt.timedelta(days=8)), n=4)
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 1
    assert StripeEvent.objects.get().status == "ignored"
    assert AuditEvent.objects.filter(action="stripe.event_given_up").count() == 1
    assert len([m for m in mailoutbox if "given up" in m.subject]) == 1


def test_an_escalation_and_a_closing_of_one_dispute_at_once_neither_deadlocks(
    postgres_only: None, settings: Any, monkeypatch: Any
) -> None:
    """An inquiry escalated to a chargeback (``charge.dispute.updated``, needs_response) and its closing
    (``charge.dispute.closed``) delivered at once. The escalation locked the dispute, then the payment (settling
    the commission); the closing locked the payment first, then wrote the dispute: each waited for the other,
    PostgreSQL aborted one and Stripe got an error. Every dispute event now locks the dispute first."""
    from apertur.commissions import services as ledger
    from apertur.projects.models import Dispute
    from apertur.testing import record_outcome, wait_until_blocked

    customer = world(settings)
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=dt.datetime(2026, 3, 1, 15, tzinfo=UTC),
        invoice_id="in_1", charge_id="ch_1",
    )  # fmt: skip
    assert post(paid).json()["status"] == "processed"

    def dispute_event(status: str, closed: bool, day: int, **extra: Any) -> dict[str, Any]:
        return events.dispute(
            charge_id="ch_1", amount=24_999, at=dt.datetime(2026, 3, day, tzinfo=UTC), status=status,
            dispute_id="dp_1", closed=closed, opened_at=dt.datetime(2026, 3, 4, tzinfo=UTC), **extra,
        )  # fmt: skip

    assert post(dispute_event("warning_needs_response", False, 4)).json()["status"] == "processed"
    escalation = dispute_event("needs_response", False, 5, type="charge.dispute.updated")
    closing = dispute_event("warning_closed", True, 6)

    locked, go = threading.Event(), threading.Event()
    real = ledger.on_dispute_opened

    def paused_in_the_escalation(**kwargs: Any) -> Any:
        if threading.current_thread().name == "escalation":
            locked.set()  # the escalation holds the dispute's row
            assert go.wait(timeout=10)
        return real(**kwargs)

    monkeypatch.setattr(ledger, "on_dispute_opened", paused_in_the_escalation)
    outcome: dict[str, Any] = {}
    first = threading.Thread(target=record_outcome, args=(outcome, "escalation", lambda: post(escalation)))
    first.name = "escalation"
    first.start()
    assert locked.wait(timeout=10)
    second = threading.Thread(target=record_outcome, args=(outcome, "closing", lambda: post(closing)))
    second.start()
    wait_until_blocked(second, timeout=10)
    go.set()
    first.join(timeout=30)
    second.join(timeout=30)

    for label in ("escalation", "closing"):
        response = outcome[label]
        assert getattr(response, "status_code", None) == 200, (label, response)
        assert response.json()["status"] == "processed", (label, response.json())
    assert Dispute.objects.get().status == "open"  # escalation is for good: a warning_closed after it closes nothing
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 0  # held back while open
