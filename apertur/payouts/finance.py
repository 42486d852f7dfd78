"""Payouts as rows for finance: one CSV row per payout, amounts as decimal strings (``70.00``), instants in
ISO 8601 at America/Toronto. Every text cell partners or PayPal chose is neutralised against spreadsheet
formulas (OWASP "CSV injection"), like the partner's earnings CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from apertur.core import clock
from apertur.core.money import decimal_string
from apertur.core.spreadsheet import cell
from apertur.payouts.models import Payout

CSV_HEADER = [
    "partner_id",
    "partner_email",
    "company",
    "paypal_email",
    "period",
    "amount",
    "currency",
    "status",
    "paypal_item_status",
    "sender_batch_id",
    "paypal_batch_id",
    "created_at",
    "sent_at",
    "paid_at",
    "returned_at",
    # Added with multi-item batches, at the end: a reader of the earlier columns by position still reads them.
    "sender_item_id",
    "paypal_item_id",
]


def business_iso(at: dt.datetime | None) -> str:
    return at.astimezone(clock.BUSINESS_TZ).isoformat(timespec="seconds") if at else ""


def payout_row(payout: Payout) -> list[str]:
    """One payout as a CSV row (see :data:`CSV_HEADER`). ``paypal_email`` is the address the payout was sent
    to (a payout not sent yet: the partner's verified address now)."""
    partner = payout.partner
    return [
        str(partner.pk),
        cell(partner.user.email),
        cell(partner.company_name),
        cell(payout.receiver_email or partner.verified_paypal_email or ""),
        payout.period,
        decimal_string(payout.amount_cents),
        payout.currency,
        payout.status,
        cell(payout.item_status),
        cell(payout.sender_batch_id),
        cell(payout.paypal_batch_id),
        business_iso(payout.created_at),
        business_iso(payout.sent_at),
        business_iso(payout.paid_at),
        business_iso(payout.returned_at),
        cell(payout.sender_item_id),
        cell(payout.paypal_item_id),
    ]


def payout_rows(payouts: Iterable[Payout]) -> Iterator[list[str]]:
    yield CSV_HEADER
    for payout in payouts:
        yield payout_row(payout)


def filename(at: dt.datetime | None = None) -> str:
    return f"apertur-payouts-{clock.business_date(at)}.csv"
