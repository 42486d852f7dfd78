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

After the batch is sent, PayPal's item status decides the payout's state (:data:`ITEM_STATES`, applied by
:func:`apply_item_status` from webhooks and polling, see ``reconcile``). Money that comes back (FAILED,
RETURNED, REFUNDED, REVERSED, or an UNCLAIMED item cancelled after 30 days) releases the payout's entries to
the balance, once, and the partner is told. Only then may staff retry it with a new ``sender_batch_id``
(``…-2``): the rule that keeps a retry from ever paying twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Exists, OuterRef, QuerySet, Sum

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import PAYOUT_DAY, PAYOUT_HOUR, PAYOUT_MINIMUM_CENTS
from apertur.core import audit, clock, mail
from apertur.core.money import format_cents
from apertur.integrations.paypal.client import PayoutItem, PayPalClient, client_from_settings, client_or_default
from apertur.integrations.paypal.errors import DuplicateBatch, PayPalError, Retryable
from apertur.partners.models import Partner
from apertur.payouts.errors import (
    HoldReasonRequired,
    InvalidPeriod,
    NothingToRetry,
    PartnerNotPayable,
    PayoutNotRetryable,
    RunNotDue,
)
from apertur.payouts.models import MONEY_BACK, Payout, PayoutEntry, PayoutStatus

logger = logging.getLogger(__name__)
CURRENCY = "CAD"
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


#: PayPal item ``transaction_status`` → our payout state.
ITEM_STATES: dict[str, str] = {
    "SUCCESS": PayoutStatus.PAID,
    "PENDING": PayoutStatus.PENDING,
    "UNCLAIMED": PayoutStatus.UNCLAIMED,
    "ONHOLD": PayoutStatus.HELD,
    "BLOCKED": PayoutStatus.HELD,
    "FAILED": PayoutStatus.FAILED,
    "RETURNED": PayoutStatus.RETURNED,
    "REFUNDED": PayoutStatus.RETURNED,
    "REVERSED": PayoutStatus.RETURNED,
}


class Reason:
    PAID = "paid"
    UNDER_MINIMUM = "under_minimum"
    NOT_APPROVED = "not_approved"
    NO_VERIFIED_EMAIL = "no_verified_paypal_email"
    HELD = "payouts_held"
    ERROR = "error"
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
        raise InvalidPeriod(f"A period is YYYY-MM, not {period!r}.", field="period")
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


def _linked(entry: str = "pk") -> Exists:
    """The commission entry (``entry``: the outer query's reference to it) belongs to a payout that has not
    given its money back."""
    return Exists(PayoutEntry.objects.filter(entry=OuterRef(entry), released_at__isnull=True))


def unpaid_entries(period: str) -> QuerySet[CommissionEntry]:
    """Every partner's entries the run for ``period`` pays: unpaid, in no live payout, of a payment made
    before the period's month, hold over by the run."""
    return CommissionEntry.objects.filter(
        paid_out_at__isnull=True,
        paid_at__lt=period_start(period),
        available_at__lte=run_at(period),
    ).exclude(_linked())


def eligible_entries(*, partner: Partner, period: str) -> QuerySet[CommissionEntry]:
    """The entries the run for ``period`` pays the partner (see the module docstring)."""
    return unpaid_entries(period).filter(partner=partner)


def _net(entries: Any) -> int:
    return int(entries.aggregate(total=Sum("amount_cents"))["total"] or 0)


def _partners(ids: set[int]) -> list[Partner]:
    """The run's candidates, by id order: partners with eligible entries (the keys of :func:`_nets`) or a payout
    for the period. Read by id lists (a few thousand per query) rather than as ``id IN (unpaid entries) OR id
    IN (payouts)``: PostgreSQL cannot turn that OR into a join, and with a million unpaid entries it searched
    them once per partner."""
    ordered = sorted(ids)
    partners: list[Partner] = []
    for i in range(0, len(ordered), 5_000):
        part = Partner.objects.filter(pk__in=ordered[i : i + 5_000]).select_related("user").order_by("id")
        partners.extend(part)
    return partners


def _nets(period: str) -> dict[int, int]:
    """Every partner's eligible net for the run, in one query. A starting point only: a payout's amount is
    recomputed from the entries it links, under the partner's lock (:func:`_create_payout`)."""
    rows = unpaid_entries(period).order_by().values("partner_id").annotate(net=Sum("amount_cents"))
    return {row["partner_id"]: int(row["net"] or 0) for row in rows}


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


