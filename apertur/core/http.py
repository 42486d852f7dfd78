from __future__ import annotations

import ipaddress
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponseBase

Response = TypeVar("Response", bound=HttpResponseBase)


def client_ip(request: HttpRequest) -> str:
    """The peer address. Behind our own proxies (``BEHIND_PROXY``, ``TRUSTED_PROXY_HOPS``), the address
    the outermost trusted proxy saw: counted from the right of ``X-Forwarded-For``, because everything to
    its left is whatever the client chose to send (and would let it pick its own rate-limit bucket)."""
    from django.conf import settings

    if settings.SECURE_PROXY_SSL_HEADER:
        hops = max(1, settings.TRUSTED_PROXY_HOPS)
        entries = [e.strip() for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
        if len(entries) >= hops:
            return entries[-hops]
    return str(request.META.get("REMOTE_ADDR") or "0.0.0.0")  # noqa: S104 - a value, not a bind


def body_within(request: HttpRequest, limit: int) -> bytes | None:
    """The request's body, or None when it is larger than ``limit`` bytes: the declared ``Content-Length`` is checked
    first, so an oversized body is never read into memory, then the length of what came (a wrong or missing
    declaration). For the provider webhooks (Stripe, PayPal), whose events are a few kilobytes: past their limit they
    answer ``413 body_too_large`` in their own JSON, where Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (5 MB) gave a
    plain 400 page."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.body
    return body if len(body) <= limit else None


def rate_limit_ip(ip: str) -> str:
    """The key a per-IP budget counts ``ip`` under. An IPv6 client is given a whole /64 at least (often a /56 or
    /48), so counted per address it could take a fresh budget for every attempt: IPv6 addresses count by their
    /64 network. An IPv4-mapped address counts as its IPv4 address; anything else as is."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# Pages of the authorization flow may run in a popup opened by a partner's page (aptr-connect). The
# default Cross-Origin-Opener-Policy "same-origin" would sever window.opener and the result could never
# reach the partner. Framing stays forbidden by X-Frame-Options and CSP frame-ancestors.
POPUP_COOP = "unsafe-none"


def keep_opener(response: Response) -> Response:
    response["Cross-Origin-Opener-Policy"] = POPUP_COOP
    return response


def show_once(request: HttpRequest, key: str, *, page: str, **values: Any) -> None:
    """Keep ``values`` (a new secret: an API key, a client secret, a signing secret) in the session under ``key``
    until the page ``page`` (the id of the object it belongs to) is shown with :func:`pop_once`."""
    request.session[key] = {"page": page, **values}


def pop_once(request: HttpRequest, key: str, *, page: str) -> dict[str, Any] | None:
    """What :func:`show_once` kept for ``page``, taken out of the session: the one time it is shown. Only a GET of
    that very page takes it: another object's page (a second tab) or a HEAD (a link checker, a prefetch, which
    gets no body) leaves it waiting. The page must be ``never_cache`` too, or Back shows it again."""
    once = request.session.get(key) if request.method == "GET" else None
    if isinstance(once, dict) and once.get("page") == page:
        del request.session[key]
        return once
    return None
