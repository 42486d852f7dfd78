"""The monthly payout run (issue 8, "The rule").

The run for period ``YYYY-MM`` is dated the 15th of that month at 09:00 America/Toronto. Per partner it
pays every unpaid commission entry (not already linked to a payout) of a payment made before the 1st of
that month (Toronto) whose ``available_at`` is at or before the run, net of reversals and clawbacks.

- Net under ``PAYOUT_MINIMUM_CENTS`` (or negative): carried forward, nothing written.
- Partner not approved, or without a verified PayPal email: nothing written, the decision says why.
- Otherwise one ``Payout`` per partner and period (the database's unique constraint, so two runs at once
  make one): one EMAIL item in CAD with its own ``sender_item_id``, in a PayPal batch shared by a chunk of
  partners (``PAYOUT_BATCH_SIZE``), whose ``sender_batch_id`` is saved on the chunk's payouts before PayPal is
  called. A ``Retryable`` error leaves the chunk ``created``: the next run sends the same batch again (same id,
  same items). A ``DuplicateBatch`` means an earlier attempt did create the batch: every item is recorded as
  sent. A terminal refusal marks the payouts it names (or all of the batch's) ``failed`` and releases their
  entries so a later run pays them; the others go again in a new batch.
- ``dry_run`` computes the same decisions and writes and sends nothing.

After the batch is sent, PayPal's item status decides the payout's state (:data:`ITEM_STATES`, applied by
:func:`apply_item_status` from webhooks and polling, see ``reconcile``). Money that comes back (FAILED,
RETURNED, REFUNDED, REVERSED, or an UNCLAIMED item cancelled after 30 days) releases the payout's entries to
the balance, once, and the partner is told. Only then may staff retry it with a new item id (``…-2``), sent as
a batch of one with that id: the rule that keeps a retry from ever paying twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum

from apertur.commissions.models import CommissionEntry, paid_by_run
from apertur.commissions.selectors import payout_run_in, reaches_minimum
from apertur.core import alerts, audit, clock, mail
from apertur.core.models import AuditEvent
from apertur.core.money import format_cents
from apertur.core.validation import without_nul
from apertur.integrations.paypal.client import (
    MAX_BATCH_ITEMS,
    PayoutItem,
    PayPalClient,
    client_from_settings,
    client_or_default,
)
from apertur.integrations.paypal.errors import DuplicateBatch, PayPalError, Retryable
from apertur.partners.models import Partner, PartnerStatus
from apertur.payouts.errors import (
    HoldReasonRequired,
    InvalidPeriod,
    NothingToRetry,
    PartnerNotPayable,
    PayoutNotInReview,
    PayoutNotRetryable,
    ReviewBatchNotFound,
    RunNotDue,
)
from apertur.payouts.models import MONEY_BACK, Failure, Payout, PayoutEntry, PayoutStatus

logger = logging.getLogger(__name__)
CURRENCY = "CAD"

#: How long after its first attempt a ``sender_batch_id`` may still be sent again. PayPal Payouts v1 (create batch
#: payout, ``sender_batch_header.sender_batch_id``): "If you specify a sender_batch_id that was used in the last
#: 30 days, the API rejects the request … The API completes a payment only once for a sender_batch_id that is used
#: within 30 days." Past 30 days PayPal would take a re-send as a new batch and pay again; 25 days leaves a margin
#: for clocks and for a tick that runs late. An older batch goes to a person instead (``needs_review``).
RESEND_WINDOW = dt.timedelta(days=25)
#: PayPal error names (``errors.name`` of an item, or of a refused create) about the sender's account, not the
#: receiver's address: our funding or our account, which staff fix.
SENDER_ERRORS = frozenset(
    {"INSUFFICIENT_FUNDS", "SENDER_ACCOUNT_LOCKED_OR_INACTIVE", "SENDER_RESTRICTED", "ACCOUNT_RESTRICTED"}
)


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
    NOTHING_DUE = "nothing_due"  # an approved partner with no commission to pay or carry
    NEEDS_REVIEW = "needs_review"  # first sent more than RESEND_WINDOW ago: staff check PayPal (never re-sent)
    ADDRESS_REFUSED = "paypal_refused_address"  # PayPal refused the verified address: waits until it changes


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
    # core.clock's one rule for a typed month: another spelling of one (2026-4, other digits) would be a second
    # payout per partner for it.
    found = clock.parse_year_month(period)
    if found is None:
        raise InvalidPeriod(f"A period is YYYY-MM, not {period!r}.", field="period")
    return found


def run_at(period: str) -> dt.datetime:
    """The run's instant: the 15th of the period's month at 09:00 in Toronto."""
    return payout_run_in(*parse_period(period))


def period_start(period: str) -> dt.datetime:
    """The 1st of the period's month at 00:00 in Toronto: payments before it are paid by the run."""
    year, month = parse_period(period)
    return dt.datetime(year, month, 1, tzinfo=clock.BUSINESS_TZ)


def sender_item_id_for(partner: Partner, period: str, attempt: int = 1) -> str:
    """The partner's item in PayPal for the period's payout: ``aptr-<partner>-<period>-<N>``, ``N`` going up
    only when staff retry a payout whose money came back."""
    return f"aptr-{partner.pk}-{period}-{attempt}"


#: A payout sent on its own (a staff retry; a chunk of one partner) is a batch named after its only item.
sender_batch_id_for = sender_item_id_for


def _linked(entry: str = "pk") -> Exists:
    """The commission entry (``entry``: the outer query's reference to it) belongs to a payout that has not
    given its money back."""
    return Exists(PayoutEntry.objects.filter(entry=OuterRef(entry), released_at__isnull=True))


def unpaid_entries(period: str) -> QuerySet[CommissionEntry]:
    """Every partner's entries the run for ``period`` pays: unpaid, in no live payout, of a payment made
    before the period's month, hold over by the run."""
    return CommissionEntry.objects.filter(paid_by_run(run_at(period))).exclude(_linked())


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


def _nets(period: str, sizes: dict[int, int] | None = None) -> dict[int, int]:
    """Every partner's eligible net for the run, in one query (and, into ``sizes``, how many entries that is). A
    starting point only: a payout's amount is recomputed from the entries it links, under the partner's lock
    (:func:`_pay_chunk`)."""
    rows = unpaid_entries(period).order_by().values("partner_id").annotate(net=Sum("amount_cents"), n=Count("pk"))
    if sizes is not None:
        sizes.update((row["partner_id"], int(row["n"])) for row in rows)
    return {row["partner_id"]: int(row["net"] or 0) for row in rows}


def _chunks(partners: list[Partner], *, size: int, entries: dict[int, int], max_entries: int) -> list[list[Partner]]:
    """``partners`` cut into chunks of at most ``size`` partners and, past their first partner, at most
    ``max_entries`` commission entries: one chunk is one transaction and one PayPal batch, and a few partners
    with most of the entries (earnings follow a power law) must not make one chunk the whole run."""
    chunks: list[list[Partner]] = []
    chunk: list[Partner] = []
    weight = 0
    for partner in partners:
        n = entries.get(partner.pk, 0)
        if chunk and (len(chunk) >= size or weight + n > max_entries):
            chunks.append(chunk)
            chunk, weight = [], 0
        chunk.append(partner)
        weight += n
    if chunk:
        chunks.append(chunk)
    return chunks


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


def _settled_decision(partner: Partner, payout: Payout) -> Decision:
    """The decision about a payout already sent (or failed): the run leaves it as it is."""
    if payout.status == PayoutStatus.NEEDS_REVIEW:
        reason = Reason.NEEDS_REVIEW
    else:
        reason = Reason.FAILED if payout.money_back else Reason.ALREADY_PAID
    return _payout_decision(partner, payout, reason, detail=payout.detail)