def run(
    *, period: str, dry_run: bool, client: PayPalClient | None = None, workers: int | None = None
) -> list[Decision]:
    """The payout run for ``period`` (``YYYY-MM``). A real run refuses to start before its date (entries
    would be paid before their hold ends); a dry run may preview it at any time.

    Two queries read every partner's net and the period's payouts, and one per 5,000 candidates reads them; a
    partner with nothing to pay costs no more. A partner to pay is re-read under its row lock before anything is
    written. ``workers`` (default ``settings.PAYOUT_RUN_WORKERS``, 1) > 1 pays partners from that many threads, each
    on its own database connection: every guarantee is per partner (its row lock, the unique constraints), so the
    order across partners does not matter. Decisions come back in partner order either way."""
    when = run_at(period)
    if not dry_run and clock.now() < when:
        raise RunNotDue(f"The {period} payout run is dated {when.isoformat()}; it cannot run earlier.")
    nets = _nets(period)
    existing = {payout.partner_id: payout for payout in Payout.objects.filter(period=period)}
    candidates = _partners(set(nets) | set(existing))
    owned = False
    if not dry_run and client is None and any(payable_reason(partner) is None for partner in candidates):
        client, owned = client_from_settings(), True

    def one(partner: Partner) -> Decision:
        try:
            return _run_partner(
                partner=partner,
                period=period,
                dry_run=dry_run,
                client=client,
                existing=existing.get(partner.pk),
                net=nets.get(partner.pk, 0),
            )
        except Exception as exc:  # one partner's surprise must not stop everybody else's payout
            logger.exception("payout run %s: partner %s", period, partner.pk)
            return _decision(partner, amount_cents=0, status="", reason=Reason.ERROR, detail=repr(exc)[:300])

    workers = int(workers or getattr(settings, "PAYOUT_RUN_WORKERS", 1) or 1)
    try:
        if workers <= 1 or len(candidates) < 2:
            return [one(partner) for partner in candidates]
        return _in_threads(one, candidates, workers)
    finally:
        if owned and client is not None:
            client.close()


