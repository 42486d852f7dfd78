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

:func:`on_payments` is :func:`on_payment` for many payments at once (a backfill, a recompute): the same rule
(:func:`earning_for`), the same ``source_key``, the same follow-ups, with the database writes batched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Exists, OuterRef, QuerySet

from apertur.commissions.models import OWN_EARNING_KEY_PREFIX, CommissionEntry, EntryKind, paid_entry_ids
from apertur.core import clock
from apertur.core.money import CAD, Money, convert, percent_of
from apertur.projects.models import Dispute, DisputeStatus, Payment, Refund
from apertur.referrals.models import Attribution

RATE_PERCENT = Decimal(10)
HOLD = dt.timedelta(days=30)


def _write(*, payment: Payment, **fields: object) -> CommissionEntry | None:
    """Insert once; a second attempt with the same source_key is a no-op (returns None). The payment's date
    and customer are copied onto the entry (CommissionEntry.paid_at)."""
    try:
        with transaction.atomic():
            return CommissionEntry.objects.create(
                payment=payment, paid_at=payment.paid_at, customer_id=payment.customer_id, **fields
            )
    except IntegrityError:
        if CommissionEntry.objects.filter(source_key=fields["source_key"]).exists():
            return None  # written before: a replay
        raise  # any other constraint: never mistaken for a replay, the event is not lost silently


def _lock_payment(payment: Payment) -> None:
    """Take turns on one payment's ledger: writing its earning (:func:`on_payment`) and settling its facts
    (:func:`_settle`), so two facts at once cannot both apply the same difference, and an earning and a fact at once
    each see the other. NO KEY UPDATE: inserting the fact (a refund, a dispute) or the entry took a KEY SHARE lock
    on this payment; a plain FOR UPDATE would wait for the other transaction's KEY SHARE while it waits for ours:
    deadlock."""
    Payment.objects.select_for_update(no_key=True).filter(pk=payment.pk).first()


def _lock_payments(ids: list[int]) -> None:
    """:func:`_lock_payment` for the payments whose earnings a chunk of the bulk path is about to write, before it
    writes them and reads their refunds and disputes: a fact being settled at this moment (it found no earning yet)
    commits first and is read below; one settled after waits for this chunk and finds the earning. Before the
    insert, as :func:`on_payment` locks before its own: taken after, an ``on_payment`` of the same payment holding
    the lock waited for the chunk's uncommitted earning (its source_key) while the chunk waited for the lock, a
    deadlock. In id order, so two backfills at once take them in the same order. SQLite's writers take turns
    anyway: no query there."""
    if ids and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_PAYMENTS, [sorted(ids)])


# Counted, not returned: the locks are the point, not 10,000 rows sent back.
_LOCK_PAYMENTS = """
SELECT count(*) FROM (
    SELECT id FROM projects_payment WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE
) AS locked
"""


def customer_payments_locked(*, customer_id: int) -> list[Payment]:
    """A customer's payments in the order they were paid, each locked (:func:`_lock_payment`) in id order first: the
    order the bulk path (:func:`_lock_payments`) takes them in. Earning them one by one in paid order, each lock
    taken in turn, met a backfill holding a payment stored earlier but paid later: each waited for the other."""
    locked = list(Payment.objects.select_for_update(no_key=True).filter(customer_id=customer_id).order_by("pk"))
    return sorted(locked, key=lambda payment: (payment.paid_at, payment.pk))


def _earned(payment: Payment) -> CommissionEntry | None:
    return CommissionEntry.objects.filter(
        payment=payment, kind=EntryKind.EARNED, source_key=earned_key(payment.pk)
    ).first()


def earning_for(
    *, paid_at: dt.datetime, amount_cad_cents: int, attributed_at: dt.datetime
) -> tuple[int, dt.datetime] | None:
    """The earning rule for one payment by an attributed customer: (amount in CAD cents, available_at), or
    None when it earns nothing (paid before the attribution, or 10 % rounds to nothing)."""
    if paid_at < attributed_at:
        return None
    amount = percent_of(Money(amount_cad_cents), RATE_PERCENT).cents
    if amount <= 0:
        return None
    # In UTC: Python adds a timedelta to a zoned time on its wall clock, an hour off across a DST change.
    return amount, paid_at.astimezone(dt.UTC) + HOLD


def earned_key(payment_id: int) -> str:
    return f"{OWN_EARNING_KEY_PREFIX}{payment_id}"


