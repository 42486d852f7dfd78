"""A customer's billing history as the Stripe events it would produce: a subscription, one paid invoice a
month at the plan's price, and refunds. ``apertur billing simulate`` posts them to a running server and
``apertur demo`` delivers them through the same intake, so both exercise the production path."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from apertur.core import clock
from apertur.integrations.stripe import events

TIME_OF_DAY = dt.time(12, 0)  # events of past days happen at noon in America/Toronto on their date
_REFUND = re.compile(r"^\s*(\d+)\s*@\s*(\d{4}-\d{2}-\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class RefundSpec:
    amount_cents: int
    on: dt.date

    @classmethod
    def parse(cls, value: str) -> RefundSpec:
        """``AMOUNT_CENTS@YYYY-MM-DD``, e.g. ``500@2026-03-10``."""
        match = _REFUND.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a refund like 500@2026-03-10 (amount in cents @ date).")
        amount = int(match.group(1))
        try:
            on = dt.date.fromisoformat(match.group(2))
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}.") from exc
        if amount <= 0:
            raise ValueError(f"{value!r}: a refund is a positive number of cents.")
        return cls(amount, on)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later, on the month's last day when it is shorter (Jan 31 → Feb 28)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def at_noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, TIME_OF_DAY, tzinfo=clock.BUSINESS_TZ).astimezone(dt.UTC)


def event_time(day: dt.date) -> dt.datetime:
    """When a simulated event dated ``day`` happens: noon Toronto, except today's, which happen now (to the next
    whole second: Stripe's times are whole seconds). Noon today would be in the future before noon, and before a
    referral or connection made this afternoon after it, which then would earn nothing from today's payment."""
    now = clock.now()
    if day != clock.business_date(now):
        return at_noon(day)
    return now.replace(microsecond=0) + dt.timedelta(seconds=1 if now.microsecond else 0)


def customer_id_for(email: str) -> str:
    """A stable Stripe-like customer id per email, so repeated simulations use one customer."""
    return "cus_sim_" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:14]


def history(
    *,
    email: str,
    plan: str,
    price_cents: int,
    months: int,
    start: dt.date,
    refunds: list[RefundSpec] | None = None,
    currency: str = "cad",
    exchange_rate: str | None = None,
    user_public_id: str | None = None,
    customer_id: str | None = None,
    id_prefix: str | None = None,
    end: dt.date | None = None,
) -> list[dict[str, Any]]:
    """The events, in the order Stripe sends them. Each refund applies to the latest invoice paid on or
    before its date (ValueError when there is none or when it exceeds what is left of that invoice).
    ``id_prefix`` makes every id deterministic (the demo); otherwise ids are unique per call. With ``end``
    the payments are counted back from it, so the last one is on ``end`` even when counting forward from
    ``start`` would not reach it (May 31 back three months is Feb 28, and Feb 28 forward is May 28)."""
    customer = customer_id or customer_id_for(email)
    metadata = {"apertur_user_id": user_public_id} if user_public_id else {}
    seq = iter(range(1, 10_000))

    def ident(kind: str) -> str | None:
        return f"{kind}_{id_prefix}_{next(seq)}" if id_prefix else None

    out = [
        events.subscription(
            customer=customer,
            lookup_key=plan.lower(),
            at=event_time(start),
            sub_id=ident("sub"),
            metadata=metadata,
            event_id=ident("evt"),
        )
    ]
    paid: list[tuple[dt.date, str, str, int]] = []  # (date, invoice id, charge id, amount)
    timeline: list[tuple[dt.datetime, int, dict[str, Any]]] = []
    for month in range(months):
        day = add_months(end, month - (months - 1)) if end else add_months(start, month)
        when = event_time(day)  # once per event: today's is the current second
        invoice_id = ident("in") or events.new_id("in")
        charge_id = ident("ch") or events.new_id("ch")
        paid.append((day, invoice_id, charge_id, price_cents))
        evt = events.invoice_paid(
            customer=customer,
            email=email,
            amount=price_cents,
            at=when,
            currency=currency,
            invoice_id=invoice_id,
            charge_id=charge_id,
            exchange_rate=exchange_rate,
            metadata=metadata,
            event_id=ident("evt"),
        )
        timeline.append((when, 0, evt))
    refunded: dict[str, list[tuple[str, int, dt.datetime]]] = {}
    for spec in sorted(refunds or [], key=lambda r: r.on):
        candidates = [p for p in paid if p[0] <= spec.on]
        if not candidates:
            raise ValueError(f"No simulated payment on or before {spec.on} to refund.")
        _, invoice_id, charge_id, amount = candidates[-1]
        so_far = refunded.setdefault(charge_id, [])
        if sum(r[1] for r in so_far) + spec.amount_cents > amount:
            raise ValueError(
                f"A refund of {spec.amount_cents} cents on {spec.on} exceeds what is left of the "
                f"{amount}-cent payment it applies to."
            )
        when = event_time(spec.on)
        so_far.append((ident("re") or events.new_id("re"), spec.amount_cents, when))
        evt = events.charge_refunded(
            charge_id=charge_id, invoice_id=invoice_id, refunds=list(so_far), event_id=ident("evt")
        )
        timeline.append((when, 1, evt))
    out.extend(evt for _, _, evt in sorted(timeline, key=lambda item: (item[0], item[1])))
    return out
