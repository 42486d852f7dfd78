from __future__ import annotations

from django.conf import settings
from django.db import models

from apertur.core import clock


class PartnerStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"


class ExpectedCustomers(models.TextChoices):
    UP_TO_10 = "1-10", "1 to 10"
    UP_TO_100 = "11-100", "11 to 100"
    UP_TO_1000 = "101-1000", "101 to 1,000"
    MORE = "1000+", "More than 1,000"


class Partner(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="partner")
    status = models.CharField(max_length=16, choices=PartnerStatus.choices, default=PartnerStatus.PENDING)
    company_name = models.CharField(max_length=120)
    website = models.URLField(max_length=300)
    use_case = models.TextField()
    expected_customers = models.CharField(max_length=16, choices=ExpectedCustomers.choices)
    applied_at = models.DateTimeField(default=clock.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_reason = models.TextField(blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.TextField(blank=True)
    # Payouts go to a PayPal address only once its owner clicked the confirmation link sent to it.
    paypal_email = models.EmailField(blank=True)
    paypal_verified_at = models.DateTimeField(null=True, blank=True)
    paypal_pending_email = models.EmailField(blank=True)
    paypal_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    paypal_token_expires_at = models.DateTimeField(null=True, blank=True)
    # A staff hold: payouts stop (commissions keep accumulating) until staff release it.
    payouts_held_at = models.DateTimeField(null=True, blank=True)
    payouts_hold_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-applied_at", "-id"]
        indexes = [models.Index(fields=["status", "applied_at"])]

    def __str__(self) -> str:
        return f"{self.company_name} ({self.user.email})"

    @property
    def is_approved(self) -> bool:
        return self.status == PartnerStatus.APPROVED

    @property
    def verified_paypal_email(self) -> str | None:
        return self.paypal_email if self.paypal_email and self.paypal_verified_at else None
