from __future__ import annotations

from django.db import models

from apertur.core import clock
from apertur.partners.models import Partner
from apertur.projects.models import Payment


class EntryKind(models.TextChoices):
    EARNED = "earned", "Earned"
    REVERSAL = "reversal", "Reversal"
    CLAWBACK = "clawback", "Clawback"


class CommissionEntry(models.Model):
    """The append-only commission ledger, in CAD cents (negative for reversals and clawbacks). Balances
    are sums of entries, never stored totals. ``source_key`` names the business event that wrote the
    entry; its uniqueness makes every event change the ledger at most once, whatever the retries."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="commission_entries")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="commission_entries")
    kind = models.CharField(max_length=8, choices=EntryKind.choices)
    amount_cents = models.BigIntegerField()
    available_at = models.DateTimeField(db_index=True)
    source_key = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    # Set by the payout run (payouts issue); None means not yet paid out.
    paid_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-available_at", "-id"]
        indexes = [models.Index(fields=["partner", "available_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_cents} for {self.partner_id}"


class PartnerNotice(models.Model):
    """A commission email sent to a partner, once per ``key``: ``first-payment:<customer id>`` when a
    referred customer first earns the partner a commission, ``statement:<YYYY-MM>`` for a monthly
    statement. The unique pair, not a check in code, keeps two runs at once from sending twice."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="notices")
    key = models.CharField(max_length=80)
    sent_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["partner", "key"], name="one_notice_per_partner_and_key")]

    def __str__(self) -> str:
        return f"{self.key} to {self.partner_id}"
