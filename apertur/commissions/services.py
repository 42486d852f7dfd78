"""Writing the commission ledger from billing facts (ARCHITECTURE section 5).

- A payment by an attributed customer, made after the attribution: ``earned`` = 10 % of its CAD amount,
  rounded half up (core.money), available 30 days after the payment.
- A refund: 10 % of the refunded CAD amount comes off, never more than what is left of that payment's
  commission: a ``reversal`` while the commission is unpaid, a ``clawback`` once it was paid out (netted
  against later payouts).
- A dispute opened: what is left of the payment's commission is reversed; won: it is earned again.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from apertur.commissions.models import CommissionEntry, EntryKind
from apertur.core.money import Money, percent_of
from apertur.projects.models import Dispute, Payment, Refund
from apertur.referrals.models import Attribution

RATE_PERCENT = Decimal(10)
HOLD = dt.timedelta(days=30)


def _write(**fields: object) -> CommissionEntry | None:
    """Insert once; a second attempt with the same source_key is a no-op (returns None)."""
    try:
        with transaction.atomic():
            return CommissionEntry.objects.create(**fields)
    except IntegrityError:
        return None


def _earned(payment: Payment) -> CommissionEntry | None:
    return CommissionEntry.objects.filter(
        payment=payment, kind=EntryKind.EARNED, source_key=f"earned:{payment.pk}"
    ).first()


def _remaining(payment: Payment) -> int:
    return int(CommissionEntry.objects.filter(payment=payment).aggregate(total=Sum("amount_cents"))["total"] or 0)


def on_payment(*, payment: Payment) -> CommissionEntry | None:
    if payment.customer_id is None:
        return None
    attribution = Attribution.objects.filter(customer_id=payment.customer_id).select_related("partner").first()
    if attribution is None or payment.paid_at < attribution.at:
        return None
    amount = percent_of(Money(payment.amount_cad_cents), RATE_PERCENT).cents
    if amount <= 0:
        return None
    return _write(
        partner=attribution.partner,
        payment=payment,
        kind=EntryKind.EARNED,
        amount_cents=amount,
        available_at=payment.paid_at + HOLD,
        source_key=f"earned:{payment.pk}",
    )


def _take_back(*, payment: Payment, wanted: int, at: dt.datetime, source_key: str) -> CommissionEntry | None:
    earned = _earned(payment)
    if earned is None:
        return None
    # Serialise takes on one payment so two refunds at once cannot both pass the cap.
    Payment.objects.select_for_update().filter(pk=payment.pk).first()
    amount = min(wanted, _remaining(payment))
    if amount <= 0:
        return None
    paid = earned.paid_out_at is not None
    return _write(
        partner=earned.partner,
        payment=payment,
        kind=EntryKind.CLAWBACK if paid else EntryKind.REVERSAL,
        amount_cents=-amount,
        # A reversal leaves with the earning it cancels; a clawback is due as soon as it happens.
        available_at=at if paid else earned.available_at,
        source_key=source_key,
    )


def on_refund(*, refund: Refund) -> CommissionEntry | None:
    wanted = percent_of(Money(refund.amount_cad_cents), RATE_PERCENT).cents
    return _take_back(payment=refund.payment, wanted=wanted, at=refund.created_at, source_key=f"refund:{refund.pk}")


def on_dispute_opened(*, dispute: Dispute) -> CommissionEntry | None:
    return _take_back(
        payment=dispute.payment,
        wanted=_remaining(dispute.payment),
        at=dispute.opened_at,
        source_key=f"dispute-opened:{dispute.pk}",
    )


def on_dispute_won(*, dispute: Dispute) -> CommissionEntry | None:
    taken = CommissionEntry.objects.filter(source_key=f"dispute-opened:{dispute.pk}").first()
    if taken is None:
        return None
    return _write(
        partner=taken.partner,
        payment=dispute.payment,
        kind=EntryKind.EARNED,
        amount_cents=-taken.amount_cents,
        available_at=max(taken.available_at, dispute.closed_at or taken.available_at),
        source_key=f"dispute-won:{dispute.pk}",
    )