@transaction.atomic  # the payment's lock needs one: its own when called alone, else the Stripe intake's
def on_payment(*, payment: Payment) -> CommissionEntry | None:
    if payment.customer_id is None:
        return None
    # Under the attribution's lock (its row only, not the partner's): a referral being dropped at this moment
    # (referrals.drop_unproven_referral, which keeps it once the customer has paid) either commits first and is not
    # found here, or waits for this payment and sees it. Read without the lock, the drop and the earning each
    # missed the other: the referral was dropped and the partner still earned.
    attribution = (
        Attribution.objects.filter(customer_id=payment.customer_id)
        .select_related("partner")
        .select_for_update(of=("self",))
        .first()
    )
    if attribution is None:
        return None
    earning = earning_for(
        paid_at=payment.paid_at, amount_cad_cents=payment.amount_cad_cents, attributed_at=attribution.at
    )
    if earning is None:
        return None
    amount, available_at = earning
    # The payment's lock before its earning is written and its refunds and disputes are read: a fact being
    # recorded at this moment either committed before (read below) or settles after this commits (it waits
    # for the lock in _settle, then finds the earning). Without it each missed the other.
    _lock_payment(payment)
    entry = _write(
        partner=attribution.partner,
        payment=payment,
        kind=EntryKind.EARNED,
        amount_cents=amount,
        available_at=available_at,
        source_key=earned_key(payment.pk),
    )
    if entry is not None:
        _after_earning(payment)
    return entry


def _after_earning(payment: Payment) -> None:
    """Refunds and disputes recorded before the earning existed (the customer was attributed after paying,
    through OAuth) must still net against it."""
    for dispute in Dispute.objects.filter(payment=payment).order_by("opened_at", "id"):
        dispute.payment = payment  # the object in hand, not a query per fact
        on_dispute_opened(dispute=dispute)
    for refund in Refund.objects.filter(payment=payment).order_by("created_at", "id"):
        refund.payment = payment
        on_refund(refund=refund)


# --- many payments at once ------------------------------------------------------------------------------

BULK_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class BulkResult:
    payments: int  # payments by attributed customers examined
    earned: int  # earned entries written (the others earned nothing or were already in the ledger)
    followed_up: int  # of those, payments with refunds or disputes settled after the earning, one by one


def on_payments(
    *, payments: QuerySet[Payment] | None = None, chunk_size: int = BULK_CHUNK, pipeline: bool | None = None
) -> BulkResult:
    """:func:`on_payment` for every payment of ``payments`` (default: all), by chunks of ``chunk_size`` in
    payment id order, one transaction per chunk. The same rule (:func:`earning_for`), the same source keys (an
    earning already in the ledger is left alone, as a replay is), and for each earning written the same
    follow-ups (:func:`_after_earning`, per payment: they are rare). It sends no first-payment notice: that is
    the Stripe handler's, not the ledger's.

    ``pipeline`` (default: on PostgreSQL outside a transaction) writes each chunk from a second thread, on its
    own database connection, while this thread reads and computes the next one: the database's work and
    Python's overlap. Chunks are disjoint and each is written in its own transaction, so the result is the
    same. Inside a transaction the writes must stay on the caller's connection: no pipeline there."""
    if pipeline is None:
        pipeline = connection.vendor == "postgresql" and not connection.in_atomic_block
    if pipeline and connection.in_atomic_block:
        raise ValueError("on_payments(pipeline=True) writes on another connection: call it outside a transaction.")
    chunks = _EarningChunks(payments, chunk_size)
    written: list[tuple[int, int]] = []  # (earnings written, payments settled) per chunk
    if not pipeline:
        written = [_write_chunk(*chunk) for chunk in chunks]
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer") as writer:
            try:
                previous: Future[tuple[int, int]] | None = None
                for chunk in chunks:  # at most one chunk in the writer while the next is read
                    if previous is not None:
                        written.append(previous.result())
                    previous = writer.submit(_write_chunk, *chunk)
                if previous is not None:
                    written.append(previous.result())
            finally:
                writer.submit(connections.close_all)  # the writer thread's own connection
    return BulkResult(
        payments=chunks.examined,
        earned=sum(wrote for wrote, _ in written),
        followed_up=sum(settled for _, settled in written),
    )


