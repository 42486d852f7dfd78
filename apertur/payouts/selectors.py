"""Reading payouts for the partner portal: the history, one payout with the commission entries it holds,
the statement rows, and why the next run may not pay the partner.

Every reader costs a fixed number of queries whatever the number of payouts or entries: counts come from
the database (annotate), entries come with their payment, customer and project (select_related). A partner
only ever reads their own payouts: another partner's is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum

from apertur.commissions.models import EntryKind
from apertur.commissions.selectors import PAGE_SIZE, PAYOUT_MINIMUM_CENTS, balance_and_next_payout, mask_email
from apertur.core import clock
from apertur.core.pages import Page, page_of
from apertur.partners import paypal
from apertur.partners.models import Partner
from apertur.payouts import services
from apertur.payouts.errors import PayoutNotFound
from apertur.payouts.models import MONEY_BACK, Failure, Payout, PayoutEntry, PayoutStatus

# --- the history ----------------------------------------------------------------------------------------

#: How a payout's state reads to the partner (the admin's labels are written for staff).
STATUS_LABELS: dict[str, str] = {
    PayoutStatus.CREATED: "Being sent",
    PayoutStatus.SENT: "Sent",
    PayoutStatus.PENDING: "Processing at PayPal",
    PayoutStatus.UNCLAIMED: "Waiting to be claimed",
    PayoutStatus.HELD: "Held by PayPal",
    PayoutStatus.PAID: "Paid",
    PayoutStatus.FAILED: "Failed, back in your balance",
    PayoutStatus.RETURNED: "Returned, back in your balance",
    PayoutStatus.NEEDS_REVIEW: "Delayed on our side",
}

#: One sentence for the detail page: what the state means and what happens next.
STATUS_EXPLANATIONS: dict[str, str] = {
    PayoutStatus.CREATED: "We are sending this payout to PayPal. If PayPal does not answer, we retry with the "
    "same reference, so it can never be paid twice.",
    PayoutStatus.SENT: "PayPal accepted this payout. It usually reaches your PayPal account within minutes.",
    PayoutStatus.PENDING: "PayPal is processing this payout.",
    PayoutStatus.UNCLAIMED: "PayPal is holding this payout until the address has a PayPal account that accepts "
    "it. Unclaimed payouts come back to your Apertur balance after 30 days.",
    # PayPal's ONHOLD (a review) and BLOCKED alike: the money has left us and PayPal has not delivered it. PayPal
    # tells the reason only to the account holders, so the partner is sent to their PayPal account; whether PayPal
    # pays it or sends it back is PayPal's call, and both outcomes are said. {days}: PAYOUT_HELD_ALERT_DAYS.
    PayoutStatus.HELD: "PayPal has put this payout on hold and has not delivered it yet. Check your PayPal account "
    "for a message from PayPal: a hold can need something from you. Our team is alerted if the hold lasts more than "
    "{days} days and follows it up with PayPal. If PayPal releases it, it is paid to your PayPal account; if PayPal "
    "sends it back, its commissions return to your Apertur balance and a later run pays them.",
    PayoutStatus.PAID: "PayPal delivered this payout to your account.",
    PayoutStatus.FAILED: "PayPal could not pay this payout. The money never left: its commissions are back in "
    "your Apertur balance and are paid by a later run.",
    PayoutStatus.RETURNED: "The money came back from PayPal. Its commissions are back in your Apertur balance and "
    "are paid by a later run; check your PayPal email.",
    PayoutStatus.NEEDS_REVIEW: "PayPal did not confirm this payout in time. Our team is checking with PayPal "
    "whether it was paid; nothing is lost, and it is never paid twice.",
}

#: Pill colours of base.html's stylesheet: green when paid, amber while on its way, red when it came back.
STATUS_PILLS: dict[str, str] = {
    PayoutStatus.CREATED: "pending",
    PayoutStatus.SENT: "eligible",
    PayoutStatus.PENDING: "pending",
    PayoutStatus.UNCLAIMED: "pending",
    PayoutStatus.HELD: "pending",
    PayoutStatus.PAID: "paid",
    PayoutStatus.FAILED: "reversed",
    PayoutStatus.RETURNED: "reversed",
    PayoutStatus.NEEDS_REVIEW: "pending",
}


@dataclass(frozen=True, slots=True)
class PayoutRow:
    """A payout as the partner sees it."""

    id: int
    partner_id: int
    period: str  # "YYYY-MM": the run dated the 15th of that month
    amount_cents: int
    currency: str
    status: str
    reference: str  # the payout's own PayPal item id (sender_item_id): its batch is shared with other partners
    created_at: dt.datetime
    sent_at: dt.datetime | None
    paid_at: dt.datetime | None
    returned_at: dt.datetime | None
    entry_count: int
    held_since: dt.datetime | None = None  # while PayPal holds it (item ONHOLD or BLOCKED)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def status_pill(self) -> str:
        return STATUS_PILLS.get(self.status, "")

    @property
    def explanation(self) -> str:
        text = STATUS_EXPLANATIONS.get(self.status, "")
        if self.status == PayoutStatus.HELD:
            return text.format(days=services.held_alert_after().days)
        return text

    @property
    def money_back(self) -> bool:
        return self.status in MONEY_BACK

    @property
    def run_date(self) -> dt.date:
        """The run that made it: the 15th of the period's month (Toronto)."""
        return services.run_at(self.period).date()


