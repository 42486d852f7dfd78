"""Who a failure is about, and what the partner is told: an address PayPal refuses (the partner's to fix, never
sent to again), a failure on our side (staff's to fix, never blamed on the address), and the address and month
the partner reads."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine
from django.conf import settings

from apertur.integrations.paypal.emulator import Running
from apertur.partners.models import Partner
from apertur.partners.paypal import confirm, request_change
from apertur.payouts import reconcile, selectors, services
from apertur.payouts.models import Payout, PayoutStatus
from apertur.payouts.tests.helpers import advance, at, batches_created, client_for, do_run, make_world, only, pay
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db


def test_an_address_paypal_refuses_is_told_shown_and_not_sent_to_again_until_it_changes(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    partner, customer = make_world(paypal_email="partner@localhost")  # saved before the stricter check
    pay(customer, 1, 60_000, at(2026, 3, 1))
    with django_capture_on_commit_callbacks(execute=True):
        d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("failed", "failed")
    (told,) = mailoutbox
    assert told.to == [partner.user.email] and "PayPal refused your payout address" in told.subject
    assert "partner@localhost" in told.body and "/partners/payouts/" in told.body
    outlook = selectors.payout_status(partner=Partner.objects.get(pk=partner.pk), at=at(2026, 4, 20))
    assert (outlook.code, outlook.refused_email) == ("paypal_refused_address", "partner@localhost")
    assert "partner@localhost" in outlook.headline + outlook.refused_email
    # May: the same address is not tried again (PayPal would refuse it again); the money waits.
    d = only(do_run(emu, "2026-05"))
    assert (d.reason, d.carried_cents) == ("paypal_refused_address", 6000)
    assert emu.emulator.counters["create_requests"] == 0 and Payout.objects.count() == 1
    # The partner confirms a new address: June pays it there.
    with time_machine.travel(at(2026, 5, 20), tick=False), django_capture_on_commit_callbacks(execute=True):
        request_change(partner=Partner.objects.get(pk=partner.pk), email="fixed@example.com")
    token = next(m for m in mailoutbox if m.to == ["fixed@example.com"]).body.split("/partners/payouts/confirm/")[1]
    with time_machine.travel(at(2026, 5, 20, 13), tick=False):
        confirm(token=token.split()[0].rstrip("/"))
    fresh = Partner.objects.get(pk=partner.pk)
    assert selectors.payout_status(partner=fresh, at=at(2026, 5, 21)).code == "will_pay"
    d = only(do_run(emu, "2026-06"))
    assert d.reason == "paid" and Payout.objects.get(period="2026-06").receiver_email == "fixed@example.com"


def test_the_same_address_confirmed_again_is_tried_again(emu: Running) -> None:
    partner, customer = make_world(paypal_email="partner@localhost")
    pay(customer, 1, 60_000, at(2026, 3, 1))
    do_run(emu, "2026-04")
    # Fixed at PayPal's end, say: confirming the address again lifts the block.
    Partner.objects.filter(pk=partner.pk).update(paypal_verified_at=at(2026, 4, 20))
    assert services.payable_reason(Partner.objects.get(pk=partner.pk)) is None


def test_a_denied_batch_is_our_side_staff_are_alerted_and_the_partner_not_blamed(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert emu.emulator.configure({"deny_next_n": 1})[0] == 200
    with django_capture_on_commit_callbacks(execute=True):
        do_run(emu, "2026-04")
    emu.emulator.advance({})
    with (
        time_machine.travel(at(2026, 4, 15, 15), tick=False),
        client_for(emu) as client,
        django_capture_on_commit_callbacks(execute=True),
    ):
        reconcile.poll_open(client=client)
    payout = Payout.objects.get()
    assert (payout.status, payout.failure) == (PayoutStatus.FAILED, "sender")
    assert "INSUFFICIENT_FUNDS" in payout.detail
    to_partner = [m for m in mailoutbox if m.to == [partner.user.email]]
    assert [m.subject.split(" is ")[-1] for m in to_partner][-1] == "delayed on our side"
    assert all("check the PayPal address" not in m.body for m in to_partner)
    (alert,) = [m for m in mailoutbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]
    assert payout.sender_item_id in alert.body and "Retry" in alert.body
    outlook = selectors.payout_status(partner=Partner.objects.get(pk=partner.pk), at=at(2026, 4, 16))
    assert outlook.code == "delayed_on_our_side"
    # Staff fix the funding and retry now, not next month.
    with time_machine.travel(at(2026, 4, 16), tick=False), client_for(emu) as client:
        retried = services.retry(payout=payout, actor=make_staff(), client=client)
    assert retried.status == PayoutStatus.SENT and retried.failure == "" and batches_created(emu) == 2
    assert selectors.payout_status(partner=Partner.objects.get(pk=partner.pk), at=at(2026, 4, 16)).code != (
        "delayed_on_our_side"
    )


def test_a_batch_paypal_denies_in_its_create_answer_fails_at_once_and_the_partner_is_not_told_it_is_on_its_way(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    """PayPal Payouts v1, create batch payout: the answer's ``batch_header.batch_status`` is PENDING "if the payout
    passes preliminary checks", else DENIED. A denied batch pays nobody: the payouts fail on our side at once."""
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    assert emu.emulator.configure({"deny_at_create_next_n": 1})[0] == 200
    with django_capture_on_commit_callbacks(execute=True):
        d = only(do_run(emu, "2026-04"))
    assert (d.reason, d.status) == ("failed", "failed")
    payout = Payout.objects.get()
    assert (payout.status, payout.failure, payout.sent_at) == (PayoutStatus.FAILED, "sender", None)
    assert payout.paypal_batch_id == emu.emulator.state()["batches"][0]["batch_header"]["payout_batch_id"]
    assert "DENIED" in payout.detail
    assert not [m for m in mailoutbox if m.to == [partner.user.email]]  # never told "on its way"
    (alert,) = [m for m in mailoutbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]
    assert payout.sender_item_id in alert.body
    outlook = selectors.payout_status(partner=Partner.objects.get(pk=partner.pk), at=at(2026, 4, 16))
    assert outlook.code == "delayed_on_our_side"
    # The money is back in the balance: the next run pays it, once.
    d = only(do_run(emu, "2026-05"))
    assert (d.reason, d.amount_cents) == ("paid", 6000) and batches_created(emu) == 2


