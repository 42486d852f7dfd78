"""Ledger rules at their edges, through the Stripe intake: the 30-day hold to the second in Toronto,
clawbacks after payout, lost disputes, facts recorded before the attribution, the first-payment email."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core import mail as django_mail

from apertur.commissions.models import CommissionEntry, EntryKind, PartnerNotice
from apertur.commissions.selectors import balance
from apertur.commissions.services import earning_for, on_payment
from apertur.commissions.tests.paying import pay_out
from apertur.core.clock import BUSINESS_TZ
from apertur.integrations.stripe import events
from apertur.integrations.stripe.services import receive
from apertur.projects.models import Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
TORONTO = BUSINESS_TZ
EPSILON = dt.timedelta(microseconds=1)


@pytest.fixture
def world() -> tuple[Any, Any]:
    partner = make_partner()
    customer = make_user("customer@example.com")
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(
        customer=customer, partner=partner, source=AttributionSource.REFERRAL, at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    return partner, customer


def pay(customer: Any, at: dt.datetime, amount: int = 24_999, n: int = 1) -> None:
    receive(
        events.invoice_paid(
            customer="cus_1", email=customer.email, amount=amount, at=at, invoice_id=f"in_{n}", charge_id=f"ch_{n}"
        )
    )


def refund(at: dt.datetime, amount: int, n: int = 1, rid: str = "re_1") -> None:
    receive(events.charge_refunded(charge_id=f"ch_{n}", invoice_id=f"in_{n}", refunds=[(rid, amount, at)]))


def split(partner: Any) -> tuple[int, int]:
    b = balance(partner=partner)
    return b.pending_cents, b.eligible_cents


# --- the 30-day hold, to the second, in America/Toronto --------------------------------------------------


@pytest.mark.parametrize(
    "paid_local",
    [
        dt.datetime(2026, 3, 1, 0, 30, tzinfo=TORONTO),  # the hold crosses the switch to daylight time (Mar 8)
        dt.datetime(2026, 10, 15, 23, 59, 59, tzinfo=TORONTO),  # ... and back to standard time (Nov 1)
        dt.datetime(2026, 6, 30, 20, 0, tzinfo=TORONTO),  # already July 1 in UTC
    ],
)
def test_pending_until_the_exact_instant_30_days_later_then_eligible(world: Any, paid_local: dt.datetime) -> None:
    partner, customer = world
    pay(customer, paid_local)
    earned = CommissionEntry.objects.get()
    # 30 days of 24 hours after the payment instant, whatever the clocks in Toronto did meanwhile (Python
    # adds a timedelta to a zoned time on the wall clock, hence the conversion to UTC first).
    assert earned.available_at == paid_local.astimezone(UTC) + dt.timedelta(hours=720)
    with time_machine.travel(earned.available_at - EPSILON, tick=False):
        assert split(partner) == (2_500, 0)
    with time_machine.travel(earned.available_at, tick=False):
        assert split(partner) == (0, 2_500)
    with time_machine.travel(earned.available_at + dt.timedelta(days=365), tick=False):
        assert split(partner) == (0, 2_500)


@pytest.mark.parametrize(
    "paid_local",
    [dt.datetime(2026, 2, 20, 12, tzinfo=TORONTO), dt.datetime(2026, 10, 20, 12, tzinfo=TORONTO)],
)
def test_the_hold_is_720_hours_whatever_zone_the_payment_time_is_given_in(world: Any, paid_local: dt.datetime) -> None:
    """The rule itself (earning_for / on_payment), not only the Stripe intake's UTC times: a payment time in
    Toronto's zone must not be moved on Toronto's wall clock across a daylight-saving change."""
    _partner, customer = world
    payment = Payment.objects.create(
        project=customer.projects.get(),
        customer=customer,
        external_id="in_zoned",
        amount_cents=24_999,
        amount_cad_cents=24_999,
        paid_at=paid_local,
    )
    expected = paid_local.astimezone(UTC) + dt.timedelta(hours=720)
    assert earning_for(paid_at=paid_local, amount_cad_cents=24_999, attributed_at=paid_local) == (2_500, expected)
    entry = on_payment(payment=payment)
    assert entry is not None and entry.available_at == expected


def test_a_refund_in_the_hold_leaves_with_the_earning_at_the_same_instant(world: Any) -> None:
    partner, customer = world
    paid_at = dt.datetime(2026, 3, 1, 12, tzinfo=TORONTO)
    pay(customer, paid_at)
    refund(paid_at + dt.timedelta(days=29, hours=23), 5_000)
    reversal = CommissionEntry.objects.get(kind=EntryKind.REVERSAL)
    assert reversal.amount_cents == -500
    assert reversal.available_at == paid_at.astimezone(UTC) + dt.timedelta(days=30)
    with time_machine.travel(reversal.available_at - EPSILON, tick=False):
        assert split(partner) == (2_000, 0)
    with time_machine.travel(reversal.available_at, tick=False):
        assert split(partner) == (0, 2_000)


def test_settling_a_refund_reads_the_payments_entries_once(world: Any) -> None:
    """A settlement's SQL is fixed (the bulk ledger settles thousands one by one, the Stripe webhook each refund):
    the earning, the payment's lock, its entries once (the fact's key and the sum), the disputes and refunds
    that set the target, the insert. No savepoint (the key was checked under the lock) and no lazy loads."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apertur.commissions import services
    from apertur.projects.models import Refund

    _, customer = world
    paid_at = dt.datetime(2026, 3, 1, 12, tzinfo=TORONTO)
    pay(customer, paid_at)
    payment = CommissionEntry.objects.get(kind=EntryKind.EARNED).payment
    made = Refund.objects.create(
        payment=payment, external_id="re_q", amount_cents=5_000, amount_cad_cents=5_000, created_at=paid_at
    )
    made.payment = payment
    with CaptureQueriesContext(connection) as ctx:
        reversal = services.on_refund(refund=made)
    assert reversal is not None and reversal.amount_cents == -500
    sql = [q["sql"] for q in ctx.captured_queries]
    assert len(sql) == 6, sql
    assert not any("SAVEPOINT" in q for q in sql)
    with CaptureQueriesContext(connection) as ctx:
        assert services.on_refund(refund=made) is None  # a replay: the key is among the payment's entries
    assert len(ctx.captured_queries) == 3


