from __future__ import annotations

import datetime as dt

from django.db import models

from apertur.core import clock, tokens
from apertur.core.rolling import overlap_ends
from apertur.projects.models import Project
from apertur.webhooks import signing

EVENT_TYPES = {
    "upload.created": "A guest uploaded a file",
    "session.created": "An upload session was created",
    "session.closed": "An upload session was closed",
    "plan.changed": "The project's plan changed",
    "webhook.test": "A test event sent from the dashboard or the API",
}
#: What an endpoint can subscribe to: ``webhook.test`` is sent only by "Send test event", to the one endpoint it
#: is sent from, so a subscription to it would promise deliveries that never come.
SUBSCRIBABLE_EVENT_TYPES = {name: label for name, label in EVENT_TYPES.items() if name != "webhook.test"}


def new_endpoint_id() -> str:
    return f"we_{tokens.random_string(16)}"


def new_event_id() -> str:
    return f"evt_{tokens.random_string(20)}"


class RollingSigningSecret(models.Model):
    """A Standard Webhooks signing secret (``secret``, a field of the concrete model) that can be rolled: after a
    roll the secret it replaced also signs requests until ``previous_secret_expires_at``, so the receiver can
    switch to the new one without rejecting anything meanwhile. Webhook endpoints and HTTPS destinations."""

    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)

    secret: str

    class Meta:
        abstract = True

    def previous_secret_valid_until(self, at: dt.datetime) -> dt.datetime | None:
        """When the previous secret stops signing, if it still signs at ``at``; otherwise ``None``."""
        return overlap_ends(previous=self.previous_secret, expires=self.previous_secret_expires_at, at=at)

    def signing_secrets(self, at: dt.datetime) -> list[str]:
        """The secrets a request sent at ``at`` is signed with, current first: the one place that decides it.
        During a roll's overlap both sign, so a receiver holding either one verifies (Standard Webhooks allows
        several space-separated signatures in ``webhook-signature``)."""
        if self.previous_secret_valid_until(at) is None:
            return [self.secret]
        return [self.secret, self.previous_secret]

    def roll_secret(self, *, at: dt.datetime, keep_previous_for: dt.timedelta) -> bool:
        """Give this (locked) row a new secret; the current one keeps signing for ``keep_previous_for`` (zero: not
        kept at all, a secret that signs nothing has no reason to be stored). Rolling again while an older
        previous secret still signs drops that older one: the overlap is always with the secret being replaced,
        so at most two secrets sign a request. Returns whether such an older secret was dropped. The caller
        checks ``keep_previous_for`` (``core.rolling.roll_overlap_is_valid``) and saves."""
        dropped_older = self.previous_secret_valid_until(at) is not None
        if keep_previous_for:
            self.previous_secret = self.secret
            self.previous_secret_expires_at = at + keep_previous_for
        else:
            self.previous_secret = ""
            self.previous_secret_expires_at = None
        self.secret = signing.new_secret()
        return dropped_older


class WebhookEndpoint(RollingSigningSecret):
    public_id = models.CharField(max_length=32, unique=True, default=new_endpoint_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)  # event types, or ["*"] for all
    # The signing secret (Standard Webhooks "whsec_…"). Apertur must sign with it, so it is kept, unlike
    # credentials that are only ever compared.
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    livemode = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    # The OAuth app (its id) whose access token created this endpoint through the API; None for the owner's own
    # (the dashboard, an API key). Disabled when that app loses the project (oauth.signals.app_lost_project). An id,
    # not a foreign key: webhooks does not depend on oauth, and the endpoint outlives a deleted app.
    created_by_app_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.enabled and ("*" in self.events or event_type in self.events)


class WebhookEvent(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=new_event_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=50)
    data = models.JSONField(default=dict)
    livemode = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event to one endpoint: retried with exponential backoff until it succeeds or gives up."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_event_endpoint")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=clock.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