def _in_threads(fn: Callable[[Partner], Decision], partners: list[Partner], workers: int) -> list[Decision]:
    """``fn`` over ``partners`` from ``workers`` threads, results in ``partners`` order; each thread closes
    the database connection Django opened for it."""

    def chunk(part: list[Partner]) -> list[Decision]:
        try:
            return [fn(partner) for partner in part]
        finally:
            connections.close_all()

    size = max(1, (len(partners) + workers * 8 - 1) // (workers * 8))
    parts = [partners[i : i + size] for i in range(0, len(partners), size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payout-run") as pool:
        results = list(pool.map(chunk, parts))
    return [decision for part in results for decision in part]


def payable_reason(partner: Partner) -> str | None:
    """Why the partner cannot be paid now, or None."""
    if not partner.is_approved:
        return Reason.NOT_APPROVED
    if partner.payouts_held_at is not None:
        return Reason.HELD
    if partner.verified_paypal_email is None:
        return Reason.NO_VERIFIED_EMAIL
    return None


def _run_partner(
    *,
    partner: Partner,
    period: str,
    dry_run: bool,
    client: PayPalClient | None,
    existing: Payout | None,
    net: int,
) -> Decision:
    """One partner's part of the run. ``existing`` (the period's payout) and ``net`` come from the run's bulk
    reads; both are only used to decide that nothing is to be written: a payout is created, and its amount
    computed, under the partner's row lock, and a ``created`` payout is re-read before it is sent."""
    if existing is not None and existing.status == PayoutStatus.CREATED:
        existing = Payout.objects.get(pk=existing.pk)  # about to be sent: its current row, not the run's read
    if existing is not None and existing.status != PayoutStatus.CREATED:
        return _payout_decision(
            partner,
            existing,
            Reason.FAILED if existing.money_back else Reason.ALREADY_PAID,
            detail=existing.detail,
        )
    blocked = payable_reason(partner)
    if existing is None:
        if blocked is not None:
            return _decision(partner, amount_cents=0, status="", reason=blocked, carried_cents=net)
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
        payout, partner = _create_payout(partner=partner, period=period, expected_cents=net)
        blocked = payable_reason(partner)  # as read under the lock
        if payout is None:
            if blocked is not None:  # held, unapproved or unverified since the run started
                return _decision(partner, amount_cents=0, status="", reason=blocked, carried_cents=net)
            # the entries changed under us (another run took them): nothing to pay now
            return _decision(partner, amount_cents=0, status="", reason=Reason.UNDER_MINIMUM)
    else:
        payout = existing
        if dry_run:
            return _payout_decision(partner, payout, Reason.WOULD_RETRY)
    email = partner.verified_paypal_email
    if payout.status != PayoutStatus.CREATED:  # another run created and sent it meanwhile
        return _payout_decision(partner, payout, Reason.ALREADY_PAID)
    if blocked is not None or email is None:  # held since the payout was created: sent once it is not
        return _payout_decision(partner, payout, blocked or Reason.NO_VERIFIED_EMAIL)
    assert client is not None
    return _send(partner=partner, payout=payout, email=email, client=client)


def _create_payout(*, partner: Partner, period: str, expected_cents: int) -> tuple[Payout | None, Partner]:
    """The partner's payout for the period with its entries linked, in one transaction, and the partner as read
    under its row lock. Under that lock: an existing payout for the period is returned as it is (a concurrent
    run made it: the loser reads the winner's), a partner no longer payable gets none, and otherwise the payout
    links every eligible entry and its amount is the sum of exactly the entries it links (None, and nothing
    written, when that is under the minimum). The unique (partner, period) pair stays the last word."""
    with transaction.atomic():
        fresh = Partner.objects.select_for_update(of=("self",)).select_related("user").get(pk=partner.pk)
        found = Payout.objects.filter(partner=fresh, period=period).first()
        if found is not None:
            return found, fresh
        if payable_reason(fresh) is not None:
            return None, fresh
        payout = Payout.objects.create(
            partner=fresh,
            period=period,
            amount_cents=expected_cents,
            currency=CURRENCY,
            sender_batch_id=sender_batch_id_for(fresh, period),
            status=PayoutStatus.CREATED,
        )
        net = _link_entries(payout=payout, partner=fresh, period=period)
        if net < PAYOUT_MINIMUM_CENTS:
            transaction.set_rollback(True)
            return None, fresh
        if net != payout.amount_cents:
            Payout.objects.filter(pk=payout.pk).update(amount_cents=net)
            payout.amount_cents = net
    return payout, fresh


_LINK = "INSERT INTO payouts_payoutentry (payout_id, entry_id) SELECT %s, eligible.* FROM ({eligible}) AS eligible"
_LINK_PG = """
WITH linked AS (
    INSERT INTO payouts_payoutentry (payout_id, entry_id)
    SELECT %s, eligible.* FROM ({eligible}) AS eligible
    RETURNING entry_id
)
SELECT COALESCE(SUM(e.amount_cents), 0) FROM commissions_commissionentry e JOIN linked ON e.id = linked.entry_id
"""


def _link_entries(*, payout: Payout, partner: Partner, period: str) -> int:
    """Link every entry the run pays the partner to ``payout`` in one INSERT … SELECT, and return the sum of
    exactly the entries linked (a commission written meanwhile is either linked and counted, or neither)."""
    eligible, params = eligible_entries(partner=partner, period=period).order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_LINK_PG.format(eligible=eligible), [payout.pk, *params])
            return int(cursor.fetchone()[0])
        cursor.execute(_LINK.format(eligible=eligible), [payout.pk, *params])
    linked = CommissionEntry.objects.filter(payout_links__payout=payout, payout_links__released_at__isnull=True)
    return _net(linked)


#: Refusals about our credentials or permissions (a 401 from the token endpoint, a 403), not about this payout:
#: PayPal created nothing, and once the configuration is fixed the same sender_batch_id must be sent.
_NOT_THIS_PAYOUT = frozenset({401, 403})


def _send(*, partner: Partner, payout: Payout, email: str, client: PayPalClient) -> Decision:
    Payout.objects.filter(pk=payout.pk).update(attempts=payout.attempts + 1, receiver_email=email)
    payout.attempts += 1
    payout.receiver_email = email
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
        if not exc.payout_batch_id:  # PayPal's answer always links the batch; without it, a person must look
            logger.error("payout %s: PayPal has batch %s but did not say its id", payout.pk, payout.sender_batch_id)
        detail = f"duplicate batch: {exc}" + ("" if exc.payout_batch_id else " (no batch id: reconcile by hand)")
        sent = _mark_sent(payout, batch_id=exc.payout_batch_id or "", detail=detail)
    except PayPalError as exc:
        if isinstance(exc, Retryable) or exc.status in _NOT_THIS_PAYOUT:
            payout.detail = f"attempt {payout.attempts}: {exc}"
            payout.save(update_fields=["detail"])
            return _payout_decision(partner, payout, Reason.RETRY, detail=payout.detail)
        # A terminal refusal: PayPal created nothing. Recorded, the money is back in the balance.
        _money_back(payout.pk, status=PayoutStatus.FAILED, item_status="", detail=f"attempt {payout.attempts}: {exc}")
        payout.refresh_from_db()
        return _payout_decision(partner, payout, Reason.FAILED, detail=payout.detail)
    else:
        sent = _mark_sent(payout, batch_id=created.payout_batch_id, detail="")
    if sent is None:  # another run recorded it first: its row as it is now
        sent = Payout.objects.get(pk=payout.pk)
    return _payout_decision(partner, sent, Reason.PAID)


def _mark_sent(payout: Payout, *, batch_id: str, detail: str) -> Payout | None:
    """Record the payout as sent and its entries as paid, once, under the payout's row lock; the row as saved,
    or None when another run recorded it first."""
    now = clock.now()
    with transaction.atomic():
        locked = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout.pk)
        if locked.status != PayoutStatus.CREATED:  # another run recorded it first
            return None
        locked.status = PayoutStatus.SENT
        locked.paypal_batch_id = batch_id
        locked.sent_at = now
        locked.detail = detail
        locked.save(update_fields=["status", "paypal_batch_id", "sent_at", "detail"])
        CommissionEntry.objects.filter(payout_links__payout=locked, payout_links__released_at__isnull=True).update(
            paid_out_at=now
        )
        audit.record(action="payout.sent", obj=locked, data={"amount_cents": locked.amount_cents, "batch": batch_id})
        _tell(locked, "sent")
    return locked


# --- after the batch: PayPal's item status ------------------------------------------------------------


def apply_item_status(*, payout_id: int, transaction_status: str, item_id: str = "", detail: str = "") -> Payout:
    """Move the payout to the state PayPal's item status means (:data:`ITEM_STATES`), at most once per
    change, under a row lock: webhooks and the poller may apply the same status concurrently. A payout whose
    money is already back stays so (a later attempt, if any, has its own batch id)."""
    target = ITEM_STATES.get(transaction_status)
    if target is None:
        raise ValueError(f"Unknown PayPal transaction_status {transaction_status!r}.")
    if target in MONEY_BACK:
        return _money_back(payout_id, status=target, item_status=transaction_status, detail=detail, item_id=item_id)
    now = clock.now()
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout_id)
        payout.checked_at = now
        fields = ["checked_at"]
        if item_id and payout.paypal_item_id != item_id:
            payout.paypal_item_id = item_id
            fields.append("paypal_item_id")
        if payout.money_back or payout.status == PayoutStatus.CREATED or payout.status == target:
            payout.save(update_fields=fields)
            return payout
        previous = payout.status
        payout.status, payout.item_status = target, transaction_status
        fields += ["status", "item_status"]
        if target == PayoutStatus.PAID:
            payout.paid_at = now
            fields.append("paid_at")
        payout.save(update_fields=fields)
        audit.record(
            action="payout.status", obj=payout, data={"from": previous, "to": target, "paypal": transaction_status}
        )
        if target == PayoutStatus.PAID:
            _tell(payout, "paid")
    return payout


