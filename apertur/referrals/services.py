from __future__ import annotations

from apertur.partners.models import Partner
from apertur.referrals.models import ReferralLink


def ensure_default_link(*, partner: Partner) -> ReferralLink:
    """The partner's first referral link, created once (idempotent)."""
    link = partner.referral_links.order_by("created_at", "id").first()
    return link or ReferralLink.objects.create(partner=partner, label="Default")


def default_link_url(*, partner: Partner) -> str | None:
    link = partner.referral_links.order_by("created_at", "id").first()
    return link.url if link else None
