"""Request ids, rate-limit headers and the error format for /api/, and the browser-only middleware kept off the
machine paths.

Machine paths are the ones partner servers call all day with a bearer token or client credentials: the
partner API under ``/api/`` (its HTML docs page excepted) and the token, revocation and introspection
endpoints. They use no session, no login, no CSRF token (they are ``csrf_exempt``), no flash messages, and
their JSON is never framed or rendered as a page, so the session, CSRF, authentication, messages,
clickjacking and CSP middleware are skipped there: the subclasses below behave exactly like Django's and
django-csp's on every other path. ``SecurityMiddleware`` (nosniff, referrer policy, HSTS, SSL redirect)
and ``CommonMiddleware`` still run on every path. Being subclasses, they still satisfy the admin's checks
that the session, auth and messages middleware are installed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from apertur.api.v1 import error_response, status_error_response
from apertur.core.errors import ServiceUnavailable
from apertur.core.tokens import request_id as new_request_id
from apertur.core.validation import has_nul

logger = logging.getLogger("apertur.api")
_VALID_ID = re.compile(r"[A-Za-z0-9_.-]{8,64}")  # fullmatch: "$" would also match before a final newline

MACHINE_PREFIXES = ("/api/", "/oauth/token", "/oauth/revoke", "/oauth/introspect")
BROWSER_PAGES_UNDER_API = ("/api/v1/docs",)


def is_machine_path(path: str) -> bool:
    return path.startswith(MACHINE_PREFIXES) and not path.startswith(BROWSER_PAGES_UNDER_API)


class ApiRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _VALID_ID.fullmatch(incoming) else f"req_{new_request_id()}"
        request.request_id = request_id  # type: ignore[attr-defined]
        # RFC 9110 §9.3.2: HEAD is GET without the content. django-ninja routes only the methods an operation
        # names, so every GET operation answers HEAD here, in one place, rather than each declaring it.
        head = request.method == "HEAD"
        if head:
            request.method = "GET"
        try:
            response = self.get_response(request)
        finally:
            if head:
                request.method = "HEAD"
        if response.status_code in (404, 405, 500) and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            # Django's URL resolver (an unknown path: its HTML 404 page), django-ninja (a method the path does not
            # take: a text 405) and Django's handler for an uncaught exception (its HTML 500 page, the error
            # logged) answer outside any API handler; the API answers in its own format (ARCHITECTURE section 6)
            # whatever went wrong, with the request id support needs.
            response = status_error_response(request, response.status_code, allow=response.get("Allow"))
        allow = response.get("Allow")
        if allow and "GET" in allow.replace(" ", "").split(",") and "HEAD" not in allow:
            response["Allow"] = f"{allow}, HEAD"
        if head and not response.streaming:
            # The length GET would have sent (§8.6 allows it on HEAD), then no content.
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        response["X-Request-Id"] = request_id
        if "Cache-Control" not in response:
            # Every answer is for one authenticated caller and some carry secrets shown once (a webhook's
            # signing secret): no cache may keep a copy (RFC 9111 §5.2.2.5), as on the token endpoint. no-store
            # rather than private/no-cache, which would still let the browser or a client library store it.
            response["Cache-Control"] = "no-store"
        status = getattr(request, "ratelimit_status", None)
        if status is not None:
            for name, value in status.headers().items():
                response[name] = value
        logger.info("api %s %s %s %s", request_id, request.method, request.path, response.status_code)
        return response


class NulRequestMiddleware:
    """A NUL (``%00``) is in no path, id, token, parameter or field Apertur has, and PostgreSQL refuses it in any
    query (every lookup by an id from the URL was a 500, a guest's ``/u/<token>`` among them, and so were forms
    saving a name or a description with one): a path holding one is a 404, a query string or a browser form
    holding one a 400, before any view, in the API's format on ``/api/``. API bodies are refused by the API's
    parser (``v1.ObjectBodyParser``); the token endpoints and the providers' signed webhooks parse their own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if has_nul(request.path):
            raise Http404("This page does not exist: its address contains a NUL character.")
        query = request.META.get("QUERY_STRING", "")
        # The OAuth endpoints answer a bad parameter in OAuth's terms (RFC 6749 §4.1.2.1: an error page, never a
        # redirect, for a bad client or redirect_uri) and look a NUL up nowhere (oauth.selectors.lookable).
        if ("%00" in query or has_nul(query)) and not request.path.startswith("/oauth/"):
            message = "The query string contains a NUL character (%00), which no parameter takes."
            if request.path.startswith("/api/"):
                return error_response(request, 400, "invalid_request", message)
            return render(request, "400.html", {"message": message}, status=400)
        try:
            holds_nul = _form_holds_nul(request)
        except TooManyFilesSent:
            # Unread, the form's CSRF token would be missing too: the guest would read "This form expired" and get
            # it again on every try. Said as it is instead (the guest upload page without JavaScript).
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
            message = f"At most {limit} files can be sent at once: go back, choose fewer, then send the rest."
            return render(request, "400.html", {"message": message}, status=400)
        if holds_nul:
            message = "The form contains a NUL character, which no field takes: go back and remove it."
            if "application/json" in request.headers.get("Accept", ""):  # a page's script (the guest upload page)
                return JsonResponse({"error": {"code": "validation_error", "message": message}}, status=400)
            return render(request, "400.html", {"message": message}, status=400)
        return self.get_response(request)


