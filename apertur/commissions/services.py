"""Writing the commission ledger from billing facts (ARCHITECTURE section 5).

- A payment by an attributed customer, made after the attribution: ``earned`` = 10 % of its CAD amount,
  rounded half up (core.money), available 30 days after the payment.
- A refund: 10 % of the refunded CAD amount comes off (rounded on the payment's refunded total), never
  more than was earned on that payment: a ``reversal`` while the commission is unpaid, a ``clawback`` once
  it was paid out (netted against later payouts).
- A dispute opened: what is left of the payment's commission is reversed; won: it is earned again; lost:
  it stays reversed.

Every entry is the difference between what the payment's recorded facts say its commission is and what
the ledger already holds for it, so the order events arrive in never changes the final ledger.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from apertur.commissions.models import CommissionEntry, EntryKind
from apertur.core.money import Money, percent_of
from apertur.projects.models import Dispute, DisputeStatus, Payment, Refund
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
    entry = _write(
        partner=attribution.partner,
        payment=payment,
        kind=EntryKind.EARNED,
        amount_cents=amount,
        available_at=payment.paid_at + HOLD,
        source_key=f"earned:{payment.pk}",
    )
    if entry is not None:
        # Refunds and disputes recorded before the earning existed (the customer was attributed after
        # paying, through OAuth) must still net against it.
        for dispute in Dispute.objects.filter(payment=payment).order_by("opened_at", "id"):
            on_dispute_opened(dispute=dispute)
        for refund in Refund.objects.filter(payment=payment).order_by("created_at", "id"):
            on_refund(refund=refund)
    return entry


def _refund_take(payment: Payment, earned: int) -> int:
    """What the payment's refunds take back: 10 % of everything refunded so far, rounded once on the total
    (two refunds of 3 cents on a 6-cent payment reverse its whole 1-cent commission, not 0 + 0), capped at
    what was earned; a payment refunded in full gives back its whole commission."""
    refunds = list(Refund.objects.filter(payment=payment).values_list("amount_cents", "amount_cad_cents"))
    if not refunds:
        return 0
    if sum(original for original, _ in refunds) >= payment.amount_cents:
        return earned
    return min(earned, percent_of(Money(sum(cad for _, cad in refunds)), RATE_PERCENT).cents)


def _target(payment: Payment, earned: int) -> int:
    """What the payment's commission comes to given every fact recorded so far: nothing while a dispute is
    open or after one was lost, else what was earned less what the refunds take back."""
    if Dispute.objects.filter(payment=payment, status__in=[DisputeStatus.OPEN, DisputeStatus.LOST]).exists():
        return 0
    return earned - _refund_take(payment, earned)


def _settle(*, payment: Payment, at: dt.datetime, source_key: str) -> CommissionEntry | None:
    """Bring the payment's ledger to what its recorded facts say, in one entry named after the fact that
    just arrived. The amount is computed from all the facts rather than from the one event, so the final
    ledger does not depend on the order events arrive in (a refund recorded during an open dispute still
    counts once the dispute is won) and the payment's sum stays between 0 and what was earned."""
    earned = _earned(payment)
    if earned is None:
        return None
    # Serialise settlements of one payment so two facts at once cannot both apply the same difference.
    # NO KEY UPDATE: inserting the fact (a refund, a dispute) took a KEY SHARE lock on this payment; a
    # plain FOR UPDATE would wait for the other transaction's KEY SHARE while it waits for ours: deadlock.
    Payment.objects.select_for_update(no_key=True).filter(pk=payment.pk).first()
    if CommissionEntry.objects.filter(source_key=source_key).exists():
        return None
    delta = _target(payment, earned.amount_cents) - _remaining(payment)
    if delta == 0:
        return None
    if delta > 0:  # a dispute won: earned again, never available before the original earning or the win
        kind, available_at = EntryKind.EARNED, max(earned.available_at, at)
    elif earned.paid_out_at is not None:  # already paid: netted against the next payouts, due now
        kind, available_at = EntryKind.CLAWBACK, at
    else:  # still unpaid: leaves with the earning it cancels
        kind, available_at = EntryKind.REVERSAL, earned.available_at
    return _write(
        partner=earned.partner,
        payment=payment,
        kind=kind,
        amount_cents=delta,
        available_at=available_at,
        source_key=source_key,
    )


def on_refund(*, refund: Refund) -> CommissionEntry | None:
    return _settle(payment=refund.payment, at=refund.created_at, source_key=f"refund:{refund.pk}")


def on_dispute_opened(*, dispute: Dispute) -> CommissionEntry | None:
    return _settle(payment=dispute.payment, at=dispute.opened_at, source_key=f"dispute-opened:{dispute.pk}")


def on_dispute_won(*, dispute: Dispute) -> CommissionEntry | None:
    return _settle(
        payment=dispute.payment,
        at=dispute.closed_at or dispute.opened_at,
        source_key=f"dispute-won:{dispute.pk}",
    )