# --- after payout: clawback -----------------------------------------------------------------------------


def test_a_refund_after_the_commission_was_paid_is_a_clawback_due_at_once(world: Any) -> None:
    partner, customer = world
    pay(customer, dt.datetime(2026, 3, 1, 12, tzinfo=UTC))
    pay_out(CommissionEntry.objects.filter(kind=EntryKind.EARNED), at=dt.datetime(2026, 4, 15, 13, tzinfo=UTC))
    refunded_at = dt.datetime(2026, 5, 2, 12, tzinfo=UTC)
    refund(refunded_at, 24_999)
    clawback = CommissionEntry.objects.get(kind=EntryKind.CLAWBACK)
    assert clawback.amount_cents == -2_500 and clawback.available_at == refunded_at
    with time_machine.travel(dt.datetime(2026, 5, 3, tzinfo=UTC), tick=False):
        b = balance(partner=partner)
    # Netted against future payouts: paid stays what was sent, eligible goes negative.
    assert (b.paid_cents, b.eligible_cents, b.lifetime_cents) == (2_500, -2_500, 0)


# --- disputes --------------------------------------------------------------------------------------------


def dispute_event(status: str, *, closed: bool, at: dt.datetime) -> dict[str, Any]:
    return events.dispute(charge_id="ch_1", amount=24_999, at=at, status=status, dispute_id="dp_1", closed=closed)


def test_a_lost_dispute_stays_reversed_even_when_its_close_arrives_first(world: Any) -> None:
    partner, customer = world
    pay(customer, dt.datetime(2026, 3, 1, 12, tzinfo=UTC))
    receive(dispute_event("lost", closed=True, at=dt.datetime(2026, 4, 20, tzinfo=UTC)))
    receive(dispute_event("needs_response", closed=False, at=dt.datetime(2026, 3, 5, tzinfo=UTC)))
    assert sorted(CommissionEntry.objects.values_list("kind", "amount_cents")) == [
        ("earned", 2_500),
        ("reversal", -2_500),
    ]
    assert balance(partner=partner).lifetime_cents == 0


def test_a_won_dispute_is_earned_again_no_earlier_than_the_win(world: Any) -> None:
    partner, customer = world
    pay(customer, dt.datetime(2026, 3, 1, 12, tzinfo=UTC))
    receive(dispute_event("needs_response", closed=False, at=dt.datetime(2026, 3, 5, tzinfo=UTC)))
    won_at = dt.datetime(2026, 4, 20, 12, tzinfo=UTC)  # after the hold would have ended (March 31)
    receive(dispute_event("won", closed=True, at=won_at))
    again = CommissionEntry.objects.get(source_key__startswith="dispute-won:")
    assert (again.kind, again.amount_cents, again.available_at) == ("earned", 2_500, won_at)
    with time_machine.travel(won_at - EPSILON, tick=False):
        assert split(partner) == (2_500, 0)
    with time_machine.travel(won_at, tick=False):
        assert split(partner) == (0, 2_500)


