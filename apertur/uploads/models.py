from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q

from apertur.core import clock, tokens
from apertur.projects.models import Project
from apertur.webhooks.models import RollingSigningSecret

# The accepted types (sniff.py tells them from their bytes) and the extension each is stored and downloaded with:
# Apertur's own, not the host's /etc/mime.types (a slim image has none, and Python alone knows no WebP).
IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
}
IMAGE_TYPES = list(IMAGE_EXTENSIONS)


def new_session_public_id() -> str:
    return f"ses_{tokens.random_string(16)}"


def new_upload_token() -> str:
    return tokens.random_string(24)


def new_upload_public_id() -> str:
    return f"upl_{tokens.random_string(16)}"


class SessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class UploadSessionQuerySet(models.QuerySet["UploadSession"]):
    def active(self, at: dt.datetime | None = None) -> UploadSessionQuerySet:
        """Sessions that accept uploads at ``at`` (default now): the rule of
        :meth:`UploadSession.is_accepting`, in SQL. Only these count toward the plan's active sessions."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at or clock.now()), status=SessionStatus.OPEN)


class UploadSession(models.Model):
    """A link where guests upload photos to a project: ``/u/<token>``.

    Active (accepting uploads) means open and not past ``expires_at``. An expired session is closed as far as
    anyone can tell: it reads ``closed``, with ``closed_at`` its expiry, and frees its plan slot, although no
    write marks it so."""

    public_id = models.CharField(max_length=32, unique=True, default=new_session_public_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="upload_sessions")
    title = models.CharField(max_length=120)
    token = models.CharField(max_length=48, unique=True, default=new_upload_token, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_files = models.PositiveIntegerField(null=True, blank=True)
    accepted_types = models.JSONField(default=list)
    password_hash = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=8, choices=SessionStatus.choices, default=SessionStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    livemode = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    objects = UploadSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "livemode", "status"])]

    def __str__(self) -> str:
        return self.title

    @property
    def url(self) -> str:
        """The guest link, on the site's public address: the owner shares it (by email, often), so it is never
        built from the Host a request came in on."""
        return f"{settings.APERTUR_BASE_URL}/u/{self.token}"

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    def is_accepting(self, at: dt.datetime | None = None) -> bool:
        """Open and not expired (the rule :meth:`UploadSessionQuerySet.active` applies in SQL)."""
        at = at or clock.now()
        return self.status == SessionStatus.OPEN and (self.expires_at is None or self.expires_at > at)

    @property
    def effective_status(self) -> str:
        return SessionStatus.OPEN if self.is_accepting() else SessionStatus.CLOSED

    @property
    def effective_closed_at(self) -> dt.datetime | None:
        """When the session stopped accepting uploads: closed by hand, or else its expiry once passed."""
        if self.closed_at is not None or self.is_accepting():
            return self.closed_at
        return self.expires_at


def upload_path(instance: Upload, filename: str) -> str:
    # The stored name is ours, never the guest's (no path tricks, no collisions); the original is kept apart. Its
    # extension is the checked type's (a JPEG named page.html is stored as .jpg), else the guest's.
    checked = IMAGE_EXTENSIONS.get(instance.content_type)
    guessed = filename.rsplit(".", 1)[-1].lower()[:8] if "." in filename else "bin"
    extension = checked.lstrip(".") if checked else guessed
    return f"uploads/{instance.project.public_id}/{instance.session.public_id}/{instance.public_id}.{extension}"


class Upload(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_upload_public_id, editable=False)
    session = models.ForeignKey(UploadSession, on_delete=models.CASCADE, related_name="uploads")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to=upload_path, max_length=300)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    note = models.CharField(max_length=500, blank=True)
    uploader_ip = models.GenericIPAddressField(null=True, blank=True)
    livemode = models.BooleanField(default=True)
    uploaded_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [
            models.Index(fields=["project", "livemode", "uploaded_at"]),
            models.Index(fields=["session", "uploaded_at"]),
        ]

    def __str__(self) -> str:
        return self.original_name


def new_destination_id() -> str:
    return f"dst_{tokens.random_string(16)}"


class DestinationKind(models.TextChoices):
    HTTPS = "https", "HTTPS endpoint"
    S3 = "s3", "S3-compatible bucket"


class DestinationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FAILING = "failing", "Failing"
    DISABLED = "disabled", "Disabled"


class Destination(RollingSigningSecret):
    """Where a project's uploads are delivered besides Apertur's own storage (which always keeps them). An HTTPS
    destination's signing secret rolls as a webhook endpoint's does (``previous_secret``…); an S3 one's
    ``secret`` is the bucket's secret access key, replaced with its key id."""

    public_id = models.CharField(max_length=32, unique=True, default=new_destination_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="destinations")
    kind = models.CharField(max_length=8, choices=DestinationKind.choices)
    name = models.CharField(max_length=80)
    # https: {"url"}; s3: {"endpoint_url", "bucket", "region", "prefix", "access_key_id"}
    config = models.JSONField(default=dict)
    # The HTTPS signing secret or the S3 secret access key: Apertur must use it, so it is kept (never returned
    # by the API; an HTTPS secret is shown once, when the destination is created or its secret rolled).
    secret = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=DestinationStatus.choices, default=DestinationStatus.ACTIVE)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    livemode = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name


class DestinationDelivery(models.Model):
    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="destination_deliveries")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, default="pending")  # pending | succeeded | failed
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upload", "destination"], name="one_delivery_per_upload_destination")
        ]

    def __str__(self) -> str:
        return f"{self.upload_id} → {self.destination_id}"