def run(
    *,
    period: str,
    dry_run: bool,
    client: PayPalClient | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Decision]:
    """The payout run for ``period`` (``YYYY-MM``). A real run refuses to start before its date (entries
    would be paid before their hold ends); a dry run may preview it at any time.

    Two queries read every partner's net and the period's payouts, and one per 5,000 candidates reads them; a
    partner with nothing to pay costs no more. The partners to pay are paid in chunks of ``batch_size``
    (default ``settings.PAYOUT_BATCH_SIZE``), one PayPal batch per chunk with one item per partner
    (:func:`_pay_chunk`); payouts left ``created`` by an earlier attempt are sent again in the batch they were
    saved in (:func:`_send_batch`). ``workers`` (default ``settings.PAYOUT_RUN_WORKERS``, 1) > 1 works on that
    many chunks at once, each on its own database connection: every guarantee holds per chunk (the partners'
    row locks, the unique constraints), so the order across chunks does not matter. Decisions come back in
    partner order either way. ``progress(done, total)``, if given, is called after each chunk with the number of
    partners sent to PayPal so far and in all (from the chunks' threads, one call at a time)."""
    when = run_at(period)
    if not dry_run and clock.now() < when:
        raise RunNotDue(f"The {period} payout run is dated {when.isoformat()}; it cannot run earlier.")
    sizes: dict[int, int] = {}
    nets = _nets(period, sizes)
    existing = {payout.partner_id: payout for payout in Payout.objects.filter(period=period)}
    # Every approved partner gets a decision, even with nothing earned: the run lists each partner's payout or
    # the reason for none.
    approved = set(Partner.objects.filter(status=PartnerStatus.APPROVED).values_list("pk", flat=True))
    candidates = _partners(set(nets) | set(existing) | approved)
    refused = refused_addresses()
    decisions: dict[int, Decision] = {}
    new: list[Partner] = []
    resend: dict[str, list[Partner]] = {}
    for partner in candidates:
        payout = existing.get(partner.pk)
        net = nets.get(partner.pk, 0)
        if payout is not None:
            if payout.status != PayoutStatus.CREATED:
                decisions[partner.pk] = _settled_decision(partner, payout)
            elif dry_run:
                decisions[partner.pk] = _payout_decision(partner, payout, Reason.WOULD_RETRY)
            else:  # saved by an earlier attempt: sent again in its own batch, with the same ids
                resend.setdefault(payout.sender_batch_id, []).append(partner)
            continue
        if partner.pk not in nets:
            decisions[partner.pk] = _decision(partner, amount_cents=0, status="", reason=Reason.NOTHING_DUE)
        elif (blocked := payable_reason(partner, refused=refused)) is not None:
            decisions[partner.pk] = _decision(partner, amount_cents=0, status="", reason=blocked, carried_cents=net)
        elif not reaches_minimum(net):
            decisions[partner.pk] = _decision(
                partner, amount_cents=0, status="", reason=Reason.UNDER_MINIMUM, carried_cents=net
            )
        else:
            new.append(partner)
    size = min(MAX_BATCH_ITEMS, max(1, int(batch_size or getattr(settings, "PAYOUT_BATCH_SIZE", 1000) or 1000)))
    max_entries = max(1, int(getattr(settings, "PAYOUT_CHUNK_ENTRIES", 100_000) or 100_000))
    if dry_run:
        # The batch each partner's payout would be in: the real run's chunks, each named after its first item.
        for chunk in _chunks(new, size=size, entries=sizes, max_entries=max_entries):
            batch_id = sender_item_id_for(chunk[0], period)
            for partner in chunk:
                decisions[partner.pk] = _decision(
                    partner, amount_cents=nets[partner.pk], status="", reason=Reason.WOULD_PAY, sender_batch_id=batch_id
                )
        new = []
    if not new and not resend:
        return [decisions[partner.pk] for partner in candidates]
    owned = client is None
    paypal = client or client_from_settings()
    units: list[tuple[list[Partner], Callable[[], dict[int, Decision]]]] = []
    for batch_id, members in resend.items():
        units.append((members, partial(_send_batch, sender_batch_id=batch_id, period=period, client=paypal)))
    for chunk in _chunks(new, size=size, entries=sizes, max_entries=max_entries):
        units.append((chunk, partial(_pay_chunk, partners=chunk, period=period, nets=nets, client=paypal)))

    total, sent, counting = sum(len(partners) for partners, _ in units), [0], threading.Lock()

    def work(unit: tuple[list[Partner], Callable[[], dict[int, Decision]]]) -> dict[int, Decision]:
        result = _work(unit)
        if progress is not None:
            with counting:
                sent[0] += len(unit[0])
                progress(sent[0], total)
        return result

    def _work(unit: tuple[list[Partner], Callable[[], dict[int, Decision]]]) -> dict[int, Decision]:
        partners, fn = unit
        try:
            done = fn()
        except Exception as exc:  # one chunk's surprise must not stop everybody else's payout
            logger.exception("payout run %s: a chunk of %d partners", period, len(partners))
            done = {}
            error = repr(exc)[:300]
        else:
            error = "the chunk said nothing about this partner"
        mine = {partner.pk for partner in partners}
        result = {pk: decision for pk, decision in done.items() if pk in mine}
        for partner in partners:
            if partner.pk not in result:
                result[partner.pk] = _decision(partner, amount_cents=0, status="", reason=Reason.ERROR, detail=error)
        return result

    workers = int(workers or getattr(settings, "PAYOUT_RUN_WORKERS", 1) or 1)
    try:
        if workers <= 1 or len(units) < 2:
            results = [work(unit) for unit in units]
        else:

            def threaded(unit: tuple[list[Partner], Callable[[], dict[int, Decision]]]) -> dict[int, Decision]:
                try:
                    return work(unit)
                finally:
                    connections.close_all()  # this thread's connection, opened by Django for it

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payout-run") as pool:
                results = list(pool.map(threaded, units))
    finally:
        if owned:
            paypal.close()
    for result in results:
        decisions.update(result)
    return [decisions[partner.pk] for partner in candidates]


Refused = dict[int, list[tuple[str, dt.datetime | None]]]


def refused_addresses(*, partner_ids: list[int] | None = None) -> Refused:
    """Per partner, the PayPal addresses PayPal refused at create time (``failure`` ``address_refused``), with
    when: one query for a whole run (there are few)."""
    rows = Payout.objects.filter(status=PayoutStatus.FAILED, failure=Failure.ADDRESS_REFUSED)
    if partner_ids is not None:
        rows = rows.filter(partner_id__in=partner_ids)
    found: Refused = {}
    for partner_id, address, when in rows.order_by().values_list("partner_id", "receiver_email", "returned_at"):
        found.setdefault(partner_id, []).append((address.lower(), when))
    return found


def refused_address(partner: Partner, refused: Refused | None = None) -> str | None:
    """The partner's verified PayPal address if PayPal refused it and the partner has not confirmed an address
    since (a new one, or the same one again after fixing it at PayPal): sending to it again would fail again."""
    address = partner.verified_paypal_email
    if not address:
        return None
    if refused is None:
        refused = refused_addresses(partner_ids=[partner.pk])
    verified = partner.paypal_verified_at
    for email, when in refused.get(partner.pk, []):
        if email == address.lower() and (verified is None or when is None or verified <= when):
            return address
    return None


def payable_reason(partner: Partner, *, refused: Refused | None = None) -> str | None:
    """Why the partner cannot be paid now, or None. ``refused`` (:func:`refused_addresses`) spares a query per
    partner when many are asked."""
    if not partner.is_approved:
        return Reason.NOT_APPROVED
    if partner.payouts_held_at is not None:
        return Reason.HELD
    if partner.verified_paypal_email is None:
        return Reason.NO_VERIFIED_EMAIL
    if refused_address(partner, refused) is not None:
        return Reason.ADDRESS_REFUSED
    return None


