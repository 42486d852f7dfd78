from __future__ import annotations

from django.conf import settings
from django.db import models

from apertur.core import clock


class AuditEvent(models.Model):
    """Who did what to which object, when and from where. Written by the same service that makes the
    change, inside its transaction, so a change without its audit entry cannot be committed."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"


class IdempotencyKey(models.Model):
    """The first response to a POST carrying ``Idempotency-Key``, replayed for a retry with the same key.
    The unique constraint, not a check in code, makes two concurrent first requests resolve to one."""

    owner = models.CharField(max_length=100)  # who may replay it (the API caller's identity)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    body_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0)  # 0 while the first request is running
    response_body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_unique_per_owner")]

    def __str__(self) -> str:
        return f"{self.owner}:{self.key}"
