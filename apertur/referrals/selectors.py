"""Reading referral links for the partner portal."""

from __future__ import annotations

from django.db.models import BigIntegerField, Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apertur.partners.models import Partner
from apertur.referrals.models import Attribution, AttributionSource, ReferralLink


def _count(qs: QuerySet[Attribution]) -> Coalesce:
    """A correlated COUNT per link (a join would repeat each link per row counted)."""
    counted = qs.order_by().values("link").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=BigIntegerField()), Value(0))


def link_list(*, partner: Partner) -> QuerySet[ReferralLink]:
    """The partner's links, newest first, each with its ``click_count`` (a column kept by ``record_click``) and
    annotated with ``signup_count`` (customers attributed through that link)."""
    signups = Attribution.objects.filter(link=OuterRef("pk"), partner=partner, source=AttributionSource.REFERRAL)
    return (
        ReferralLink.objects.filter(partner=partner)
        .annotate(signup_count=_count(signups))
        .order_by("-created_at", "-id")
    )