class _EarningChunks:
    """(first payment id, last payment id, earnings) per chunk of attributed payments, in id order; counts
    the payments examined."""

    def __init__(self, payments: QuerySet[Payment] | None, chunk_size: int) -> None:
        self.rows = (
            (payments if payments is not None else Payment.objects.all())
            .filter(customer__attribution__isnull=False)
            .order_by("pk")
            .values_list(
                "pk",
                "customer__attribution__partner_id",
                "customer__attribution__at",
                "paid_at",
                "amount_cad_cents",
                "customer_id",
            )
        )
        self.chunk_size = chunk_size
        self.examined = 0

    def __iter__(self) -> Iterator[tuple[int, int, list[_Earning]]]:
        last = 0
        while True:
            chunk = list(self.rows.filter(pk__gt=last)[: self.chunk_size])
            if not chunk:
                return
            first, last = chunk[0][0], chunk[-1][0]
            self.examined += len(chunk)
            new: list[_Earning] = []
            for payment_id, partner_id, attributed_at, paid_at, amount_cad, customer_id in chunk:
                earning = earning_for(paid_at=paid_at, amount_cad_cents=amount_cad, attributed_at=attributed_at)
                if earning is not None:
                    new.append((payment_id, partner_id, *earning, paid_at, customer_id))
            yield first, last, new


def _write_chunk(first: int, last: int, new: list[_Earning]) -> tuple[int, int]:
    """One chunk's earnings and their follow-ups, in one transaction: (earnings written, payments settled)."""
    with transaction.atomic():
        _lock_payments([payment_id for payment_id, *_ in new])
        created = _insert_earnings(new)
        # Payments of this chunk with a refund or a dispute (rare), by id range rather than a list of 10,000
        # ids, then narrowed to the earnings this call wrote.
        facts = set(Dispute.objects.filter(payment__gte=first, payment__lte=last).values_list("payment_id", flat=True))
        facts |= set(Refund.objects.filter(payment__gte=first, payment__lte=last).values_list("payment_id", flat=True))
        pending = facts.intersection(created)
        for payment in Payment.objects.filter(pk__in=pending).order_by("pk"):
            _after_earning(payment)
    return len(created), len(pending)


# The payment's date and customer are copied by the database from the payment row itself.
_INSERT_EARNINGS = """
INSERT INTO commissions_commissionentry
    (payment_id, partner_id, kind, amount_cents, available_at, source_key, created_at, paid_at, customer_id)
SELECT t.payment_id, t.partner_id, %s, t.amount_cents, t.available_at, t.source_key, %s, p.paid_at, p.customer_id
FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[], %s::varchar[])
    AS t(payment_id, partner_id, amount_cents, available_at, source_key)
JOIN projects_payment p ON p.id = t.payment_id
ON CONFLICT (source_key) DO NOTHING
RETURNING payment_id
"""

#: payment id, partner id, amount, available_at, the payment's paid_at and customer id
_Earning = tuple[int, int, int, dt.datetime, dt.datetime, int | None]


def _insert_earnings(new: list[_Earning]) -> list[int]:
    """Insert the earned entries, each once (``source_key``): an earning already in the ledger is skipped, as
    :func:`_write` skips it. Returns the payment ids whose earning this call wrote."""
    if not new:
        return []
    now = clock.now()
    if connection.vendor == "postgresql":
        columns = list(zip(*new, strict=True))
        keys = [earned_key(pk) for pk in columns[0]]
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_EARNINGS,
                [
                    EntryKind.EARNED.value,
                    now,
                    list(columns[0]),
                    list(columns[1]),
                    list(columns[2]),
                    list(columns[3]),
                    keys,
                ],
            )
            return [row[0] for row in cursor.fetchall()]
    existing = set(
        CommissionEntry.objects.filter(source_key__in=[earned_key(pk) for pk, *_ in new]).values_list(
            "source_key", flat=True
        )
    )
    # Elsewhere (SQLite): skip what is there; a concurrent insert of the same key is ignored by the constraint,
    # and the follow-ups it would then repeat are no-ops (each settlement is keyed too).
    fresh = [row for row in new if earned_key(row[0]) not in existing]
    CommissionEntry.objects.bulk_create(
        [
            CommissionEntry(
                payment_id=payment_id,
                partner_id=partner_id,
                kind=EntryKind.EARNED,
                amount_cents=amount,
                available_at=available_at,
                source_key=earned_key(payment_id),
                created_at=now,
                paid_at=paid_at,
                customer_id=customer_id,
            )
            for payment_id, partner_id, amount, available_at, paid_at, customer_id in fresh
        ],
        batch_size=500,
        ignore_conflicts=True,
    )
    return [row[0] for row in fresh]


