"""The monthly schedule: missed runs happen at next start, each for its own period, oldest first; a period
PayPal could not be reached for stays open and is retried with the same id; one scheduler per period."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from apertur.integrations.paypal.emulator import Running
from apertur.partners.models import Partner
from apertur.payouts import schedule, services
from apertur.payouts.models import Payout, PayoutRun, PayoutStatus
from apertur.payouts.tests.helpers import at, batches_created, client_for, make_world, pay

pytestmark = pytest.mark.django_db
WOKE_UP = at(2026, 7, 20)  # the service was down from March to July 20th


def history() -> Partner:
    """6,000 earned in March, 8,000 in April, 2,000 in May, 4,000 in June."""
    partner, customer = make_world()
    for n, (month, amount) in enumerate([(3, 60_000), (4, 80_000), (5, 20_000), (6, 40_000)], start=1):
        pay(customer, n, amount, at(2026, month, 1))
    return partner


def tick(emu: Running, when: dt.datetime) -> schedule.TickResult:
    with time_machine.travel(when, tick=False), client_for(emu) as client:
        return schedule.tick(client=client)


def payouts() -> list[tuple[str, int, str, str]]:
    return [(p.period, p.amount_cents, p.status, p.sender_batch_id) for p in Payout.objects.order_by("period", "id")]


def test_due_periods_lists_missed_runs_oldest_first() -> None:
    assert schedule.due_periods(WOKE_UP) == []  # no commission yet: nothing could be paid
    history()
    assert schedule.due_periods(WOKE_UP) == ["2026-04", "2026-05", "2026-06", "2026-07"]
    # 08:59 Toronto on July 15th is before July's run; 09:00 is its moment.
    assert schedule.due_periods(dt.datetime(2026, 7, 15, 12, 59, tzinfo=dt.UTC))[-1] == "2026-06"
    assert schedule.due_periods(services.run_at("2026-07"))[-1] == "2026-07"
    PayoutRun.objects.create(period="2026-05", finished_at=WOKE_UP)
    PayoutRun.objects.create(period="2026-06")  # started, not finished: still due
    assert schedule.due_periods(WOKE_UP) == ["2026-04", "2026-06", "2026-07"]


def test_a_tick_after_downtime_runs_every_missed_period_for_its_own_period(emu: Running) -> None:
    partner = history()
    result = tick(emu, WOKE_UP)
    assert list(result.runs) == ["2026-04", "2026-05", "2026-06", "2026-07"]
    assert result.runs["2026-06"]["reasons"] == {"under_minimum": 1}  # May's 2,000 alone is carried
    assert result.skipped == []
    p = partner.pk
    # Sent, then polled by the same tick: PayPal still processes the items.
    assert payouts() == [
        ("2026-04", 6_000, "pending", f"aptr-{p}-2026-04-1"),
        ("2026-05", 8_000, "pending", f"aptr-{p}-2026-05-1"),
        ("2026-07", 6_000, "pending", f"aptr-{p}-2026-07-1"),  # May's 2,000 carried + June's 4,000
    ]
    assert result.poll["checked"] == 3
    assert batches_created(emu) == 3
    runs = PayoutRun.objects.order_by("period")
    assert [r.period for r in runs] == ["2026-04", "2026-05", "2026-06", "2026-07"]
    assert all(r.finished_at == WOKE_UP and r.lease_until is None for r in runs)
    assert runs.get(period="2026-07").summary["paid_cents"] == 6_000
    # Each payout holds exactly the entries its own period's rule pays.
    for payout in Payout.objects.all():
        start = services.period_start(payout.period)
        assert all(link.entry.payment.paid_at < start for link in payout.entries.select_related("entry__payment"))
        assert all(link.entry.available_at <= services.run_at(payout.period) for link in payout.entries.all())

    again = tick(emu, WOKE_UP + dt.timedelta(minutes=5))
    assert again.runs == {} and again.skipped == []
    assert again.poll["checked"] == 3  # still open: reconciled again
    assert batches_created(emu) == 3 and Payout.objects.count() == 3
    assert schedule.due_periods(WOKE_UP) == []


def test_a_period_left_created_by_paypal_5xx_stays_open_and_the_next_tick_sends_the_same_id(
    emu: Running,
) -> None:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    emu.emulator.configure({"fail_next_n_with_5xx": 1, "fail_status": 503})
    first = tick(emu, at(2026, 4, 20))
    assert first.runs["2026-04"]["reasons"] == {"retry_pending": 1}
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.CREATED and batches_created(emu) == 0
    run = PayoutRun.objects.get(period="2026-04")
    assert run.finished_at is None and run.lease_until is None
    assert schedule.due_periods(at(2026, 4, 20)) == ["2026-04"]

    second = tick(emu, at(2026, 4, 20, 13))
    assert second.runs["2026-04"]["reasons"] == {"paid": 1}
    payout.refresh_from_db()
    assert (payout.status, payout.sender_batch_id, payout.attempts) == (
        PayoutStatus.PENDING,
        f"aptr-{partner.pk}-2026-04-1",
        2,
    )
    assert batches_created(emu) == 1
    assert PayoutRun.objects.get(period="2026-04").finished_at == at(2026, 4, 20, 13)
    assert tick(emu, at(2026, 4, 20, 14)).runs == {}


def test_the_lease_keeps_a_second_scheduler_off_the_period(emu: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    inner: list[Any] = []
    real_run = services.run

    def run_while_another_scheduler_starts(**kwargs: Any) -> list[services.Decision]:
        inner.append(schedule.run_period(period=kwargs["period"], client=kwargs["client"]))
        return real_run(**kwargs)

    monkeypatch.setattr(services, "run", run_while_another_scheduler_starts)
    with time_machine.travel(at(2026, 4, 20), tick=False), client_for(emu) as client:
        decisions = schedule.run_period(period="2026-04", client=client)
    assert inner == [None]  # the second one saw the lease and did nothing
    assert decisions is not None and [d.reason for d in decisions] == ["paid"]
    assert Payout.objects.count() == 1 and batches_created(emu) == 1
    monkeypatch.undo()

    # A lease left by a scheduler that died runs out: after 15 minutes another one may take the period.
    lease_end = at(2026, 4, 20, 14)
    PayoutRun.objects.filter(period="2026-04").update(finished_at=None, lease_until=lease_end)
    with time_machine.travel(lease_end - dt.timedelta(minutes=1), tick=False), client_for(emu) as client:
        assert schedule.run_period(period="2026-04", client=client) is None
        assert schedule.tick(client=client).skipped == ["2026-04"]
    with time_machine.travel(lease_end + dt.timedelta(minutes=1), tick=False), client_for(emu) as client:
        result = schedule.tick(client=client)
    assert result.runs["2026-04"]["reasons"] == {"already_paid": 1}
    assert PayoutRun.objects.get(period="2026-04").finished_at == lease_end + dt.timedelta(minutes=1)
    assert batches_created(emu) == 1


def test_a_staff_retry_paypal_did_not_get_reopens_its_finished_period(emu: Running) -> None:
    from apertur.testing import make_staff

    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    emu.emulator.configure({"deny_next_n": 1})
    tick(emu, at(2026, 4, 20))
    emu.emulator.advance({})
    tick(emu, at(2026, 4, 20, 13))  # polled: DENIED → failed, money back
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.FAILED
    assert PayoutRun.objects.get(period="2026-04").finished_at is not None
    emu.emulator.configure({"fail_next_n_with_5xx": 1})
    with time_machine.travel(at(2026, 4, 21), tick=False), client_for(emu) as client:
        retried = services.retry(payout=payout, actor=make_staff(), client=client)
    assert retried.status == PayoutStatus.CREATED and retried.sender_batch_id == f"aptr-{partner.pk}-2026-04-2"
    assert schedule.due_periods(at(2026, 4, 21)) == ["2026-04"]  # the unsent retry keeps its period due
    result = tick(emu, at(2026, 4, 21, 13))
    assert result.runs["2026-04"]["reasons"] == {"paid": 1}
    retried.refresh_from_db()
    assert retried.status != PayoutStatus.CREATED and retried.sender_batch_id.endswith("-2")
    assert batches_created(emu) == 2
    assert schedule.due_periods(at(2026, 4, 21, 14)) == []


def test_a_persons_run_leaves_a_schedulers_lease_alone(emu: Running) -> None:
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    lease_end = at(2026, 4, 20, 14)
    PayoutRun.objects.create(period="2026-04", lease_until=lease_end)
    with time_machine.travel(at(2026, 4, 20, 13), tick=False), client_for(emu) as client:
        decisions = schedule.run_period(period="2026-04", client=client, trigger="cli", lease=False)
    assert decisions is not None and [d.reason for d in decisions] == ["paid"]
    run = PayoutRun.objects.get(period="2026-04")
    assert run.lease_until == lease_end and run.finished_at == at(2026, 4, 20, 13)


def test_a_second_scheduler_leaves_the_later_missed_periods_to_the_one_running_the_earliest(emu: Running) -> None:
    """Two workers start after downtime: one takes April's lease. The other must not run May meanwhile: May's rule
    also covers March's earnings (still unpaid while April runs), which would then be paid, and mailed, as May's."""
    partner = history()
    lease_end = WOKE_UP + dt.timedelta(minutes=15)
    PayoutRun.objects.create(period="2026-04", lease_until=lease_end)  # the other worker is running April
    second = tick(emu, WOKE_UP)
    assert second.runs == {} and second.skipped == ["2026-04"]
    assert payouts() == [] and batches_created(emu) == 0

    # The first worker finishes April; the later periods are then run in order, each paying its own months.
    PayoutRun.objects.filter(period="2026-04").update(lease_until=None)
    with time_machine.travel(WOKE_UP, tick=False), client_for(emu) as client:
        schedule.run_period(period="2026-04", client=client)
    result = tick(emu, WOKE_UP + dt.timedelta(minutes=5))
    assert list(result.runs) == ["2026-05", "2026-06", "2026-07"]
    assert payouts() == [
        ("2026-04", 6_000, "pending", f"aptr-{partner.pk}-2026-04-1"),
        ("2026-05", 8_000, "pending", f"aptr-{partner.pk}-2026-05-1"),
        ("2026-07", 6_000, "pending", f"aptr-{partner.pk}-2026-07-1"),  # May's 2,000 carried + June's 4,000
    ]


def test_a_period_whose_run_raises_does_not_stop_polling_the_others(
    emu: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that raises (a bug, the database) is logged with its period and retried by the next pass; meanwhile the
    payouts already sent are still polled and PayPal's events applied, instead of nothing moving at all."""
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    tick(emu, at(2026, 4, 20))  # April paid: its payout waits for PayPal
    pay(customer, 2, 60_000, at(2026, 4, 1))

    def broken(**kwargs: Any) -> list[services.Decision]:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "run", broken)
    result = tick(emu, at(2026, 5, 20))
    assert result.runs == {}
    assert result.poll["checked"] == 1
    assert "payout run 2026-05 failed" in caplog.text and "boom" in caplog.text
    run = PayoutRun.objects.get(period="2026-05")
    assert run.finished_at is None and run.lease_until is None  # due again at the next pass
    assert schedule.due_periods(at(2026, 5, 20)) == ["2026-05"]