def _money_back(payout_id: int, *, status: str, item_status: str, detail: str, item_id: str = "") -> Payout:
    """The money of the payout is not (or no longer) with the partner: release its entries to the balance,
    record why, tell the partner. Once: a second call finds the payout already in a money-back state."""
    now = clock.now()
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout_id)
        if payout.money_back:
            return payout
        previous = payout.status
        payout.status = status
        payout.item_status = item_status
        payout.returned_at = now
        payout.checked_at = now
        payout.detail = detail or payout.detail
        if item_id:
            payout.paypal_item_id = item_id
        payout.save(update_fields=["status", "item_status", "returned_at", "checked_at", "detail", "paypal_item_id"])
        live = PayoutEntry.objects.filter(payout=payout, released_at__isnull=True)
        CommissionEntry.objects.filter(pk__in=live.values("entry_id")).update(paid_out_at=None)
        live.update(released_at=now)
        audit.record(
            action="payout.money_back",
            obj=payout,
            data={"from": previous, "to": status, "paypal": item_status, "amount_cents": payout.amount_cents},
        )
        if previous != PayoutStatus.CREATED:  # the partner was told it was sent: tell them it came back
            _tell(payout, "returned")
    return payout


_MAILS = {
    "sent": ("Your Apertur payout of {amount} is on its way", "emails/payout_sent"),
    "paid": ("Your Apertur payout of {amount} was paid", "emails/payout_paid"),
    "returned": ("Your Apertur payout of {amount} came back", "emails/payout_returned"),
}