def _refund_take(payment: Payment, earned: int) -> int:
    """What the payment's refunds take back: 10 % of everything refunded so far, rounded once on the total
    (two refunds of 3 cents on a 6-cent payment reverse its whole 1-cent commission, not 0 + 0), capped at
    what was earned; a payment refunded in full gives back its whole commission. A refund that failed or was
    canceled (``voided_at``) returned nothing and takes nothing."""
    refunded = list(
        Refund.objects.filter(payment=payment, voided_at__isnull=True).values_list("amount_cents", flat=True)
    )
    if not refunded:
        return 0
    total = sum(refunded)
    if total >= payment.amount_cents:
        return earned
    # The total in the payment's currency, converted once at its own rate: each refund's CAD cents are rounded on
    # their own (¥1 is 0.93 cent, kept as 1), and summing them would round every piece of a split refund.
    refunded_cad = convert(Money(total, payment.currency), to=CAD, rate=payment.cad_rate)
    return min(earned, percent_of(refunded_cad, RATE_PERCENT).cents)


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
    # The lock before the earning is looked for: an earning being written at this moment (an OAuth attribution
    # re-examining an earlier payment, on_payment) holds it, and is read once it commits; one written after
    # this fact commits reads the fact (_after_earning). Read before the lock, each missed the other and the
    # refund never came off the commission.
    _lock_payment(payment)
    earned = _earned(payment)
    if earned is None:
        return None
    # Under the lock, one read of the payment's entries (a handful) says whether this fact was settled before (its
    # entry is the payment's), what the payment's commission comes to now, and whether the earning was paid.
    paid = Exists(paid_entry_ids().filter(entry_id=OuterRef("pk")))
    entries = list(
        CommissionEntry.objects.filter(payment=payment).order_by().values_list("source_key", "amount_cents", paid)
    )
    if any(key == source_key for key, _, _ in entries):
        return None
    delta = _target(payment, earned.amount_cents) - sum(amount for _, amount, _ in entries)
    if delta == 0:
        return None
    if delta > 0:  # a dispute won, a refund voided: earned again, never available before the earning or the fact
        kind, available_at = EntryKind.EARNED, max(earned.available_at, at)
    elif any(paid for key, _, paid in entries if key == earned.source_key):  # paid: netted against later payouts
        kind, available_at = EntryKind.CLAWBACK, at
    else:  # still unpaid: leaves with the earning it cancels
        kind, available_at = EntryKind.REVERSAL, earned.available_at
    # Written without _write's savepoint: under the payment's lock, with its key just checked, a constraint
    # error here cannot be a replay, and it fails the caller's transaction as it should.
    return CommissionEntry.objects.create(
        partner_id=earned.partner_id,
        payment=payment,
        paid_at=payment.paid_at,
        customer_id=payment.customer_id,
        kind=kind,
        amount_cents=delta,
        available_at=available_at,
        source_key=source_key,
    )


def on_refund(*, refund: Refund) -> CommissionEntry | None:
    return _settle(payment=refund.payment, at=refund.created_at, source_key=f"refund:{refund.pk}")


def on_refund_voided(*, refund: Refund) -> CommissionEntry | None:
    """A refund that failed or was canceled after it was counted: what it took back is earned again."""
    assert refund.voided_at is not None
    return _settle(payment=refund.payment, at=refund.voided_at, source_key=f"refund-voided:{refund.pk}")


def on_dispute_opened(*, dispute: Dispute) -> CommissionEntry | None:
    """A dispute recorded or escalated. An inquiry takes nothing itself, but settling it can still write what
    other facts owe (a refund recorded before the earning existed): under a key of its own, so the chargeback
    it may become still has ``dispute-opened`` to settle under."""
    inquiry = dispute.status in {DisputeStatus.INQUIRY, DisputeStatus.INQUIRY_CLOSED}
    key = f"dispute-inquiry:{dispute.pk}" if inquiry else f"dispute-opened:{dispute.pk}"
    return _settle(payment=dispute.payment, at=dispute.opened_at, source_key=key)


def on_dispute_won(*, dispute: Dispute) -> CommissionEntry | None:
    return _settle(
        payment=dispute.payment,
        at=dispute.closed_at or dispute.opened_at,
        source_key=f"dispute-won:{dispute.pk}",
    )