def test_a_run_that_outlived_its_lease_leaves_the_next_schedulers_lease_alone(
    emu: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run longer than the lease: a second scheduler takes the period meanwhile (safe for money: one payout per
    partner and period). When the first run ends it must not drop the second's lease, or a third would start too."""
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    real_run = services.run
    second_lease = at(2026, 4, 20, 13) + dt.timedelta(minutes=40)

    def slow_run(**kwargs: Any) -> list[services.Decision]:
        decisions = real_run(**kwargs)
        # Twenty minutes later: ours expired at 13:15 and another scheduler took the period until 13:40.
        PayoutRun.objects.filter(period="2026-04").update(lease_until=second_lease)
        return decisions

    monkeypatch.setattr(services, "run", slow_run)
    with time_machine.travel(at(2026, 4, 20, 13), tick=False), client_for(emu) as client:
        decisions = schedule.run_period(period="2026-04", client=client)
    assert decisions is not None and [d.reason for d in decisions] == ["paid"]
    assert PayoutRun.objects.get(period="2026-04").lease_until == second_lease
    # A run that kept its lease still gives it back when it ends.
    monkeypatch.setattr(services, "run", real_run)
    PayoutRun.objects.filter(period="2026-04").update(lease_until=None, finished_at=None)
    with time_machine.travel(at(2026, 4, 20, 14), tick=False), client_for(emu) as client:
        assert schedule.run_period(period="2026-04", client=client) is not None
    assert PayoutRun.objects.get(period="2026-04").lease_until is None
