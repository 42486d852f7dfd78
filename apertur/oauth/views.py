"""OAuth 2.0 endpoints: authorization (RFC 6749 §4.1 with consent), token (§4.1.3, §6), revocation
(RFC 7009), introspection (RFC 7662) and server metadata (RFC 8414)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.encoding import iri_to_uri
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from apertur.accounts.models import User
from apertur.core import ratelimit
from apertur.core.errors import RateLimited, ServiceUnavailable
from apertur.core.http import client_ip, keep_opener, rate_limit_ip
from apertur.core.transactions import write_transaction
from apertur.oauth import limits
from apertur.oauth import scopes as scope_registry
from apertur.oauth import tokens as token_store
from apertur.oauth.domains import canonical_origin, origin_allowed
from apertur.oauth.errors import AppNotFound
from apertur.oauth.selectors import app_for_public_key
from apertur.oauth.server import Request, basic_credentials, body_params, describe, server
from apertur.projects.selectors import project_list


def _first(params: dict[str, list[str]], key: str) -> str:
    values = params.get(key) or [""]
    return values[0]


def _error_page(request: HttpRequest, error: str, description: str, *, status: int = 400) -> HttpResponse:
    """An error Apertur shows itself, never redirecting: the client or redirect URI could not be trusted
    (RFC 6749 §4.1.2.1)."""
    response = render(
        request, "oauth/authorize_error.html", {"error": error, "description": description}, status=status
    )
    return keep_opener(response)


def issuer() -> str:
    """Apertur's issuer identifier: the metadata's ``issuer`` (RFC 8414 §2) and every authorization response's
    ``iss`` (RFC 9207 §2)."""
    return str(settings.APERTUR_BASE_URL)


def _popup_result(request: HttpRequest, origin: str, message: dict[str, str]) -> HttpResponse:
    """The page that hands the result to the SDK: ``postMessage`` to ``window.opener`` with the target
    origin pinned to the validated origin, so no other site can receive it. Like a redirect to the client, the
    message names the issuer (RFC 9207 §2), success or error."""
    response = render(
        request,
        "oauth/popup_result.html",
        {"origin": origin, "message": {"source": "aptr-connect", **message, "iss": issuer()}},
    )
    return keep_opener(response)


def _redirect_params(location: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(location).query))


RATE_LIMITED_DESCRIPTION = "Too many requests. Retry after the given delay."


def _rate_limited(exc: RateLimited) -> HttpResponse:
    response = JsonResponse({"error": "rate_limited", "error_description": RATE_LIMITED_DESCRIPTION}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    # As every other answer of the token endpoints (RFC 6749 §5.1): no cache keeps it, HTTP/1.0 ones included.
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _unavailable(exc: ServiceUnavailable) -> HttpResponse:
    response = JsonResponse({"error": "temporarily_unavailable", "error_description": exc.message}, status=503)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    ip = client_ip(request)
    try:
        ratelimit.hit(limits.AUTHORIZE_PER_IP, rate_limit_ip(ip))
    except RateLimited as exc:
        return _authorize_rate_limited(request, exc)

    # Every authorization parameter comes from the query string, on GET and on the consent POST alike.
    params = {k: request.GET.getlist(k) for k in request.GET}
    livemode = True
    popup_origin = ""
    state = _first(params, "state")
    if "public_key" in params:
        # aptr-connect mode: a publishable key and the opener's origin instead of a client_id.
        match = app_for_public_key(_first(params, "public_key"))
        # Only the strictly parsed, rebuilt origin is used from here on, never the raw parameter.
        origin = canonical_origin(_first(params, "origin")) or ""
        if match is None:
            return _sdk_error(
                request, origin, state, "invalid_public_key", "The public key was not found or is deactivated."
            )
        patterns = [d.pattern for d in match.app.allowed_domains.all()]
        if not origin or not origin_allowed(origin, patterns):
            return _sdk_error(
                request,
                origin,
                state,
                "origin_not_allowed",
                "This page's origin is not in the app's allowed domains.",
            )
        if params.get("client_id", [match.app.client_id])[0] != match.app.client_id:
            return _error_page(request, "invalid_request", "client_id does not match the public key.")
        params["client_id"] = [match.app.client_id]
        params.setdefault("response_type", ["code"])
        livemode = match.livemode
        if _first(params, "ux_mode") != "redirect":
            popup_origin = origin

    oauth_request = Request(request, params)
    oauth_request.livemode = livemode
    user = request.user if request.user.is_authenticated else None
    try:
        grant = server.get_consent_grant(request=oauth_request, end_user=user)
        ratelimit.hit(limits.AUTHORIZE_PER_CLIENT, f"{oauth_request.client.get_client_id()}|{rate_limit_ip(ip)}")
    except RateLimited as exc:
        return _authorize_rate_limited(request, exc)
    except OAuth2Error as error:
        return _authorization_error(request, error, popup_origin)

    if user is None:
        login = HttpResponseRedirect("/login?" + urlencode({"next": request.get_full_path()}))
        return keep_opener(login)
    assert isinstance(user, User)

    app = oauth_request.client.app
    granted = scope_registry.split(oauth_request.scope)
    projects = list(project_list(owner=user))
    context: dict[str, Any] = {
        "app": app,
        "partner": app.partner,
        "scopes": scope_registry.describe(granted),
        "projects": projects,
        "redirect_uri": grant.redirect_uri,
        "livemode": livemode,
        "error": None,
    }
    if not projects:
        message = "Create a project in Apertur first: an app connects to one project."
        if popup_origin:
            return _popup_result(
                request, popup_origin, {"error": "invalid_request", "error_description": message, "state": state}
            )
        return _error_page(request, "no_project", message)

    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision == "deny":
            token_store.deny(app=app, user=user, ip=ip)
            response = server.create_authorization_response(request=oauth_request, grant_user=None, grant=grant)
            return _deliver(request, response, popup_origin)
        if decision == "allow":
            chosen = request.POST.get("project") or (projects[0].public_id if len(projects) == 1 else "")
            project = next((p for p in projects if p.public_id == chosen), None)
            if project is not None:
                try:
                    with transaction.atomic():
                        oauth_request.connection = token_store.connect(
                            app=app, project=project, user=user, scopes=granted, ip=ip
                        )
                        response = server.create_authorization_response(
                            request=oauth_request, grant_user=user, grant=grant
                        )
                except AppNotFound as exc:  # deleted by its developer while this page was open
                    return _error_page(request, "invalid_client", exc.message)
                return _deliver(request, response, popup_origin)
            context["error"] = "Choose the project to connect."
        else:
            context["error"] = "Choose Allow or Deny."
        status = 400
    else:
        status = 200
    response = render(request, "oauth/consent.html", context, status=status)
    # CSP form-action also governs the redirect that follows the consent POST (Chromium enforces it), so
    # the page may submit to Apertur and be redirected to this client's validated redirect URI, no further.
    target = urlsplit(grant.redirect_uri)
    response._csp_update = {"form-action": ["'self'", f"{target.scheme}://{target.netloc}"]}  # type: ignore[attr-defined]
    return keep_opener(response)


def _sdk_error(request: HttpRequest, origin: str, state: str, code: str, message: str) -> HttpResponse:
    """Errors of the SDK's table. Posting them to the claimed origin leaks nothing: the browser delivers
    the message only if the opener really is on that origin. ``state`` goes back as with every error
    (RFC 6749 §4.1.2.1) so the SDK can tell which call failed. In redirect mode there is no opener:
    the user sees the error page (the redirect URI cannot be trusted before the key is known)."""
    redirect_mode = request.GET.get("ux_mode") == "redirect"
    if origin and urlsplit(origin).scheme in {"http", "https"} and not redirect_mode:
        message_ = {"error": code, "error_description": message}
        if state:
            message_["state"] = state
        return _popup_result(request, origin, message_)
    return _error_page(request, code, message)


def _authorize_rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    """The authorization endpoint's 429. In the SDK's popup a bare JSON answer would be stranded, and its default
    COOP ``same-origin`` would cut the popup off from the partner's page, which then reports ``user_denied`` as if
    the user had cancelled: there the popup posts the error to the opener instead (to the claimed origin, as
    :func:`_sdk_error` does before the key is looked up), still a 429 with ``Retry-After``."""
    response = _rate_limited(exc)
    params = {k: request.GET.getlist(k) for k in request.GET}
    origin = canonical_origin(_first(params, "origin")) or ""
    if "public_key" not in params or not origin or _first(params, "ux_mode") == "redirect":
        return response
    message = {"error": "rate_limited", "error_description": RATE_LIMITED_DESCRIPTION}
    state = _first(params, "state")
    if state:
        message["state"] = state
    popup = _popup_result(request, origin, message)
    popup.status_code = 429
    popup["Retry-After"] = response["Retry-After"]
    return popup


def _authorization_error(request: HttpRequest, error: OAuth2Error, popup_origin: str) -> HttpResponse:
    if error.redirect_uri:
        # The client and redirect URI were validated: the error goes back to the client (§4.1.2.1).
        return _deliver(request, server.handle_error_response(None, error), popup_origin)
    if popup_origin:
        # aptr-connect: the origin was validated against the app's allowed domains, so the page that opened
        # the popup learns what is wrong (e.g. an unregistered redirect_uri) instead of a stuck popup.
        message = {"error": error.error or "invalid_request", "error_description": describe(error)}
        if error.state:
            message["state"] = error.state
        return _popup_result(request, popup_origin, message)
    return _error_page(request, error.error or "invalid_request", describe(error))


def _deliver(request: HttpRequest, response: HttpResponse, popup_origin: str) -> HttpResponse:
    """A redirect to the client, or in popup mode the same parameters posted to the opener. Every authorization
    response to the client, code or error, carries ``iss`` (RFC 9207 §2): a client that talks to several
    authorization servers can tell that this answer is Apertur's (mix-up attacks, RFC 9700 §4.4)."""
    if response.status_code == 302:
        # A redirect URI is stored as typed and may hold non-ASCII characters (an IDN host): the header carries it
        # in its URI form (RFC 3987 §3.1, UTF-8 percent-encoded), which browsers follow to the same address.
        response["Location"] = iri_to_uri(add_params_to_uri(response["Location"], [("iss", issuer())]))
        if popup_origin:
            return _popup_result(request, popup_origin, _redirect_params(response["Location"]))
    return keep_opener(response)


