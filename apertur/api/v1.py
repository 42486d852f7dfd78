"""``/api/v1``: thin handlers over the domains' selectors and services (ARCHITECTURE section 3).

Every operation names its scope; OAuth tokens reach only their scopes, secret API keys reach everything
of their project. Test-mode callers see and create only test-mode objects."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from apertur.api.auth import Caller
from apertur.core.errors import AperturError, RateLimited
from apertur.core.validation import has_nul, loads_json
from apertur.oauth.bearer import BearerError
from apertur.oauth.server import REALM


class RefusedBody(ValueError):
    """A JSON body that parses but that no operation takes: not an object (a string, a number, an array, null),
    or holding a NUL or a lone surrogate anywhere (text the database refuses: a 500 where it reached it)."""


class ObjectBodyParser(Parser):
    """Every JSON body of the API is an object. Without this check django-ninja would read a bare string
    through its ``DjangoGetter`` (``getattr(body, field)``), so ``"hello world"`` became a session titled
    ``str.title()`` of it; arrays and numbers were silently taken as "no fields"."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        data = loads_json(request.body)
        if not isinstance(data, dict):
            raise RefusedBody("The body must be a JSON object.")
        if _holds_nul(data):
            raise RefusedBody("The body contains a NUL character (\\u0000), which no field takes.")
        if _holds_lone_surrogate(data):
            raise RefusedBody(
                "The body contains a lone UTF-16 surrogate (such as \\ud800), which is not text: escape a character "
                "outside the Basic Multilingual Plane as its surrogate pair, or send it as UTF-8."
            )
        return data


def _holds_nul(value: Any) -> bool:
    """Whether a NUL is in any string of a parsed JSON document (member names included)."""
    if isinstance(value, str):
        return has_nul(value)
    if isinstance(value, dict):
        return any(has_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any string of a parsed JSON document (member names included) holds an unpaired surrogate:
    ``"\\ud800"`` is valid JSON syntax (RFC 8259 §8.2 leaves it to the reader) and Python reads it into a string
    that cannot be encoded as UTF-8, so the database driver's encoding of it was a 500."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine code; see docs/api.md, Errors."},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "The offending input, for 422s."},
                "request_id": {"type": "string"},
            },
        }
    },
}

_ERROR_DESCRIPTIONS = {
    "400": "`invalid_request` (`Authorization: Bearer` without a token, a query string holding `%00`, a body that "
    "is not a JSON object or holds a NUL or a lone surrogate), `invalid_idempotency_key`",
    "401": "`authentication_required` or `invalid_token`, with a `WWW-Authenticate: Bearer` challenge",
    "403": "`insufficient_scope` (the token lacks the operation's scope); `livemode_required` (a test-mode credential "
    "on `PATCH /project/settings`); with a `WWW-Authenticate` challenge",
    "404": "`not_found`: no such object in this project and mode",
    "409": "a conflict with the current state (`session_limit_reached`, `limit_reached`, `idempotency_key_reused`, …)",
    "413": "`payload_too_large`: the body is over 5 MiB",
    "422": "`validation_error` or a resource-specific code, with the offending `field`",
    "429": "`rate_limited`, with `Retry-After`",
    "503": "`service_unavailable`: Redis, which counts the rate limits, is out of reach; nothing was done, send the "
    "same request again later",
}

