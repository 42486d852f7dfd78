from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from apertur.accounts.models import User
from apertur.core.views import is_staff, staff_only
from apertur.partners.models import Partner
from apertur.partners.selectors import partner_for_user

View = Callable[..., HttpResponse]
#: A partner tool may stream its answer (the CSV exports: core.spreadsheet.csv_download).
PartnerView = Callable[..., HttpResponseBase]


def approved_partner_required(view: PartnerView) -> PartnerView:
    """Only approved partners reach the partner tools; everyone else sees why (403)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        assert isinstance(request.user, User)
        partner = partner_for_user(user=request.user)
        if partner is None or not partner.is_approved:
            return render(request, "partners/not_approved.html", {"partner": partner}, status=403)
        return view(request, partner, *args, **kwargs)

    return wrapper


def staff_required(view: Callable[..., HttpResponse]) -> View:
    """The staff review pages (``/partners/staff/``). A signed-out visitor gets the login page with ``next``; a
    signed-in account that is not staff gets the site's 403 page. (Django's ``staff_member_required`` sent both
    to the admin's own login form, which asked a signed-in customer to log in again.)"""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        assert isinstance(request.user, User)
        if not is_staff(request.user):
            return staff_only(request)
        return view(request, *args, **kwargs)

    return wrapper


#: What the review page's actions (approve, reject, suspend, restore, hold and release payouts) need besides being
#: staff: they change the partner, as editing one in ``/admin/`` does, and the admin gives staff limited permissions (a
#: "payout viewer" with only the view permission looks and changes nothing).
REVIEW_PERMISSION = "partners.change_partner"
MAY_NOT_REVIEW = (
    "Your staff account may look at partners but not change them: reviewing needs the change permission on "
    "partners. Ask a superuser for it."
)


def may_review(user: object) -> bool:
    return is_staff(user) and bool(getattr(user, "has_perm", lambda perm: False)(REVIEW_PERMISSION))


def reviewer_required(view: Callable[..., HttpResponse]) -> View:
    """:func:`staff_required`, and for the review actions :data:`REVIEW_PERMISSION` (otherwise the site's 403 page)."""

    @staff_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_review(request.user):
            return render(request, "403.html", {"message": MAY_NOT_REVIEW}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


def current_partner(request: HttpRequest) -> Partner | None:
    assert isinstance(request.user, User)
    return partner_for_user(user=request.user)
