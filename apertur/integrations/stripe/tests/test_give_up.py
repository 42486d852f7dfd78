"""Waiting events at the end of their week: one last try before they are given up, then staff are told once, and
the worker's periodic pass does both when no delivery comes. (``services.WAIT_LIMIT``: 7 days.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from apertur.commissions.models import CommissionEntry
from apertur.core import housekeeping
from apertur.core.models import AuditEvent
from apertur.integrations.stripe import events, services
from apertur.integrations.stripe.models import StripeEvent
from apertur.projects.models import Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
STAFF = "ops@apertur.example"
RECEIVED = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _staff_address(settings: Any) -> None:
    settings.STAFF_NOTIFY_EMAIL = STAFF


def alerts(outbox: list[Any]) -> list[Any]:
    return [m for m in outbox if m.to == [STAFF] and "Stripe event" in m.subject]


def waiting_invoice(email: str = "late@example.com") -> dict[str, Any]:
    """An invoice of a Stripe customer nothing links to an Apertur user yet: stored as waiting."""
    with time_machine.travel(RECEIVED, tick=False):
        paid = events.invoice_paid(customer="cus_late", email=email, amount=24_999, at=RECEIVED, invoice_id="in_late")
        assert services.receive(paid).status == "waiting"
    return paid


def late_customer(email: str = "late@example.com") -> Any:
    """The customer signs up to Apertur after paying in Stripe: no Stripe event says so, the invoice's email does."""
    partner = make_partner()
    customer = make_user(email)
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(customer=customer, partner=partner, source=AttributionSource.REFERRAL, at=RECEIVED)
    return customer


def test_an_expired_event_gets_a_last_try_before_it_is_given_up(django_capture_on_commit_callbacks: Any) -> None:
    """Regression: the expiry ran before the retry, so an event whose customer could be found by now was given up
    (ignored, its commission never written) rather than applied."""
    paid = waiting_invoice()
    late_customer()
    other = make_user("other@example.com")
    create_project(owner=other, name="Studio")
    later = RECEIVED + dt.timedelta(days=9)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        unrelated = events.invoice_paid(customer="cus_other", email=other.email, amount=1_000, at=later)
        assert services.receive(unrelated).status == "processed"  # its retry_waiting is the last try
    row = StripeEvent.objects.get(event_id=paid["id"])
    assert row.status == "processed", row.detail
    assert Payment.objects.filter(external_id="in_late").exists()
    assert list(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [2_500]
    assert not AuditEvent.objects.filter(action="stripe.event_given_up").exists()


def test_a_given_up_event_is_audited_and_staff_are_told_once_with_its_id_type_and_why(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    paid = waiting_invoice()
    with (
        time_machine.travel(RECEIVED + dt.timedelta(days=6), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.retry_waiting_pass(dt.datetime.now(UTC)) == 0
    assert StripeEvent.objects.get(event_id=paid["id"]).status == "waiting" and alerts(mailoutbox) == []
    for days in (8, 9, 15):  # the pass that gives it up, then passes that find nothing to do
        with (
            time_machine.travel(RECEIVED + dt.timedelta(days=days), tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            services.retry_waiting_pass(dt.datetime.now(UTC))
    row = StripeEvent.objects.get(event_id=paid["id"])
    assert (row.status, row.detail) == ("ignored", "gave up waiting after 7 days: unknown customer cus_late")
    [mail] = alerts(mailoutbox)
    assert mail.subject == f"Stripe event {paid['id']} (invoice.paid) given up after 7 days of waiting"
    assert f"{paid['id']} | invoice.paid | 2026-03-01 | unknown customer cus_late" in mail.body
    assert "/admin/stripe_billing/stripeevent/" in mail.body
    audited = AuditEvent.objects.get(action="stripe.event_given_up")
    assert (audited.object_id, audited.data["event_id"], audited.data["type"], audited.data["waited_for"]) == (
        str(row.pk),
        paid["id"],
        "invoice.paid",
        "unknown customer cus_late",
    )
    assert AuditEvent.objects.filter(action="stripe.staff_alerted").count() == 1
    assert not Payment.objects.exists()


def test_the_workers_periodic_pass_retries_and_gives_up_without_any_delivery(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """Waiting events were only retried (and given up) after some other delivery was processed: with no delivery,
    an event waited for ever and nobody heard of it. The housekeeping pass of ``apertur worker`` does it now."""
    applied = waiting_invoice()
    with time_machine.travel(RECEIVED, tick=False):
        stuck = events.refund_created(refund_id="re_x", charge_id="ch_unknown", amount=1_000, at=RECEIVED)
        assert services.receive(stuck).status == "waiting"  # a refund of a payment never received
    late_customer()  # signs up with the invoice's email: the invoice can be applied now
    with (
        time_machine.travel(RECEIVED + dt.timedelta(hours=2), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        done = housekeeping.prune()
    assert done["stripe_waiting_events"] == 1
    assert StripeEvent.objects.get(event_id=applied["id"]).status == "processed"
    assert StripeEvent.objects.get(event_id=stuck["id"]).status == "waiting"
    with (
        time_machine.travel(RECEIVED + dt.timedelta(days=7, hours=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert housekeeping.prune()["stripe_waiting_events"] == 1
    assert StripeEvent.objects.get(event_id=stuck["id"]).status == "ignored"
    [mail] = alerts(mailoutbox)
    assert stuck["id"] in mail.body and "refund.created" in mail.body and "no payment yet for charge" in mail.body


def test_events_given_up_in_one_pass_are_one_email_listing_each_once(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    refunds = []
    with time_machine.travel(RECEIVED, tick=False):
        for n in range(3):
            refund = events.refund_created(refund_id=f"re_{n}", charge_id=f"ch_{n}", amount=1_000, at=RECEIVED)
            assert services.receive(refund).status == "waiting"
            refunds.append(refund)
    with (
        time_machine.travel(RECEIVED + dt.timedelta(days=8), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        given_up = services.retry_waiting_pass(dt.datetime.now(UTC))
    assert given_up == 3
    [mail] = alerts(mailoutbox)
    assert mail.subject == "3 Stripe events given up after 7 days of waiting"
    for refund in refunds:
        assert mail.body.count(f"{refund['id']} | refund.created |") == 1
    assert AuditEvent.objects.filter(action="stripe.event_given_up").count() == 3


def test_the_periodic_pass_gives_up_by_the_time_it_is_given(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """A housekeeping pruner is handed the pass's time (``housekeeping.prune(now=…)``) and decides by it, as the
    others do (OAuth and signing secrets past their overlap): the Stripe pass read the clock instead."""
    paid = waiting_invoice()
    with (
        time_machine.travel(RECEIVED + dt.timedelta(hours=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert housekeeping.prune(now=RECEIVED + dt.timedelta(days=8))["stripe_waiting_events"] == 1
    assert StripeEvent.objects.get(event_id=paid["id"]).status == "ignored"
    assert len(alerts(mailoutbox)) == 1
