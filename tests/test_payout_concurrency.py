"""Payout runs, schedulers and PayPal reconciliation racing each other on PostgreSQL (real row locks, parallel
connections): one payout per partner and period, one PayPal batch, money back once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from apertur.commissions.models import CommissionEntry
from apertur.integrations.paypal.emulator import Running, running
from apertur.payouts import schedule, services
from apertur.payouts.models import Payout, PayoutEntry, PayoutRun, PayoutStatus
from apertur.payouts.tests.helpers import at, batches_created, client_for, do_run, make_world, only, pay
from tests.test_concurrency import race


@pytest.fixture
def emu() -> Iterator[Running]:
    with running() as emulator:
        yield emulator


def world() -> Any:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    pay(customer, 2, 30_000, at(2026, 3, 5))
    return partner


def payout_mails(outbox: list[Any]) -> list[str]:
    return [m.subject for m in outbox if "payout" in m.subject]


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_runs_for_one_period_make_one_payout_and_one_batch(
    postgres_only: None, emu: Running, n: int
) -> None:
    partner = world()

    def run() -> list[services.Decision]:
        with client_for(emu, timeout=5.0) as client:
            return services.run(period="2026-04", dry_run=False, client=client)

    with time_machine.travel(services.run_at("2026-04"), tick=False):
        results = race(run, n=n)
    assert all(isinstance(r, list) for r in results), results
    decisions = [only(r) for r in results]
    assert {d.reason for d in decisions} <= {"paid", "already_paid", "retry_pending"}
    assert any(d.reason == "paid" for d in decisions)
    assert {d.sender_batch_id for d in decisions} == {f"aptr-{partner.pk}-2026-04-1"}
    payout = Payout.objects.get()
    assert (payout.status, payout.amount_cents) == (PayoutStatus.SENT, 9_000)
    assert batches_created(emu) == 1
    assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 2
    assert not CommissionEntry.objects.unpaid().exists()
    assert payout.paypal_batch_id == emu.emulator.state()["batches"][0]["batch_header"]["payout_batch_id"]


def test_two_schedulers_ticking_at_once_make_one_payout(postgres_only: None, emu: Running) -> None:
    world()

    def tick() -> schedule.TickResult:
        with client_for(emu, timeout=5.0) as client:
            return schedule.tick(client=client)

    with time_machine.travel(at(2026, 4, 20), tick=False):
        results = race(tick, n=3)
    assert all(isinstance(r, schedule.TickResult) for r in results), results
    ran = [r for r in results if "2026-04" in r.runs]
    assert len(ran) >= 1
    assert sum(r.runs["2026-04"]["reasons"].get("paid", 0) for r in ran) >= 1
    assert Payout.objects.count() == 1 and batches_created(emu) == 1
    assert Payout.objects.get().status in {PayoutStatus.SENT, PayoutStatus.PENDING}
    assert PayoutRun.objects.get().finished_at is not None


def test_a_money_back_status_applied_at_once_releases_once_and_mails_once(
    postgres_only: None, emu: Running, mailoutbox: list[Any]
) -> None:
    world()
    assert only(do_run(emu, "2026-04")).reason == "paid"
    payout = Payout.objects.get()
    assert payout_mails(mailoutbox) == ["Your Apertur payout of $90.00 CAD is on its way"]

    def returned() -> Payout:
        return services.apply_item_status(payout_id=payout.pk, transaction_status="RETURNED", item_id="ITEM1")

    with time_machine.travel(at(2026, 4, 25), tick=False):
        results = race(returned, n=4)
    assert all(isinstance(r, Payout) for r in results), results
    payout.refresh_from_db()
    assert (payout.status, payout.returned_at) == (PayoutStatus.RETURNED, at(2026, 4, 25))
    assert payout_mails(mailoutbox) == [
        "Your Apertur payout of $90.00 CAD is on its way",
        "Your Apertur payout of $90.00 CAD came back",
    ]
    assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 0
    assert set(PayoutEntry.objects.values_list("released_at", flat=True)) == {at(2026, 4, 25)}
    assert not CommissionEntry.objects.paid().exists()
    d = only(do_run(emu, "2026-05"))
    assert (d.reason, d.amount_cents) == ("paid", 9_000) and batches_created(emu) == 2


@pytest.mark.parametrize("n", [2, 3])
def test_concurrent_runs_paying_chunks_of_partners_pay_each_partner_once(
    postgres_only: None, emu: Running, settings: Any, n: int
) -> None:
    """Several partners in chunks of two (several multi-item batches per run) and runs racing: one payout per
    partner, each payout's item in exactly one PayPal batch, its entries linked to it alone."""
    settings.PAYOUT_BATCH_SIZE = 2
    made = []
    for i in range(5):
        partner, customer = make_world(customer_email=f"c{i}@example.com", paypal_email=f"p{i}@example.com")
        pay(customer, 10 + i, 60_000 + 10_000 * i, at(2026, 3, 1), stripe_customer=f"cus_{i}")
        made.append(partner)

    def run() -> list[services.Decision]:
        with client_for(emu, timeout=5.0) as client:
            return services.run(period="2026-04", dry_run=False, client=client)

    with time_machine.travel(services.run_at("2026-04"), tick=False):
        results = race(run, n=n)
    assert all(isinstance(r, list) and len(r) == 5 for r in results), results
    for decisions in results:
        assert {d.reason for d in decisions} <= {"paid", "already_paid", "retry_pending"}
    payouts = list(Payout.objects.order_by("partner_id"))
    assert [p.partner_id for p in payouts] == [p.pk for p in made]
    assert [(p.status, p.amount_cents) for p in payouts] == [(PayoutStatus.SENT, 6_000 + 1_000 * i) for i in range(5)]
    batches = emu.emulator.state()["batches"]
    items = Counter(i["payout_item"]["sender_item_id"] for b in batches for i in b["items"])
    assert items == Counter({p.sender_item_id: 1 for p in payouts})
    assert {b["batch_header"]["sender_batch_header"]["sender_batch_id"] for b in batches} == {
        p.sender_batch_id for p in payouts
    }
    assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 5
    assert not CommissionEntry.objects.unpaid().exists()


