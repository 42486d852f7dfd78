"""Every failure mode of the PayPal emulator met by the monthly run, and crashes of our own process around the
PayPal call: whatever happens, PayPal ends with at most one batch per payout and the money is never lost."""

from __future__ import annotations

import time
from typing import Any

import pytest
import time_machine

from apertur.commissions.models import CommissionEntry
from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import Running, running
from apertur.payouts import reconcile, services
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus
from apertur.payouts.tests.helpers import (
    at,
    batches_created,
    client_for,
    do_run,
    make_world,
    only,
    pay,
)

pytestmark = pytest.mark.django_db


class Crash(BaseException):
    """The process dies (SIGKILL, OOM, deploy): nothing after this line of ours runs."""


def world_with_6000() -> Any:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    return partner


def configure(emu: Running, **switches: Any) -> None:
    code, body = emu.emulator.configure(switches)
    assert code == 200, body


def assert_sent_once(emu: Running, payout: Payout) -> None:
    payout.refresh_from_db()
    state = emu.emulator.state()
    assert batches_created(emu) == 1 and len(state["batches"]) == 1
    assert payout.status == PayoutStatus.SENT
    assert payout.paypal_batch_id == state["batches"][0]["batch_header"]["payout_batch_id"]
    assert state["batches"][0]["batch_header"]["sender_batch_header"]["sender_batch_id"] == payout.sender_batch_id
    assert not CommissionEntry.objects.unpaid().exists()


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_5xx_or_429_keeps_the_payout_created_and_the_rerun_sends_the_same_id(emu: Running, status: int) -> None:
    partner = world_with_6000()
    configure(emu, fail_next_n_with_5xx=2, fail_status=status)
    for attempt in (1, 2):
        d = only(do_run(emu, "2026-04"))
        assert (d.reason, d.status, d.sender_batch_id) == ("retry_pending", "created", f"aptr-{partner.pk}-2026-04-1")
        payout = Payout.objects.get()
        assert (payout.attempts, payout.status) == (attempt, PayoutStatus.CREATED)
        assert f"HTTP {status}" in payout.detail
        assert batches_created(emu) == 0
        assert not CommissionEntry.objects.paid().exists()
        assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 1  # still reserved for it
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.sender_batch_id) == ("paid", f"aptr-{partner.pk}-2026-04-1")
    assert Payout.objects.count() == 1 and Payout.objects.get().attempts == 3
    assert_sent_once(emu, Payout.objects.get())


def test_a_timeout_after_paypal_created_the_batch_is_recorded_from_the_duplicate_answer(emu: Running) -> None:
    world_with_6000()
    configure(emu, timeout_next_n=1, timeout_seconds=0.6, timeout_after_commit=True)
    d = only(do_run(emu, "2026-04", timeout=0.2))
    assert (d.reason, d.status) == ("retry_pending", "created")
    assert "TIMEOUT" in Payout.objects.get().detail
    assert batches_created(emu) == 1  # PayPal has it; we do not know yet
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("paid", "sent")
    payout = Payout.objects.get()
    assert payout.detail.startswith("duplicate batch")
    assert emu.emulator.counters["create_requests"] == 2
    assert_sent_once(emu, payout)