def _pay_chunk(
    *, partners: list[Partner], period: str, nets: dict[int, int], client: PayPalClient
) -> dict[int, Decision]:
    """Pay a chunk of partners with one PayPal batch. One transaction, a fixed number of statements whatever the
    chunk's size: the partners' rows are locked (in id order, so two runs cannot deadlock) and re-read, an
    existing payout for the period is left as it is (a concurrent run made it: the loser reads the winner's, and
    sends its batch too, which PayPal answers once), a partner no longer payable gets none, and every other
    partner gets a payout linking every eligible entry, whose amount is the sum of exactly the entries it links
    (none, and nothing kept, when that is under the minimum). The batch id is saved with the payouts and
    committed before PayPal is called (:func:`_send_batch`). The unique (partner, period) pair stays the last
    word."""
    ids = [partner.pk for partner in partners]
    decisions: dict[int, Decision] = {}
    others: set[str] = set()  # batches of payouts a concurrent run saved for partners of this chunk
    batch_id = ""
    amounts: dict[int, int] = {}  # payout id → the sum of the entries linked to it
    draft = f"draft-{secrets.token_hex(12)}"  # the chunk's rows until their batch is named, below
    with transaction.atomic():
        fresh = list(
            Partner.objects.select_for_update(of=("self",)).select_related("user").filter(pk__in=ids).order_by("pk")
        )
        found = {payout.partner_id: payout for payout in Payout.objects.filter(period=period, partner_id__in=ids)}
        refused = refused_addresses(partner_ids=ids)
        rows: list[Payout] = []
        for partner in fresh:
            payout = found.get(partner.pk)
            if payout is not None:
                if payout.status == PayoutStatus.CREATED:
                    others.add(payout.sender_batch_id)
                else:
                    decisions[partner.pk] = _payout_decision(partner, payout, Reason.ALREADY_PAID)
                continue
            blocked = payable_reason(partner, refused=refused)  # as read under the lock
            if blocked is not None:  # held, unapproved or unverified since the run started
                decisions[partner.pk] = _decision(
                    partner, amount_cents=0, status="", reason=blocked, carried_cents=nets.get(partner.pk, 0)
                )
                continue
            rows.append(
                Payout(
                    partner=partner,
                    period=period,
                    amount_cents=0,  # set below from the entries linked
                    currency=CURRENCY,
                    sender_batch_id=draft,
                    sender_item_id=sender_item_id_for(partner, period),
                    receiver_email=partner.verified_paypal_email or "",
                    status=PayoutStatus.CREATED,
                )
            )
        if rows:
            Payout.objects.bulk_create(rows)
            amounts = _link_chunk(payouts=rows, period=period)
            small = [row.pk for row in rows if not reaches_minimum(amounts.get(row.pk, 0))]
            if small:  # the entries changed under us (another run took them): nothing to pay now
                PayoutEntry.objects.filter(payout_id__in=small).delete()
                Payout.objects.filter(pk__in=small).delete()
            by_partner = {partner.pk: partner for partner in fresh}
            kept = [row for row in rows if row.pk not in small]
            for row in rows:
                if row.pk in small:
                    decisions[row.partner_id] = _decision(
                        by_partner[row.partner_id], amount_cents=0, status="", reason=Reason.UNDER_MINIMUM
                    )
            if kept:
                # Named after its first item: item ids are unique and an item is in one batch only, so no other
                # batch, earlier or later, can have this id (PayPal refuses a sender_batch_id it has seen).
                batch_id = kept[0].sender_item_id
                for row in kept:
                    row.amount_cents, row.sender_batch_id = amounts[row.pk], batch_id
                _name_batch(kept, batch_id=batch_id)
    if batch_id:
        decisions.update(_send_batch(sender_batch_id=batch_id, period=period, client=client))
    for other in sorted(others):
        sent = _send_batch(sender_batch_id=other, period=period, client=client)
        decisions.update({pk: d for pk, d in sent.items() if pk in ids and pk not in decisions})
    return decisions


_LINK = (
    "WITH chunk (payout_id, partner_id) AS (VALUES {pairs}) "
    "INSERT INTO payouts_payoutentry (payout_id, entry_id) SELECT chunk.payout_id, eligible.link_entry "
    "FROM ({eligible}) AS eligible JOIN chunk ON chunk.partner_id = eligible.link_partner"
)
# PostgreSQL: the eligible rows are read first (ids, amounts), then linked from two arrays, so what is counted is
# exactly what is linked and no plan depends on statistics about rows this transaction (or this run) just wrote.
# No other transaction can link the chunk's entries meanwhile: the run and a staff retry both hold the partner's
# row lock to link (the partial unique index would refuse it anyway).
_LINK_PG = (
    "INSERT INTO payouts_payoutentry (payout_id, entry_id) "
    "SELECT t.payout_id, t.entry_id FROM unnest(%s::bigint[], %s::bigint[]) AS t(payout_id, entry_id)"
)


def _link_chunk(*, payouts: list[Payout], period: str) -> dict[int, int]:
    """Link every entry the run pays each partner to that partner's payout among ``payouts`` (one INSERT …
    SELECT for the chunk), and return each payout's sum of exactly the entries it links.

    The chunk's payouts are given to the database as a list of (payout, partner) pairs, not found by a join: they
    were inserted in this transaction, and a planner that believes the table empty (statistics from before the
    run) could otherwise scan the million entries once per payout."""
    # The pairs are formatted as integers only (ids through int()).
    by_partner = {payout.partner_id: payout.pk for payout in payouts}
    eligible = (
        unpaid_entries(period)
        .filter(partner_id__in=list(by_partner))
        .order_by()
        .values(link_entry=F("pk"), link_partner=F("partner_id"), link_amount=F("amount_cents"))
    )
    sql, params = eligible.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql, params)
            # In (payout, entry) order: a payout's links then sit together in the table, in the order of the unique
            # (payout, entry) index, which is how a partner's paid entries are read (commissions.models
            # .paid_entry_ids): a few pages per payout rather than one page per link.
            found = sorted(cursor.fetchall(), key=lambda row: (by_partner[row[1]], row[0]))
            payout_ids = [by_partner[partner] for _, partner, _ in found]
            entry_ids = [entry for entry, _, _ in found]
            cursor.execute(_LINK_PG, [payout_ids, entry_ids])
            rows = [(by_partner[partner], amount) for _, partner, amount in found]
        else:
            pairs = ", ".join(f"({int(payout)}, {int(partner)})" for partner, payout in by_partner.items())
            cursor.execute(_LINK.format(pairs=pairs, eligible=sql), params)
            rows = list(
                PayoutEntry.objects.filter(payout_id__in=list(by_partner.values()), released_at__isnull=True)
                .order_by()
                .values_list("payout_id", "entry__amount_cents")
            )
    amounts: dict[int, int] = {}
    for payout_id, amount in rows:
        amounts[payout_id] = amounts.get(payout_id, 0) + int(amount)
    return amounts


# Integers only are formatted into it (ids and amounts, through int()).
_NAME = (
    "UPDATE payouts_payout SET amount_cents = v.column2, sender_batch_id = %s FROM (VALUES {values}) AS v "
    "WHERE payouts_payout.id = v.column1"
)


def _name_batch(payouts: list[Payout], *, batch_id: str) -> None:
    """Save the chunk's amounts and its batch id in one UPDATE … FROM (VALUES …)."""
    values = ", ".join(f"({int(payout.pk)}, {int(payout.amount_cents)})" for payout in payouts)
    with connection.cursor() as cursor:
        cursor.execute(_NAME.format(values=values), [batch_id])


#: Refusals about our credentials or permissions (a 401 from the token endpoint, a 403), not about this payout:
#: PayPal created nothing, and once the configuration is fixed the same sender_batch_id must be sent.
_NOT_THIS_PAYOUT = frozenset({401, 403})