def test_insufficient_funds_at_create_keeps_the_same_id_for_the_next_tick_and_alerts_staff_once(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apertur.integrations.paypal.client import PayPalClient
    from apertur.integrations.paypal.errors import PayPalError

    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    real = PayPalClient.create_payout

    def broke(self: PayPalClient, **kwargs: Any) -> Any:
        raise PayPalError("Sender does not have sufficient funds.", status=422, name="INSUFFICIENT_FUNDS")

    monkeypatch.setattr(PayPalClient, "create_payout", broke)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            d = only(do_run(emu, "2026-04"))
        assert (d.reason, d.status) == ("retry_pending", "created")
    assert [m.to for m in mailoutbox] == [[settings.STAFF_NOTIFY_EMAIL]]  # once; the partner is not blamed
    monkeypatch.setattr(PayPalClient, "create_payout", real)
    d = only(do_run(emu, "2026-04"))
    assert d.reason == "paid" and d.sender_batch_id == f"aptr-{partner.pk}-2026-04-1"


def test_staff_get_one_alert_per_batch_and_day_not_one_per_payout_or_pass(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credentials error with no error name (met at every pass of the schedule) and a batch of three refused as
    a whole (one failed payout each) are one staff email each, not one per pass or per payout."""
    from apertur.integrations.paypal.client import PayPalClient
    from apertur.integrations.paypal.errors import PayPalError

    for n in range(3):
        _partner, customer = make_world(customer_email=f"c{n}@example.com", paypal_email=f"p{n}@example.com")
        pay(customer, n + 1, 60_000, at(2026, 3, 1), stripe_customer=f"cus_{n}")
    real = PayPalClient.create_payout

    def forbidden(self: PayPalClient, **kwargs: Any) -> Any:
        raise PayPalError("Authorization failed.", status=403, name="")

    monkeypatch.setattr(PayPalClient, "create_payout", forbidden)
    for hour in (9, 10, 11):
        with time_machine.travel(at(2026, 4, 15, hour), tick=False), django_capture_on_commit_callbacks(execute=True):
            do_run(emu, "2026-04")
    staff = [m for m in mailoutbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]
    assert len(staff) == 1 and "on our side" in staff[0].subject

    def refused_as_a_whole(self: PayPalClient, **kwargs: Any) -> Any:
        raise PayPalError("Invalid request: see details.", status=400, name="VALIDATION_ERROR")

    monkeypatch.setattr(PayPalClient, "create_payout", refused_as_a_whole)
    mailoutbox.clear()
    with time_machine.travel(at(2026, 4, 15, 12), tick=False), django_capture_on_commit_callbacks(execute=True):
        do_run(emu, "2026-04")
    assert Payout.objects.filter(status=PayoutStatus.FAILED, failure="sender").count() == 3
    assert len([m for m in mailoutbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]) == 1
    monkeypatch.setattr(PayPalClient, "create_payout", real)


def test_payout_emails_name_the_address_the_money_went_to(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    partner, customer = make_world(paypal_email="old-paypal@example.com")
    pay(customer, 1, 60_000, at(2026, 3, 1))
    with django_capture_on_commit_callbacks(execute=True):
        do_run(emu, "2026-04")
    # The partner asks to change the address (which clears it until confirmed), then PayPal pays the old one.
    with time_machine.travel(at(2026, 4, 15, 14), tick=False), django_capture_on_commit_callbacks(execute=True):
        request_change(partner=Partner.objects.get(pk=partner.pk), email="new-paypal@example.com")
        advance(emu, Payout.objects.get(), "SUCCESS")
        with client_for(emu) as client:
            reconcile.poll_open(client=client)
    sent, paid = (
        next(m for m in mailoutbox if m.to == [partner.user.email] and what in m.subject)
        for what in ("on its way", "was paid")
    )
    assert "To: old-paypal@example.com" in sent.body
    assert "To: old-paypal@example.com" in paid.body


def test_paypal_is_told_the_commission_month_not_the_run_month(emu: Running) -> None:
    _, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    do_run(emu, "2026-04")
    (batch,) = emu.emulator.state()["batches"]
    message = batch["batch_header"]["sender_batch_header"]["email_message"]
    note = batch["items"][0]["payout_item"]["note"]
    assert message == "Your Apertur partner commissions for March 2026, paid 2026-04-15."
    assert note == "Apertur partner commissions for March 2026 (paid 2026-04-15)"
    assert len(message) <= 1000 and len(note) <= 1000
    assert services.commission_month("2027-01") == "December 2026"
