"""The monthly payout run (issue 8, "The rule").

The run for period ``YYYY-MM`` is dated the 15th of that month at 09:00 America/Toronto. Per partner it
pays every unpaid commission entry (not already linked to a payout) of a payment made before the 1st of
that month (Toronto) whose ``available_at`` is at or before the run, net of reversals and clawbacks.

- Net under ``PAYOUT_MINIMUM_CENTS`` (or negative): carried forward, nothing written.
- Partner not approved, or without a verified PayPal email: nothing written, the decision says why.
- Otherwise one ``Payout`` per partner and period (the database's unique constraint, so two runs at once
  make one), its ``sender_batch_id`` saved before PayPal is called, then one EMAIL item in CAD. A
  ``Retryable`` error leaves the payout ``created``: the next run retries with the same id. A
  ``DuplicateBatch`` means an earlier attempt did create the batch: it is recorded as sent. A terminal
  refusal marks the payout ``failed`` and releases its entries so a later run pays them.
- ``dry_run`` computes the same decisions and writes and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q, Sum

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import PAYOUT_DAY, PAYOUT_HOUR, PAYOUT_MINIMUM_CENTS
from apertur.core import clock
from apertur.integrations.paypal.client import PayoutItem, PayPalClient, client_from_settings
from apertur.integrations.paypal.errors import DuplicateBatch, PayPalError, Retryable
from apertur.partners.models import Partner
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus

CURRENCY = "CAD"
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class Reason:
    PAID = "paid"
    UNDER_MINIMUM = "under_minimum"
    NOT_APPROVED = "not_approved"
    NO_VERIFIED_EMAIL = "no_verified_paypal_email"
    ALREADY_PAID = "already_paid"
    RETRY = "retry_pending"
    FAILED = "failed"
    WOULD_PAY = "would_pay"
    WOULD_RETRY = "would_retry"


@dataclass(frozen=True, slots=True)
class Decision:
    partner_id: int
    partner_email: str  # the partner's account email
    paypal_email: str | None  # the verified PayPal address, if any
    amount_cents: int  # what is (or would be) paid; 0 when nothing is
    status: str  # the payout's status, or "" when no payout exists
    reason: str
    sender_batch_id: str = ""
    carried_cents: int = 0  # the net left for a later run
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_period(period: str) -> tuple[int, int]:
    match = _PERIOD.match(period)
    if not match:
        raise ValueError(f"A period is YYYY-MM, not {period!r}.")
    return int(match.group(1)), int(match.group(2))


def run_at(period: str) -> dt.datetime:
    """The run's instant: the 15th of the period's month at 09:00 in Toronto."""
    year, month = parse_period(period)
    return dt.datetime(year, month, PAYOUT_DAY, PAYOUT_HOUR, tzinfo=clock.BUSINESS_TZ)


def period_start(period: str) -> dt.datetime:
    """The 1st of the period's month at 00:00 in Toronto: payments before it are paid by the run."""
    year, month = parse_period(period)
    return dt.datetime(year, month, 1, tzinfo=clock.BUSINESS_TZ)


def sender_batch_id_for(partner: Partner, period: str, attempt: int = 1) -> str:
    return f"aptr-{partner.pk}-{period}-{attempt}"


def eligible_entries(*, partner: Partner, period: str) -> Any:
    """The entries the run for ``period`` pays the partner (see the module docstring)."""
    return CommissionEntry.objects.filter(
        partner=partner,
        paid_out_at__isnull=True,
        payout_link__isnull=True,
        payment__paid_at__lt=period_start(period),
        available_at__lte=run_at(period),
    )


def _net(entries: Any) -> int:
    return int(entries.aggregate(total=Sum("amount_cents"))["total"] or 0)


def _candidates(period: str) -> list[Partner]:
    """Partners with something for this run: eligible entries or a payout for the period."""
    with_entries = CommissionEntry.objects.filter(
        paid_out_at__isnull=True,
        payout_link__isnull=True,
        payment__paid_at__lt=period_start(period),
        available_at__lte=run_at(period),
    ).values("partner_id")
    with_payout = Payout.objects.filter(period=period).values("partner_id")
    return list(Partner.objects.filter(Q(pk__in=with_entries) | Q(pk__in=with_payout)).order_by("id"))


def _decision(partner: Partner, **fields: Any) -> Decision:
    return Decision(
        partner_id=partner.pk,
        partner_email=partner.user.email,
        paypal_email=partner.verified_paypal_email,
        **fields,
    )


def _payout_decision(partner: Partner, payout: Payout, reason: str, **fields: Any) -> Decision:
    """The decision about an existing payout row: its amount, status and batch id."""
    return _decision(
        partner,
        amount_cents=payout.amount_cents,
        status=payout.status,
        reason=reason,
        sender_batch_id=payout.sender_batch_id,
        **fields,
    )


def run(*, period: str, dry_run: bool, client: PayPalClient | None = None) -> list[Decision]:
    """The payout run for ``period`` (``YYYY-MM``). A real run refuses to start before its date (entries
    would be paid before their hold ends); a dry run may preview it at any time."""
    when = run_at(period)
    if not dry_run and clock.now() < when:
        raise ValueError(f"The {period} payout run is dated {when.isoformat()}; it cannot run earlier.")
    owned = False
    decisions: list[Decision] = []
    try:
        for candidate in _candidates(period):
            partner = Partner.objects.select_related("user").get(pk=candidate.pk)
            if not dry_run and client is None and _needs_client(partner, period):
                client, owned = client_from_settings(), True
            decisions.append(_run_partner(partner=partner, period=period, dry_run=dry_run, client=client))
    finally:
        if owned and client is not None:
            client.close()
    return decisions


