from __future__ import annotations

from django.conf import settings
from django.db import models

from apertur.core import clock, tokens
from apertur.partners.models import Partner


def new_referral_code() -> str:
    return tokens.random_string(10)


class ReferralLink(models.Model):
    """A partner's shareable link, ``<base>/r/<code>``. Clicks, the 90-day cookie and attribution are
    handled by the referrals feature; the foundation only creates each approved partner's first link."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="referral_links")
    code = models.CharField(max_length=32, unique=True, default=new_referral_code)
    label = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    # How many ReferralClick rows the link has, kept by services.record_click in the click's own transaction: the
    # partner's pages read it instead of counting the clicks (a COUNT over a popular link's millions of clicks took
    # 180 ms per page on PostgreSQL, and grew with every click).
    click_count = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.code

    @property
    def url(self) -> str:
        return f"{settings.APERTUR_BASE_URL}/r/{self.code}"


class ReferralClick(models.Model):
    link = models.ForeignKey(ReferralLink, on_delete=models.CASCADE, related_name="clicks")
    at = models.DateTimeField(default=clock.now, db_index=True)

    def __str__(self) -> str:
        return f"click on {self.link_id}"


class AttributionSource(models.TextChoices):
    REFERRAL = "referral", "Referral link"
    OAUTH = "oauth", "OAuth connection"


class Attribution(models.Model):
    """Which partner a customer belongs to: set once, for the customer's lifetime (staff may change it)."""

    customer = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attribution")
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="attributions")
    source = models.CharField(max_length=8, choices=AttributionSource.choices)
    link = models.ForeignKey(ReferralLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    app = models.ForeignKey("oauth.OAuthApp", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.customer_id} → {self.partner_id} ({self.source})"