def test_workers_alerting_about_a_long_hold_at_once_tell_staff_once(
    postgres_only: None, settings: Any, mailoutbox: list[Any]
) -> None:
    """Several schedules reaching a payout held past PAYOUT_HELD_ALERT_DAYS at once: one claim wins (a conditional
    UPDATE of ``held_alerted_at`` under the row lock), so one email and one audit row for the item."""
    from apertur.core.models import AuditEvent

    settings.STAFF_NOTIFY_EMAIL = "ops@apertur.example"
    partner, _ = make_world()
    held = [
        Payout.objects.create(
            partner=partner,
            period=period,
            amount_cents=6_000,
            sender_batch_id=f"aptr-{partner.pk}-{period}-1",
            paypal_batch_id=f"BATCH-{period}",
            paypal_item_id=f"ITEM-{period}",
            status=PayoutStatus.HELD,
            item_status="BLOCKED",
            held_since=at(2026, 4, 16),
            sent_at=at(2026, 4, 15),
        )
        for period in ("2026-04", "2026-05")
    ]
    with time_machine.travel(at(2026, 4, 30), tick=False):
        results = race(services.alert_held, n=4)
    assert all(isinstance(r, list) for r in results), results
    assert sorted(p.pk for r in results for p in r) == sorted(p.pk for p in held)
    staff = [m for m in mailoutbox if m.subject.startswith("PayPal has held")]
    assert len(staff) == sum(1 for r in results if r) and len(staff) <= 2
    assert sum(m.body.count("ITEM-2026-04 |") + m.body.count("ITEM-2026-05 |") for m in staff) == 2
    assert AuditEvent.objects.filter(action="payout.held_alerted").count() == 2
