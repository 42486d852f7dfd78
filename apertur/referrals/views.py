from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_safe

from apertur.referrals import services
from apertur.referrals.models import ReferralLink


@require_safe
def referral(request: HttpRequest, code: str) -> HttpResponse:
    """``GET /r/<code>``: count the click, remember it for 90 days (last click wins), go to signup.

    ``HEAD`` answers the same status and redirect (RFC 9110 §9.3.2) but is no visit — link checkers and
    previews send it — so it neither counts a click nor sets the cookie."""
    link = ReferralLink.objects.filter(code=code).first()
    if link is None:
        raise Http404("This referral link does not exist.")
    response = redirect("/signup" if not request.user.is_authenticated else "/")
    if request.method == "HEAD":
        return response
    value = services.record_click(link=link)
    response.set_cookie(
        services.COOKIE_NAME,
        value,
        max_age=int(services.COOKIE_MAX_AGE.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response