def _send_batch(*, sender_batch_id: str, period: str, client: PayPalClient) -> dict[int, Decision]:
    """Send the batch ``sender_batch_id`` as saved: every payout of it still ``created``, one item each, in id
    order (the same items at every attempt: PayPal may already have the batch). Decisions by partner id.

    - Created (201), or :class:`DuplicateBatch` (an earlier attempt created it unseen): every item is recorded
      as sent, once (:func:`_mark_batch_sent`); PayPal's item statuses then come by reconciliation, per item.
    - :class:`Retryable` (or a 401/403, our configuration): every payout stays ``created`` with this id.
    - A terminal refusal naming some items (``items[3].receiver``…): PayPal created nothing, so those payouts fail
      (their money is back in the balance) and the others are saved under a new batch id and sent again. A
      refusal of the whole batch fails every payout of it.

    Once saved, a batch is sent as it is even if one of its partners was held meanwhile (PayPal may have it
    already: leaving an item out could never be undone); only when every partner of it is blocked does it wait.
    It is never sent again once its first attempt is older than :data:`RESEND_WINDOW` (PayPal forgets a
    ``sender_batch_id`` after 30 days and would pay it again): its payouts go to ``needs_review`` for staff."""
    decisions: dict[int, Decision] = {}
    while True:
        members = list(
            Payout.objects.filter(sender_batch_id=sender_batch_id).select_related("partner__user").order_by("pk")
        )
        pending = [payout for payout in members if payout.status == PayoutStatus.CREATED]
        for payout in members:
            if payout.status != PayoutStatus.CREATED and payout.partner_id not in decisions:
                decisions[payout.partner_id] = _settled_decision(payout.partner, payout)
        if not pending:
            return decisions
        first = min((payout.first_sent_at for payout in pending if payout.first_sent_at), default=None)
        if first is not None and clock.now() - first > RESEND_WINDOW:
            for payout in _to_review([payout.pk for payout in pending], sender_batch_id=sender_batch_id, first=first):
                decisions[payout.partner_id] = _payout_decision(
                    payout.partner, payout, Reason.NEEDS_REVIEW, detail=payout.detail
                )
            return decisions
        blocked = [payable_reason(payout.partner) for payout in pending]
        if all(blocked):  # held or unverified since the batch was saved: sent once one of them is not
            for payout, why in zip(pending, blocked, strict=True):
                decisions[payout.partner_id] = _payout_decision(payout.partner, payout, why or Reason.ERROR)
            return decisions
        ids = [payout.pk for payout in pending]
        Payout.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1)
        # Saved before the call: a crash or a timeout after it must still count this as the first attempt.
        Payout.objects.filter(pk__in=ids, first_sent_at__isnull=True).update(first_sent_at=clock.now())
        items = []
        for payout in pending:
            payout.attempts += 1
            if not payout.receiver_email:  # saved before receiver_email was (a payout from before the batches)
                payout.receiver_email = payout.partner.verified_paypal_email or ""
                Payout.objects.filter(pk=payout.pk).update(receiver_email=payout.receiver_email)
            items.append(
                PayoutItem(
                    receiver=payout.receiver_email,
                    amount_cents=payout.amount_cents,
                    sender_item_id=payout.sender_item_id,
                    currency=payout.currency,
                    note=paypal_note(payout.period),
                )
            )
        attempt = max(payout.attempts for payout in pending)
        try:
            created = client.create_payout(
                sender_batch_id=sender_batch_id,
                items=items,
                email_subject="Your Apertur partner payout",
                email_message=paypal_message(period),
            )
        except DuplicateBatch as exc:  # an earlier attempt created it unseen
            detail = f"duplicate batch: {exc}" + ("" if exc.payout_batch_id else " (no batch id: reconcile by hand)")
            sent = _mark_batch_sent(ids, batch_id=exc.payout_batch_id or "", detail=detail)
            if not exc.payout_batch_id and sent:
                # PayPal's answer always links the batch; without its id nothing polls these payouts (reconcile
                # looks batches up by it) and only a webhook could move them: a person must look in PayPal.
                logger.error("PayPal has batch %s but did not say its id", sender_batch_id)
                _alert_staff(
                    key=f"batch-without-id:{sender_batch_id}",
                    about=sent[0],
                    subject=f"PayPal has payout batch {sender_batch_id} but did not say its id",
                    lines=[
                        f"PayPal answered that payout batch {sender_batch_id} already exists, without the link "
                        "that gives its payout_batch_id.",
                        f"Its {len(sent)} payout(s) are recorded as sent, but Apertur cannot poll their status: "
                        "find the batch in PayPal's dashboard by its sender_batch_id and check each item.",
                    ],
                )
        except PayPalError as exc:
            detail = f"attempt {attempt}: {exc}"
            ours = exc.status in _NOT_THIS_PAYOUT or exc.name in SENDER_ERRORS
            if isinstance(exc, Retryable) or ours:
                if ours and not any(exc.name and exc.name in payout.detail for payout in pending):
                    # Our credentials or our funding: staff fix it, and the next tick sends the same id.
                    _alert_staff(
                        key=f"batch-refused:{sender_batch_id}:{exc.status}:{exc.name}",
                        about=pending[0],
                        subject=f"PayPal refused payout batch {sender_batch_id} on our side",
                        lines=[
                            f"{exc}",
                            f"{len(pending)} payout(s) of {period} wait with the same sender_batch_id; they are "
                            "sent again at every pass of the schedule once the PayPal account or configuration is "
                            "fixed.",
                        ],
                    )
                Payout.objects.filter(pk__in=ids).update(detail=detail)
                for payout in pending:
                    payout.detail = detail
                    decisions[payout.partner_id] = _payout_decision(payout.partner, payout, Reason.RETRY, detail=detail)
                return decisions
            # A terminal refusal: PayPal created nothing. Recorded, the money is back in the balance.
            named = {i for i in exc.refused_items() if i < len(pending)}
            refused = named or set(range(len(pending)))
            for i in sorted(refused):
                failure = Failure.ADDRESS_REFUSED if _refuses_receiver(exc, i) else Failure.SENDER
                failed = _money_back(
                    pending[i].pk, status=PayoutStatus.FAILED, item_status="", detail=detail, failure=failure
                )
                decisions[failed.partner_id] = _payout_decision(
                    pending[i].partner, failed, Reason.FAILED, detail=failed.detail
                )
            rest = [payout for i, payout in enumerate(pending) if i not in refused]
            if not rest:
                return decisions
            # The others were refused with them, not for themselves: a new batch (the old id is spent), sent now.
            renamed = f"{rest[0].sender_item_id}-r{attempt}"
            moved = Payout.objects.filter(
                pk__in=[payout.pk for payout in rest], sender_batch_id=sender_batch_id, status=PayoutStatus.CREATED
            ).update(
                sender_batch_id=renamed,
                first_sent_at=None,  # a new id: PayPal has never seen it
                detail=f"{detail} (another item's refusal; sent again in {renamed})",
            )
            if not moved:
                return decisions
            sender_batch_id = renamed
            continue
        else:
            if created.batch_status == "DENIED":
                # PayPal took the request but its preliminary checks denied the batch (Payouts v1, create batch
                # payout: batch_status is PENDING "if the payout passes preliminary checks"): nobody is paid and the
                # id is spent. Our side, as a batch DENIED later is: the money is back, staff are told, and the
                # partner, never told it was sent, is not told it is on its way.
                detail = f"attempt {attempt}: batch {created.payout_batch_id} DENIED by PayPal when it was created"
                Payout.objects.filter(pk__in=ids, status=PayoutStatus.CREATED).update(
                    paypal_batch_id=created.payout_batch_id
                )
                for payout in pending:
                    failed = _money_back(
                        payout.pk,
                        status=PayoutStatus.FAILED,
                        item_status="",
                        detail=detail,
                        failure=Failure.SENDER,
                        from_status=PayoutStatus.CREATED,
                    )
                    decisions[failed.partner_id] = _payout_decision(
                        payout.partner, failed, Reason.FAILED, detail=failed.detail
                    )
                return decisions
            _mark_batch_sent(ids, batch_id=created.payout_batch_id, detail="")
        for payout in Payout.objects.filter(pk__in=ids).select_related("partner__user"):
            decisions[payout.partner_id] = _payout_decision(payout.partner, payout, Reason.PAID)
        return decisions


def _refuses_receiver(exc: PayPalError, index: int) -> bool:
    """PayPal's refusal names the receiver of item ``index`` (``items[3].receiver``): the partner's address."""
    prefix = f"items[{index}]"
    return any(
        str(detail.get("field", "")).startswith(prefix) and str(detail.get("field", "")).endswith(".receiver")
        for detail in exc.details
    )


def paypal_note(period: str) -> str:
    """The item's note PayPal shows the partner: the month the commissions were earned (the run of ``period``
    pays the previous calendar month's), and the run's date. Well under PayPal's 4,000 characters."""
    return f"Apertur partner commissions for {commission_month(period)} (paid {run_at(period).date().isoformat()})"