def _client_id_of(request: HttpRequest, params: dict[str, list[str]]) -> str:
    """The client a token request names, for its rate limit: unreadable Basic credentials name none (client
    authentication then fails: ``server.refuse_several_client_credentials``)."""
    try:
        basic = basic_credentials(request.META.get("HTTP_AUTHORIZATION", ""))
    except ValueError:
        return ""
    return basic[0] if basic is not None else _first(params, "client_id")


_KEYABLE = re.compile(r"[!-~]+")


def _protocol_endpoint(request: HttpRequest, handler: Any, *, atomic: bool = True) -> HttpResponse:
    """Shared by the token, revocation and introspection endpoints: body parsing, rate limits, one
    transaction (committed before the response) for the endpoints that write. Introspection only reads:
    its two queries run in autocommit, which on SQLite also keeps it from taking the write lock
    (``BEGIN IMMEDIATE``) that token exchanges queue on."""
    try:
        params = body_params(request)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    ip = client_ip(request)
    try:
        ratelimit.hit(limits.TOKEN_PER_IP, rate_limit_ip(ip))
        client_id = _client_id_of(request, params)[:80]
        if _KEYABLE.fullmatch(client_id):
            # Client ids are public: keyed with the IP, so nobody can spend a partner's budget for them. Only an id
            # that could be one (printable ASCII, no space): a lone surrogate cannot be a Redis key (a 500), and a
            # space or a control character makes Django warn with the key, which the client chose, in the log.
            ratelimit.hit(limits.TOKEN_PER_CLIENT, f"{client_id}|{rate_limit_ip(ip)}")
    except RateLimited as exc:
        return _rate_limited(exc)
    except ServiceUnavailable as exc:  # Redis out of reach: RFC 6749 JSON, not the HTML 500 page
        return _unavailable(exc)
    oauth_request = Request(request, params)
    if not atomic:
        return handler(oauth_request)
    with write_transaction():
        response: HttpResponse = handler(oauth_request)
    return response


