"""Payouts PayPal accepted and has neither settled nor held (ours ``sent`` or ``processing``: item PENDING): past
``PAYOUT_PROCESSING_ALERT_DAYS`` after sending (or after PayPal let go of a hold), the schedule tells staff once per
stretch of processing, with what to check on our sending account; the admin lists them. Through the PayPal emulator
over loopback, where items start PENDING and stay so until advanced."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.integrations.paypal.emulator import Running
from apertur.payouts import services
from apertur.payouts.models import Payout, PayoutStatus
from apertur.payouts.tests.conftest import Tick
from apertur.payouts.tests.helpers import advance, at, client_for, do_run, item_id, make_world, only, pay
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db
STAFF = "ops@apertur.example"
SENT_AT = services.run_at("2026-04")  # 09:00 Toronto on 2026-04-15, when the 2026-04 run sends


@pytest.fixture(autouse=True)
def _staff_address(settings: Any) -> None:
    settings.STAFF_NOTIFY_EMAIL = STAFF


def sent_payout(emu: Running, tick: Tick) -> Payout:
    """A $60.00 payout sent by the 2026-04 run that PayPal leaves PENDING."""
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert only(do_run(emu, "2026-04")).reason == "paid"
    payout = Payout.objects.get()
    result = tick(SENT_AT + dt.timedelta(hours=1))
    assert result.processing_alerted == [] and result.held_alerted == []
    payout.refresh_from_db()
    assert (payout.status, payout.item_status, payout.sent_at, payout.processing_since) == (
        PayoutStatus.PENDING,
        "PENDING",
        SENT_AT,
        SENT_AT,
    )
    return payout


def staff_mails(outbox: list[Any]) -> list[Any]:
    return [m for m in outbox if m.to == [STAFF] and m.subject.startswith("PayPal has not settled")]


def test_a_payout_left_pending_past_the_limit_tells_staff_once_what_to_check(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    payout = sent_payout(emu, tick)
    # Three days is the default: not yet an hour before.
    assert tick(SENT_AT + dt.timedelta(days=3) - dt.timedelta(hours=1)).processing_alerted == []
    assert staff_mails(mailoutbox) == []
    alerted_at = SENT_AT + dt.timedelta(days=3, hours=1)
    result = tick(alerted_at)
    assert result.processing_alerted == [payout.sender_item_id] and result.held_alerted == []
    assert result.as_json()["processing_alerted"] == [payout.sender_item_id]
    [mail] = staff_mails(mailoutbox)
    assert mail.subject == f"PayPal has not settled payout {payout.sender_item_id} in more than 3 days"
    paypal_item = item_id(emu, payout)
    facts = (paypal_item, payout.sender_item_id, "$60.00 CAD", payout.partner.user.email, "PENDING since 2026-04-15")
    for fact in facts:
        assert fact in mail.body, fact
    for check in (
        "Payouts are enabled",
        "balance in the payout's currency (CAD)",
        "/admin/payouts/payout/?processing=over",
    ):
        assert check in mail.body, check
    payout.refresh_from_db()
    assert (payout.status, payout.processing_alerted_at) == (PayoutStatus.PENDING, alerted_at)
    audited = AuditEvent.objects.get(action="payout.processing_alerted")
    assert (audited.object_id, audited.data["paypal_item_id"]) == (str(payout.pk), paypal_item)
    assert dt.datetime.fromisoformat(audited.data["processing_since"]) == SENT_AT
    for days in (4, 10):
        assert tick(SENT_AT + dt.timedelta(days=days)).processing_alerted == []
    assert len(staff_mails(mailoutbox)) == 1


def test_a_payout_paypal_settles_or_holds_in_time_is_not_reported_as_processing(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    payout = sent_payout(emu, tick)
    advance(emu, payout, "ONHOLD")  # held: the hold's own alert (five days) speaks for it
    assert tick(SENT_AT + dt.timedelta(days=4)).processing_alerted == []
    advance(emu, payout, "SUCCESS")
    # The pass polls first: paid by the time the alert looks.
    assert tick(SENT_AT + dt.timedelta(days=8)).processing_alerted == []
    payout.refresh_from_db()
    assert (payout.status, payout.processing_alerted_at) == (PayoutStatus.PAID, None)
    assert staff_mails(mailoutbox) == []


def test_a_release_from_a_hold_starts_processing_again_from_then(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    """Held four days (under the hold's own limit), then back to PENDING: three days from the release, not from the
    send, and the alert says since when PayPal has had it to process again."""
    payout = sent_payout(emu, tick)
    assert tick(SENT_AT + dt.timedelta(days=2)).processing_alerted == []
    advance(emu, payout, "ONHOLD")
    tick(SENT_AT + dt.timedelta(days=2, hours=1))
    advance(emu, payout, "PENDING")
    released = SENT_AT + dt.timedelta(days=6)
    assert tick(released).processing_alerted == []
    payout.refresh_from_db()
    assert (payout.status, payout.processing_since, payout.held_since) == (PayoutStatus.PENDING, released, None)
    assert tick(released + dt.timedelta(days=2)).processing_alerted == []
    assert tick(released + dt.timedelta(days=3, hours=1)).processing_alerted == [payout.sender_item_id]
    [mail] = staff_mails(mailoutbox)
    assert "PENDING since 2026-04-21" in mail.body


def test_processing_again_after_an_alert_and_a_hold_is_alerted_in_its_turn(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    payout = sent_payout(emu, tick)
    assert tick(SENT_AT + dt.timedelta(days=3, hours=1)).processing_alerted == [payout.sender_item_id]
    advance(emu, payout, "ONHOLD")
    tick(SENT_AT + dt.timedelta(days=4))
    advance(emu, payout, "PENDING")
    released = SENT_AT + dt.timedelta(days=5)
    tick(released)
    payout.refresh_from_db()
    assert (payout.processing_since, payout.processing_alerted_at) == (released, None)
    assert tick(released + dt.timedelta(days=3, hours=1)).processing_alerted == [payout.sender_item_id]
    assert len(staff_mails(mailoutbox)) == 2


def test_the_processing_limit_is_a_setting(emu: Running, tick: Tick, settings: Any, mailoutbox: list[Any]) -> None:
    settings.PAYOUT_PROCESSING_ALERT_DAYS = 7
    payout = sent_payout(emu, tick)
    assert tick(SENT_AT + dt.timedelta(days=6)).processing_alerted == []
    assert tick(SENT_AT + dt.timedelta(days=7)).processing_alerted == [payout.sender_item_id]
    assert staff_mails(mailoutbox)[0].subject.endswith("in more than 7 days")


def test_a_retry_is_a_new_item_alerted_in_its_turn(emu: Running, tick: Tick, mailoutbox: list[Any]) -> None:
    payout = sent_payout(emu, tick)
    assert tick(SENT_AT + dt.timedelta(days=4)).processing_alerted == [payout.sender_item_id]
    advance(emu, payout, "FAILED")  # the money is back; staff fix the account and retry
    tick(SENT_AT + dt.timedelta(days=5))
    retry_at = SENT_AT + dt.timedelta(days=5, hours=1)
    with time_machine.travel(retry_at, tick=False), client_for(emu) as client:
        retried = services.retry(payout=payout, actor=make_staff(), client=client)
    assert (retried.status, retried.sent_at, retried.processing_since, retried.processing_alerted_at) == (
        PayoutStatus.SENT,
        retry_at,
        retry_at,
        None,
    )
    assert tick(retry_at + dt.timedelta(days=2)).processing_alerted == []
    assert tick(retry_at + dt.timedelta(days=3, hours=1)).processing_alerted == [retried.sender_item_id]
    assert len(staff_mails(mailoutbox)) == 2


def test_the_admin_lists_payouts_processing_too_long(emu: Running, tick: Tick) -> None:
    payout = sent_payout(emu, tick)
    staff = Client()
    staff.force_login(make_staff())
    with time_machine.travel(SENT_AT + dt.timedelta(days=1), tick=False):
        assert payout.sender_item_id in staff.get("/admin/payouts/payout/?processing=any").content.decode()
        assert payout.sender_item_id not in staff.get("/admin/payouts/payout/?processing=over").content.decode()
    with time_machine.travel(SENT_AT + dt.timedelta(days=3, hours=1), tick=False):
        page = staff.get("/admin/payouts/payout/?processing=over").content.decode()
    assert payout.sender_item_id in page and "Processing more than 3 days" in page
    advance(emu, payout, "SUCCESS")
    tick(SENT_AT + dt.timedelta(days=3, hours=2))
    with time_machine.travel(SENT_AT + dt.timedelta(days=3, hours=2), tick=False):
        assert payout.sender_item_id not in staff.get("/admin/payouts/payout/?processing=any").content.decode()