def _payouts(partner: Partner) -> QuerySet[Payout]:
    return (
        Payout.objects.filter(partner=partner)
        .annotate(entry_count=Count("entries"))
        # One payout per partner and period: the period orders them, newest first.
        .order_by("-period", "-id")
    )


def _row(payout: Payout) -> PayoutRow:
    return PayoutRow(
        id=payout.pk,
        partner_id=payout.partner_id,
        period=payout.period,
        amount_cents=payout.amount_cents,
        currency=payout.currency,
        status=payout.status,
        reference=payout.sender_item_id,
        created_at=payout.created_at,
        sent_at=payout.sent_at,
        paid_at=payout.paid_at,
        returned_at=payout.returned_at,
        entry_count=int(payout.entry_count),  # type: ignore[attr-defined]
        held_since=payout.held_since if payout.status == PayoutStatus.HELD else None,
    )


PayoutPage = Page[PayoutRow]


def payout_list(*, partner: Partner, page: int | str | None = 1) -> PayoutPage:
    """One page (PAGE_SIZE rows, newest first) of the partner's payouts with their entry counts. An invalid or
    too large page number gives the nearest page."""
    return page_of(_payouts(partner), page=page, size=PAGE_SIZE, rows=lambda payouts: map(_row, payouts))


def payout_detail(*, partner: Partner, payout_id: int) -> PayoutRow:
    """The partner's payout ``payout_id``; :class:`PayoutNotFound` for anyone else's (never says it exists)."""
    payout = _payouts(partner).filter(pk=payout_id).first()
    if payout is None:
        raise PayoutNotFound()
    return _row(payout)