def _post_only(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """The token (RFC 6749 §3.2), revocation (RFC 7009 §2.1) and introspection (RFC 7662 §2.1) endpoints take
    POST only. Another method is answered like these endpoints' other errors, in RFC 6749 §5.2 JSON (with
    ``Allow``, RFC 9110 §15.5.6), not with Django's empty HTML 405."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            error = InvalidRequestError("Use POST to call this endpoint.", status_code=405)
            response = server.handle_error_response(None, error)
            response["Allow"] = "POST"
            return response
        return view(request)

    return wrapper


@csrf_exempt
@_post_only
def token(request: HttpRequest) -> HttpResponse:
    """``POST /oauth/token`` and ``POST /api/v1/oauth/token`` (identical)."""
    return _protocol_endpoint(request, server.create_token_response)


@csrf_exempt
@_post_only
def revoke(request: HttpRequest) -> HttpResponse:
    """RFC 7009. Unknown tokens answer 200 too (§2.2), so the endpoint tells an attacker nothing."""
    return _protocol_endpoint(request, lambda r: server.create_endpoint_response("revocation", r))


@csrf_exempt
@_post_only
def introspect(request: HttpRequest) -> HttpResponse:
    return _protocol_endpoint(request, lambda r: server.create_endpoint_response("introspection", r), atomic=False)


def metadata_document() -> dict[str, Any]:
    base = issuer()
    auth_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "scopes_supported": list(scope_registry.SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 §3
    }


@require_safe
def metadata(request: HttpRequest) -> JsonResponse:
    """RFC 8414 §3."""
    response = JsonResponse(metadata_document())
    response["Cache-Control"] = "public, max-age=3600"
    response["Access-Control-Allow-Origin"] = "*"
    return response
