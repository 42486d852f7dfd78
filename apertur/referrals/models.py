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

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.code

    @property
    def url(self) -> str:
        return f"{settings.APERTUR_BASE_URL}/r/{self.code}"
