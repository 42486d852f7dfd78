"""Where the account pages send a signed-out user back to (``next``), and which of them are part of an
OAuth authorization that may run in the aptr-connect popup."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from apertur.core.http import keep_opener


def safe_next(request: HttpRequest) -> str:
    """Only same-site paths: never an open redirect (``//evil.com`` and ``https://evil.com`` are refused). A path
    starts with "/": a relative one (``projects``) would be resolved against the page, and ``redirect()`` reads one
    without "/" or "." as a view name (NoReverseMatch, a 500)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


def next_query(request: HttpRequest) -> str:
    """``?next=…`` for a link to another account page, so the user still comes back where they were
    going; empty when that is only the home page."""
    target = safe_next(request)
    return "" if target == "/" else "?" + urlencode({"next": target})


def in_authorize_flow(request: HttpRequest) -> bool:
    """The page was reached on the way to the authorization endpoint (RFC 6749 §3.1): it sends the user
    to a login or signup and then back to the authorization request."""
    return urlsplit(safe_next(request)).path == reverse("oauth:authorize")


# Pages a signed-out user may be sent to the login from by a link in an email: the login says what the link is for.
_LOGIN_PURPOSES = {
    "accounts:confirm-email-change": (
        "Log in with your current email address to confirm the new one. It changes once you are logged in."
    ),
}


def login_purpose(request: HttpRequest) -> str | None:
    """Why the login is asked for, when ``next`` is a page that says (the email-change link opened signed out
    otherwise landed on a bare login page, and the new address typed there was "Incorrect email or password")."""
    try:
        match = resolve(urlsplit(safe_next(request)).path)
    except Resolver404:
        return None
    return _LOGIN_PURPOSES.get(match.view_name)


def authorize_flow_pages(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Account pages in the middle of an OAuth authorization keep ``window.opener`` for the SDK popup:
    with the default COOP ``same-origin`` the popup would be severed from the partner's page, which then
    reports ``user_denied`` while the user is still logging in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if in_authorize_flow(request):
            keep_opener(response)
        return response

    return wrapper


def account_links(request: HttpRequest) -> dict[str, Any]:
    """Template context: the header's Log in and Sign up links carry the page's ``next``."""
    return {"next_query": next_query(request)}
