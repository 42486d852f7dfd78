"""``/api/v1``: thin handlers over the domains' selectors and services (ARCHITECTURE section 3)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from apertur.api.auth import OAuthToken
from apertur.oauth.bearer import AccessContext, BearerError

api = NinjaAPI(
    title="Apertur Partner API",
    version="1",
    description="The Apertur resources a connected partner app can use. Every operation names its scope.",
    urls_namespace="api_v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def error_response(request: HttpRequest, status: int, code: str, message: str, **extra: Any) -> HttpResponse:
    response = api.create_response(request, {"error": {"code": code, "message": message, **extra}}, status=status)
    response["Cache-Control"] = "no-store"
    return response


@api.exception_handler(BearerError)
def bearer_error(request: HttpRequest, exc: BearerError) -> HttpResponse:
    code = "authentication_required" if exc.error == "missing_token" else exc.error
    response = error_response(request, exc.status, code, exc.description)
    response["WWW-Authenticate"] = exc.www_authenticate()
    return response


@api.exception_handler(AuthenticationError)
def authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error_response(request, 401, "authentication_required", "Send an access token.")
    response["WWW-Authenticate"] = 'Bearer realm="apertur"'
    return response


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return error_response(request, 422, "validation_error", "The request is not valid.", details=exc.errors)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(request, exc.status_code, "error", str(exc))


class PlanLimits(Schema):
    uploads_per_month: int
    storage_bytes: int
    active_sessions: int
    file_bytes: int


class PlanOut(Schema):
    name: str
    price_cents: int
    currency: str
    interval: str
    limits: PlanLimits
    livemode: bool


@api.get(
    "/plan",
    response=PlanOut,
    auth=OAuthToken("plan:read"),
    summary="The connected project's plan",
    description="Scope: `plan:read` (always granted).",
    tags=["plan"],
)
def get_plan(request: HttpRequest) -> dict[str, Any]:
    context: AccessContext = request.auth  # type: ignore[attr-defined]
    return {**context.token.project.plan.as_json(), "livemode": context.livemode}


class ProjectOut(Schema):
    id: str
    name: str
    plan: PlanOut
    created_at: str
    livemode: bool


@api.get(
    "/project",
    response=ProjectOut,
    auth=OAuthToken("project:read"),
    summary="The connected project",
    description="Scope: `project:read`.",
    tags=["project"],
)
def get_project(request: HttpRequest) -> dict[str, Any]:
    context: AccessContext = request.auth  # type: ignore[attr-defined]
    project = context.token.project
    return {
        "id": project.public_id,
        "name": project.name,
        "plan": {**project.plan.as_json(), "livemode": context.livemode},
        "created_at": project.created_at.isoformat(),
        "livemode": context.livemode,
    }
