"""Payouts PayPal holds (item ONHOLD or BLOCKED): the schedule tells staff once per item when a hold outlasts
``PAYOUT_HELD_ALERT_DAYS``, with the PayPal item id, the partner and the amount; the admin lists them; the partner
is told something true. Through the PayPal emulator over loopback, as the worker's schedule meets them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.integrations.paypal.emulator import Running
from apertur.payouts import selectors, services
from apertur.payouts.models import Payout, PayoutStatus
from apertur.payouts.tests.conftest import Tick
from apertur.payouts.tests.helpers import advance, at, client_for, do_run, item_id, make_world, only, pay
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db
STAFF = "ops@apertur.example"
HELD_AT = at(2026, 4, 16)  # the day after the 2026-04 run: the first tick that sees PayPal's hold


@pytest.fixture(autouse=True)
def _staff_address(settings: Any) -> None:
    settings.STAFF_NOTIFY_EMAIL = STAFF


def held_payout(emu: Running, tick: Tick, status: str = "ONHOLD") -> Payout:
    """A $60.00 payout sent by the 2026-04 run, which PayPal then holds: seen by the tick at :data:`HELD_AT`."""
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert only(do_run(emu, "2026-04")).reason == "paid"
    payout = Payout.objects.get()
    advance(emu, payout, status)
    assert tick(HELD_AT).held_alerted == []
    payout.refresh_from_db()
    assert (payout.status, payout.item_status, payout.held_since) == (PayoutStatus.HELD, status, HELD_AT)
    return payout


def staff_mails(outbox: list[Any]) -> list[Any]:
    return [m for m in outbox if m.to == [STAFF] and m.subject.startswith("PayPal has held")]


def test_a_hold_past_the_limit_tells_staff_once_with_the_item_the_partner_and_the_amount(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    payout = held_payout(emu, tick)
    partner = payout.partner
    # Five days is the default: not yet at four days and 23 hours.
    assert tick(HELD_AT + dt.timedelta(days=5) - dt.timedelta(hours=1)).held_alerted == []
    assert staff_mails(mailoutbox) == []
    alerted_at = HELD_AT + dt.timedelta(days=5, hours=1)
    assert tick(alerted_at).held_alerted == [payout.sender_item_id]
    [mail] = staff_mails(mailoutbox)
    assert mail.subject == f"PayPal has held payout {payout.sender_item_id} for more than 5 days"
    paypal_item = item_id(emu, payout)
    for fact in (paypal_item, payout.sender_item_id, "$60.00 CAD", partner.user.email, "ONHOLD since 2026-04-16"):
        assert fact in mail.body, fact
    assert "merchant support" in mail.body and "/admin/payouts/payout/?held=over" in mail.body
    payout.refresh_from_db()
    assert (payout.status, payout.held_alerted_at) == (PayoutStatus.HELD, alerted_at)
    audited = AuditEvent.objects.get(action="payout.held_alerted")
    assert (audited.object_id, audited.data["paypal_item_id"], audited.data["amount_cents"]) == (
        str(payout.pk),
        paypal_item,
        6_000,
    )
    # Every later pass (the item is still held, polled each time) says nothing more.
    for days in (6, 9, 20):
        assert tick(HELD_AT + dt.timedelta(days=days)).held_alerted == []
    assert len(staff_mails(mailoutbox)) == 1
    assert AuditEvent.objects.filter(action="payout.held_alerted").count() == 1


def test_an_item_blocked_after_its_hold_keeps_its_clock_and_the_alert_says_blocked(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    payout = held_payout(emu, tick, "ONHOLD")
    advance(emu, payout, "BLOCKED")
    tick(HELD_AT + dt.timedelta(days=2))
    payout.refresh_from_db()
    # Same state of ours, PayPal's own word updated (it was kept as ONHOLD), the hold's start unchanged.
    assert (payout.status, payout.item_status, payout.held_since) == (PayoutStatus.HELD, "BLOCKED", HELD_AT)
    assert AuditEvent.objects.filter(action="payout.status", data__paypal="BLOCKED").count() == 1
    tick(HELD_AT + dt.timedelta(days=6))
    [mail] = staff_mails(mailoutbox)
    assert "BLOCKED since 2026-04-16" in mail.body


def test_a_hold_paypal_releases_in_time_is_never_reported(emu: Running, tick: Tick, mailoutbox: list[Any]) -> None:
    payout = held_payout(emu, tick)
    advance(emu, payout, "SUCCESS")
    # The pass polls first: the item is paid by the time the alert looks, though the hold began six days ago.
    assert tick(HELD_AT + dt.timedelta(days=6)).held_alerted == []
    payout.refresh_from_db()
    assert (payout.status, payout.held_since, payout.held_alerted_at) == (PayoutStatus.PAID, None, None)
    assert staff_mails(mailoutbox) == []


def test_an_item_held_again_after_paypal_let_go_of_it_is_a_new_hold_alerted_in_its_turn(
    emu: Running, tick: Tick, mailoutbox: list[Any]
) -> None:
    payout = held_payout(emu, tick)
    assert tick(HELD_AT + dt.timedelta(days=6)).held_alerted == [payout.sender_item_id]
    advance(emu, payout, "PENDING")  # PayPal lets go of it, then holds it again two days later
    tick(HELD_AT + dt.timedelta(days=7))
    payout.refresh_from_db()
    assert (payout.status, payout.held_since) == (PayoutStatus.PENDING, None)
    advance(emu, payout, "BLOCKED")
    held_again = HELD_AT + dt.timedelta(days=9)
    assert tick(held_again).held_alerted == []
    payout.refresh_from_db()
    assert (payout.status, payout.held_since, payout.held_alerted_at) == (PayoutStatus.HELD, held_again, None)
    # The new hold has its own five days.
    assert tick(held_again + dt.timedelta(days=4)).held_alerted == []
    assert tick(held_again + dt.timedelta(days=5, hours=1)).held_alerted == [payout.sender_item_id]
    first, second = staff_mails(mailoutbox)
    assert "ONHOLD since 2026-04-16" in first.body and "BLOCKED since 2026-04-25" in second.body
    assert AuditEvent.objects.filter(action="payout.held_alerted").count() == 2
    assert tick(held_again + dt.timedelta(days=8)).held_alerted == []


def test_the_limit_is_a_setting(emu: Running, tick: Tick, settings: Any, mailoutbox: list[Any]) -> None:
    settings.PAYOUT_HELD_ALERT_DAYS = 10
    payout = held_payout(emu, tick, "BLOCKED")
    assert tick(HELD_AT + dt.timedelta(days=9)).held_alerted == []
    assert tick(HELD_AT + dt.timedelta(days=10)).held_alerted == [payout.sender_item_id]
    assert staff_mails(mailoutbox)[0].subject.endswith("for more than 10 days")


def test_one_pass_lists_every_item_held_too_long_once(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """No emulator needed: the alert reads what reconciliation recorded."""
    made = []
    for n in range(2):
        partner, _ = make_world(customer_email=f"c{n}@example.com", paypal_email=f"p{n}@example.com")
        made.append(
            Payout.objects.create(
                partner=partner,
                period="2026-04",
                amount_cents=5_000 + n,
                sender_batch_id=f"aptr-{partner.pk}-2026-04-1",
                paypal_batch_id="BATCH1",
                paypal_item_id=f"ITEM{n}",
                status=PayoutStatus.HELD,
                item_status="ONHOLD",
                held_since=HELD_AT,
                sent_at=HELD_AT,
            )
        )
    with (
        time_machine.travel(HELD_AT + dt.timedelta(days=8), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        alerted = services.alert_held()
        assert services.alert_held() == []
    assert sorted(p.pk for p in alerted) == sorted(p.pk for p in made)
    [mail] = staff_mails(mailoutbox)
    assert mail.subject == "PayPal has held 2 payouts for more than 5 days"
    for payout in made:
        assert mail.body.count(f"ITEM{payout.amount_cents - 5_000} | {payout.sender_item_id} |") == 1
    assert "$50.00 CAD" in mail.body and "$50.01 CAD" in mail.body


def test_a_retried_payout_is_a_new_item_with_its_own_alert(emu: Running, tick: Tick, mailoutbox: list[Any]) -> None:
    payout = held_payout(emu, tick)
    tick(HELD_AT + dt.timedelta(days=6))
    assert len(staff_mails(mailoutbox)) == 1
    advance(emu, payout, "RETURNED")  # PayPal gave up on it: the money is back, and staff retry it
    tick(HELD_AT + dt.timedelta(days=7))
    payout.refresh_from_db()
    assert (payout.status, payout.held_since) == (PayoutStatus.RETURNED, None)
    with time_machine.travel(HELD_AT + dt.timedelta(days=7, hours=1), tick=False), client_for(emu) as client:
        retried = services.retry(payout=payout, actor=make_staff(), client=client)
    assert (retried.status, retried.held_alerted_at) == (PayoutStatus.SENT, None)
    advance(emu, retried, "ONHOLD")
    tick(HELD_AT + dt.timedelta(days=8))
    assert tick(HELD_AT + dt.timedelta(days=14)).held_alerted == [retried.sender_item_id]
    assert len(staff_mails(mailoutbox)) == 2


def test_the_admin_lists_payouts_held_too_long_and_since_when(emu: Running, tick: Tick) -> None:
    payout = held_payout(emu, tick)
    staff = Client()
    staff.force_login(make_staff())
    with time_machine.travel(HELD_AT + dt.timedelta(days=2), tick=False):
        assert payout.sender_item_id not in staff.get("/admin/payouts/payout/?held=over").content.decode()
        listed = staff.get("/admin/payouts/payout/?held=any").content.decode()
        assert payout.sender_item_id in listed and "ONHOLD since 2026-04-16 (2 d)" in listed
    tick(HELD_AT + dt.timedelta(days=6))
    with time_machine.travel(HELD_AT + dt.timedelta(days=6), tick=False):
        page = staff.get("/admin/payouts/payout/?held=over").content.decode()
    assert payout.sender_item_id in page and "Held more than 5 days" in page
    assert "ONHOLD since 2026-04-16 (6 d, staff alerted)" in page


def test_the_partner_is_told_what_a_hold_means_and_what_can_come_of_it(emu: Running, tick: Tick) -> None:
    payout = held_payout(emu, tick)
    row = selectors.payout_detail(partner=payout.partner, payout_id=payout.pk)
    assert row.status_label == "Held by PayPal" and row.held_since == HELD_AT
    # No promise PayPal may not keep: it may also send the money back.
    assert "It is paid once PayPal releases it" not in row.explanation
    for said in ("Check your PayPal account", "more than 5 days", "sends it back", "Apertur balance"):
        assert said in row.explanation, said
    browser = Client()
    browser.force_login(payout.partner.user)
    page = browser.get(f"/partners/payouts/{payout.pk}/").content.decode()
    assert "Held by PayPal since" in page and "2026-04-16" in page and "sends it back" in page


def test_with_no_days_allowed_a_hold_again_within_a_day_is_still_emailed(
    emu: Running, tick: Tick, settings: Any, mailoutbox: list[Any]
) -> None:
    """The email's once-a-day key names the hold, not only the item: a second hold of the same item, claimed
    and audited as alerted, is not swallowed by the first hold's email of the same day."""
    settings.PAYOUT_HELD_ALERT_DAYS = 0
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert only(do_run(emu, "2026-04")).reason == "paid"
    payout = Payout.objects.get()
    advance(emu, payout, "ONHOLD")
    assert tick(HELD_AT).held_alerted == [payout.sender_item_id]
    advance(emu, payout, "PENDING")
    tick(HELD_AT + dt.timedelta(hours=2))
    advance(emu, payout, "BLOCKED")
    assert tick(HELD_AT + dt.timedelta(hours=3)).held_alerted == [payout.sender_item_id]
    assert AuditEvent.objects.filter(action="payout.held_alerted").count() == 2
    first, second = staff_mails(mailoutbox)
    assert "ONHOLD since" in first.body and "BLOCKED since" in second.body
