from __future__ import annotations

from django.db.models import QuerySet

from apertur.accounts.models import User
from apertur.partners.models import Partner, PartnerStatus


def partner_for_user(*, user: User) -> Partner | None:
    if not user.is_authenticated:
        return None
    return Partner.objects.filter(user=user).first()


def partner_by_email(*, email: str) -> Partner | None:
    return Partner.objects.select_related("user").filter(user__email=email.strip().lower()).first()


def partner_list(*, status: str | None = None) -> QuerySet[Partner]:
    qs = Partner.objects.select_related("user", "reviewed_by")
    if status:
        qs = qs.filter(status=status)
    return qs


def pending_count() -> int:
    return Partner.objects.filter(status=PartnerStatus.PENDING).count()