# --- facts recorded before the attribution ---------------------------------------------------------------


def connected_then_paid() -> tuple[Any, Any]:
    """A customer who connected a partner's app on 2026-03-01 and paid 24,999 on 03-02, before any subscription
    event attributed them: (the app's creation, the customer)."""
    from apertur.oauth.tokens import connect
    from apertur.testing import make_app

    created = make_app()
    customer = make_user("oauth@example.com")
    project = create_project(owner=customer, name="P")
    with time_machine.travel(dt.datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    pay(customer, dt.datetime(2026, 3, 2, 12, tzinfo=UTC))
    return created, customer


def test_refunds_recorded_before_an_oauth_attribution_still_net_against_the_earning() -> None:
    """Regression: a payment and its refund arrived before the subscription event that attributed the
    customer through OAuth; re-applying the payment then earned the full commission and the refund was
    never taken back (the refund's own event had found nothing to reverse)."""
    created, customer = connected_then_paid()
    refund(dt.datetime(2026, 3, 3, 12, tzinfo=UTC), 5_000)
    assert CommissionEntry.objects.count() == 0  # not attributed yet
    receive(events.subscription(customer="cus_1", lookup_key="pro", at=dt.datetime(2026, 3, 2, 12, tzinfo=UTC)))
    assert Attribution.objects.get(customer=customer).partner == created.app.partner
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]


def test_an_inquiry_settled_with_an_early_refund_leaves_its_escalation_a_chargeback_to_settle() -> None:
    """Regression: a payment, a partial refund and an inquiry all arrived before the attribution. Re-applying
    the payment settled the inquiry first, which wrote the refund's share under the dispute's key; the
    escalation to a chargeback then found its key taken and reversed nothing."""
    _created, _customer = connected_then_paid()
    refund(dt.datetime(2026, 3, 3, 12, tzinfo=UTC), 12_500)

    def dispute(status: str, day: int, kind: str) -> None:
        receive(
            events.dispute(
                charge_id="ch_1", amount=12_499, at=dt.datetime(2026, 3, day, 12, tzinfo=UTC), status=status,
                dispute_id="du_1", closed=kind.endswith("closed"), type=kind,
                opened_at=dt.datetime(2026, 3, 4, 12, tzinfo=UTC),
            )
        )  # fmt: skip

    dispute("warning_needs_response", 4, "charge.dispute.created")
    assert CommissionEntry.objects.count() == 0  # not attributed yet
    receive(events.subscription(customer="cus_1", lookup_key="pro", at=dt.datetime(2026, 3, 2, 12, tzinfo=UTC)))
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 2_500 - 1_250
    dispute("needs_response", 8, "charge.dispute.updated")
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 0
    dispute("lost", 20, "charge.dispute.closed")
    assert sum(CommissionEntry.objects.values_list("amount_cents", flat=True)) == 0


# --- the first-payment email -----------------------------------------------------------------------------


def test_the_partner_hears_of_a_referred_customers_first_payment_once(
    world: Any, maildir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    from apertur.core.mail import stored_messages

    partner, customer = world
    with django_capture_on_commit_callbacks(execute=True):
        pay(customer, dt.datetime(2026, 3, 1, 12, tzinfo=UTC), n=1)
        pay(customer, dt.datetime(2026, 4, 1, 12, tzinfo=UTC), n=2)
        pay(customer, dt.datetime(2026, 3, 1, 12, tzinfo=UTC), n=1)  # a replay
    first = [m for m in stored_messages(to=partner.user.email) if "first payment" in m.subject]
    assert len(first) == 1
    assert "cu***@example.com" in first[0].text and customer.email not in first[0].text
    assert "$249.99 CAD" in first[0].text and "$25.00 CAD" in first[0].text and "2026-03-31" in first[0].text
    other = make_user("second@example.com")
    create_project(owner=other, name="Q")
    Attribution.objects.create(
        customer=other, partner=partner, source=AttributionSource.REFERRAL, at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    with django_capture_on_commit_callbacks(execute=True):
        receive(
            events.invoice_paid(
                customer="cus_2", email=other.email, amount=1_000, at=dt.datetime(2026, 3, 5, tzinfo=UTC)
            )
        )
    assert PartnerNotice.objects.filter(partner=partner, key__startswith="first-payment:").count() == 2


def test_no_first_payment_email_for_a_payment_that_earns_nothing(world: Any) -> None:
    _, customer = world
    pay(customer, dt.datetime(2025, 12, 1, tzinfo=UTC))  # before the attribution
    assert not PartnerNotice.objects.exists() and not django_mail.outbox
