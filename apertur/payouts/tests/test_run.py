"""The monthly payout run end to end: Stripe events write the ledger, the run pays through the PayPal
emulator over loopback, time moved with time-machine."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import balance
from apertur.commissions.tests.paying import runs_made
from apertur.integrations.paypal.emulator import Running
from apertur.payouts import services
from apertur.payouts.errors import RunNotDue
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus
from apertur.payouts.tests.helpers import (
    PAYPAL,
    SECRET,
    at,
    batches_created,
    do_run,
    due,
    make_world,
    only,
    pay,
    refund,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def test_worked_example(emu: Running) -> None:
    partner, customer = make_world()
    pay(customer, 1, 24_999, at(2026, 3, 1))
    refund(1, "re_1", 5_000, at(2026, 3, 10))
    pay(customer, 2, 24_999, at(2026, 4, 1))
    pay(customer, 3, 24_999, at(2026, 5, 1))

    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.carried_cents, d.amount_cents) == ("under_minimum", 2_000, 0)
    assert Payout.objects.count() == 0
    runs_made("2026-04")  # as the scheduler records it (services.run alone records no run; until then it is late)
    assert balance(partner=partner, at=at(2026, 4, 16)).carried_cents == 2_000

    d = only(do_run(emu, "2026-05"))
    assert (d.reason, d.carried_cents) == ("under_minimum", 4_500)
    runs_made("2026-05")
    assert balance(partner=partner, at=at(2026, 5, 16)).carried_cents == 4_500

    d = only(do_run(emu, "2026-06"))
    assert (d.reason, d.amount_cents, d.status) == ("paid", 7_000, PayoutStatus.SENT)
    payout = Payout.objects.get()
    assert (payout.amount_cents, payout.currency, payout.period) == (7_000, "CAD", "2026-06")
    assert payout.sender_batch_id == f"aptr-{partner.pk}-2026-06-1" == d.sender_batch_id
    assert payout.paypal_batch_id and payout.sent_at == services.run_at("2026-06")
    assert PayoutEntry.objects.filter(payout=payout).count() == 4  # three earnings and the reversal
    assert not CommissionEntry.objects.unpaid().exists()
    batch = emu.emulator.state()["batches"][0]
    assert batch["items"][0]["payout_item"]["amount"] == {"value": "70.00", "currency": "CAD"}
    assert batch["items"][0]["payout_item"]["receiver"] == PAYPAL
    b = balance(partner=partner, at=at(2026, 6, 16))
    assert (b.paid_cents, b.eligible_cents, b.carried_cents) == (7_000, 0, 0)

    refund(2, "re_2", 24_999, at(2026, 6, 20))  # the 2026-04-01 payment, in full, after it was paid out
    clawback = CommissionEntry.objects.get(kind="clawback")
    assert clawback.amount_cents == -2_500 and not CommissionEntry.objects.filter(pk=clawback.pk).paid().exists()

    d = only(do_run(emu, "2026-07"))
    assert (d.reason, d.carried_cents) == ("under_minimum", -2_500)
    assert Payout.objects.count() == 1 and batches_created(emu) == 1
    runs_made("2026-07")
    assert balance(partner=partner, at=at(2026, 7, 16)).carried_cents == -2_500


def test_a_rerun_creates_no_second_payout(emu: Running) -> None:
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert only(do_run(emu, "2026-04")).reason == "paid"
    again = only(do_run(emu, "2026-04"))
    assert (again.reason, again.status) == ("already_paid", PayoutStatus.SENT)
    assert Payout.objects.count() == 1 and batches_created(emu) == 1
    assert due(do_run(emu, "2026-05")) == []  # nothing left for the next run: the entry is paid
    assert Payout.objects.count() == 1


def test_a_5xx_leaves_the_payout_retryable_with_the_same_id(emu: Running) -> None:
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert emu.emulator.configure({"fail_next_n_with_5xx": 1})[0] == 200
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("retry_pending", PayoutStatus.CREATED)
    payout = Payout.objects.get()
    assert (payout.status, payout.attempts, payout.sender_batch_id) == ("created", 1, d.sender_batch_id)
    assert not CommissionEntry.objects.paid().exists()
    assert batches_created(emu) == 0

    retry = only(do_run(emu, "2026-04"))
    assert (retry.reason, retry.sender_batch_id) == ("paid", d.sender_batch_id)
    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == (PayoutStatus.SENT, 2)
    assert batches_created(emu) == 1 and Payout.objects.count() == 1


def test_a_batch_created_unseen_is_recorded_from_the_duplicate_answer(emu: Running) -> None:
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert emu.emulator.configure({"timeout_next_n": 1, "timeout_seconds": 2.0})[0] == 200
    assert only(do_run(emu, "2026-04")).reason == "retry_pending"  # timed out, but PayPal created it
    assert batches_created(emu) == 1
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("paid", PayoutStatus.SENT)
    payout = Payout.objects.get()
    created = emu.emulator.state()["batches"][0]["batch_header"]["payout_batch_id"]
    assert payout.paypal_batch_id == created
    assert batches_created(emu) == 1


def test_unverified_email_is_not_paid(emu: Running) -> None:
    partner, customer = make_world(verified=False)
    pay(customer, 1, 60_000, at(2026, 3, 1))
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.carried_cents, d.paypal_email) == ("no_verified_paypal_email", 6_000, None)
    assert Payout.objects.count() == 0 and batches_created(emu) == 0
    runs_made("2026-04")  # as the scheduler records it (services.run alone records no run; until then it is late)
    assert balance(partner=partner, at=at(2026, 4, 16)).carried_cents == 6_000


def test_unapproved_partner_is_not_paid(emu: Running) -> None:
    _, customer = make_world(approved=False)
    pay(customer, 1, 60_000, at(2026, 3, 1))
    d = only(do_run(emu, "2026-04"))
    assert d.reason == "not_approved"
    assert Payout.objects.count() == 0 and batches_created(emu) == 0


def test_dry_run_writes_and_sends_nothing(emu: Running) -> None:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    d = only(do_run(emu, "2026-04", dry_run=True))
    assert (d.reason, d.amount_cents, d.sender_batch_id) == ("would_pay", 6_000, f"aptr-{partner.pk}-2026-04-1")
    assert Payout.objects.count() == 0 and PayoutEntry.objects.count() == 0
    assert not CommissionEntry.objects.paid().exists()
    assert batches_created(emu) == 0 and emu.emulator.counters["create_requests"] == 0
    assert only(do_run(emu, "2026-04")).reason == "paid"  # the real run pays what the dry run showed


def test_a_real_run_refuses_to_start_before_its_date() -> None:
    with time_machine.travel(at(2026, 4, 15, 12), tick=False):  # 08:00 in Toronto
        with pytest.raises(RunNotDue):
            services.run(period="2026-04", dry_run=False)
        assert services.run(period="2026-04", dry_run=True) == []


def test_every_approved_partner_gets_a_decision(emu: Running) -> None:
    """The run lists each partner's payout or the reason for none, also for approved partners who earned
    nothing; partners still under review (nothing earned) are not in it."""
    from apertur.testing import make_partner, make_user

    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    idle = make_partner(user=make_user("idle@example.com"))
    make_partner(user=make_user("applicant@example.com"), approved=False)
    decisions = do_run(emu, "2026-04", dry_run=True)
    assert [(d.partner_id, d.reason, d.amount_cents) for d in decisions] == [
        (partner.pk, "would_pay", 6_000),
        (idle.pk, "nothing_due", 0),
    ]


def test_the_hold_is_30_times_24_hours_to_the_run_instant_across_the_march_dst_change(emu: Running) -> None:
    """The March run is 09:00 EDT on the 15th (13:00 UTC); Toronto moved to EDT on 2026-03-08. A payment exactly
    30 × 24 hours before the run (08:00 EST on 2026-02-13) is paid by it (``available_at ≤ run``); one made an hour
    later, at 09:00 EST (30 wall-clock days before the run), is not: its hold ends at 10:00 EDT, after the run."""
    from apertur.referrals.models import Attribution

    _partner, customer = make_world()
    Attribution.objects.filter(customer=customer).update(at=at(2026, 1, 1))
    pay(customer, 1, 50_000, at(2026, 2, 13, 13))  # 08:00 EST
    pay(customer, 2, 70_000, at(2026, 2, 13, 14))  # 09:00 EST
    assert services.run_at("2026-03") == at(2026, 3, 15, 13)
    march = only(do_run(emu, "2026-03"))
    assert (march.reason, march.amount_cents) == ("paid", 5_000)  # exactly the minimum: paid
    assert only(do_run(emu, "2026-04")).amount_cents == 7_000