def _tell(payout: Payout, what: str) -> None:
    subject, template = _MAILS[what]
    amount = format_cents(payout.amount_cents, payout.currency)
    mail.send(
        to=payout.partner.user.email,
        subject=subject.format(amount=amount),
        template=template,
        context={"payout": payout, "amount": amount, "paypal_email": payout.partner.paypal_email},
    )


# --- staff operations -----------------------------------------------------------------------------------


def retry(*, payout: Payout, actor: Any, client: PayPalClient | None = None) -> Payout:
    """Staff retry of a payout whose money came back (FAILED or RETURNED): the same payout, the entries it
    released that are still unpaid, a new ``sender_batch_id`` (``…-N+1``), sent now. Refused for any other
    state: until a terminal failure is recorded, the old id is the only one that may be used."""
    with transaction.atomic():
        locked = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout.pk)
        partner = locked.partner
        if not locked.money_back:
            raise PayoutNotRetryable(
                f"Only a failed or returned payout can be retried; this one is {locked.get_status_display().lower()}."
            )
        blocked = payable_reason(partner)
        if blocked is not None:
            raise PartnerNotPayable(f"The partner cannot be paid now ({blocked.replace('_', ' ')}).")
        free = (
            PayoutEntry.objects.filter(payout=locked, released_at__isnull=False, entry__paid_out_at__isnull=True)
            .exclude(_linked("entry_id"))
            .select_related("entry")
        )
        links = list(free)
        net = sum(link.entry.amount_cents for link in links)
        if net <= 0:
            raise NothingToRetry()
        PayoutEntry.objects.filter(pk__in=[link.pk for link in links]).update(released_at=None)
        previous = locked.sender_batch_id
        locked.batch_number += 1
        locked.sender_batch_id = sender_batch_id_for(partner, locked.period, locked.batch_number)
        locked.amount_cents = net
        locked.status = PayoutStatus.CREATED
        locked.paypal_batch_id = locked.paypal_item_id = locked.item_status = ""
        locked.sent_at = locked.paid_at = locked.returned_at = None
        locked.detail = f"retry of {previous}"
        locked.save()
        audit.record(
            action="payout.retried",
            obj=locked,
            actor=actor,
            data={"previous": previous, "sender_batch_id": locked.sender_batch_id, "amount_cents": net},
        )
    email = partner.verified_paypal_email
    assert email is not None
    with client_or_default(client) as paypal:
        _send(partner=partner, payout=locked, email=email, client=paypal)
    locked.refresh_from_db()
    return locked


def hold_partner(*, partner: Partner, actor: Any, reason: str) -> Partner:
    """Stop the partner's payouts (commissions keep accumulating) until :func:`release_partner`."""
    reason = reason.strip()
    if not reason:
        raise HoldReasonRequired(field="reason")
    with transaction.atomic():
        Partner.objects.filter(pk=partner.pk).update(payouts_held_at=clock.now(), payouts_hold_reason=reason[:1000])
        partner.refresh_from_db()
        audit.record(action="partner.payouts_held", obj=partner, actor=actor, data={"reason": reason[:1000]})
    return partner


def release_partner(*, partner: Partner, actor: Any) -> Partner:
    with transaction.atomic():
        Partner.objects.filter(pk=partner.pk).update(payouts_held_at=None, payouts_hold_reason="")
        partner.refresh_from_db()
        audit.record(action="partner.payouts_released", obj=partner, actor=actor)
    return partner
