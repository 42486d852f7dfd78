from __future__ import annotations

from django.db import models

from apertur.core import clock, tokens
from apertur.projects.models import Project

IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic"]


def new_session_public_id() -> str:
    return f"ses_{tokens.random_string(16)}"


def new_upload_token() -> str:
    return tokens.random_string(24)


def new_upload_public_id() -> str:
    return f"upl_{tokens.random_string(16)}"


class SessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class UploadSession(models.Model):
    """A link where guests upload photos to a project: ``/u/<token>``."""

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

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "livemode", "status"])]

    def __str__(self) -> str:
        return self.title

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    def is_accepting(self) -> bool:
        return self.status == SessionStatus.OPEN and (self.expires_at is None or self.expires_at > clock.now())


def upload_path(instance: Upload, filename: str) -> str:
    # The stored name is ours, never the guest's (no path tricks, no collisions); the original is kept apart.
    extension = filename.rsplit(".", 1)[-1].lower()[:8] if "." in filename else "bin"
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