# --- the entries of a payout ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """One commission entry in a payout. ``released_at`` is set when the payout's money came back: the entry
    returned to the balance (and may be in a later payout); it is kept here for the history."""

    payout_id: int
    entry_id: int
    paid_at: dt.datetime  # the customer's payment
    customer: str  # masked, like the commissions dashboard
    project: str
    kind: str  # earned | reversal | clawback
    amount_cents: int
    released_at: dt.datetime | None

    @property
    def date(self) -> dt.date:
        return clock.business_date(self.paid_at)

    @property
    def kind_label(self) -> str:
        return EntryKind(self.kind).label if self.kind in EntryKind.values else self.kind

    @property
    def released(self) -> bool:
        return self.released_at is not None


_ENTRY_ORDER = ("entry__paid_at", "entry__id")


def _links() -> QuerySet[PayoutEntry]:
    return PayoutEntry.objects.select_related("entry__payment__customer", "entry__payment__project").order_by(
        *_ENTRY_ORDER
    )


def _lines(links: Iterable[PayoutEntry]) -> Iterator[PayoutLine]:
    for link in links:
        entry = link.entry
        payment = entry.payment
        yield PayoutLine(
            payout_id=link.payout_id,
            entry_id=entry.pk,
            paid_at=payment.paid_at,
            customer=mask_email(payment.customer.email) if payment.customer else "Unknown customer",
            project=payment.project.name,
            kind=entry.kind,
            amount_cents=entry.amount_cents,
            released_at=link.released_at,
        )


ENTRY_PAGE_SIZE = 100


def _payout_id(payout: PayoutRow | Payout) -> int:
    return payout.id if isinstance(payout, PayoutRow) else payout.pk


def _of_payout(links: QuerySet[PayoutEntry], payout: PayoutRow | Payout) -> QuerySet[PayoutEntry]:
    """The payout's links. A payout only ever holds its own partner's entries (the run links them by partner):
    saying so lets PostgreSQL read those entries through the partner's ledger index and hash them with the links.
    Joined by entry id alone it scanned the whole ledger (a million entries, 150 ms) for a large payout."""
    return links.filter(payout_id=_payout_id(payout), entry__partner_id=payout.partner_id)


def payout_entries(*, payout: PayoutRow | Payout) -> list[PayoutLine]:
    """Every commission entry the payout holds or held, oldest payment first, at once (the detail page shows
    :func:`payout_entry_page`; the statement CSV streams its own)."""
    return list(_lines(_of_payout(_links(), payout)))


def payout_entry_page(*, payout: PayoutRow | Payout, page: int | str | None = 1) -> Page[PayoutLine]:
    """One page of :func:`payout_entries` (ENTRY_PAGE_SIZE lines): a large partner's payout holds thousands. A
    :class:`PayoutRow` carries its number of entries, so its pages are numbered without counting them again."""
    return page_of(
        _of_payout(_links(), payout),
        page=page,
        size=ENTRY_PAGE_SIZE,
        rows=_lines,
        late_join=True,
        count=payout.entry_count if isinstance(payout, PayoutRow) else None,
    )


@dataclass(frozen=True, slots=True)
class PayoutTotals:
    earned_cents: int  # commissions earned, in entries the payout still holds
    deducted_cents: int  # reversals and clawbacks netted against them (≤ 0)
    net_cents: int  # what the payout pays: earned + deducted
    released_cents: int  # entries given back to the balance when the money came back


def payout_totals(*, payout: PayoutRow | Payout) -> PayoutTotals:
    """The payout's totals over every entry it holds or held, summed by the database (one query)."""
    held = Q(released_at__isnull=True)
    sums = _of_payout(PayoutEntry.objects.all(), payout).aggregate(
        earned=Sum("entry__amount_cents", filter=held & Q(entry__kind=EntryKind.EARNED)),
        deducted=Sum("entry__amount_cents", filter=held & ~Q(entry__kind=EntryKind.EARNED)),
        released=Sum("entry__amount_cents", filter=Q(released_at__isnull=False)),
    )
    earned, deducted = int(sums["earned"] or 0), int(sums["deducted"] or 0)
    return PayoutTotals(
        earned_cents=earned,
        deducted_cents=deducted,
        net_cents=earned + deducted,
        released_cents=int(sums["released"] or 0),
    )


# --- the statement ----------------------------------------------------------------------------------------


def statement(*, partner: Partner, payout_id: int | None = None) -> Iterator[tuple[PayoutRow, PayoutLine | None]]:
    """(payout, entry) pairs for the statement CSV: every payout of the partner (or only ``payout_id``, with
    :class:`PayoutNotFound` for another partner's), newest first, each with its entries, oldest payment first. A
    payout without entries yields one pair with ``None``. Two queries, entries streamed in chunks."""
    payouts = _payouts(partner)
    if payout_id is not None:
        payouts = payouts.filter(pk=payout_id)
    rows = [_row(payout) for payout in payouts]
    if payout_id is not None and not rows:
        raise PayoutNotFound()
    links = _links().filter(payout__partner=partner).order_by("-payout__period", "-payout_id", *_ENTRY_ORDER)
    if payout_id is not None:
        links = links.filter(payout_id=payout_id)
    lines = _lines(links.iterator(chunk_size=500))
    pending = next(lines, None)
    # Both queries list payouts in the same order: walk them side by side.
    for row in rows:
        if pending is None or pending.payout_id != row.id:
            yield row, None
            continue
        while pending is not None and pending.payout_id == row.id:
            yield row, pending
            pending = next(lines, None)


# --- why the next payout may not happen -------------------------------------------------------------------


class Outlook:
    """Codes of :class:`PayoutOutlook`: the run's own reasons (services.Reason), plus ``will_pay``."""

    NOT_APPROVED = services.Reason.NOT_APPROVED
    ON_HOLD = services.Reason.HELD
    NO_VERIFIED_EMAIL = services.Reason.NO_VERIFIED_EMAIL
    UNDER_MINIMUM = services.Reason.UNDER_MINIMUM
    ADDRESS_REFUSED = services.Reason.ADDRESS_REFUSED  # PayPal refused the verified address: change it
    DELAYED = "delayed_on_our_side"  # the last payout failed on our side (funding) or awaits staff review
    WILL_PAY = "will_pay"


