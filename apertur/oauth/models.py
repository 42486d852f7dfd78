from __future__ import annotations

from django.db import models

from apertur.core import clock
from apertur.partners.models import Partner, PartnerStatus


class OAuthAppQuerySet(models.QuerySet["OAuthApp"]):
    def usable(self) -> OAuthAppQuerySet:
        """Apps whose credentials work right now: active, and owned by an approved (not suspended)
        partner. Read on every check, so deactivation and suspension take effect at once."""
        return self.filter(is_active=True, partner__status=PartnerStatus.APPROVED)


class OAuthApp(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="oauth_apps")
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    website = models.URLField(max_length=300, blank=True)
    client_id = models.CharField(max_length=64, unique=True)
    client_secret_hash = models.CharField(max_length=64)
    client_secret_last4 = models.CharField(max_length=4)
    client_secret_rotated_at = models.DateTimeField(default=clock.now)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    objects = OAuthAppQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "OAuth app"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    @property
    def is_usable(self) -> bool:
        return self.is_active and self.partner.status == PartnerStatus.APPROVED


class RedirectURI(models.Model):
    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="redirect_uris")
    uri = models.CharField(max_length=2000)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["app", "uri"], name="redirect_uri_unique_per_app")]

    def __str__(self) -> str:
        return self.uri


class AllowedDomain(models.Model):
    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="allowed_domains")
    pattern = models.CharField(max_length=260)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "pattern"], name="allowed_domain_unique_per_app")
        ]

    def __str__(self) -> str:
        return self.pattern


class KeyMode(models.TextChoices):
    LIVE = "live", "Live"
    TEST = "test", "Test"


class PublicKey(models.Model):
    """A publishable key (``aptr_live_pk_…`` / ``aptr_test_pk_…``). It is not a secret (it ships in
    front-end code), so it is stored as is and looked up directly. Regenerating deactivates the old key
    and adds a new one; history is kept for the audit trail."""

    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="public_keys")
    mode = models.CharField(max_length=4, choices=KeyMode.choices)
    key = models.CharField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "mode"],
                condition=models.Q(is_active=True),
                name="one_active_public_key_per_app_and_mode",
            )
        ]

    def __str__(self) -> str:
        return self.key