def _needs_client(partner: Partner, period: str) -> bool:
    return partner.is_approved and partner.verified_paypal_email is not None


def _run_partner(*, partner: Partner, period: str, dry_run: bool, client: PayPalClient | None) -> Decision:
    existing = Payout.objects.filter(partner=partner, period=period).first()
    if existing is not None and existing.status != PayoutStatus.CREATED:
        return _decision(
            partner,
            amount_cents=existing.amount_cents,
            status=existing.status,
            reason=Reason.ALREADY_PAID if existing.status != PayoutStatus.FAILED else Reason.FAILED,
            sender_batch_id=existing.sender_batch_id,
            detail=existing.detail,
        )
    email = partner.verified_paypal_email
    if existing is None:
        net = _net(eligible_entries(partner=partner, period=period))
        if not partner.is_approved:
            return _decision(partner, amount_cents=0, status="", reason=Reason.NOT_APPROVED, carried_cents=net)
        if email is None:
            return _decision(partner, amount_cents=0, status="", reason=Reason.NO_VERIFIED_EMAIL, carried_cents=net)
        if net < PAYOUT_MINIMUM_CENTS:
            return _decision(partner, amount_cents=0, status="", reason=Reason.UNDER_MINIMUM, carried_cents=net)
        if dry_run:
            return _decision(
                partner,
                amount_cents=net,
                status="",
                reason=Reason.WOULD_PAY,
                sender_batch_id=sender_batch_id_for(partner, period),
            )
        payout = _create_payout(partner=partner, period=period)
        if payout is None:  # the entries changed under us (another run took them): nothing to pay now
            return _decision(partner, amount_cents=0, status="", reason=Reason.UNDER_MINIMUM)
    else:
        payout = existing
        if dry_run:
            return _payout_decision(partner, payout, Reason.WOULD_RETRY)
    if payout.status != PayoutStatus.CREATED:  # another run created and sent it meanwhile
        return _payout_decision(partner, payout, Reason.ALREADY_PAID)
    if not partner.is_approved or email is None:  # held since the payout was created
        return _payout_decision(
            partner, payout, Reason.NOT_APPROVED if not partner.is_approved else Reason.NO_VERIFIED_EMAIL
        )
    assert client is not None
    return _send(partner=partner, payout=payout, email=email, client=client)


def _create_payout(*, partner: Partner, period: str) -> Payout | None:
    """The partner's payout for the period with its entries linked, in one transaction. The unique
    (partner, period) pair makes a concurrent run get the same row instead of a second one."""
    with transaction.atomic():
        Partner.objects.select_for_update().filter(pk=partner.pk).first()
        entries = list(eligible_entries(partner=partner, period=period).values_list("pk", "amount_cents"))
        net = sum(amount for _, amount in entries)
        payout, created = Payout.objects.get_or_create(
            partner=partner,
            period=period,
            defaults={
                "amount_cents": net,
                "currency": CURRENCY,
                "sender_batch_id": sender_batch_id_for(partner, period),
                "status": PayoutStatus.CREATED,
            },
        )
        if created:
            if net < PAYOUT_MINIMUM_CENTS:
                transaction.set_rollback(True)
                return None
            PayoutEntry.objects.bulk_create([PayoutEntry(payout=payout, entry_id=pk) for pk, _ in entries])
    return payout


def _send(*, partner: Partner, payout: Payout, email: str, client: PayPalClient) -> Decision:
    Payout.objects.filter(pk=payout.pk).update(attempts=payout.attempts + 1)
    payout.attempts += 1
    item = PayoutItem(
        receiver=email,
        amount_cents=payout.amount_cents,
        sender_item_id=f"{payout.sender_batch_id}-1",
        currency=payout.currency,
        note=f"Apertur partner commissions, {payout.period}",
    )
    try:
        created = client.create_payout(
            sender_batch_id=payout.sender_batch_id,
            items=[item],
            email_subject="Your Apertur partner payout",
            email_message=f"Your Apertur commissions for {payout.period}.",
        )
    except DuplicateBatch as exc:  # an earlier attempt created it unseen
        _mark_sent(payout, batch_id=exc.payout_batch_id or "", detail=f"duplicate batch: {exc}")
    except Retryable as exc:
        payout.detail = f"attempt {payout.attempts}: {exc}"
        payout.save(update_fields=["detail"])
        return _payout_decision(partner, payout, Reason.RETRY, detail=payout.detail)
    except PayPalError as exc:
        with transaction.atomic():
            payout.status = PayoutStatus.FAILED
            payout.detail = f"attempt {payout.attempts}: {exc}"
            payout.save(update_fields=["status", "detail"])
            PayoutEntry.objects.filter(payout=payout).delete()  # back to the balance for a later run
        return _payout_decision(partner, payout, Reason.FAILED, detail=payout.detail)
    else:
        _mark_sent(payout, batch_id=created.payout_batch_id, detail="")
    return _payout_decision(partner, payout, Reason.PAID)


def _mark_sent(payout: Payout, *, batch_id: str, detail: str) -> None:
    now = clock.now()
    with transaction.atomic():
        payout.status = PayoutStatus.SENT
        payout.paypal_batch_id = batch_id
        payout.sent_at = now
        payout.detail = detail
        payout.save(update_fields=["status", "paypal_batch_id", "sent_at", "detail"])
        CommissionEntry.objects.filter(payout_link__payout=payout).update(paid_out_at=now)