@dataclass(frozen=True, slots=True)
class PayoutOutlook:
    """What the next payout run will do for the partner, and why not when it will not pay."""

    code: str  # an Outlook value
    run_at: dt.datetime  # the next run (15th, 09:00 Toronto): a late one first, if a run due was not made
    estimate_cents: int  # the eligible balance by then, if nothing else happens
    carried_cents: int  # what past runs left unpaid (part of the estimate)
    minimum_cents: int = PAYOUT_MINIMUM_CENTS
    # Payouts PayPal did not confirm in time (needs_review): their money is neither paid nor in the estimate
    # (no run pays it again) until staff settle them: paid, or back in the balance.
    in_review_cents: int = 0
    hold_reason: str = ""  # staff's reason, when on hold
    held_since: dt.datetime | None = None
    pending_email: str = ""  # a PayPal address waiting for its confirmation link
    pending_expired: bool = False  # and that link expired: a new one is needed
    refused_email: str = ""  # the address PayPal refused, when the code is ADDRESS_REFUSED
    # ``run_at`` has passed and the run was not made yet (schedule.late_run_at): it pays as soon as it runs. Never
    # for a partner it would pay nothing (commissions.selectors.balance_and_next_payout): ``run_at`` is then the
    # coming 15th, as once that run is made.
    late: bool = False

    @property
    def will_pay(self) -> bool:
        return self.code == Outlook.WILL_PAY

    @property
    def headline(self) -> str:
        return HEADLINES[self.code]


HEADLINES = {
    Outlook.NOT_APPROVED: "Payouts are paused",
    Outlook.ON_HOLD: "Payouts are on hold",
    Outlook.NO_VERIFIED_EMAIL: "Payouts wait for a verified PayPal email",
    Outlook.UNDER_MINIMUM: "Under the minimum: carried to a later run",
    Outlook.ADDRESS_REFUSED: "PayPal refused your PayPal address",
    Outlook.DELAYED: "Your payout is delayed on our side",
    Outlook.WILL_PAY: "Next payout",
}


def why_not_paid(partner: Partner) -> str | None:
    """Why the next run will pay the partner nothing whatever their balance (the run's own rule,
    ``services.payable_reason``), as the Payouts page heads it; None when it would pay an eligible balance. The
    commissions dashboard asks this through ``commissions.payability`` (registered in ``PayoutsConfig.ready``)."""
    code = services.payable_reason(partner)
    return HEADLINES[code] if code is not None else None


def payout_status(*, partner: Partner, at: dt.datetime | None = None) -> PayoutOutlook:
    """Why the next payout run may not pay the partner, in the run's own order (services' rule: approval,
    a staff hold, a verified PayPal email, then the minimum), with the next run's date and estimate from
    the commissions selectors. Commissions keep accumulating in every case."""
    now = at or clock.now()
    ledger, estimate = balance_and_next_payout(partner=partner, at=now)
    # The ledger counts entries linked to a payout not yet sent as unpaid; a payout in review stays unsent until
    # staff settle it, and the run never takes its entries again (services' _UNSENT): the estimate already leaves
    # them out, like the run (commissions.selectors). Its entries were available by its own run, at or before the
    # last one: the ledger leaves them out of the carried part too (shown apart). So are a payout's still being
    # sent (``created``): the run did not leave them unpaid, it is paying them.
    in_review = int(
        Payout.objects.filter(partner=partner, status=PayoutStatus.NEEDS_REVIEW).aggregate(total=Sum("amount_cents"))[
            "total"
        ]
        or 0
    )
    estimate_cents = estimate.eligible_cents
    # The run's own rule (approval, a staff hold, a verified PayPal email PayPal has not refused), not a copy of it.
    code = services.payable_reason(partner)
    if code is None:
        last = (
            Payout.objects.filter(partner=partner).order_by("-period", "-id").values_list("status", "failure").first()
        )
        delayed = in_review > 0 or (last is not None and last[0] == PayoutStatus.FAILED and last[1] == Failure.SENDER)
        code = Outlook.DELAYED if delayed else (Outlook.WILL_PAY if estimate.will_pay else Outlook.UNDER_MINIMUM)
    return PayoutOutlook(
        code=code,
        run_at=estimate.run_at,
        estimate_cents=estimate_cents,
        carried_cents=ledger.carried_cents,
        minimum_cents=estimate.minimum_cents,
        in_review_cents=in_review,
        hold_reason=partner.payouts_hold_reason if code == Outlook.ON_HOLD else "",
        held_since=partner.payouts_held_at if code == Outlook.ON_HOLD else None,
        pending_email=partner.paypal_pending_email,
        pending_expired=paypal.link_expired(partner, at=now),
        refused_email=partner.verified_paypal_email or "" if code == Outlook.ADDRESS_REFUSED else "",
        late=estimate.late,
    )
