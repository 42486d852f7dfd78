from __future__ import annotations

from django.db import models

from apertur.core import clock


class EventStatus(models.TextChoices):
    PROCESSED = "processed", "Processed"
    WAITING = "waiting", "Waiting for an earlier event"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class StripeEvent(models.Model):
    """Every signed event, stored once (the unique event id makes replays no-ops)."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=80, db_index=True)
    created = models.DateTimeField()  # the event's own time
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=EventStatus.choices)
    detail = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(default=clock.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]
        verbose_name = "Stripe event"
        indexes = [
            # The events still waiting, in the order they are retried: every processed delivery retries them
            # (services.retry_waiting), which read the whole table without it (0.55 s a delivery at 3 M events,
            # growing with every payment). Partial: the few waiting rows only, nothing to maintain for the rest.
            models.Index(
                fields=["created", "id"], name="stripe_event_waiting", condition=models.Q(status=EventStatus.WAITING)
            ),
            # The admin's list, newest first, and its date filter.
            models.Index(fields=["created", "id"], name="stripe_event_created"),
            # The failed events of a type, oldest first: a failure reads the oldest to decide whether staff were told
            # (services._apply). Partial: the few failed rows only.
            models.Index(
                fields=["type", "created", "id"],
                name="stripe_event_failed",
                condition=models.Q(status=EventStatus.FAILED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class RejectedDelivery(models.Model):
    """A delivery that failed signature verification or parsing: kept for inspection, applied never."""

    received_at = models.DateTimeField(default=clock.now)
    reason = models.CharField(max_length=300)
    signature_header = models.CharField(max_length=500, blank=True)
    body = models.TextField()

    class Meta:
        verbose_name_plural = "rejected deliveries"

    def __str__(self) -> str:
        return self.reason


class InvoicePaymentLink(models.Model):
    """Which payment paid an invoice, as an ``invoice_payment.paid`` event says it. Since Stripe API version
    2025-03-31 an invoice names neither its charge nor its PaymentIntent, and a charge no longer names its invoice;
    refunds and disputes name the charge and the PaymentIntent, so this is how they find the payment they are about.
    Kept whoever the invoice is for (its ``invoice.paid`` may come later, or never be an Apertur payment)."""

    external_id = models.CharField(max_length=100, unique=True)  # the invoice payment's id (inpay_…)
    invoice_id = models.CharField(max_length=100, db_index=True)
    charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    payment_intent_id = models.CharField(max_length=100, blank=True, db_index=True)
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.invoice_id} paid by {self.payment_intent_id or self.charge_id}"