def paypal_message(period: str) -> str:
    """The batch's ``email_message`` (PayPal: at most 1,000 characters)."""
    return f"Your Apertur partner commissions for {commission_month(period)}, paid {run_at(period).date().isoformat()}."


def commission_month(period: str) -> str:
    """The month whose commissions the run of ``period`` pays, in words: ``2026-04`` → ``March 2026``."""
    year, month = parse_period(period)
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return dt.date(year, month, 1).strftime("%B %Y")


def _to_review(ids: list[int], *, sender_batch_id: str, first: dt.datetime) -> list[Payout]:
    """The payouts ``ids`` of a batch first sent at ``first``, too long ago to send again: marked
    ``needs_review`` (their entries stay linked, so no later run pays them), audited, staff alerted. Once: only
    rows still ``created`` under their lock move."""
    on = clock.business_date(first).isoformat()
    detail = (
        f"needs_review: {sender_batch_id} first sent {on}, PayPal may have paid it; check PayPal before retrying "
        "(apertur payouts resolve)"
    )
    with transaction.atomic():
        locked = list(
            Payout.objects.select_for_update(of=("self",))
            .select_related("partner__user")
            .filter(pk__in=ids, status=PayoutStatus.CREATED)
            .order_by("pk")
        )
        if not locked:
            return list(Payout.objects.filter(pk__in=ids).select_related("partner__user").order_by("pk"))
        Payout.objects.filter(pk__in=[payout.pk for payout in locked]).update(
            status=PayoutStatus.NEEDS_REVIEW, detail=detail
        )
        events = []
        for payout in locked:
            payout.status, payout.detail = PayoutStatus.NEEDS_REVIEW, detail
            events.append(
                audit.event(
                    action="payout.needs_review",
                    obj=payout,
                    data={"batch": sender_batch_id, "item": payout.sender_item_id, "first_sent_at": first.isoformat()},
                )
            )
        AuditEvent.objects.bulk_create(events)
        logger.error(
            "payout batch %s first sent %s: not sent again, %d payout(s) need review", sender_batch_id, on, len(locked)
        )
        _alert_staff(
            key=f"needs-review:{sender_batch_id}",
            about=locked[0],
            subject=f"Payout batch {sender_batch_id} needs review: PayPal may have paid it",
            lines=[
                f"Batch {sender_batch_id} was first sent to PayPal on {on} and never confirmed. PayPal deduplicates a "
                "sender_batch_id for 30 days only, so it is not sent again.",
                "Look it up in PayPal (Activity, or the payouts report, by the batch or item ids below), then say what",
                "you found on the payout's page in the admin (Payouts > the payout > Resolve this review), or:",
                "  apertur payouts resolve --item <sender_item_id> --paypal-batch <PayPal batch id>   (PayPal has it)",
                "  apertur payouts resolve --item <sender_item_id> --not-paid                         (it does not)",
                "",
                *(
                    f"{payout.sender_item_id}  {format_cents(payout.amount_cents, payout.currency)}  "
                    f"{payout.partner.user.email}  to {payout.receiver_email}"
                    for payout in locked
                ),
            ],
        )
    return locked


#: One staff alert per subject of concern (``key``) at most this often: a refused batch of 1,000 payouts, or a
#: credentials error met at every pass of the schedule, is one email, not one per payout or per pass.
STAFF_ALERT_EVERY = alerts.ALERT_EVERY


def _alert_staff(*, subject: str, lines: list[str], key: str, about: Payout) -> None:
    """Tell the staff address (``STAFF_NOTIFY_EMAIL``) about something a person must do, once the surrounding
    transaction commits, unless an alert with the same ``key`` went out within :data:`STAFF_ALERT_EVERY` (the
    audit log, ``payout.staff_alerted`` on ``about``, records each one sent). The rule is core's
    (:func:`apertur.core.alerts.alert_staff`); this is its payouts template and audit action."""
    alerts.alert_staff(
        action="payout.staff_alerted",
        about=about,
        key=key,
        subject=subject,
        lines=lines,
        template="emails/payout_staff_alert",
    )


def _mark_batch_sent(
    ids: list[int], *, batch_id: str, detail: str, from_status: str = PayoutStatus.CREATED
) -> list[Payout]:
    """Record the payouts ``ids`` (one batch's) as sent, once, under their row locks, in one transaction of a few
    statements; each partner is told (one mail connection for the batch). The rows this call recorded (another run
    may have recorded some or all first). Their ``sent_at`` is what makes their linked entries paid
    (``commissions.models.paid_entry_ids``): nothing is written on the entries themselves."""
    now = clock.now()
    with transaction.atomic():
        locked = list(
            Payout.objects.select_for_update(of=("self",))
            .select_related("partner__user")
            .filter(pk__in=ids, status=from_status)
            .order_by("pk")
        )
        if not locked:
            return []
        pks = [payout.pk for payout in locked]
        Payout.objects.filter(pk__in=pks).update(
            status=PayoutStatus.SENT, paypal_batch_id=batch_id, sent_at=now, processing_since=now, detail=detail
        )
        events = []
        for payout in locked:
            payout.status, payout.paypal_batch_id, payout.sent_at, payout.processing_since, payout.detail = (
                PayoutStatus.SENT,
                batch_id,
                now,
                now,
                detail,
            )
            events.append(
                audit.event(
                    action="payout.sent",
                    obj=payout,
                    data={"amount_cents": payout.amount_cents, "batch": batch_id, "item": payout.sender_item_id},
                )
            )
        AuditEvent.objects.bulk_create(events)
        mail.send_many([_mail(payout, "sent") for payout in locked])
    return locked


# --- after the batch: PayPal's item status ------------------------------------------------------------


def apply_item_status(
    *,
    payout_id: int,
    transaction_status: str,
    item_id: str = "",
    detail: str = "",
    failure: str = "",
    sender_item_id: str = "",
) -> Payout:
    """Move the payout to the state PayPal's item status means (:data:`ITEM_STATES`), at most once per
    change, under a row lock: webhooks and the poller may apply the same status concurrently. A payout whose
    money is already back stays so (a later attempt, if any, has its own batch id). ``failure``
    (:class:`~apertur.payouts.models.Failure`) says whose side a money-back status is on.

    ``sender_item_id``, when given, is the item the status is about (as the caller read the payout before asking
    PayPal): if the payout has moved on to another item since (a staff retry while a poll was reading PayPal), the
    status is about the earlier item and changes nothing. Otherwise a stale RETURNED of the old item would give
    back the money its retry is paying: paid twice."""
    target = ITEM_STATES.get(transaction_status)
    if target is None:
        return _unknown_item_status(
            payout_id=payout_id, transaction_status=transaction_status, item_id=item_id, sender_item_id=sender_item_id
        )
    if target in MONEY_BACK:
        return _money_back(
            payout_id,
            status=target,
            item_status=transaction_status,
            detail=detail,
            item_id=item_id,
            failure=failure,
            sender_item_id=sender_item_id,
        )
    now = clock.now()
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout_id)
        if sender_item_id and payout.sender_item_id != sender_item_id:
            return payout  # about an earlier item of this payout: the current one has its own status
        payout.checked_at = now
        fields = ["checked_at"]
        if item_id and payout.paypal_item_id != item_id:
            payout.paypal_item_id = item_id
            fields.append("paypal_item_id")
        if payout.money_back or payout.status in _UNSENT:
            payout.save(update_fields=fields)
            return payout
        if payout.status == target:
            if payout.item_status != transaction_status:
                # ONHOLD became BLOCKED (or back): one state of ours, but not the same thing for staff to chase.
                audit.record(
                    action="payout.status",
                    obj=payout,
                    data={"from": target, "to": target, "paypal": transaction_status, "paypal_was": payout.item_status},
                )
                payout.item_status = transaction_status
                fields.append("item_status")
            payout.save(update_fields=fields)
            return payout
        if payout.status == PayoutStatus.PAID:
            # PayPal takes a paid item back only by reversing or refunding it (money back, above). Another status
            # read after SUCCESS (an answer that omits it, which reads as PENDING, or a stale one) leaves it paid:
            # moving it would show the partner "Processing" again, and the next SUCCESS would tell them twice.
            logger.warning(
                "payout %s (%s): PayPal reported %s for an item already paid; left paid",
                payout.pk,
                payout.sender_item_id,
                transaction_status,
            )
            payout.save(update_fields=fields)
            return payout
        previous = payout.status
        payout.status, payout.item_status = target, transaction_status
        fields += ["status", "item_status", "held_since"]
        # The hold's clock starts when PayPal holds the item and stops when it lets go of it (alert_held).
        payout.held_since = now if target == PayoutStatus.HELD else None
        if target == PayoutStatus.HELD and payout.held_alerted_at is not None:
            # Held again after PayPal let go of it: a new hold, which staff hear about in its turn.
            payout.held_alerted_at = None
            fields.append("held_alerted_at")
        if target == PayoutStatus.PENDING and previous != PayoutStatus.SENT:
            # Back to PENDING from a hold (or another state PayPal left): processing starts again from now, and
            # staff hear about it in its turn (alert_processing).
            payout.processing_since, payout.processing_alerted_at = now, None
            fields += ["processing_since", "processing_alerted_at"]
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


