"""Property test of the payouts over random histories: payments, refunds, runs at successive periods, PayPal
outages, item outcomes (success, failure, return, reversal, unclaimed for 30 days), staff retries, all through
the Stripe intake and the PayPal emulator. After every step, for every partner:

- no commission entry is in two live payouts (a live payout is one whose money did not come back);
- every live payout's amount is the sum of its live entries, each of a payment made before the payout's
  period and available by its run;
- total paid (the amounts of live payouts) ≤ the ledger's net of the entries available by now, not counting
  the reversals and clawbacks no payout has netted yet (a later run nets them) — and never more than was
  earned: total paid ≤ the sum of the positive entries available by now;
- the ledger's ``paid_cents`` equals the amounts of the live payouts PayPal was sent;
- PayPal holds one batch per sender_batch_id we used and each of our items (sender_item_id) in one batch only,
  and the money PayPal has moved to the partner (items not failed or returned) never exceeds what we count as
  paid. Both partners are paid in one batch when a run pays both: the checks are per item.

At the end, once the scheduler has caught up and PayPal has settled, nothing payable is left unpaid: every
partner's unpaid balance the rule could pay is under the minimum."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.db.models import Max, Min, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import (
    LATE_AFTER,
    PAYOUT_MINIMUM_CENTS,
    balance,
    last_payout_run_at,
    next_payout,
    next_payout_at,
)
from apertur.core.clock import BUSINESS_TZ
from apertur.core.errors import AperturError
from apertur.integrations.paypal.emulator import Running, running
from apertur.integrations.paypal.errors import Retryable
from apertur.partners.models import Partner
from apertur.payouts import reconcile, schedule, services
from apertur.payouts.models import MONEY_BACK, Payout, PayoutEntry, PayoutRun, PayoutStatus
from apertur.payouts.tests.helpers import advance, client_for, make_world, pay, refund
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 3, 1, 15, tzinfo=dt.UTC)
OUT = {"SUCCESS", "PENDING", "UNCLAIMED", "ONHOLD", "BLOCKED"}  # PayPal items whose money left us

MONEY_BACK_ITEMS = ["FAILED", "RETURNED", "REFUNDED", "REVERSED"]
STEPS = st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 1), st.one_of(st.integers(1, 90_000), st.integers(40_000, 90_000))),
    st.tuples(st.just("refund"), st.integers(0, 30), st.sampled_from(["half", "full"])),
    st.tuples(st.just("run")),
    st.tuples(st.just("run")),
    st.tuples(st.just("outcome"), st.integers(0, 30), st.sampled_from(sorted(services.ITEM_STATES))),
    st.tuples(st.just("outcome"), st.integers(0, 30), st.sampled_from(MONEY_BACK_ITEMS)),
    st.tuples(st.just("wait")),
    st.tuples(st.just("retry"), st.integers(0, 30)),
    st.tuples(st.just("outage")),
)


class History:
    def __init__(self, emu: Running) -> None:
        self.emu = emu
        self.now = START
        self.partners: list[Partner] = []
        self.customers: list[Any] = []
        for i in range(2):
            partner, customer = make_world(customer_email=f"customer{i}@example.com", paypal_email=f"p{i}@example.com")
            self.partners.append(partner)
            self.customers.append(customer)
        self.payments: list[tuple[int, int, bool]] = []  # (n, amount, refunded)
        self.staff = make_staff()

    def later(self, delta: dt.timedelta = dt.timedelta(days=1)) -> None:
        self.now += delta

    def step(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "pay":
            n = len(self.payments) + 1
            who = action[1]
            pay(self.customers[who], n, action[2], self.now, stripe_customer=f"cus_{who}")
            self.payments.append((n, action[2], False))
            self.later()
        elif kind == "refund" and self.payments:
            index = action[1] % len(self.payments)
            n, amount, refunded = self.payments[index]
            if not refunded:
                refund(n, f"re_{n}", amount if action[2] == "full" else max(1, amount // 2), self.now)
                self.payments[index] = (n, amount, True)
                self.later()
        elif kind == "run":
            period = schedule._period_of(self.now)
            if services.run_at(period) <= self.now:
                period = schedule._next_period(period)
            self.now = services.run_at(period)
            with time_machine.travel(self.now, tick=False), client_for(self.emu) as client:
                schedule.run_period(period=period, client=client, trigger="cli", lease=False)  # recorded, as the CLI's
            self.later(dt.timedelta(hours=1))
        elif kind == "outcome":
            sent = list(Payout.objects.exclude(paypal_batch_id="").exclude(status__in=MONEY_BACK).order_by("id"))
            if sent:
                payout = sent[action[1] % len(sent)]
                status = action[2]
                if payout.status == PayoutStatus.PAID and status not in {"REVERSED", "REFUNDED", "RETURNED"}:
                    return
                advance(self.emu, payout, status)
                # As a webhook would; PayPal down: the event waits, the poller sees it later.
                with (
                    time_machine.travel(self.now, tick=False),
                    client_for(self.emu) as client,
                    contextlib.suppress(Retryable),
                ):
                    reconcile.reconcile_payout(payout=payout, client=client)
                self.later()
        elif kind == "wait":
            self.later(dt.timedelta(days=31))
            with time_machine.travel(self.now, tick=False), client_for(self.emu) as client:
                reconcile.poll_open(client=client)
        elif kind == "retry":
            back = list(Payout.objects.filter(status__in=MONEY_BACK).order_by("id"))
            if back:
                # AperturError: nothing left to retry (a later run paid it), or not retryable.
                with (
                    time_machine.travel(self.now, tick=False),
                    client_for(self.emu) as client,
                    contextlib.suppress(AperturError),
                ):
                    services.retry(payout=back[action[1] % len(back)], actor=self.staff, client=client)
                self.later()
        elif kind == "outage":
            assert self.emu.emulator.configure({"fail_next_n_with_5xx": 1})[0] == 200

    def check(self) -> None:
        assert PayoutEntry.objects.filter(payout__status__in=MONEY_BACK, released_at__isnull=True).count() == 0
        live_entries = Counter(PayoutEntry.objects.filter(released_at__isnull=True).values_list("entry_id", flat=True))
        assert all(count == 1 for count in live_entries.values()), live_entries
        batches = self.emu.emulator.state()["batches"]
        senders = Counter(b["batch_header"]["sender_batch_header"]["sender_batch_id"] for b in batches)
        assert all(count == 1 for count in senders.values()), senders
        items = Counter(item["payout_item"]["sender_item_id"] for b in batches for item in b["items"])
        assert all(count == 1 for count in items.values()), items
        for partner in self.partners:
            self.check_partner(partner, batches)

    def next_run(self, partner: Partner, takes: Any) -> tuple[dt.datetime, bool]:
        """(the partner's next run, late): the last run whose date has passed, if the partner had a commission
        before its month, it was made neither as a whole (finished) nor for the partner (a payout of theirs for
        it or later), and it pays them (what it ``takes(run)`` reaches the minimum: the partners here are all
        payable); else the coming 15th."""
        last = last_payout_run_at(self.now)
        period = f"{last.year:04d}-{last.month:02d}"
        first = CommissionEntry.objects.filter(partner=partner).aggregate(first=Min("paid_at"))["first"]
        last_paid = Payout.objects.filter(partner=partner).aggregate(last=Max("period"))["last"]
        made = PayoutRun.objects.filter(period=period).exclude(finished_at=None).exists()
        before = first is not None and first.astimezone(BUSINESS_TZ) < dt.datetime(
            last.year, last.month, 1, tzinfo=BUSINESS_TZ
        )
        if before and not made and (last_paid is None or last_paid < period) and takes(last) >= PAYOUT_MINIMUM_CENTS:
            return last, self.now >= last + LATE_AFTER  # said late after its first hour
        return next_payout_at(self.now), False

    def check_partner(self, partner: Partner, batches: list[dict[str, Any]]) -> None:
        entries = CommissionEntry.objects.filter(partner=partner)
        available = entries.filter(available_at__lte=self.now)
        live = list(Payout.objects.filter(partner=partner).exclude(status__in=MONEY_BACK))
        for payout in live:
            links = PayoutEntry.objects.filter(payout=payout, released_at__isnull=True).select_related("entry__payment")
            assert payout.amount_cents == sum(link.entry.amount_cents for link in links), payout
            assert payout.amount_cents >= PAYOUT_MINIMUM_CENTS
            for link in links:
                assert link.entry.payment.paid_at < services.period_start(payout.period)
                assert link.entry.available_at <= services.run_at(payout.period) <= self.now
        paid = sum(p.amount_cents for p in live)
        linked = PayoutEntry.objects.filter(released_at__isnull=True).values("entry_id")
        not_netted = available.filter(amount_cents__lt=0).exclude(pk__in=linked)
        net = int(available.aggregate(total=Sum("amount_cents"))["total"] or 0)
        owed_back = int(not_netted.aggregate(total=Sum("amount_cents"))["total"] or 0)
        earned = int(available.filter(amount_cents__gt=0).aggregate(total=Sum("amount_cents"))["total"] or 0)
        assert paid <= net - owed_back, (paid, net, owed_back)
        assert paid <= earned
        # A payout still `created`, or in review (its batch too old to send again), was never recorded as sent.
        sent = sum(p.amount_cents for p in live if p.status not in {PayoutStatus.CREATED, PayoutStatus.NEEDS_REVIEW})
        assert balance(partner=partner, at=self.now).paid_cents == sent
        # The balance takes what was paid from the payouts: the same as the entries they link, split as the rule
        # splits each entry (paid; else pending, eligible, carried).
        last_run = last_payout_run_at(self.now)
        last_month = dt.datetime(last_run.year, last_run.month, 1, tzinfo=BUSINESS_TZ)
        unpaid = entries.unpaid()

        def total(rows: Any) -> int:
            return int(rows.aggregate(total=Sum("amount_cents"))["total"] or 0)

        expected = (
            total(entries.paid()),
            total(unpaid.filter(available_at__gt=self.now)),
            total(unpaid.filter(available_at__lte=self.now)),
            # Carried: what a past run left, not a payout's still being sent or in review (those are `linked`).
            total(unpaid.exclude(pk__in=linked).filter(available_at__lte=last_run, paid_at__lt=last_month)),
        )
        b = balance(partner=partner, at=self.now)
        assert (b.paid_cents, b.pending_cents, b.eligible_cents, b.carried_cents) == expected

        # The next run is the latest one due and not made for the partner (runs skipped while time passed are late)
        # if it pays them, else the coming 15th; its estimate is what that run would take if nothing else happened:
        # the entries in no live payout (a payout saved but not sent, or in review, keeps its own) of payments made
        # before its month, whose hold is over by then.
        def takes(run: dt.datetime) -> int:
            run_month = dt.datetime(run.year, run.month, 1, tzinfo=BUSINESS_TZ)
            return total(entries.exclude(pk__in=linked).filter(available_at__lte=run, paid_at__lt=run_month))

        run, late = self.next_run(partner, takes)
        estimate = next_payout(partner=partner, at=self.now)
        assert (estimate.run_at, estimate.late) == (run, late)
        assert estimate.eligible_cents == takes(run)
        ours = {p.sender_item_id for p in Payout.objects.filter(partner=partner)}
        prefix = f"aptr-{partner.pk}-"
        out = 0
        for batch in batches:
            for item in batch["items"]:
                sender = item["payout_item"]["sender_item_id"]
                if not sender.startswith(prefix):
                    continue
                period, number = sender[len(prefix) : len(prefix) + 7], int(sender.rsplit("-", 1)[1])
                payout = Payout.objects.get(partner=partner, period=period)
                assert sender in ours or number < payout.batch_number  # an earlier attempt's id, never a stranger
                if item["transaction_status"] in OUT and batch["batch_header"]["batch_status"] != "DENIED":
                    out += int(Decimal(item["payout_item"]["amount"]["value"]) * 100)
        assert out <= sent, (out, sent)

    def settle(self) -> None:
        """PayPal comes back and settles every pending item; the scheduler catches up three months later."""
        self.emu.emulator.configure({"fail_next_n_with_5xx": 0})
        for _ in range(2):
            self.later(dt.timedelta(days=92))
            with time_machine.travel(self.now, tick=False), client_for(self.emu) as client:
                schedule.tick(client=client)
                self.emu.emulator.advance({})
                reconcile.poll_open(client=client)
            self.check()
        period = schedule._period_of(last_payout_run_at(self.now))  # the last run the scheduler made
        linked = PayoutEntry.objects.filter(released_at__isnull=True).values("entry_id")
        for partner in self.partners:
            left = CommissionEntry.objects.filter(
                partner=partner,
                payment__paid_at__lt=services.period_start(period),
                available_at__lte=services.run_at(period),
            ).exclude(pk__in=linked)
            unpaid = int(left.aggregate(total=Sum("amount_cents"))["total"] or 0)
            assert unpaid < PAYOUT_MINIMUM_CENTS, (partner.pk, unpaid)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEPS, min_size=2, max_size=12))
def test_paid_never_exceeds_eligible_and_nothing_is_paid_twice(steps: list[tuple[Any, ...]]) -> None:
    # Every history starts with both partners owed enough to be paid by the first run.
    prologue: list[tuple[Any, ...]] = [("pay", 0, 60_000), ("pay", 1, 70_000), ("run",)]
    with running() as emu, transaction.atomic():
        history = History(emu)
        for action in prologue + steps:
            history.step(action)
            history.check()
        history.settle()
        transaction.set_rollback(True)
