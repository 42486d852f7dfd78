"""Entries paid the way the payout run leaves them: a sent payout linking them (commissions.models.paid_entry_ids),
for the ledger and dashboard tests that need a paid entry without running a payout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from apertur.commissions.models import CommissionEntry
from apertur.core import clock
from apertur.payouts.models import Payout, PayoutEntry, PayoutRun, PayoutStatus
from apertur.payouts.services import sender_item_id_for


def pay_out(entries: Iterable[CommissionEntry], *, at: dt.datetime) -> list[Payout]:
    """One sent payout per partner of ``entries``, dated ``at``, linking them."""
    by_partner: dict[int, list[CommissionEntry]] = {}
    for entry in entries:
        by_partner.setdefault(entry.partner_id, []).append(entry)
    period = clock.business_date(at).strftime("%Y-%m")
    payouts = []
    for partner_id, mine in by_partner.items():
        payout = Payout.objects.create(
            partner_id=partner_id,
            period=period,
            amount_cents=sum(entry.amount_cents for entry in mine),
            status=PayoutStatus.SENT,
            sender_batch_id=sender_item_id_for(mine[0].partner, period),
            sent_at=at,
            created_at=at,
        )
        PayoutEntry.objects.bulk_create([PayoutEntry(payout=payout, entry=entry) for entry in mine])
        payouts.append(payout)
    return payouts


def runs_made(*periods: str) -> None:
    """Record the monthly runs of ``periods`` as made (finished), as the scheduler leaves them: until a run due is
    made it is the partner's next payout, late (payouts.schedule.late_run_at)."""
    for period in periods:
        year, month = (int(part) for part in period.split("-"))
        at = dt.datetime(year, month, 15, 9, tzinfo=clock.BUSINESS_TZ)
        PayoutRun.objects.get_or_create(period=period, defaults={"started_at": at, "finished_at": at})
