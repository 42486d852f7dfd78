from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from apertur.accounts.models import User
from apertur.core.http import client_ip
from apertur.referrals import services


@require_safe
def referral(request: HttpRequest, code: str) -> HttpResponse:
    """``GET /r/<code>``: count the click, remember it for 90 days (last click wins), go to signup.

    ``HEAD`` answers the same status and redirect (RFC 9110 §9.3.2) but is no visit — link checkers and
    previews send it — so it neither counts a click nor sets the cookie. Nor do visits that are not a person who
    could be referred (services.counts_as_click): they are sent on all the same."""
    link = services.find_link(code)
    if link is None:
        # Not Django's bare 404: the visitor wanted Apertur, so say what happened and offer the way on.
        return render(request, "referrals/unknown.html", status=404)
    response = redirect("/signup" if not request.user.is_authenticated else "/")
    if request.method == "HEAD":
        return response
    user = request.user if isinstance(request.user, User) else None
    if not services.counts_as_click(
        link=link, user_agent=request.headers.get("user-agent", ""), user=user, ip=client_ip(request)
    ):
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
