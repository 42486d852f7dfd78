"""Shared helpers of the payout tests: a partner with an attributed customer, Stripe deliveries through the
real intake, the run at its own date through the PayPal emulator over loopback."""

from __future__ import annotations

import datetime as dt
from typing import Any

import time_machine
from django.test import Client, override_settings

from apertur.commissions.models import CommissionEntry
from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import Running
from apertur.integrations.stripe import events
from apertur.partners.models import Partner
from apertur.payouts import services
from apertur.payouts.models import MONEY_BACK, Payout, PayoutEntry
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

SECRET = "whsec_test_secret"
UTC = dt.UTC
PAYPAL = "partner-paypal@example.com"


def at(y: int, m: int, d: int, h: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=UTC)


def deliver(evt: dict[str, Any]) -> None:
    body = events.encode(evt)
    with override_settings(STRIPE_WEBHOOK_SECRET=SECRET):
        response = Client().post(
            "/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=events.sign(body, SECRET)
        )
    assert response.status_code == 200, response.content


def pay(customer: Any, n: int, amount: int, when: dt.datetime, *, stripe_customer: str = "cus_1") -> None:
    with time_machine.travel(when, tick=False):
        deliver(
            events.invoice_paid(
                customer=stripe_customer,
                email=customer.email,
                amount=amount,
                at=when,
                invoice_id=f"in_{n}",
                charge_id=f"ch_{n}",
            )
        )


def refund(n: int, refund_id: str, amount: int, when: dt.datetime) -> None:
    with time_machine.travel(when, tick=False):
        deliver(events.charge_refunded(charge_id=f"ch_{n}", invoice_id=f"in_{n}", refunds=[(refund_id, amount, when)]))


def client_for(emu: Running, *, timeout: float = 1.0, secret: str | None = None) -> PayPalClient:
    return PayPalClient(emu.base_url, emu.client_id, secret or emu.client_secret, timeout=timeout)


def due(decisions: list[services.Decision]) -> list[services.Decision]:
    """The decisions about partners with something to pay or carry (every approved partner gets one)."""
    return [d for d in decisions if d.reason != services.Reason.NOTHING_DUE]


def do_run(
    emu: Running, period: str, *, dry_run: bool = False, timeout: float = 1.0, secret: str | None = None
) -> list[services.Decision]:
    """The run at its own date (09:00 Toronto on the 15th), with a fresh client."""
    with (
        time_machine.travel(services.run_at(period), tick=False),
        client_for(emu, timeout=timeout, secret=secret) as client,
    ):
        return services.run(period=period, dry_run=dry_run, client=client)


def batches_created(emu: Running) -> int:
    return int(emu.emulator.counters["batches_created"])


def make_world(
    *,
    verified: bool = True,
    approved: bool = True,
    customer_email: str = "customer@example.com",
    paypal_email: str = PAYPAL,
) -> tuple[Partner, Any]:
    partner = make_partner(approved=approved)
    partner.paypal_email = paypal_email
    partner.paypal_verified_at = at(2026, 2, 1) if verified else None
    partner.save()
    customer = make_user(customer_email)
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(
        customer=customer, partner=partner, source=AttributionSource.REFERRAL, at=at(2026, 2, 20)
    )
    return partner, customer


def only(decisions: list[services.Decision]) -> services.Decision:
    assert len(decisions) == 1, decisions
    return decisions[0]


def item_id(emu: Running, payout: Payout) -> str:
    """PayPal's id of the payout's item (its ``sender_item_id``) in its batch, from the emulator's state."""
    for batch in emu.emulator.state()["batches"]:
        if batch["batch_header"]["payout_batch_id"] == payout.paypal_batch_id:
            for item in batch["items"]:
                if item["payout_item"]["sender_item_id"] == payout.sender_item_id:
                    return str(item["payout_item_id"])
            raise AssertionError(f"no item {payout.sender_item_id!r} in batch {payout.paypal_batch_id!r}")
    raise AssertionError(f"no batch {payout.paypal_batch_id!r} in the emulator")


def advance(emu: Running, payout: Payout, status: str) -> None:
    code, body = emu.emulator.advance({"payout_item_id": item_id(emu, payout), "transaction_status": status})
    assert code == 200, body


def live_links(partner: Partner) -> Any:
    return PayoutEntry.objects.filter(payout__partner=partner, released_at__isnull=True)


def unpaid_cents(partner: Partner) -> int:
    """The partner's entries in no live payout (what a later run may still pay)."""
    total = 0
    linked = set(live_links(partner).values_list("entry_id", flat=True))
    for pk, amount in CommissionEntry.objects.filter(partner=partner).values_list("pk", "amount_cents"):
        if pk not in linked:
            total += amount
    return total


def live_payouts(partner: Partner) -> Any:
    return Payout.objects.filter(partner=partner).exclude(status__in=MONEY_BACK)
