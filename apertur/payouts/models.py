"""Monthly PayPal payouts (issue 8). One ``Payout`` per partner and period, enforced by the database; each
commission entry belongs to at most one payout that has not given the money back (a partial unique index on
``PayoutEntry.entry`` where ``released_at`` is null)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from apertur.commissions.models import CommissionEntry
from apertur.core import clock
from apertur.partners.models import Partner


class PayoutStatus(models.TextChoices):
    CREATED = "created", "Created"  # saved with its sender_batch_id; PayPal not (yet) known to have it
    SENT = "sent", "Sent"  # PayPal accepted the batch
    PENDING = "pending", "Processing"  # item PENDING
    UNCLAIMED = "unclaimed", "Unclaimed"  # item UNCLAIMED: no PayPal account yet (30 days to claim)
    HELD = "held", "Held by PayPal"  # item ONHOLD or BLOCKED
    PAID = "paid", "Paid"  # item SUCCESS
    FAILED = "failed", "Failed"  # refused, DENIED or item FAILED: the money never left, back to the balance
    RETURNED = "returned", "Returned"  # item RETURNED, REFUNDED or REVERSED: the money came back to the balance
    # Its batch was first sent too long ago to send again (PayPal deduplicates a sender_batch_id for 30 days
    # only): PayPal may have paid it. The money stays out of the balance until staff resolve it.
    NEEDS_REVIEW = "needs_review", "Needs review"


class Failure(models.TextChoices):
    """Whose side a failed payout failed on: what the partner is told and what happens next."""

    NONE = "", "—"
    ADDRESS_REFUSED = "address_refused", "PayPal refused the address"  # not sent again until the address changes
    SENDER = "sender", "Our side"  # our funding or our request (INSUFFICIENT_FUNDS, batch DENIED): staff fix it


#: States whose money is back in the partner's balance: only a staff retry (a new sender_batch_id) moves on.
MONEY_BACK = frozenset({PayoutStatus.FAILED, PayoutStatus.RETURNED})
#: States reconciliation keeps polling PayPal for.
OPEN = frozenset({PayoutStatus.SENT, PayoutStatus.PENDING, PayoutStatus.UNCLAIMED, PayoutStatus.HELD})


class Payout(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="payouts")
    period = models.CharField(max_length=7)  # "YYYY-MM": the run dated the 15th of that month
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="CAD")
    status = models.CharField(max_length=12, choices=PayoutStatus.choices, default=PayoutStatus.CREATED)
    # The PayPal batch this payout is an item of, shared by the payouts the run sent together. Saved before the
    # first PayPal call, so every retry sends the same batch (the same items) and PayPal refuses a duplicate.
    sender_batch_id = models.CharField(max_length=64, db_index=True)
    # This payout's own item in that batch, ``aptr-<partner>-<period>-<N>``: what reconciliation and webhooks
    # match, and the reference the partner sees. A batch is named after its first item, so a batch id is unique
    # for as long as item ids are (see services.run).
    sender_item_id = models.CharField(max_length=64, unique=True)
    batch_number = models.PositiveIntegerField(default=1)  # the -N of sender_item_id; +1 only after money back
    receiver_email = models.EmailField(blank=True)  # the PayPal address the current item is (to be) sent to
    paypal_batch_id = models.CharField(max_length=64, blank=True)
    paypal_item_id = models.CharField(max_length=64, blank=True)
    item_status = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When the current sender_batch_id was first sent to PayPal (the first create attempt, whatever came of it):
    # past services.RESEND_WINDOW it is never sent again, since PayPal forgets a sender_batch_id after 30 days.
    first_sent_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=16, choices=Failure.choices, blank=True, default="")
    created_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)  # when the money came back to the balance
    checked_at = models.DateTimeField(null=True, blank=True)  # last reconciliation with PayPal
    # When PayPal put the current item on hold (ONHOLD or BLOCKED); cleared when it leaves that state. Past
    # ``PAYOUT_HELD_ALERT_DAYS`` staff are told, once per hold: ``held_alerted_at`` is that claim (services.alert_held),
    # cleared when PayPal holds the item again after letting go of it.
    held_since = models.DateTimeField(null=True, blank=True)
    held_alerted_at = models.DateTimeField(null=True, blank=True)
    # Since when PayPal has had the payout to process: when it was sent, or when PayPal let go of a hold and put
    # the item back to PENDING. Past ``PAYOUT_PROCESSING_ALERT_DAYS`` still sent or processing, staff are told
    # (services.alert_processing), once per such stretch: ``processing_alerted_at``, cleared when a new one starts.
    processing_since = models.DateTimeField(null=True, blank=True)
    processing_alerted_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["partner", "period"], name="one_payout_per_partner_and_period")]
        indexes = [models.Index(fields=["status", "period"])]

    def __str__(self) -> str:
        return f"{self.sender_item_id} {self.amount_cents} {self.currency} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A payout made on its own (not by the run's chunks) is a batch of one, named after its item.
        if not self.sender_item_id:
            self.sender_item_id = self.sender_batch_id
        if not self.sender_batch_id:
            self.sender_batch_id = self.sender_item_id
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def money_back(self) -> bool:
        return self.status in MONEY_BACK


class PayoutEntry(models.Model):
    """A commission entry paid (or being paid) by a payout. While ``released_at`` is null the entry belongs to
    this payout and no other (the partial unique index); when the money comes back the link is released, kept
    for the history, and the entry is free for a later payout."""

    # No index of their own on either key: the unique (payout, entry) index serves every lookup by payout, and
    # the partial unique index on entry every lookup of an entry's live link (all the code makes). A payout run
    # writes one link per entry it pays (a million in the first run of a large program), and each index is
    # one more B-tree insert per link: the two plain indexes cost 45 % of the links' INSERT on PostgreSQL.
    # Commission entries are never deleted (append-only ledger), so the entry key's PROTECT check has nothing
    # to look up. Nor does the entry key have a database constraint (Django still refuses, by PROTECT, to delete
    # a linked entry): PostgreSQL checks a foreign key by taking a KEY SHARE lock on the referenced row, which
    # writes to every commission entry a run links (WAL and a dirty page each; a third of the first run's time
    # over a million entries), and the ids linked come from a read of those same entries in the same
    # transaction, under the partner's row lock. The names ``payout_links``, ``released_at`` and the payout's
    # ``sent_at`` are how the commissions app tells a paid entry (commissions.models.paid_entry_ids).
    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="entries", db_index=False)
    entry = models.ForeignKey(
        CommissionEntry, on_delete=models.PROTECT, related_name="payout_links", db_index=False, db_constraint=False
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["entry"], condition=Q(released_at__isnull=True), name="entry_in_one_live_payout"
            ),
            models.UniqueConstraint(fields=["payout", "entry"], name="entry_once_per_payout"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_id} in {self.payout_id}"


class PayoutRun(models.Model):
    """One row per period the monthly run has worked on: the scheduler runs every due period without a
    finished row (so a run missed while the service was down happens at next start, for its own period).
    ``lease_until`` lets one scheduler at a time work on a period; correctness never depends on it (the
    unique constraints do), it only spares PayPal duplicate calls."""

    period = models.CharField(max_length=7, unique=True)
    started_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, default="schedule")  # schedule | cli
    summary = models.JSONField(default=dict, blank=True)  # reason → count, paid cents

    class Meta:
        ordering = ["-period"]

    def __str__(self) -> str:
        return f"payout run {self.period} ({'finished' if self.finished_at else 'open'})"


class PayPalEventStatus(models.TextChoices):
    RECEIVED = "received", "Received"  # verified and stored, not yet applied (PayPal unreachable, …)
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"  # not about a payout of ours (or an earlier attempt's batch)


class PayPalEvent(models.Model):
    """A verified PayPal webhook event, stored once by its id (redeliveries are no-ops). Applying it means
    reconciling the payout it names with PayPal's current state, so the order of delivery never matters."""

    event_id = models.CharField(max_length=100, unique=True)
    event_type = models.CharField(max_length=80, db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=PayPalEventStatus.choices, default=PayPalEventStatus.RECEIVED)
    detail = models.CharField(max_length=300, blank=True)
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    received_at = models.DateTimeField(default=clock.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            # The admin's list, newest first: without it each load sorted every event (kept forever).
            models.Index(fields=["received_at", "id"], name="paypal_event_received"),
        ]
        verbose_name = "PayPal event"  # not Django's "pay pal event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