def test_a_timeout_before_paypal_acted_lets_the_rerun_create_it_once(emu: Running) -> None:
    world_with_6000()
    configure(emu, timeout_next_n=1, timeout_seconds=0.8, timeout_after_commit=False)
    d = only(do_run(emu, "2026-04", timeout=0.2))
    assert (d.reason, d.status) == ("retry_pending", "created")
    assert batches_created(emu) == 0  # the slow request has not acted yet
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("paid", "sent")
    payout = Payout.objects.get()
    assert payout.detail == ""  # a plain 201: the rerun created it
    # The first request acts late: PayPal refuses it as a duplicate. On the run's clock: the emulator forgets a
    # sender_batch_id after 30 days of its (wall) clock, which outside the time travel is today.
    # Waited for, not slept through (0.8 s): a busy machine may run the emulator's thread late. Bounded.
    with time_machine.travel(services.run_at("2026-04"), tick=True):
        deadline = time.monotonic() + 15
        while emu.emulator.counters["create_requests"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert emu.emulator.counters["create_requests"] == 2
    assert_sent_once(emu, payout)


def test_force_duplicate_next_adopts_the_existing_batch(emu: Running) -> None:
    world_with_6000()
    configure(emu, force_duplicate_next=True)
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("paid", "sent")
    payout = Payout.objects.get()
    assert payout.detail.startswith("duplicate batch") and payout.attempts == 1
    assert_sent_once(emu, payout)
    assert only(do_run(emu, "2026-04")).reason == "already_paid"
    assert batches_created(emu) == 1


def test_a_denied_batch_fails_gives_the_money_back_and_the_next_period_pays_it(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    partner = world_with_6000()
    configure(emu, deny_next_n=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert only(do_run(emu, "2026-04")).reason == "paid"
    first = Payout.objects.get()
    assert first.status == PayoutStatus.SENT and len(mailoutbox) == 1  # "on its way"
    emu.emulator.advance({})
    assert emu.emulator.state()["batches"][0]["batch_header"]["batch_status"] == "DENIED"
    with (
        time_machine.travel(at(2026, 4, 16), tick=False),
        client_for(emu) as client,
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = reconcile.poll_open(client=client)
    assert result.changed == [
        {
            "sender_batch_id": first.sender_batch_id,
            "sender_item_id": first.sender_item_id,
            "partner_id": first.partner_id,
            "from": "sent",
            "to": "failed",
        }
    ]
    first.refresh_from_db()
    assert (first.status, first.item_status) == (PayoutStatus.FAILED, "FAILED")
    assert first.returned_at == at(2026, 4, 16)
    assert not CommissionEntry.objects.paid().exists()
    assert PayoutEntry.objects.get().released_at is not None
    # A DENIED batch is our funding, not the partner's address: staff are alerted, the partner told it is delayed.
    assert first.failure == "sender"
    assert sorted(m.subject for m in mailoutbox[1:]) == [
        f"Payouts of batch {first.sender_batch_id} failed on our side",
        "Your Apertur payout of $60.00 CAD is delayed on our side",
    ]

    d = only(do_run(emu, "2026-04"))  # the failed period does not resend by itself
    assert (d.reason, d.status) == ("failed", "failed") and batches_created(emu) == 1

    d = only(do_run(emu, "2026-05"))
    assert (d.reason, d.amount_cents, d.sender_batch_id) == ("paid", 6_000, f"aptr-{partner.pk}-2026-05-1")
    second = Payout.objects.get(period="2026-05")
    assert second.status == PayoutStatus.SENT and batches_created(emu) == 2
    assert PayoutEntry.objects.filter(released_at__isnull=True).get().payout == second
    assert not CommissionEntry.objects.unpaid().exists()


def test_a_terminal_refusal_fails_the_payout_and_releases_its_entries(emu: Running, mailoutbox: list[Any]) -> None:
    partner = world_with_6000()
    partner.paypal_email = "not-an-email"  # PayPal answers 400 VALIDATION_ERROR for the receiver
    partner.save()
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status, d.amount_cents) == ("failed", "failed", 6_000)
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.FAILED and "VALIDATION_ERROR" in payout.detail
    assert payout.returned_at is not None and payout.sent_at is None
    assert batches_created(emu) == 0 and emu.emulator.counters["create_requests"] == 0
    assert PayoutEntry.objects.get().released_at is not None
    assert not CommissionEntry.objects.paid().exists()
    assert mailoutbox == []  # never told it was sent, so nothing "came back"

    partner.paypal_email = "fixed@example.com"
    partner.save()
    d = only(do_run(emu, "2026-05"))
    assert (d.reason, d.amount_cents) == ("paid", 6_000)
    assert emu.emulator.state()["batches"][0]["items"][0]["payout_item"]["receiver"] == "fixed@example.com"
    assert batches_created(emu) == 1


def test_bad_credentials_leave_the_payout_created_for_a_rerun_with_the_same_id(emu: Running) -> None:
    """A 401 from the token endpoint is our configuration, not PayPal refusing this payout: nothing was
    created, nothing is released, and once the credentials are right the same sender_batch_id is sent."""
    partner = world_with_6000()
    d = only(do_run(emu, "2026-04", secret="wrong-secret"))
    assert (d.reason, d.status) == ("retry_pending", "created")
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.CREATED and "invalid_client" in payout.detail
    assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 1
    assert batches_created(emu) == 0 and emu.emulator.counters["tokens_issued"] == 0
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.sender_batch_id) == ("paid", f"aptr-{partner.pk}-2026-04-1")
    assert_sent_once(emu, payout)


def test_paypal_unreachable_is_retryable(emu: Running) -> None:
    world_with_6000()
    emu.stop()
    d = only(do_run(emu, "2026-04", timeout=0.3))
    assert (d.reason, d.status) == ("retry_pending", "created")
    assert "CONNECTION_ERROR" in Payout.objects.get().detail
    with running() as fresh:
        d = only(do_run(fresh, "2026-04"))
        assert d.reason == "paid"
        assert_sent_once(fresh, Payout.objects.get())


# --- crashes of our own process -------------------------------------------------------------------------


def crash_once(monkeypatch: pytest.MonkeyPatch, *, after_paypal: bool) -> list[str]:
    """Make the first ``create_payout`` die, before the HTTP call or after PayPal created the batch."""
    real = PayPalClient.create_payout
    calls: list[str] = []

    def dying(self: PayPalClient, **kwargs: Any) -> Any:
        calls.append(kwargs["sender_batch_id"])
        if len(calls) == 1:
            if after_paypal:
                real(self, **kwargs)
            raise Crash("killed")
        return real(self, **kwargs)

    monkeypatch.setattr(PayPalClient, "create_payout", dying)
    return calls


def test_a_crash_between_saving_the_batch_id_and_calling_paypal(emu: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    partner = world_with_6000()
    calls = crash_once(monkeypatch, after_paypal=False)
    with pytest.raises(Crash):
        do_run(emu, "2026-04")
    payout = Payout.objects.get()  # committed before PayPal was called
    assert (payout.status, payout.sender_batch_id) == (PayoutStatus.CREATED, f"aptr-{partner.pk}-2026-04-1")
    assert batches_created(emu) == 0 and emu.emulator.counters["create_requests"] == 0
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.sender_batch_id) == ("paid", payout.sender_batch_id)
    assert calls == [payout.sender_batch_id, payout.sender_batch_id]
    assert_sent_once(emu, payout)
    assert only(do_run(emu, "2026-04")).reason == "already_paid" and batches_created(emu) == 1


def test_a_crash_after_paypal_created_the_batch_before_we_saved_it(
    emu: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    world_with_6000()
    calls = crash_once(monkeypatch, after_paypal=True)
    with pytest.raises(Crash):
        do_run(emu, "2026-04")
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.CREATED and batches_created(emu) == 1
    assert not CommissionEntry.objects.paid().exists()
    d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("paid", "sent")
    assert len(calls) == 2 and Payout.objects.get().detail.startswith("duplicate batch")
    assert_sent_once(emu, payout)


def test_a_duplicate_answer_without_the_batch_id_tells_staff_once(
    emu: Running,
    monkeypatch: pytest.MonkeyPatch,
    mailoutbox: list[Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from apertur.core.models import AuditEvent
    from apertur.integrations.paypal.errors import DuplicateBatch

    world_with_6000()

    def duplicate(self: PayPalClient, **kwargs: Any) -> Any:
        raise DuplicateBatch(
            "User business error.", sender_batch_id=kwargs["sender_batch_id"], payout_batch_id=None, status=400
        )

    monkeypatch.setattr(PayPalClient, "create_payout", duplicate)
    with django_capture_on_commit_callbacks(execute=True):  # mail goes when the run's transaction commits
        d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("paid", "sent")
    payout = Payout.objects.get()
    assert payout.paypal_batch_id == "" and payout.detail.endswith("(no batch id: reconcile by hand)")
    [alert] = [m for m in mailoutbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]
    assert payout.sender_batch_id in alert.subject and "did not say its id" in alert.subject
    assert "find the batch in PayPal" in alert.body
    assert AuditEvent.objects.filter(action="payout.staff_alerted", object_id=str(payout.pk)).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert only(do_run(emu, "2026-04")).reason == "already_paid"
    assert [m.to for m in mailoutbox].count([settings.STAFF_NOTIFY_EMAIL]) == 1
