"""Reading the ledger: balances are sums of entries at a moment (the clock's now by default)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from django.db.models import Q, Sum

from apertur.commissions.models import CommissionEntry
from apertur.core import clock
from apertur.partners.models import Partner


@dataclass(frozen=True, slots=True)
class Balance:
    pending_cents: int  # still on hold
    eligible_cents: int  # hold over, not yet paid; net of reversals and clawbacks (may be negative)
    carried_cents: int  # the part of eligible a past payout run left unpaid
    paid_cents: int  # sent in payouts
    lifetime_cents: int  # everything earned, net of reversals and clawbacks

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def balance(*, partner: Partner, at: dt.datetime | None = None) -> Balance:
    now = at or clock.now()
    totals = CommissionEntry.objects.filter(partner=partner).aggregate(
        pending=Sum("amount_cents", filter=Q(paid_out_at__isnull=True, available_at__gt=now)),
        eligible=Sum("amount_cents", filter=Q(paid_out_at__isnull=True, available_at__lte=now)),
        paid=Sum("amount_cents", filter=Q(paid_out_at__isnull=False)),
        lifetime=Sum("amount_cents"),
    )
    return Balance(
        pending_cents=int(totals["pending"] or 0),
        eligible_cents=int(totals["eligible"] or 0),
        carried_cents=0,  # payout runs (the payouts feature) carry balances forward; none has run yet
        paid_cents=int(totals["paid"] or 0),
        lifetime_cents=int(totals["lifetime"] or 0),
    )