def _form_holds_nul(request: HttpRequest) -> bool:
    """Whether a browser form posted a NUL in a field (its name or value). Django has parsed the form already
    (the CSRF check reads it); a body it cannot parse is left to the view, as before."""
    if request.method != "POST" or is_machine_path(request.path) or request.path.startswith("/webhooks/"):
        return False
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return False
    try:
        fields = list(request.POST.lists())
    except TooManyFilesSent:
        raise
    except Exception:  # too large, or not parsable: the view answers as it does for any such body
        return False
    return any(has_nul(name) or any(has_nul(value) for value in values) for name, values in fields)


class _SkipOnMachinePaths:
    """Mixin: on a machine path, hand the request straight to the next middleware."""

    # Synchronous only (Apertur is served over WSGI): under ASGI, Django adapts them instead of calling
    # this __call__ with a coroutine for get_response.
    sync_capable = True
    async_capable = False

    def __call__(self: Any, request: HttpRequest) -> Any:
        if is_machine_path(request.path_info):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class BrowserSessionMiddleware(_SkipOnMachinePaths, SessionMiddleware):
    pass


class BrowserCsrfViewMiddleware(_SkipOnMachinePaths, CsrfViewMiddleware):
    def process_view(self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any) -> Any:
        if is_machine_path(request.path_info):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class BrowserAuthenticationMiddleware(_SkipOnMachinePaths, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_SkipOnMachinePaths, MessageMiddleware):
    pass


class BrowserXFrameOptionsMiddleware(_SkipOnMachinePaths, XFrameOptionsMiddleware):
    pass


class BrowserCSPMiddleware(_SkipOnMachinePaths, CSPMiddleware):
    pass


class BrowserPrivatePagesMiddleware:
    """A page answered to a signed-in person is theirs: Django's ``never_cache`` headers (``private, no-store``…), so
    no shared cache stores it and the browser does not show it again from its cache after they log out, unless the
    view set its own ``Cache-Control``. One rule for every page rather than a decorator each view may lack. So is a
    page whose address is a secret link (``settings.SECRET_PATH_PREFIXES``: a confirmation or reset link, a guest
    upload link), whoever opens it: a cache must not keep a working link, nor what its page shows."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control") or is_machine_path(request.path_info):
            return response
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or request.path_info.startswith(
            tuple(settings.SECRET_PATH_PREFIXES)
        ):
            add_never_cache_headers(response)
        return response


class BrowserServiceUnavailableMiddleware:
    """A page whose view could not reach a service every request of its kind needs (Redis, for the rate limits:
    :class:`ServiceUnavailable`) is a 503 page saying nothing was done and to try again, not the 500 page that says
    an error happened on our side. The API, the token endpoints and the guest upload answer it in their own format."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ServiceUnavailable) or is_machine_path(request.path_info):
            return None
        response = render(request, "503.html", status=503)
        response["Retry-After"] = "60"
        add_never_cache_headers(response)
        return response
