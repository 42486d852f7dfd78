from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def client_ip(request: HttpRequest) -> str:
    """The peer address. ``X-Forwarded-For`` is trusted only behind a proxy we configured
    (``BEHIND_PROXY``); otherwise any client could pick its own rate-limit bucket."""
    from django.conf import settings

    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return str(request.META.get("REMOTE_ADDR") or "0.0.0.0")  # noqa: S104 - a value, not a bind


# Pages of the authorization flow may run in a popup opened by a partner's page (aptr-connect). The
# default Cross-Origin-Opener-Policy "same-origin" would sever window.opener and the result could never
# reach the partner. Framing stays forbidden by X-Frame-Options and CSP frame-ancestors.
POPUP_COOP = "unsafe-none"


def keep_opener(response: HttpResponse) -> HttpResponse:
    response["Cross-Origin-Opener-Policy"] = POPUP_COOP
    return response
