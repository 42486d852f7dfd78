"""Reading referral links for the partner portal."""

from __future__ import annotations

from django.db.models import BigIntegerField, Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apertur.partners.models import Partner
from apertur.referrals.models import Attribution, AttributionSource, ReferralClick, ReferralLink


def _count(qs: QuerySet[ReferralClick] | QuerySet[Attribution]) -> Coalesce:
    """A correlated COUNT per link: two counts over different joins would multiply each other."""
    counted = qs.order_by().values("link").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=BigIntegerField()), Value(0))


def link_list(*, partner: Partner) -> QuerySet[ReferralLink]:
    """The partner's links, newest first, each annotated with ``click_count`` and ``signup_count``
    (customers attributed through that link)."""
    clicks = ReferralClick.objects.filter(link=OuterRef("pk"))
    signups = Attribution.objects.filter(link=OuterRef("pk"), partner=partner, source=AttributionSource.REFERRAL)
    return (
        ReferralLink.objects.filter(partner=partner)
        .annotate(click_count=_count(clicks), signup_count=_count(signups))
        .order_by("-created_at", "-id")
    )