#: Payouts PayPal is not known to have: the partner was never told they were sent.
_UNSENT = frozenset({PayoutStatus.CREATED, PayoutStatus.NEEDS_REVIEW})


def _unknown_item_status(*, payout_id: int, transaction_status: str, item_id: str, sender_item_id: str) -> Payout:
    """PayPal reported an item status not in :data:`ITEM_STATES` (one PayPal added later, or a malformed answer).
    Guessing could mark money paid that was not, or give back money PayPal pays: the payout keeps its state (and
    stays polled), its ``detail`` says what PayPal said, and staff are told (once a day while it lasts). Reading it
    must not fail either: one such item would end the poll, and with it every other payout's reconciliation."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout_id)
        if sender_item_id and payout.sender_item_id != sender_item_id:
            return payout  # about an earlier item of this payout (apply_item_status)
        shown = without_nul(str(transaction_status))[:40] or "(none)"
        payout.checked_at = clock.now()
        payout.detail = (
            f"PayPal reported item status {shown}, unknown to Apertur: left {payout.status}; check the item in PayPal"
        )[:300]
        fields = ["checked_at", "detail"]
        if item_id and payout.paypal_item_id != item_id:
            payout.paypal_item_id = item_id
            fields.append("paypal_item_id")
        payout.save(update_fields=fields)
        logger.error("payout %s (%s): unknown PayPal item status %r", payout.pk, payout.sender_item_id, shown)
        _alert_staff(
            key=f"unknown-item-status:{payout.sender_item_id}:{shown}",
            about=payout,
            subject=f"PayPal reported an unknown status {shown} for payout {payout.sender_item_id}",
            lines=[
                f"{payout.sender_item_id} ({format_cents(payout.amount_cents, payout.currency)}, "
                f"{payout.partner.user.email}), PayPal batch {payout.paypal_batch_id or '(none)'}, item "
                f"{payout.paypal_item_id or '(unknown)'}: PayPal says {shown}, a status Apertur does not know.",
                f"The payout stays {payout.get_status_display().lower()} and is still polled; nothing was paid or "
                "given back because of it. Look the item up in PayPal, and tell the developers about the new status.",
            ],
        )
    return payout


def _money_back(
    payout_id: int,
    *,
    status: str,
    item_status: str,
    detail: str,
    item_id: str = "",
    failure: str = "",
    from_status: str | None = None,
    sender_item_id: str = "",
) -> Payout:
    """The money of the payout is not (or no longer) with the partner: release its entries to the balance,
    record why and on whose side (``failure``), tell the partner. Once: a second call finds the payout already
    in a money-back state.

    - PayPal refused the partner's address at create time (:attr:`Failure.ADDRESS_REFUSED`): the partner is told
      which address and to change it; no run sends to it again until they confirm an address.
    - A failure on our side (:attr:`Failure.SENDER`: our funding, a DENIED batch, a request PayPal refused as a
      whole): staff are alerted to fix it and retry; a partner told it was sent is told it is delayed on our
      side, not to check their address.
    - Otherwise (the item FAILED or came back): a partner told it was sent is told it came back."""
    now = clock.now()
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("partner__user").get(pk=payout_id)
        if payout.money_back or (from_status is not None and payout.status != from_status):
            return payout
        if sender_item_id and payout.sender_item_id != sender_item_id:
            return payout  # about an earlier item (apply_item_status): its money came back already
        previous = payout.status
        payout.status = status
        payout.item_status = item_status
        payout.returned_at = now
        payout.checked_at = now
        payout.detail = detail or payout.detail
        payout.failure = failure
        payout.held_since = None
        if item_id:
            payout.paypal_item_id = item_id
        payout.save(
            update_fields=[
                "status",
                "item_status",
                "returned_at",
                "checked_at",
                "detail",
                "paypal_item_id",
                "failure",
                "held_since",
            ]
        )
        # Released links make their entries unpaid again (commissions.models.paid_entry_ids), due at the next run.
        PayoutEntry.objects.filter(payout=payout, released_at__isnull=True).update(released_at=now)
        audit.record(
            action="payout.money_back",
            obj=payout,
            data={
                "from": previous,
                "to": status,
                "paypal": item_status,
                "amount_cents": payout.amount_cents,
                "failure": failure,
            },
        )
        if failure == Failure.ADDRESS_REFUSED:
            _tell(payout, "refused", issue=_issue(detail))
        elif failure == Failure.SENDER:
            _alert_staff(
                key=f"sender-failure:{payout.sender_batch_id}",
                about=payout,
                subject=f"Payouts of batch {payout.sender_batch_id} failed on our side",
                lines=[
                    f"{payout.sender_item_id} ({format_cents(payout.amount_cents, payout.currency)}, "
                    f"{payout.partner.user.email}) failed: {payout.detail}",
                    "Other payouts of the same batch may have failed the same way: the admin's Payouts list, "
                    "filtered by status Failed, shows them all (one alert per batch a day).",
                    "This is about our PayPal account (funding, or a request PayPal refused as a whole), not the "
                    "partner's address. Fix it, then retry the payouts in the admin (Payouts → Retry): each is sent "
                    "at once with a new id rather than waiting for next month's run.",
                ],
            )
            if previous not in _UNSENT:
                _tell(payout, "delayed")
        elif previous not in _UNSENT:  # the partner was told it was sent: tell them it came back
            _tell(payout, "returned")
    return payout


def _issue(detail: str) -> str:
    """PayPal's own words about a refused receiver, from a payout's ``detail`` (``… VALIDATION_ERROR: …``)."""
    return detail.split(": ", 1)[1] if ": " in detail else detail


_MAILS = {
    "sent": ("Your Apertur payout of {amount} is on its way", "emails/payout_sent"),
    "paid": ("Your Apertur payout of {amount} was paid", "emails/payout_paid"),
    "returned": ("Your Apertur payout of {amount} came back", "emails/payout_returned"),
    "refused": ("PayPal refused your payout address: your Apertur payout of {amount} waits", "emails/payout_refused"),
    "delayed": ("Your Apertur payout of {amount} is delayed on our side", "emails/payout_delayed"),
}


def _mail(payout: Payout, what: str, **extra: Any) -> mail.Outgoing:
    subject, template = _MAILS[what]
    amount = format_cents(payout.amount_cents, payout.currency)
    return mail.Outgoing(
        to=payout.partner.user.email,
        subject=subject.format(amount=amount),
        template=template,
        # The address this payout was (to be) sent to, not the partner's address now: they may differ.
        context={
            "payout": payout,
            "amount": amount,
            "paypal_email": payout.receiver_email,
            # The run as the payout's page names it ("April 2026", "Wednesday 15 April 2026"), not its period key.
            "run_date": run_at(payout.period).date(),
            **extra,
        },
    )


def _tell(payout: Payout, what: str, **extra: Any) -> None:
    message = _mail(payout, what, **extra)
    mail.send(to=message.to, subject=message.subject, template=message.template, context=message.context)


# --- left unsettled by PayPal: held, or processing too long ----------------------------------------------

#: Days a PayPal item may stay ONHOLD or BLOCKED before staff are told (``PAYOUT_HELD_ALERT_DAYS``). PayPal settles
#: most held payout items within a few business days; five calendar days is past that even across a weekend.
HELD_ALERT_DAYS = 5

#: Days a payout may stay sent or processing (batch accepted, item not settled: PENDING) before staff are told
#: (``PAYOUT_PROCESSING_ALERT_DAYS``). PayPal settles an item in minutes; one left PENDING for days is waiting on
#: the sending account (payouts not enabled on it, no balance in the currency, a review), which only staff can fix.
PROCESSING_ALERT_DAYS = 3


def held_alert_after() -> dt.timedelta:
    """How long a payout may be held by PayPal before :func:`alert_held` tells staff."""
    return dt.timedelta(days=max(0, int(getattr(settings, "PAYOUT_HELD_ALERT_DAYS", HELD_ALERT_DAYS))))


def processing_alert_after() -> dt.timedelta:
    """How long a payout may stay sent or processing before :func:`alert_processing` tells staff."""
    return dt.timedelta(days=max(0, int(getattr(settings, "PAYOUT_PROCESSING_ALERT_DAYS", PROCESSING_ALERT_DAYS))))


def held_too_long(at: dt.datetime) -> Q:
    """Payouts PayPal has held (item ONHOLD or BLOCKED) for longer than :func:`held_alert_after` at ``at``: what
    staff are alerted about (:func:`alert_held`) and what the admin's "held more than N days" filter lists."""
    return Q(status=PayoutStatus.HELD, held_since__lte=at - held_alert_after())


