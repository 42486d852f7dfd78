"""Commission emails to partners: the first payment of a referred customer, and the monthly statement.

Each is sent once: a :class:`PartnerNotice` row (unique per partner and key) is written in the same
transaction as the mail, which ``core.mail.send`` only hands over after the commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum

from apertur.commissions.models import OWN_EARNING_KEY_PREFIX, CommissionEntry, EntryKind, PartnerNotice
from apertur.commissions.selectors import balance, mask_email
from apertur.core import clock, mail
from apertur.core.money import format_cents
from apertur.partners.models import Partner, PartnerStatus
from apertur.referrals.models import Attribution, AttributionSource


def _claim(partner: Partner, key: str) -> bool:
    """Record that ``key`` is sent to ``partner``; False when it already was."""
    try:
        with transaction.atomic():
            PartnerNotice.objects.create(partner=partner, key=key)
    except IntegrityError:
        return False
    return True


def first_payment(*, entry: CommissionEntry) -> bool:
    """Tell the partner a referred customer paid for the first time (once per customer and partner). Not for a
    commission already taken back as it is earned (a customer attributed through OAuth after a payment refunded in
    full, or disputed): its net is nothing, and a later payment that keeps its commission is the one announced."""
    payment = entry.payment
    if entry.kind != EntryKind.EARNED or payment.customer_id is None:
        return False
    net = CommissionEntry.objects.filter(payment=payment).aggregate(net=Sum("amount_cents"))["net"] or 0
    if net <= 0:
        return False
    partner = entry.partner
    # "Referred" only for a referral link: the dashboard counts customers attributed through OAuth apart.
    source = Attribution.objects.filter(customer_id=payment.customer_id).values_list("source", flat=True).first()
    how = "connected" if source == AttributionSource.OAUTH else "referred"
    with transaction.atomic():
        if not _claim(partner, f"first-payment:{payment.customer_id}"):
            return False
        mail.send(
            to=partner.user.email,
            subject=f"A customer you {how} made their first payment",
            template="emails/commission_first_payment",
            context={
                "partner": partner,
                "how": how,
                "project": payment.project.name,
                "customer": mask_email(payment.customer.email if payment.customer else ""),
                "paid_on": clock.business_date(payment.paid_at),
                "amount": format_cents(payment.amount_cents, payment.currency),
                "commission": format_cents(entry.amount_cents),
                "available_on": clock.business_date(entry.available_at),
            },
        )
    return True


# --- monthly statements ------------------------------------------------------------------------------


def parse_month(value: str) -> dt.date:
    """``2026-03`` → 2026-03-01; ValueError otherwise."""
    found = clock.parse_year_month(value)
    if found is None:
        raise ValueError(f"{value!r} is not a month like 2026-03.")
    month = dt.date(*found, 1)
    if (month.year, month.month) == (dt.MAXYEAR, 12):  # month_bounds needs the next month's first day
        raise ValueError(f"{value!r} is past the last month a statement can cover (9999-11).")
    return month


def previous_month(at: dt.datetime | None = None) -> dt.date:
    today = clock.business_date(at)
    last_of_previous = today.replace(day=1) - dt.timedelta(days=1)
    return last_of_previous.replace(day=1)


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The month's first and the next month's first instant, midnight in America/Toronto."""
    start = dt.datetime(month.year, month.month, 1, tzinfo=clock.BUSINESS_TZ)
    following = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=clock.BUSINESS_TZ)
    return start, following


@dataclass(frozen=True, slots=True)
class StatementResult:
    email: str
    status: str  # sent | already_sent | no_entries
    payments: int = 0
    earned_cents: int = 0
    reversed_cents: int = 0  # reversals and clawbacks, less what won disputes and voided refunds earned again (≤ 0)
    net_cents: int = 0
    balance: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "status": self.status,
            "payments": self.payments,
            "earned_cents": self.earned_cents,
            "reversed_cents": self.reversed_cents,
            "net_cents": self.net_cents,
            "balance": self.balance,
        }


def _statement(partner: Partner, month: dt.date) -> StatementResult:
    start, end = month_bounds(month)
    entries = CommissionEntry.objects.filter(partner=partner, paid_at__gte=start, paid_at__lt=end)
    # Earned: each payment's own earning, once, as the dashboard's Commission column and the CSV's commission_cents
    # say. A won dispute or a voided refund earns again under a key of its own (services._settle): that re-earning
    # only undoes a reversal, so it is netted with the reversals rather than counted as a second earning.
    totals = entries.aggregate(
        payments=Count("payment", distinct=True),
        earned=Sum("amount_cents", filter=Q(kind=EntryKind.EARNED, source_key__startswith=OWN_EARNING_KEY_PREFIX)),
        net=Sum("amount_cents"),
    )
    if not totals["payments"]:
        return StatementResult(email=partner.user.email, status="no_entries")
    earned = int(totals["earned"] or 0)
    taken = int(totals["net"] or 0) - earned
    as_of = clock.now()  # the balance is today's: entries written after the month are part of it
    result = StatementResult(
        email=partner.user.email,
        status="sent",
        payments=int(totals["payments"]),
        earned_cents=earned,
        reversed_cents=taken,
        net_cents=earned + taken,
        balance=balance(partner=partner, at=as_of).as_json(),
    )
    with transaction.atomic():
        if not _claim(partner, f"statement:{month:%Y-%m}"):
            return dataclasses.replace(result, status="already_sent")
        mail.send(
            to=partner.user.email,
            subject=f"Your Apertur commission statement for {month:%B %Y}",
            template="emails/commission_statement",
            context={
                "partner": partner,
                "month": month,
                "as_of": clock.business_date(as_of),
                "payments": result.payments,
                "earned": format_cents(earned),
                "reversed": format_cents(taken),
                "net": format_cents(earned + taken),
                "balance": {key.removesuffix("_cents"): format_cents(v) for key, v in result.balance.items()},
            },
        )
    return result


def send_statements(*, month: dt.date) -> list[StatementResult]:
    """Email each approved partner the commissions on payments made in ``month`` (America/Toronto), net of
    the reversals recorded so far, and their balance today. Once per partner and month; partners without
    such commissions get nothing (``no_entries``)."""
    partners = Partner.objects.filter(status=PartnerStatus.APPROVED).select_related("user").order_by("id")
    return [_statement(partner, month) for partner in partners]
