"""Reconciliation with PayPal through the emulator: every item status maps to our payout state, money that
comes back returns to the balance once (entries released, the partner told once) and a later run or a staff
retry pays it exactly once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import balance
from apertur.integrations.paypal.emulator import Running
from apertur.payouts import reconcile, services
from apertur.payouts.errors import NothingToRetry, PayoutNotRetryable
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus, PayPalEventStatus
from apertur.payouts.tests.helpers import (
    advance,
    at,
    batches_created,
    client_for,
    do_run,
    due,
    make_world,
    only,
    pay,
)
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db
SENT_AT = services.run_at("2026-04")


@pytest.fixture
def mails(django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]) -> Any:
    """Run a step with its on-commit mail sent; the subjects sent so far."""

    class Mails:
        outbox = mailoutbox

        def __call__(self) -> Any:
            return django_capture_on_commit_callbacks(execute=True)

        @property
        def subjects(self) -> list[str]:
            return [m.subject for m in mailoutbox]

    return Mails()


def sent_payout(emu: Running, mails: Any) -> Payout:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    with mails():
        assert only(do_run(emu, "2026-04")).reason == "paid"
    payout = Payout.objects.get()
    assert payout.partner == partner and payout.status == PayoutStatus.SENT
    assert mails.subjects == ["Your Apertur payout of $60.00 CAD is on its way"]
    return payout


def poll(emu: Running, when: dt.datetime, mails: Any) -> reconcile.PollResult:
    with time_machine.travel(when, tick=False), client_for(emu) as client, mails():
        return reconcile.poll_open(client=client)


EXPECTED = {
    "SUCCESS": PayoutStatus.PAID,
    "PENDING": PayoutStatus.PENDING,
    "UNCLAIMED": PayoutStatus.UNCLAIMED,
    "ONHOLD": PayoutStatus.HELD,
    "BLOCKED": PayoutStatus.HELD,
    "FAILED": PayoutStatus.FAILED,
    "RETURNED": PayoutStatus.RETURNED,
    "REFUNDED": PayoutStatus.RETURNED,
    "REVERSED": PayoutStatus.RETURNED,
}
MONEY_BACK_STATUSES = {"FAILED", "RETURNED", "REFUNDED", "REVERSED"}


@pytest.mark.parametrize("item_status", list(EXPECTED))
def test_polling_maps_every_item_status(emu: Running, mails: Any, item_status: str) -> None:
    payout = sent_payout(emu, mails)
    partner = payout.partner
    advance(emu, payout, item_status)
    when = SENT_AT + dt.timedelta(days=1)
    result = poll(emu, when, mails)
    assert result.checked == 1 and result.errors == []
    payout.refresh_from_db()
    assert payout.status == EXPECTED[item_status]
    assert result.changed == [
        {
            "sender_batch_id": payout.sender_batch_id,
            "sender_item_id": payout.sender_item_id,
            "partner_id": payout.partner_id,
            "from": "sent",
            "to": payout.status,
        }
    ]
    assert payout.checked_at == when and payout.paypal_item_id
    entries = CommissionEntry.objects.filter(partner=partner)
    if item_status in MONEY_BACK_STATUSES:
        assert payout.item_status == item_status and payout.returned_at == when
        assert not entries.paid().exists()
        assert PayoutEntry.objects.get().released_at == when
        assert balance(partner=partner, at=when).paid_cents == 0
        assert mails.subjects[1:] == ["Your Apertur payout of $60.00 CAD came back"]
        assert "did not reach you" in mails.outbox[-1].body or item_status in ("REFUNDED", "REVERSED")
        # Told once, released once, whatever polls and webhooks repeat.
        for _ in range(2):
            poll(emu, when + dt.timedelta(days=1), mails)
            with mails():
                services.apply_item_status(payout_id=payout.pk, transaction_status=item_status)
        assert len(mails.outbox) == 2 and PayoutEntry.objects.get().released_at == when
        # The next period's run pays the money that came back, with a new payout for that period.
        d = only(do_run(emu, "2026-05"))
        assert (d.reason, d.amount_cents, d.sender_batch_id) == ("paid", 6_000, f"aptr-{partner.pk}-2026-05-1")
        assert batches_created(emu) == 2
        assert not entries.unpaid().exists()
        assert PayoutEntry.objects.filter(released_at__isnull=True).get().payout.period == "2026-05"
    else:
        assert payout.returned_at is None
        assert not entries.unpaid().exists()
        assert balance(partner=partner, at=when).paid_cents == 6_000
        expected = ["Your Apertur payout of $60.00 CAD was paid"] if item_status == "SUCCESS" else []
        assert mails.subjects[1:] == expected
        assert due(do_run(emu, "2026-05")) == [] and batches_created(emu) == 1
    if item_status == "SUCCESS":
        assert payout.paid_at == when
        assert reconcile.poll_open(client=client_for(emu)).checked == 0  # final: not polled any more
    elif item_status in {"PENDING", "UNCLAIMED", "ONHOLD", "BLOCKED"}:
        assert poll(emu, when + dt.timedelta(days=2), mails).checked == 1  # still open


def test_reversed_after_success_gives_the_money_back_once(emu: Running, mails: Any) -> None:
    payout = sent_payout(emu, mails)
    advance(emu, payout, "SUCCESS")
    poll(emu, SENT_AT + dt.timedelta(days=1), mails)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    advance(emu, payout, "REVERSED")
    event = {
        "id": "WH-REVERSED-1",
        "event_type": "PAYMENT.PAYOUTS-ITEM.REVERSED",
        "resource": {"payout_batch_id": payout.paypal_batch_id, "payout_item_id": payout.paypal_item_id},
    }
    when = SENT_AT + dt.timedelta(days=20)
    with time_machine.travel(when, tick=False), client_for(emu) as client, mails():
        stored = reconcile.receive_event(event=event, client=client)
        again = reconcile.receive_event(event=event, client=client)  # redelivered
    assert stored.status == again.status == PayPalEventStatus.PROCESSED and stored.payout == payout
    payout.refresh_from_db()
    assert (payout.status, payout.item_status, payout.returned_at) == (PayoutStatus.RETURNED, "REVERSED", when)
    assert payout.paid_at is not None  # history kept
    assert not CommissionEntry.objects.paid().exists()
    assert mails.subjects == [
        "Your Apertur payout of $60.00 CAD is on its way",
        "Your Apertur payout of $60.00 CAD was paid",
        "Your Apertur payout of $60.00 CAD came back",
    ]
    back = " ".join(mails.outbox[-1].body.split())
    assert "was taken back after it was paid: PayPal reported it as returned (REVERSED)" in back
    assert "did not reach you" not in back  # it did, first
    # It was paid to a PayPal account that accepted it: not "no PayPal account, did not accept within 30 days".
    assert "has no PayPal account" not in back and "If it happens again, check the PayPal address" in back
    # A stale SUCCESS event after the reversal cannot undo it: PayPal's current state is REVERSED.
    stale = {**event, "id": "WH-SUCCESS-LATE", "event_type": "PAYMENT.PAYOUTS-ITEM.SUCCEEDED"}
    with client_for(emu) as client:
        reconcile.receive_event(event=stale, client=client)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RETURNED
    assert only(do_run(emu, "2026-05")).amount_cents == 6_000


def test_an_item_unclaimed_for_30_days_is_cancelled_and_the_money_comes_back(emu: Running, mails: Any) -> None:
    payout = sent_payout(emu, mails)
    advance(emu, payout, "UNCLAIMED")
    poll(emu, SENT_AT + dt.timedelta(days=29, hours=23), mails)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.UNCLAIMED and emu.emulator.counters["items_cancelled"] == 0
    assert not CommissionEntry.objects.unpaid().exists()

    when = SENT_AT + dt.timedelta(days=30)
    result = poll(emu, when, mails)
    assert emu.emulator.counters["items_cancelled"] == 1
    payout.refresh_from_db()
    assert result.changed == [
        {
            "sender_batch_id": payout.sender_batch_id,
            "sender_item_id": payout.sender_item_id,
            "partner_id": payout.partner_id,
            "from": "unclaimed",
            "to": "returned",
        }
    ]
    assert (payout.status, payout.item_status, payout.returned_at) == (PayoutStatus.RETURNED, "RETURNED", when)
    assert "unclaimed for 30 days" in payout.detail
    assert emu.emulator.state()["batches"][0]["items"][0]["transaction_status"] == "RETURNED"
    assert not CommissionEntry.objects.paid().exists()
    assert balance(partner=payout.partner, at=when).eligible_cents == 6_000
    assert mails.subjects[-1] == "Your Apertur payout of $60.00 CAD came back" and len(mails.outbox) == 2
    poll(emu, when + dt.timedelta(days=1), mails)
    assert emu.emulator.counters["items_cancelled"] == 1 and len(mails.outbox) == 2


def test_staff_retry_after_failure_uses_a_new_id_and_pays_once(emu: Running, mails: Any) -> None:
    payout = sent_payout(emu, mails)
    partner = payout.partner
    advance(emu, payout, "FAILED")
    poll(emu, SENT_AT + dt.timedelta(days=1), mails)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED
    staff = make_staff()
    with time_machine.travel(SENT_AT + dt.timedelta(days=2), tick=False), client_for(emu) as client, mails():
        retried = services.retry(payout=payout, actor=staff, client=client)
    assert retried.pk == payout.pk
    assert (retried.status, retried.sender_batch_id, retried.batch_number) == (
        PayoutStatus.SENT,
        f"aptr-{partner.pk}-2026-04-2",
        2,
    )
    assert retried.amount_cents == 6_000 and retried.paypal_batch_id != payout.paypal_batch_id
    assert batches_created(emu) == 2
    senders = [b["batch_header"]["sender_batch_header"]["sender_batch_id"] for b in emu.emulator.state()["batches"]]
    assert senders == [f"aptr-{partner.pk}-2026-04-1", f"aptr-{partner.pk}-2026-04-2"]
    assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 1
    assert not CommissionEntry.objects.unpaid().exists()
    assert Payout.objects.count() == 1
    assert due(do_run(emu, "2026-05")) == [] and batches_created(emu) == 2  # nothing paid twice
    with pytest.raises(PayoutNotRetryable):  # sent again: no third id while PayPal may pay this one
        services.retry(payout=retried, actor=staff, client=client_for(emu))
    advance(emu, retried, "SUCCESS")
    poll(emu, SENT_AT + dt.timedelta(days=3), mails)
    retried.refresh_from_db()
    assert retried.status == PayoutStatus.PAID
    with pytest.raises(PayoutNotRetryable):
        services.retry(payout=retried, actor=staff, client=client_for(emu))
    assert batches_created(emu) == 2


def test_retry_is_refused_for_a_created_payout_and_when_a_later_run_paid_it(emu: Running, mails: Any) -> None:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    emu.emulator.configure({"fail_next_n_with_5xx": 1})
    assert only(do_run(emu, "2026-04")).reason == "retry_pending"
    created = Payout.objects.get()
    staff = make_staff()
    with pytest.raises(PayoutNotRetryable):  # the same id must be retried first: it may exist at PayPal
        services.retry(payout=created, actor=staff, client=client_for(emu))
    assert only(do_run(emu, "2026-04")).reason == "paid"
    created.refresh_from_db()
    advance(emu, created, "RETURNED")
    poll(emu, SENT_AT + dt.timedelta(days=1), mails)
    assert only(do_run(emu, "2026-05")).reason == "paid"  # the next run paid what came back
    created.refresh_from_db()
    with pytest.raises(NothingToRetry):
        services.retry(payout=created, actor=staff, client=client_for(emu))
    assert batches_created(emu) == 2 and Payout.objects.count() == 2
    assert balance(partner=partner, at=at(2026, 5, 16)).paid_cents == 6_000


def test_a_reversal_whose_webhook_was_lost_is_found_by_the_daily_look_at_paid_payouts(emu: Running, mails: Any) -> None:
    payout = sent_payout(emu, mails)
    advance(emu, payout, "SUCCESS")
    paid_on = SENT_AT + dt.timedelta(hours=1)
    assert poll(emu, paid_on, mails).changed[0]["to"] == PayoutStatus.PAID
    advance(emu, payout, "REVERSED")  # PayPal reverses it; the webhook never reaches us
    assert poll(emu, paid_on + dt.timedelta(hours=23), mails).checked == 0  # checked less than a day ago
    result = poll(emu, paid_on + dt.timedelta(days=1, minutes=1), mails)
    assert result.changed == [
        {
            "sender_batch_id": payout.sender_batch_id,
            "sender_item_id": payout.sender_item_id,
            "partner_id": payout.partner_id,
            "from": "paid",
            "to": "returned",
        }
    ]
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RETURNED and payout.item_status == "REVERSED"
    assert mails.subjects[-1] == "Your Apertur payout of $60.00 CAD came back"
    # Paid long ago: no longer watched.
    advance(emu, payout, "SUCCESS")
    Payout.objects.filter(pk=payout.pk).update(status=PayoutStatus.PAID, paid_at=SENT_AT, checked_at=SENT_AT)
    assert poll(emu, SENT_AT + reconcile.PAID_WATCH + dt.timedelta(days=1), mails).checked == 0


def test_a_stale_read_of_the_old_item_cannot_give_back_the_money_of_its_retry(emu: Running, mails: Any) -> None:
    """A poll reads its payouts, then each batch from PayPal: minutes for a long list. Meanwhile the item came back
    (a webhook) and staff retried the payout with a new item. What the poll then reads about the OLD item must not
    touch the payout: its money already came back once, and the new item is paying it."""
    payout = sent_payout(emu, mails)
    advance(emu, payout, "ONHOLD")
    poll(emu, SENT_AT + dt.timedelta(hours=1), mails)
    stale = Payout.objects.get(pk=payout.pk)  # as the poll loaded it (held, item -1), before what follows
    assert stale.status == PayoutStatus.HELD
    advance(emu, payout, "RETURNED")
    poll(emu, SENT_AT + dt.timedelta(hours=2), mails)  # the webhook's work: the money comes back, once
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RETURNED
    with time_machine.travel(SENT_AT + dt.timedelta(hours=3), tick=False), client_for(emu) as client, mails():
        retried = services.retry(payout=payout, actor=make_staff(), client=client)
    assert retried.status == PayoutStatus.SENT and retried.sender_item_id.endswith("-2")
    # The poll reaches the old batch now: its item -1 is RETURNED.
    with time_machine.travel(SENT_AT + dt.timedelta(hours=4), tick=False), client_for(emu) as client, mails():
        reconcile.reconcile_batch(payouts=[stale], client=client)
    retried.refresh_from_db()
    assert (retried.status, retried.returned_at) == (PayoutStatus.SENT, None)
    assert PayoutEntry.objects.filter(payout=retried, released_at__isnull=True).count() == 1
    assert not CommissionEntry.objects.unpaid().exists()  # the -2 item pays them: no later run may pay them again
    assert due(do_run(emu, "2026-05")) == []
    assert mails.subjects.count("Your Apertur payout of $60.00 CAD came back") == 1


def _set_item_status(emu: Running, payout: Payout, status: str) -> None:
    """What PayPal's answers say about the payout's item from now on, even a status the emulator does not offer."""
    for batch in emu.emulator.batches.values():
        for item in batch.items:
            if item.sender_item_id == payout.sender_item_id:
                item.status = status
                return
    raise AssertionError(f"no item {payout.sender_item_id!r} in the emulator")


def test_a_status_paypal_adds_later_leaves_the_payout_for_staff_and_polling_goes_on(
    emu: Running, mails: Any, settings: Any
) -> None:
    """PayPal may report an item ``transaction_status`` this code does not know (a new one). The payout is neither
    lost nor paid: it keeps its state, says what PayPal said, staff are told once, and the poll (and a webhook about
    it) still finishes, so every other payout is still reconciled and the schedule's alerts still go out."""
    payout = sent_payout(emu, mails)
    _set_item_status(emu, payout, "NEW_STATUS")
    when = SENT_AT + dt.timedelta(days=1)
    result = poll(emu, when, mails)  # raised ValueError before, ending the whole pass of the schedule
    assert result.checked == 1 and result.changed == []
    payout.refresh_from_db()
    assert (payout.status, payout.paid_at, payout.returned_at) == (PayoutStatus.SENT, None, None)
    assert payout.checked_at == when and "NEW_STATUS" in payout.detail
    assert not CommissionEntry.objects.unpaid().exists()  # the money is with PayPal, not back in the balance
    staff = [m for m in mails.outbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]
    assert len(staff) == 1 and "NEW_STATUS" in staff[0].subject and payout.sender_item_id in staff[0].body
    event = {
        "id": "WH-NEW-STATUS-1",
        "event_type": "PAYMENT.PAYOUTS-ITEM.SOMETHING",
        "resource": {"payout_batch_id": payout.paypal_batch_id, "payout_item_id": payout.paypal_item_id},
    }
    with time_machine.travel(when + dt.timedelta(hours=1), tick=False), client_for(emu) as client, mails():
        stored = reconcile.receive_event(event=event, client=client)
    assert stored.status == PayPalEventStatus.PROCESSED
    poll(emu, when + dt.timedelta(hours=2), mails)
    assert [m.to for m in mails.outbox].count([settings.STAFF_NOTIFY_EMAIL]) == 1  # once, not at every look
    advance(emu, payout, "SUCCESS")  # once PayPal says something known, it applies as usual
    poll(emu, when + dt.timedelta(hours=3), mails)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID


def test_a_pending_item_of_a_canceled_batch_fails_on_our_side_and_the_money_comes_back(
    emu: Running, mails: Any
) -> None:
    """docs/payouts.md: batch ``DENIED``/``CANCELED`` → ``failed``, the money back in the balance. PayPal will not
    pay an item of a batch it canceled, whatever the item still says."""
    payout = sent_payout(emu, mails)
    [batch] = emu.emulator.batches.values()
    batch.status = "CANCELED"  # the items stay PENDING
    when = SENT_AT + dt.timedelta(days=1)
    poll(emu, when, mails)
    payout.refresh_from_db()
    assert (payout.status, payout.failure, payout.returned_at) == (PayoutStatus.FAILED, "sender", when)
    assert "CANCELED" in payout.detail
    assert not CommissionEntry.objects.paid().exists()


def test_a_batch_paypal_cannot_be_asked_about_is_logged_for_the_operator(
    emu: Running, mails: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker logs a pass of the schedule only when something changed: a poll that keeps failing (PayPal down,
    credentials without the payouts scope, a batch id PayPal does not know) must still say so in the log."""
    payout = sent_payout(emu, mails)
    emu.emulator.configure({"fail_next_n_with_5xx": 1, "fail_status": 503})
    with caplog.at_level("WARNING", logger="apertur.payouts.reconcile"):
        result = poll(emu, SENT_AT + dt.timedelta(days=1), mails)
    assert result.checked == 0 and len(result.errors) == 1
    [record] = [r for r in caplog.records if r.name == "apertur.payouts.reconcile"]
    assert record.levelname == "WARNING"
    assert payout.paypal_batch_id in record.getMessage() and "SERVICE_UNAVAILABLE" in record.getMessage()


@pytest.mark.parametrize("later", ["PENDING", "UNCLAIMED", "ONHOLD", "BLOCKED"])
def test_a_paid_item_is_not_taken_back_by_a_status_before_success(emu: Running, mails: Any, later: str) -> None:
    """PayPal takes back a paid item only by reversing or refunding it (money back). Any other status read after
    SUCCESS (PayPal omitting the status, which reads as PENDING, or a stale answer) leaves the payout paid: moving
    it would show the partner "Processing" again and the next SUCCESS would tell them a second time."""
    payout = sent_payout(emu, mails)
    advance(emu, payout, "SUCCESS")
    poll(emu, SENT_AT + dt.timedelta(days=1), mails)
    payout.refresh_from_db()
    paid_at = payout.paid_at
    assert payout.status == PayoutStatus.PAID and paid_at is not None

    with time_machine.travel(SENT_AT + dt.timedelta(days=2), tick=False), mails():
        services.apply_item_status(payout_id=payout.pk, transaction_status=later)
    with time_machine.travel(SENT_AT + dt.timedelta(days=3), tick=False), mails():
        services.apply_item_status(payout_id=payout.pk, transaction_status="SUCCESS")

    payout.refresh_from_db()
    assert (payout.status, payout.item_status, payout.paid_at) == (PayoutStatus.PAID, "SUCCESS", paid_at)
    assert mails.subjects[1:] == ["Your Apertur payout of $60.00 CAD was paid"]