def processing_too_long(at: dt.datetime) -> Q:
    """Payouts PayPal has had to process for longer than :func:`processing_alert_after` at ``at`` (since they were
    sent, or since PayPal let go of a hold) and has neither settled nor held (ours ``sent`` or ``processing``):
    what :func:`alert_processing` and the admin's filter list."""
    return Q(status__in=[PayoutStatus.SENT, PayoutStatus.PENDING], processing_since__lte=at - processing_alert_after())


def _alert_unsettled(
    *,
    due: Q,
    since: str,
    claim: str,
    action: str,
    limit: int,
    state: str,
    subject: Callable[[list[Payout]], str],
    lines: list[str],
) -> list[Payout]:
    """Tell staff, in one email, about the payouts matching ``due`` that PayPal has left unsettled too long, each
    once: the frame of :func:`alert_held` and :func:`alert_processing`. Each payout is claimed by a conditional
    UPDATE of ``claim`` (which ``due`` requires unset; atomic on SQLite and PostgreSQL alike: a second worker's
    UPDATE waits for the first's row lock, then finds it set) and audited ``action``, oldest ``since`` first, every
    claim in that order, so two passes at once lock the rows in the same order. The email (``subject``, then
    ``lines`` and the table of the payouts, PayPal's status — ``state`` while not known — since ``since``) goes
    when the claims commit; its once-a-day key names the first payout's item and stretch (``since``), so a new
    hold or stretch of one item is emailed too. Returns the payouts this call alerted about."""
    if not Payout.objects.filter(due).exists():
        return []
    with transaction.atomic():
        now = clock.now()
        ids = list(Payout.objects.filter(due).order_by(since, "id").values_list("pk", flat=True)[:limit])
        claimed = [pk for pk in ids if Payout.objects.filter(due, pk=pk).update(**{claim: now})]
        if not claimed:
            return []
        payouts = list(Payout.objects.filter(pk__in=claimed).select_related("partner__user").order_by(since, "id"))
        AuditEvent.objects.bulk_create(
            [
                audit.event(
                    action=action,
                    obj=payout,
                    data={
                        "paypal_item_id": payout.paypal_item_id,
                        "paypal": payout.item_status,
                        since: _iso(getattr(payout, since)),
                        "amount_cents": payout.amount_cents,
                    },
                )
                for payout in payouts
            ]
        )
        first = payouts[0]
        _alert_staff(
            key=f"{action}:{first.pk}:{first.sender_item_id}:{_iso(getattr(first, since))}",
            about=first,
            subject=subject(payouts),
            lines=[
                *lines,
                "",
                "PayPal item id | our item id | amount | partner | PayPal status since (Toronto)",
                *(
                    f"{payout.paypal_item_id or '(not known yet)'} | {payout.sender_item_id} | "
                    f"{format_cents(payout.amount_cents, payout.currency)} | {payout.partner.user.email}"
                    f"{f' ({payout.partner.company_name})' if payout.partner.company_name else ''}, to "
                    f"{payout.receiver_email} | {payout.item_status or state} since "
                    f"{clock.business_date(getattr(payout, since)).isoformat() if getattr(payout, since) else '?'}"
                    for payout in payouts
                ),
            ],
        )
        logger.warning("%s: staff told about %s", action, [p.sender_item_id for p in payouts])
    return payouts


def _iso(at: dt.datetime | None) -> str:
    return at.isoformat() if at else ""


def alert_held(*, limit: int = 200) -> list[Payout]:
    """Tell staff about every payout PayPal has held (item ONHOLD or BLOCKED) for longer than
    :func:`held_alert_after`: one email per pass listing each such item once, with what to do. Each hold is
    claimed by ``held_alerted_at`` (:func:`_alert_unsettled`; cleared when PayPal holds the item again after
    letting go of it), so it is alerted once however many passes and workers run, and audited
    (``payout.held_alerted``). Run by the schedule after polling, so an item PayPal has released meanwhile is not
    reported. Returns the payouts this call alerted about."""
    days = held_alert_after().days

    def subject(held: list[Payout]) -> str:
        if len(held) == 1:
            return f"PayPal has held payout {held[0].sender_item_id} for more than {days} days"
        return f"PayPal has held {len(held)} payouts for more than {days} days"

    return _alert_unsettled(
        due=held_too_long(clock.now()) & Q(held_alerted_at__isnull=True),
        since="held_since",
        claim="held_alerted_at",
        action="payout.held_alerted",
        limit=limit,
        state="held",
        subject=subject,
        lines=[
            f"PayPal has kept these payout items ONHOLD or BLOCKED for more than {days} days "
            "(PAYOUT_HELD_ALERT_DAYS). The money has left our PayPal balance and has not reached the partner.",
            "",
            "What to do:",
            "- Look each item up in PayPal by its PayPal item id (business account: Activity, or the payouts "
            "report), or ask PayPal's merchant support about it with that id. ONHOLD: PayPal is reviewing the "
            "payment. BLOCKED: PayPal has blocked it. PayPal tells the reason to the account holders only.",
            "- Ask the partner to look in their PayPal account for a message from PayPal: a hold can need "
            "something from the receiving account (a confirmation, a limitation to lift).",
            "- Do not pay it again another way, and there is nothing to cancel: PayPal's API cancels only "
            "unclaimed items. Apertur keeps asking PayPal; if PayPal releases the item the payout becomes paid, "
            "if PayPal sends it back its commissions return to the partner's balance and it can be retried "
            "(Payouts > Retry).",
            f"- Every payout held that long, and since when: {settings.APERTUR_BASE_URL}/admin/payouts/payout/"
            "?held=over",
        ],
    )