_HEADER = {"schema": {"type": "string"}}
_RATELIMIT_HEADERS = {
    "RateLimit-Limit": {"description": "Requests allowed per window (600 a minute).", "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Requests left in this window.", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the window starts again.", "schema": {"type": "integer"}},
}


class AperturAPI(NinjaAPI):
    """django-ninja's OpenAPI document, completed with what it leaves out: every operation's error answers
    (the one error format) and the OAuth scope it needs, under an OAuth 2.0 scheme beside the secret keys."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> Any:
        from apertur.oauth import scopes as scope_registry

        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        needed = {
            self.get_openapi_operation_id(op): getattr(op.auth_callbacks[0], "scope", None)
            for _prefix, router in self._routers
            for path_view in router.path_operations.values()
            for op in path_view.operations
            if op.auth_callbacks
        }
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        components["securitySchemes"] = {
            "OAuth2": {
                "type": "oauth2",
                "description": "An access token (`oat_…`) from the OAuth flow (docs/oauth.md), limited to its scopes.",
                "flows": {
                    "authorizationCode": {
                        "authorizationUrl": "/oauth/authorize",
                        "tokenUrl": "/api/v1/oauth/token",
                        "refreshUrl": "/api/v1/oauth/token",
                        "scopes": dict(scope_registry.SCOPES),
                    }
                },
            },
            "SecretKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "A project's secret API key (`aptr_live_sk_…`, `aptr_test_sk_…`): every scope.",
            },
        }
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                scope = needed.get(operation.get("operationId"))
                if scope is None:
                    continue
                operation["security"] = [{"OAuth2": [scope]}, {"SecretKey": []}]
                # Any operation: 400 (Authorization: Bearer without a token, a NUL in the query), 401, 403, 429
                # and 503 (every call is counted in Redis first).
                codes = ["400", "401", "403", "429", "503"]
                query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
                # An object looked up by an id in the path, or in the query (GET /uploads?session_id=): 404 when
                # it is not this project's.
                if "{" in path or any(p.get("name", "").endswith("_id") for p in query):
                    codes.append("404")
                if method in {"post", "patch", "put"}:
                    codes += ["409" if method == "post" else "", "413", "422"]
                if query:
                    codes.append("422")
                responses = operation.setdefault("responses", {})
                for code in sorted({c for c in codes if c}):
                    response: dict[str, Any] = {
                        "description": _ERROR_DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                    if code in {"401", "403"}:
                        response["headers"] = {"WWW-Authenticate": _HEADER}
                    if code in {"409", "429"}:  # 409: idempotency_in_progress says when to retry (docs/api.md)
                        response["headers"] = {"Retry-After": _HEADER}
                    responses.setdefault(int(code), response)  # int keys, as django-ninja writes its own
                # docs/api.md, Rate limits: an answer to a caller it counted (a success, the 403, the 429).
                for code, response in responses.items():
                    if str(code).startswith("2") or str(code) in {"403", "429"}:
                        response.setdefault("headers", {}).update(_RATELIMIT_HEADERS)
        return schema


api = AperturAPI(
    title="Apertur Partner API",
    version="1",
    description=(
        "The Apertur resources a connected partner app can use. Authenticate with an OAuth access token "
        "(`Authorization: Bearer oat_…`, limited to its scopes) or a project's secret key "
        "(`Bearer aptr_live_sk_…`). Every operation names the scope it needs."
    ),
    urls_namespace="api_v1",
    parser=ObjectBodyParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
    # django-ninja serves both to any method: DELETE /api/v1/openapi.json was a 200. GET (and HEAD) only, so
    # another method is the API's 405 with Allow, as on every operation.
    docs_decorator=require_safe,
)


def error_response(request: HttpRequest, status: int, code: str, message: str, **extra: Any) -> HttpResponse:
    body = {"error": {"code": code, "message": message, **extra}}
    request_id = getattr(request, "request_id", None)
    if request_id:
        body["error"]["request_id"] = request_id
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


# The errors that come from django-ninja or Django rather than from Apertur's code carry only a status: the
# API's stable code and message for each. django-ninja's only HttpError is its 400 for a body that does not
# parse as JSON: ``invalid_request``, as the token endpoint names the same fault.
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "The request body is not valid JSON."),
    404: ("not_found", "There is no such API endpoint; see /api/v1/docs."),
    405: ("method_not_allowed", "This endpoint does not take this method; the Allow header lists those it takes."),
    500: ("server_error", "Something went wrong on Apertur's side. Quote the request id to support."),
}


def status_error_response(request: HttpRequest, status: int, *, allow: str | None = None) -> HttpResponse:
    code, message = STATUS_ERRORS.get(status, ("error", "The request failed."))
    response = error_response(request, status, code, message)
    if allow is not None:
        response["Allow"] = allow
    return response


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data), status=status, content_type="application/json")


@api.exception_handler(BearerError)
def bearer_error(request: HttpRequest, exc: BearerError) -> HttpResponse:
    code = "authentication_required" if exc.error == "missing_token" else exc.error
    response = error_response(request, exc.status, code, exc.description)
    response["WWW-Authenticate"] = exc.www_authenticate()
    return response


@api.exception_handler(AuthenticationError)
def authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error_response(request, 401, "authentication_required", "Send an access token.")
    response["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
    return response


@api.exception_handler(RateLimited)
def rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    response = error_response(request, 429, exc.code, "Too many requests. Retry after the given delay.")
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(AperturError)
def domain_error(request: HttpRequest, exc: AperturError) -> HttpResponse:
    extra = {"field": exc.field} if exc.field else {}
    return error_response(request, exc.status, exc.code, exc.message, **extra)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body", "payload"):
        # django-ninja does not parse an empty body: the whole body is "missing". Like a body that is not JSON, a
        # 400 saying what is wrong rather than a 422 naming no field.
        return error_response(request, 400, "invalid_request", "The request body is empty: send a JSON object.")
    location = [str(part) for part in first.get("loc", []) if part not in {"body", "query", "path", "payload"}]
    field = ".".join(location) or None
    if first.get("type") == "extra_forbidden":  # BodyIn: a member the operation does not take
        message = f"{field}: this operation takes no such field (see its request body in the API reference)."
    else:
        message = f"{field}: {first.get('msg', 'invalid')}" if field else "The request is not valid."
    extra = {"field": field} if field else {}
    return error_response(request, 422, "validation_error", message, **extra)


@api.exception_handler(RequestDataTooBig)
def payload_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    """RFC 9110 §15.5.14 (413 Content Too Large). django-ninja re-raises Django's error, which would otherwise
    become Django's HTML 400 page."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"The request body is larger than the {limit // 1_048_576} MiB limit."
    return error_response(request, 413, "payload_too_large", message)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, RefusedBody):  # django-ninja wraps the parser's error in its 400
        return error_response(request, 400, "invalid_request", str(exc.__cause__))
    return status_error_response(request, exc.status_code)


def caller(request: HttpRequest) -> Caller:
    return request.auth  # type: ignore[attr-defined]


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


# Routers are registered here so the operations appear in the OpenAPI document in this order.
from apertur.api import routes  # noqa: E402

for router, prefix in routes.ROUTERS:
    api.add_router(prefix, router)
