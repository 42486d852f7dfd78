from __future__ import annotations

from django.db.models import QuerySet

from apertur.accounts.models import User, normalize_email
from apertur.core.pages import Page, page_of
from apertur.partners.models import Partner, PartnerStatus

#: Rows per page of the staff review queue.
STAFF_PAGE_SIZE = 50


def partner_for_user(*, user: User) -> Partner | None:
    if not user.is_authenticated:
        return None
    return Partner.objects.filter(user=user).first()


def partner_by_email(*, email: str) -> Partner | None:
    """The partner whose account has this address, typed in any spelling the accounts accept for it."""
    return Partner.objects.select_related("user").filter(user__email=normalize_email(email)).first()


def partner_list(*, status: str | None = None) -> QuerySet[Partner]:
    qs = Partner.objects.select_related("user", "reviewed_by")
    if status:
        qs = qs.filter(status=status)
    return qs


def partner_page(*, status: str | None = None, page: int | str | None = 1) -> Page[Partner]:
    """One page of the staff review queue (STAFF_PAGE_SIZE rows; an invalid or too large page number gives the
    nearest page). Pending applications come oldest first, the ones that have waited longest; every other list
    newest first."""
    qs = partner_list(status=status)
    if status == PartnerStatus.PENDING:
        qs = qs.order_by("applied_at", "id")
    return page_of(qs, page=page, size=STAFF_PAGE_SIZE, rows=list)


def pending_count() -> int:
    return Partner.objects.filter(status=PartnerStatus.PENDING).count()