def alert_processing(*, limit: int = 200) -> list[Payout]:
    """Tell staff about every payout PayPal has had to process for longer than :func:`processing_alert_after` (since
    it was sent, or since PayPal let go of a hold) and has neither settled nor held (ours ``sent``, or
    ``processing``: item PENDING): one email per pass listing each such item once, with what to check on the
    sending account. Claimed by ``processing_alerted_at`` (once per stretch of processing: a release from a hold
    or a retry starts a new one) and audited (``payout.processing_alerted``). Run by the schedule after polling,
    so an item PayPal settled meanwhile is not reported. Returns the payouts this call alerted about."""
    days = processing_alert_after().days

    def subject(late: list[Payout]) -> str:
        if len(late) == 1:
            return f"PayPal has not settled payout {late[0].sender_item_id} in more than {days} days"
        return f"PayPal has not settled {len(late)} payouts in more than {days} days"

    return _alert_unsettled(
        due=processing_too_long(clock.now()) & Q(processing_alerted_at__isnull=True),
        since="processing_since",
        claim="processing_alerted_at",
        action="payout.processing_alerted",
        limit=limit,
        state="sent",
        subject=subject,
        lines=[
            f"PayPal has had these payouts to process for more than {days} days (PAYOUT_PROCESSING_ALERT_DAYS; "
            "since they were sent, or since PayPal let go of a hold) and still has them PENDING (or has not "
            "processed their batch): not paid, not held, not refused. PayPal "
            "settles a payout item in minutes; one left waiting this long is usually waiting on our account.",
            "",
            "What to check, in our PayPal business account:",
            "- that Payouts are enabled on it (a new account must ask PayPal for them: until then every item waits);",
            "- that it holds a balance in the payout's currency (CAD), or converts to it: an item in a currency "
            "the account does not hold waits for someone to accept or convert it;",
            "- messages from PayPal about a review or a limitation of the account;",
            "- each item by its PayPal item id (Activity, or the payouts report), or PayPal's merchant support "
            "with that id.",
            "Do not pay these again another way: PayPal may still pay them. Apertur keeps asking PayPal and "
            "records whatever PayPal decides; a payout that fails or comes back returns to the balance and can "
            f"be retried (Payouts > Retry). Every payout in this state: {settings.APERTUR_BASE_URL}"
            "/admin/payouts/payout/?processing=over",
        ],
    )


# --- staff operations -----------------------------------------------------------------------------------


def retry(*, payout: Payout, actor: Any, client: PayPalClient | None = None, ip: str | None = None) -> Payout:
    """Staff retry of a payout whose money came back (FAILED or RETURNED): the same payout, the entries it
    released that are still unpaid, a new ``sender_batch_id`` (``…-N+1``), sent now. Refused for any other
    state: until a terminal failure is recorded, the old id is the only one that may be used."""
    with transaction.atomic():
        # The partner's row first, as the run takes it before linking entries: no entry can be linked by both.
        Partner.objects.select_for_update().filter(pk=payout.partner_id).first()
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
            PayoutEntry.objects.filter(payout=locked, released_at__isnull=False)
            .exclude(_linked("entry_id"))  # unless another payout has taken it since
            .select_related("entry")
        )
        links = list(free)
        net = sum(link.entry.amount_cents for link in links)
        if net <= 0:
            raise NothingToRetry()
        PayoutEntry.objects.filter(pk__in=[link.pk for link in links]).update(released_at=None)
        previous = locked.sender_item_id
        locked.batch_number += 1
        # A batch of one, named after the new item: a new id for PayPal, used only now that the money is back.
        locked.sender_item_id = sender_item_id_for(partner, locked.period, locked.batch_number)
        locked.sender_batch_id = locked.sender_item_id
        locked.receiver_email = partner.verified_paypal_email or ""
        locked.amount_cents = net
        locked.status = PayoutStatus.CREATED
        locked.paypal_batch_id = locked.paypal_item_id = locked.item_status = ""
        locked.sent_at = locked.paid_at = locked.returned_at = locked.first_sent_at = None
        # A new PayPal item: its own hold, its own alerts.
        locked.held_since = locked.held_alerted_at = locked.processing_since = locked.processing_alerted_at = None
        locked.failure = Failure.NONE
        locked.detail = f"retry of {previous}"
        locked.save()
        audit.record(
            action="payout.retried",
            obj=locked,
            actor=actor,
            ip=ip,
            data={"previous": previous, "sender_batch_id": locked.sender_batch_id, "amount_cents": net},
        )
    with client_or_default(client) as paypal:
        _send_batch(sender_batch_id=locked.sender_batch_id, period=locked.period, client=paypal)
    locked.refresh_from_db()
    return locked


def resolve_review(
    *, payout: Payout, actor: Any, paypal_batch_id: str = "", paid: bool, client: PayPalClient | None = None
) -> list[Payout]:
    """Staff's answer about a ``needs_review`` payout (its batch was first sent more than :data:`RESEND_WINDOW`
    ago and never confirmed), after looking in PayPal:

    - ``paid=True``, ``paypal_batch_id`` the batch PayPal shows: every payout of its batch still in review is
      recorded as sent in that batch, and reconciliation reads each item's status from PayPal as for any batch.
    - ``paid=False`` (PayPal has no such batch): the payout's money is back in the balance (``failed``); the next
      run pays it, or staff retry it at once (a new id).

    The batch id is checked with PayPal first (``GET /v1/payments/payouts/{id}``: it must hold this payout's
    ``sender_item_id``): a mistyped id would otherwise mark money paid that PayPal never sent. Each answer acts
    only on a payout still in review, under its row lock, so two staff answers at once cannot both act.

    Returns the payouts resolved. Audited with the actor."""
    if payout.status != PayoutStatus.NEEDS_REVIEW:
        raise PayoutNotInReview(f"{payout.sender_item_id} is {payout.get_status_display().lower()}, not in review.")
    if paid:
        batch_id = paypal_batch_id.strip()
        if not batch_id:
            raise PayoutNotInReview("Give the PayPal batch id (payout_batch_id) that holds this payout.")
        try:
            with client_or_default(client) as paypal:  # a client of its own is closed after
                batch = paypal.get_batch(batch_id)
        except PayPalError as exc:
            raise ReviewBatchNotFound(f"PayPal has no batch {batch_id} we can read ({exc}); nothing changed.") from exc
        if not any(item.sender_item_id == payout.sender_item_id for item in batch.items):
            raise ReviewBatchNotFound(
                f"PayPal batch {batch_id} does not hold {payout.sender_item_id} (it was sent as "
                f"{batch.sender_batch_id or 'an unknown batch'}); nothing changed."
            )
        ids = list(
            Payout.objects.filter(sender_batch_id=payout.sender_batch_id, status=PayoutStatus.NEEDS_REVIEW).values_list(
                "pk", flat=True
            )
        )
        done = _mark_batch_sent(
            ids,
            batch_id=batch_id,
            detail=f"staff found it at PayPal ({batch_id})",
            from_status=PayoutStatus.NEEDS_REVIEW,
        )
    else:
        released = _money_back(
            payout.pk,
            status=PayoutStatus.FAILED,
            item_status="",
            detail="staff checked PayPal: not paid; the money is back in the balance",
            from_status=PayoutStatus.NEEDS_REVIEW,
        )
        done = [released] if released.status == PayoutStatus.FAILED else []
    if not done:
        payout.refresh_from_db()
        raise PayoutNotInReview(
            f"{payout.sender_item_id} is {payout.get_status_display().lower()}: someone resolved it meanwhile."
        )
    for resolved in done:
        audit.record(
            action="payout.review_resolved",
            obj=resolved,
            actor=actor,
            data={"paid": paid, "paypal_batch_id": paypal_batch_id.strip(), "status": str(resolved.status)},
        )
    return done


def _hold_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise HoldReasonRequired(field="reason")
    return text


def check_hold(*, reason: str) -> None:
    """Raise what :func:`hold_partner` would raise about ``reason``, changing nothing (staff confirm a hold)."""
    _hold_reason(reason)


def hold_partner(*, partner: Partner, actor: Any, reason: str, ip: str | None = None) -> Partner:
    """Stop the partner's payouts (commissions keep accumulating) until :func:`release_partner`."""
    reason = _hold_reason(reason)
    with transaction.atomic():
        Partner.objects.filter(pk=partner.pk).update(payouts_held_at=clock.now(), payouts_hold_reason=reason[:1000])
        partner.refresh_from_db()
        audit.record(action="partner.payouts_held", obj=partner, actor=actor, ip=ip, data={"reason": reason[:1000]})
    return partner


def release_partner(*, partner: Partner, actor: Any, ip: str | None = None) -> Partner:
    with transaction.atomic():
        Partner.objects.filter(pk=partner.pk).update(payouts_held_at=None, payouts_hold_reason="")
        partner.refresh_from_db()
        audit.record(action="partner.payouts_released", obj=partner, actor=actor, ip=ip)
    return partner
