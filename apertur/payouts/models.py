"""Monthly PayPal payouts (issue 8). One ``Payout`` per partner and period, enforced by the database; each
commission entry belongs to at most one payout (``PayoutEntry.entry`` is unique)."""

from __future__ import annotations

from django.db import models

from apertur.commissions.models import CommissionEntry
from apertur.core import clock
from apertur.partners.models import Partner


class PayoutStatus(models.TextChoices):
    CREATED = "created", "Created"  # saved with its sender_batch_id; PayPal not (yet) known to have it
    SENT = "sent", "Sent"  # PayPal accepted the batch
    PAID = "paid", "Paid"
    PENDING = "pending", "Pending"
    UNCLAIMED = "unclaimed", "Unclaimed"
    HELD = "held", "Held"
    FAILED = "failed", "Failed"
    RETURNED = "returned", "Returned"


class Payout(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="payouts")
    period = models.CharField(max_length=7)  # "YYYY-MM": the run dated the 15th of that month
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="CAD")
    status = models.CharField(max_length=12, choices=PayoutStatus.choices, default=PayoutStatus.CREATED)
    # Saved before the first PayPal call, so every retry uses the same id and PayPal refuses a duplicate.
    sender_batch_id = models.CharField(max_length=64, unique=True)
    paypal_batch_id = models.CharField(max_length=64, blank=True)
    paypal_item_id = models.CharField(max_length=64, blank=True)
    item_status = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["partner", "period"], name="one_payout_per_partner_and_period")]

    def __str__(self) -> str:
        return f"{self.sender_batch_id} {self.amount_cents} {self.currency} ({self.status})"


class PayoutEntry(models.Model):
    """A commission entry paid (or being paid) by a payout: at most once, whatever the runs."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="entries")
    entry = models.OneToOneField(CommissionEntry, on_delete=models.PROTECT, related_name="payout_link")

    def __str__(self) -> str:
        return f"{self.entry_id} in {self.payout_id}"
